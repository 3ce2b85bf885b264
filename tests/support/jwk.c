/* SPDX-License-Identifier: Apache-2.0 */
/* Tests: JWK -> OpenSSL public key (jwk.h). base64url through EVP_DecodeBlock. */
#include "support/jwk.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>

/* base64url (no padding) to bytes. @return the length, or -1. */
static int unb64url(const char *in, unsigned char *buf, size_t cap)
{
    char tmp[2048];
    size_t n = in ? strlen(in) : 0;
    int len;
    int pad = 0;

    if (!in || n + 4 >= sizeof(tmp) || cap < n) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        tmp[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
    }
    while (n % 4) {
        tmp[n++] = '=';
        pad++;
    }
    tmp[n] = '\0';
    len = EVP_DecodeBlock(buf, (const unsigned char *)tmp, (int)n);
    return len < 0 ? -1 : len - pad; /* DecodeBlock counts padding as zero bytes */
}

EVP_PKEY *pwt_jwk_public_key(const json_t *jwk)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *key = NULL;
    unsigned char a[1024];
    unsigned char b[1024];
    unsigned char pt[1 + 2 * 48] = {0x04}; /* uncompressed point: 04 || x || y */
    BIGNUM *n = NULL;
    BIGNUM *e = NULL;
    bool ok = bld && kty;

    if (ok && strcmp(kty, "RSA") == 0) {
        int na = unb64url(json_string_value(json_object_get(jwk, "n")), a, sizeof(a));
        int nb = unb64url(json_string_value(json_object_get(jwk, "e")), b, sizeof(b));
        ok = na > 0 && nb > 0;
        n = ok ? BN_bin2bn(a, na, NULL) : NULL;
        e = ok ? BN_bin2bn(b, nb, NULL) : NULL;
        ok = ok && n && e && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
             OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
        ctx = ok ? EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL) : NULL;
    } else if (ok && strcmp(kty, "EC") == 0) {
        const char *crv = json_string_value(json_object_get(jwk, "crv"));
        ok = crv && strcmp(crv, "P-384") == 0 &&
             unb64url(json_string_value(json_object_get(jwk, "x")), a, sizeof(a)) == 48 &&
             unb64url(json_string_value(json_object_get(jwk, "y")), b, sizeof(b)) == 48;
        if (ok) {
            memcpy(pt + 1, a, 48);
            memcpy(pt + 49, b, 48);
        }
        ok = ok && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-384", 0) &&
             OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt));
        ctx = ok ? EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL) : NULL;
    } else {
        ok = false;
    }
    params = ok ? OSSL_PARAM_BLD_to_param(bld) : NULL;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        EVP_PKEY_free(key);
        key = NULL;
    }
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    BN_free(n);
    BN_free(e);
    return key;
}
