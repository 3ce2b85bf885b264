/* SPDX-License-Identifier: Apache-2.0 */
/* daemon/core/jwt.c: base64url, JWK keys, JWS RS384/ES384 verification (keys made by OpenSSL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include "painwatch/err.h"
#include "painwatch/jwt.h"

/* base64url without padding: the test's own encoder (the daemon only decodes). */
static char *b64u(const unsigned char *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);

    while (n > 0 && out[n - 1] == '=') {
        n--;
    }
    out[n] = '\0';
    for (char *p = out; *p; p++) {
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    }
    return out;
}

static json_t *b64u_json(const unsigned char *data, size_t len)
{
    char *s = b64u(data, len);
    json_t *j = json_string(s);

    free(s);
    return j;
}

static json_t *public_jwk(EVP_PKEY *key, const char *kid)
{
    unsigned char buf[1024];
    size_t n = 0;

    if (EVP_PKEY_is_a(key, "EC")) {
        assert_int_equal(
            EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, buf, sizeof(buf), &n), 1);
        assert_int_equal(n, 97); /* 04 || x || y */
        return json_pack("{s:s,s:s,s:s,s:o,s:o}", "kty", "EC", "crv", "P-384", "kid", kid, "x",
                         b64u_json(buf + 1, 48), "y", b64u_json(buf + 49, 48));
    }
    BIGNUM *bn_n = NULL;
    BIGNUM *bn_e = NULL;
    unsigned char e[8];
    assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &bn_n), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &bn_e), 1);
    n = (size_t)BN_bn2bin(bn_n, buf);
    int en = BN_bn2bin(bn_e, e);
    json_t *jwk = json_pack("{s:s,s:s,s:o,s:o}", "kty", "RSA", "kid", kid, "n", b64u_json(buf, n),
                            "e", b64u_json(e, (size_t)en));
    BN_free(bn_n);
    BN_free(bn_e);
    return jwk;
}

/* A compact JWS of @p header and @p claims signed by @p key (ES384 as r || s). */
static char *sign_jwt(EVP_PKEY *key, const char *header, const char *claims)
{
    char *h = b64u((const unsigned char *)header, strlen(header));
    char *c = b64u((const unsigned char *)claims, strlen(claims));
    size_t in_len = strlen(h) + strlen(c) + 1;
    char *input = malloc(in_len + 1);
    unsigned char sig[1024];
    size_t slen = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    char *s;
    char *out;

    snprintf(input, in_len + 1, "%s.%s", h, c);
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, key), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &slen, (unsigned char *)input, in_len), 1);
    EVP_MD_CTX_free(md);
    if (EVP_PKEY_is_a(key, "EC")) {
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)slen);
        unsigned char raw[96];
        BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 48);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 48, 48);
        ECDSA_SIG_free(es);
        s = b64u(raw, sizeof(raw));
    } else {
        s = b64u(sig, slen);
    }
    out = malloc(in_len + strlen(s) + 2);
    sprintf(out, "%s.%s", input, s);
    free(h);
    free(c);
    free(input);
    free(s);
    return out;
}

struct keys {
    EVP_PKEY *rsa;
    EVP_PKEY *ec;
    EVP_PKEY *rogue;
    struct pw_jwks *set;
};

static int setup(void **state)
{
    struct keys *k = calloc(1, sizeof(*k));
    char why[160] = "";

    k->rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    k->ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    k->rogue = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    json_t *jwks =
        json_pack("{s:[o,o]}", "keys", public_jwk(k->rsa, "r1"), public_jwk(k->ec, "e1"));
    assert_int_equal(pw_jwks_parse(&k->set, jwks, why, sizeof(why)), 0);
    assert_int_equal(pw_jwks_count(k->set), 2);
    json_decref(jwks);
    *state = k;
    return 0;
}

static int teardown(void **state)
{
    struct keys *k = *state;

    pw_jwks_free(k->set);
    EVP_PKEY_free(k->rsa);
    EVP_PKEY_free(k->ec);
    EVP_PKEY_free(k->rogue);
    free(k);
    return 0;
}

static void test_b64url(void **state)
{
    unsigned char *out;
    size_t n;

    (void)state;
    assert_int_equal(pw_b64url_decode("", 0, &out, &n), 0);
    assert_int_equal(n, 0);
    free(out);
    assert_int_equal(pw_b64url_decode("Zm9v", 4, &out, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "foo", 3);
    free(out);
    assert_int_equal(pw_b64url_decode("Zg", 2, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 'f');
    free(out);
    assert_int_equal(pw_b64url_decode("-_8", 3, &out, &n), 0); /* the url alphabet: fb ff */
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xff);
    free(out);
    assert_int_equal(pw_b64url_decode("Zg==", 4, &out, &n), PW_EINVAL);  /* no padding */
    assert_int_equal(pw_b64url_decode("+/8", 3, &out, &n), PW_EINVAL);   /* not base64url */
    assert_int_equal(pw_b64url_decode("Zm9vY", 5, &out, &n), PW_EINVAL); /* 1 mod 4 */
    assert_int_equal(pw_b64url_decode("Zm 9v", 5, &out, &n), PW_EINVAL);
    assert_null(out);
}

static void verify_ok(struct keys *k, EVP_PKEY *key, const char *header)
{
    char why[160] = "";
    json_t *h = NULL;
    json_t *c = NULL;
    char *tok = sign_jwt(key, header, "{\"iss\":\"ehr\",\"jti\":\"1\"}");

    assert_int_equal(pw_jwt_verify(tok, k->set, &h, &c, why, sizeof(why)), 0);
    assert_string_equal(json_string_value(json_object_get(c, "iss")), "ehr");
    json_decref(h);
    json_decref(c);
    free(tok);
}

static void verify_fails(struct keys *k, const char *tok, const char *reason)
{
    char why[160] = "";
    json_t *h = NULL;
    json_t *c = NULL;

    assert_int_equal(pw_jwt_verify(tok, k->set, &h, &c, why, sizeof(why)), PW_EAUTH);
    assert_null(h);
    assert_null(c);
    if (!strstr(why, reason)) {
        fail_msg("reason '%s', expected '%s'", why, reason);
    }
}

static void test_verify(void **state)
{
    struct keys *k = *state;
    char *tok;

    verify_ok(k, k->rsa, "{\"alg\":\"RS384\",\"kid\":\"r1\"}");
    verify_ok(k, k->ec, "{\"alg\":\"ES384\",\"kid\":\"e1\"}");
    verify_ok(k, k->ec, "{\"alg\":\"ES384\"}"); /* no kid: any key of the alg's type */
    tok = sign_jwt(k->rogue, "{\"alg\":\"RS384\",\"kid\":\"r1\"}", "{}");
    verify_fails(k, tok, "does not verify");
    free(tok);
    tok = sign_jwt(k->rsa, "{\"alg\":\"RS384\",\"kid\":\"r9\"}", "{}");
    verify_fails(k, tok, "no RS384 key with kid");
    free(tok);
    /* The RSA key's signature under the EC kid, and an alg the key set does not allow. */
    tok = sign_jwt(k->rsa, "{\"alg\":\"ES384\",\"kid\":\"e1\"}", "{}");
    verify_fails(k, tok, "96 bytes");
    free(tok);
    tok = sign_jwt(k->rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", "{}");
    verify_fails(k, tok, "alg");
    free(tok);
    verify_fails(k, "eyJhbGciOiJub25lIn0.e30.", "alg"); /* {"alg":"none"}.{} */
    verify_fails(k, "a.b", "compact");
    verify_fails(k, "a.b.c.d", "compact");
    /* A payload changed after signing. */
    tok = sign_jwt(k->ec, "{\"alg\":\"ES384\",\"kid\":\"e1\"}", "{\"iss\":\"ehr\"}");
    char *dot = strchr(tok, '.');
    char *evil = b64u((const unsigned char *)"{\"iss\":\"evil\"}", 14);
    char *forged = malloc(strlen(tok) + strlen(evil) + 1);
    sprintf(forged, "%.*s.%s%s", (int)(dot - tok), tok, evil, strchr(dot + 1, '.'));
    verify_fails(k, forged, "does not verify");
    free(forged);
    free(evil);
    free(tok);
}

static void test_jwk_refused(void **state)
{
    struct keys *k = *state;
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    EVP_PKEY *p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    json_t *jwk = public_jwk(k->rsa, "r1");
    struct pw_jwks *set = NULL;
    char why[160] = "";

    json_object_set_new(jwk, "d", json_string("AQAB")); /* a private member */
    assert_null(pw_jwk_public_key(jwk));
    json_decref(jwk);
    jwk = public_jwk(small, "s");
    assert_null(pw_jwk_public_key(jwk));
    json_decref(jwk);
    unsigned char pt[65];
    size_t n = 0;
    EVP_PKEY_get_octet_string_param(p256, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &n);
    jwk = json_pack("{s:s,s:s,s:o,s:o}", "kty", "EC", "crv", "P-256", "x", b64u_json(pt + 1, 32),
                    "y", b64u_json(pt + 33, 32));
    assert_null(pw_jwk_public_key(jwk));
    json_t *jwks = json_pack("{s:[o]}", "keys", jwk);
    assert_int_equal(pw_jwks_parse(&set, jwks, why, sizeof(why)), PW_EINVAL);
    assert_null(set);
    json_decref(jwks);
    jwks = json_pack("{s:s}", "keys", "none");
    assert_int_equal(pw_jwks_parse(&set, jwks, why, sizeof(why)), PW_EINVAL);
    json_decref(jwks);
    /* A key declared for encryption or another alg is not a verification key. */
    jwk = public_jwk(k->rsa, "r1");
    json_object_set_new(jwk, "use", json_string("enc"));
    jwks = json_pack("{s:[o]}", "keys", jwk);
    assert_int_equal(pw_jwks_parse(&set, jwks, why, sizeof(why)), PW_EINVAL);
    json_decref(jwks);
    EVP_PKEY_free(small);
    EVP_PKEY_free(p256);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),
        cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jwk_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
