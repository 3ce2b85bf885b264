/* SPDX-License-Identifier: Apache-2.0 */
/* Inbound JWT verification (jwt.h): RS384 / ES384 only, keys from a JWK Set, all through OpenSSL.
 */
#include "painwatch/jwt.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/param_build.h>

#include "painwatch/err.h"

#define ES384_PART   48    /* bytes of r and of s in a JWS ES384 signature */
#define JWT_MAX      16384 /* a compact JWS longer than this is refused unread */
#define JWKS_KEYS    32    /* keys kept from one set */
#define RSA_MIN_BITS 2048
#define KID_MAX      128

struct jwks_key {
    char kid[KID_MAX]; /* "" when the JWK has none */
    bool ec;           /* EC P-384 (ES384) or RSA (RS384) */
    EVP_PKEY *key;
};

struct pw_jwks {
    struct jwks_key v[JWKS_KEYS];
    size_t n;
};

static bool b64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

int pw_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
    size_t padded = (len + 3) / 4 * 4;
    unsigned char *tmp;
    unsigned char *buf;
    int n;

    *out = NULL;
    *out_len = 0;
    if (len % 4 == 1 || padded > JWT_MAX * 2) {
        return PW_EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        if (!b64url_char(in[i])) {
            return PW_EINVAL; /* padding, whitespace and the standard alphabet's + / included */
        }
    }
    tmp = malloc(padded + 1);
    buf = malloc(padded / 4 * 3 + 1);
    if (!tmp || !buf) {
        free(tmp);
        free(buf);
        return PW_ENOMEM;
    }
    for (size_t i = 0; i < len; i++) {
        tmp[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : (unsigned char)in[i];
    }
    memset(tmp + len, '=', padded - len);
    n = padded ? EVP_DecodeBlock(buf, tmp, (int)padded) : 0;
    free(tmp);
    if (n < 0) {
        free(buf);
        return PW_EINVAL;
    }
    /* EVP_DecodeBlock counts each '=' of padding as a zero byte of output. */
    *out_len = (size_t)n - (padded - len);
    buf[*out_len] = '\0';
    *out = buf;
    return 0;
}

/* A base64url member of @p jwk into @p buf: its length, or -1 when absent, invalid or too long. */
static long member(const json_t *jwk, const char *name, unsigned char *buf, size_t cap)
{
    const char *s = json_string_value(json_object_get(jwk, name));
    unsigned char *raw;
    size_t n;

    if (!s || pw_b64url_decode(s, strlen(s), &raw, &n) < 0) {
        return -1;
    }
    if (n == 0 || n > cap) {
        free(raw);
        return -1;
    }
    memcpy(buf, raw, n);
    free(raw);
    return (long)n;
}

static bool push_rsa(OSSL_PARAM_BLD *bld, const json_t *jwk, BIGNUM **n, BIGNUM **e)
{
    unsigned char a[1024];
    unsigned char b[16];
    long na = member(jwk, "n", a, sizeof(a));
    long nb = member(jwk, "e", b, sizeof(b));

    if (na * 8 < RSA_MIN_BITS || nb < 1) {
        return false;
    }
    *n = BN_bin2bn(a, (int)na, NULL);
    *e = BN_bin2bn(b, (int)nb, NULL);
    return *n && *e && BN_num_bits(*n) >= RSA_MIN_BITS &&
           OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, *n) &&
           OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, *e);
}

/* @p pt: the uncompressed point 04 || x || y, which must live until OSSL_PARAM_BLD_to_param()
 * (the builder keeps a pointer to it, not a copy). */
static bool push_ec(OSSL_PARAM_BLD *bld, const json_t *jwk, unsigned char pt[1 + 2 * ES384_PART])
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));

    pt[0] = 0x04;
    return crv && strcmp(crv, "P-384") == 0 && member(jwk, "x", pt + 1, ES384_PART) == ES384_PART &&
           member(jwk, "y", pt + 1 + ES384_PART, ES384_PART) == ES384_PART &&
           OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-384", 0) &&
           OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * ES384_PART);
}

EVP_PKEY *pw_jwk_public_key(const json_t *jwk)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *key = NULL;
    BIGNUM *n = NULL;
    BIGNUM *e = NULL;
    unsigned char pt[1 + 2 * ES384_PART];
    bool rsa = kty && strcmp(kty, "RSA") == 0;
    bool ok;

    if (!kty || json_object_get(jwk, "d") || (!rsa && strcmp(kty, "EC") != 0)) {
        return NULL;
    }
    bld = OSSL_PARAM_BLD_new();
    ok = bld && (rsa ? push_rsa(bld, jwk, &n, &e) : push_ec(bld, jwk, pt));
    ctx = ok ? EVP_PKEY_CTX_new_from_name(NULL, rsa ? "RSA" : "EC", NULL) : NULL;
    params = ctx ? OSSL_PARAM_BLD_to_param(bld) : NULL;
    if (!params || EVP_PKEY_fromdata_init(ctx) != 1 ||
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

/* Whether @p jwk may verify RS384/ES384 signatures (by its own use and alg, when it says). */
static bool jwk_for_signing(const json_t *jwk, bool *ec)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *use = json_string_value(json_object_get(jwk, "use"));
    const char *alg = json_string_value(json_object_get(jwk, "alg"));

    if (!kty || (use && strcmp(use, "sig") != 0)) {
        return false;
    }
    *ec = strcmp(kty, "EC") == 0;
    if (alg && strcmp(alg, *ec ? "ES384" : "RS384") != 0) {
        return false;
    }
    return *ec || strcmp(kty, "RSA") == 0;
}

int pw_jwks_parse(struct pw_jwks **out, const json_t *jwks, char *why, size_t why_len)
{
    const json_t *keys = json_object_get(jwks, "keys");
    struct pw_jwks *set;
    const json_t *jwk;
    size_t i;

    *out = NULL;
    if (!json_is_array(keys)) {
        snprintf(why, why_len, "not a JWK Set (no \"keys\" array)");
        return PW_EINVAL;
    }
    set = calloc(1, sizeof(*set));
    if (!set) {
        return PW_ENOMEM;
    }
    json_array_foreach(keys, i, jwk)
    {
        struct jwks_key *k = &set->v[set->n];
        const char *kid = json_string_value(json_object_get(jwk, "kid"));
        if (set->n == JWKS_KEYS || !jwk_for_signing(jwk, &k->ec) ||
            (kid && strlen(kid) >= KID_MAX)) {
            continue;
        }
        k->key = pw_jwk_public_key(jwk);
        if (k->key) {
            snprintf(k->kid, sizeof(k->kid), "%s", kid ? kid : "");
            set->n++;
        }
    }
    if (set->n == 0) {
        snprintf(why, why_len, "no RS384 or ES384 verification key (RSA >= 2048 bits, EC P-384)");
        pw_jwks_free(set);
        return PW_EINVAL;
    }
    *out = set;
    return 0;
}

size_t pw_jwks_count(const struct pw_jwks *set)
{
    return set ? set->n : 0;
}

void pw_jwks_free(struct pw_jwks *set)
{
    if (!set) {
        return;
    }
    for (size_t i = 0; i < set->n; i++) {
        EVP_PKEY_free(set->v[i].key);
    }
    free(set);
}

/* JWS ES384 carries r || s; OpenSSL verifies DER. Caller frees *der. */
static int raw_to_der(const unsigned char *raw, size_t len, unsigned char **der, size_t *der_len)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, ES384_PART, NULL);
    BIGNUM *s = BN_bin2bn(raw + ES384_PART, ES384_PART, NULL);
    int n;

    *der = NULL;
    if (len != 2 * ES384_PART || !sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
        ECDSA_SIG_free(sig);
        BN_free(r);
        BN_free(s);
        return len != 2 * ES384_PART ? PW_EAUTH : PW_ENOMEM;
    }
    n = i2d_ECDSA_SIG(sig, der);
    ECDSA_SIG_free(sig); /* frees r and s */
    if (n <= 0) {
        return PW_ENOMEM;
    }
    *der_len = (size_t)n;
    return 0;
}

static bool verify_with(EVP_PKEY *key, const char *input, size_t input_len,
                        const unsigned char *sig, size_t sig_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, key) == 1 &&
              EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)input, input_len) == 1;

    EVP_MD_CTX_free(md);
    return ok;
}

/* Decode one base64url JSON object segment. */
static json_t *segment_json(const char *s, size_t len)
{
    unsigned char *raw;
    size_t n;
    json_t *obj;

    if (pw_b64url_decode(s, len, &raw, &n) < 0) {
        return NULL;
    }
    obj = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL);
    free(raw);
    if (obj && !json_is_object(obj)) {
        json_decref(obj);
        obj = NULL;
    }
    return obj;
}

static int fail(char *why, size_t why_len, const char *reason)
{
    snprintf(why, why_len, "%s", reason);
    return PW_EAUTH;
}

int pw_jwt_verify(const char *token, const struct pw_jwks *set, json_t **header, json_t **claims,
                  char *why, size_t why_len)
{
    size_t len = token ? strnlen(token, JWT_MAX + 1) : 0;
    const char *dot1 = token ? memchr(token, '.', len) : NULL;
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    unsigned char *sig = NULL;
    unsigned char *der = NULL;
    size_t sig_len = 0;
    size_t der_len = 0;
    const char *alg;
    const char *kid;
    json_t *h = NULL;
    json_t *c = NULL;
    bool ec;
    bool ok = false;
    bool kid_found = false;
    int rc;

    *header = NULL;
    *claims = NULL;
    if (len == 0 || len > JWT_MAX || !dot2 ||
        memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token))) {
        return fail(why, why_len, "not a compact JWS (three base64url parts)");
    }
    h = segment_json(token, (size_t)(dot1 - token));
    c = segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!h || !c) {
        rc = fail(why, why_len, "JWS header or payload is not base64url JSON object");
        goto out;
    }
    alg = json_string_value(json_object_get(h, "alg"));
    kid = json_string_value(json_object_get(h, "kid"));
    if (!alg || (strcmp(alg, "RS384") != 0 && strcmp(alg, "ES384") != 0)) {
        rc = fail(why, why_len, "alg is not RS384 or ES384");
        goto out;
    }
    if (json_object_get(h, "crit")) {
        rc = fail(why, why_len, "critical header extensions are not supported");
        goto out;
    }
    ec = alg[0] == 'E';
    rc = pw_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), &sig, &sig_len);
    if (rc == PW_ENOMEM) {
        goto out;
    }
    if (rc < 0) {
        rc = fail(why, why_len, "signature is not base64url");
        goto out;
    }
    if (ec) {
        rc = raw_to_der(sig, sig_len, &der, &der_len);
        if (rc < 0) {
            rc = rc == PW_ENOMEM ? rc : fail(why, why_len, "ES384 signature is not 96 bytes");
            goto out;
        }
    }
    for (size_t i = 0; i < set->n && !ok; i++) {
        const struct jwks_key *k = &set->v[i];
        if (k->ec != ec || (kid && strcmp(kid, k->kid) != 0)) {
            continue;
        }
        kid_found = true;
        ok = verify_with(k->key, token, (size_t)(dot2 - token), ec ? der : sig,
                         ec ? der_len : sig_len);
    }
    if (!ok) {
        rc = fail(why, why_len,
                  kid_found ? "signature does not verify" : "no key of that kid and alg");
        if (kid && !kid_found) {
            snprintf(why, why_len, "no %s key with kid \"%.64s\"", alg, kid);
        }
        goto out;
    }
    *header = h;
    *claims = c;
    h = NULL;
    c = NULL;
    rc = 0;
out:
    json_decref(h);
    json_decref(c);
    free(sig);
    OPENSSL_free(der);
    return rc;
}
