/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Auth adapter "smart-backend": SMART Backend Services. client_credentials with a private_key_jwt
 * client assertion signed RS384 or ES384 (OpenSSL EVP); the token endpoint comes from
 * .well-known/smart-configuration unless configured.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "painwatch/auth.h"
#include "painwatch/err.h"
#include "painwatch/hex.h"
#include "painwatch/log.h"
#include "painwatch/secret.h"

/* SMART: exp no more than five minutes after now; a little less leaves room for clock skew. */
#define ASSERTION_LIFETIME_S 240
#define ES384_PART           48 /* bytes of r and of s for P-384 */

struct smart {
    struct pw_auth_oauth oauth; /* config: token_url, client_id, scope; must stay first */
    const char *key_file;       /* config: private_key_file */
    const char *alg;            /* config: RS384 | ES384; NULL: chosen from the key type */
    const char *key_id;         /* config: kid */
    EVP_PKEY *key;
    bool es384;
};

static const char *const jws_algs[] = {"RS384", "ES384", NULL};

static const struct pw_conf_field smart_map[] = {
    PW_AUTH_OAUTH_FIELDS(struct smart),
    {.name = "private_key_file",
     .type = PW_CONF_SECRET_PATH,
     .flags = PW_CONF_F_REQUIRED,
     .offset = offsetof(struct smart, key_file),
     .help = "PEM private key, RSA (2048 bits or more) or EC P-384"},
    {.name = "alg",
     .type = PW_CONF_ENUM,
     .def = "RS384",
     .allowed = jws_algs,
     .offset = offsetof(struct smart, alg),
     .help = "client assertion algorithm (must match the key)"},
    {.name = "kid",
     .type = PW_CONF_STRING,
     .offset = offsetof(struct smart, key_id),
     .help = "key id registered with the EHR (JWKS)"},
    {0},
};

static void smart_check(struct pw_conf_ctx *ctx, const json_t *section, const char *path)
{
    pw_conf_need(ctx, section, path, "kid",
                 "with type smart-backend (the key's id in the registered JWKS)");
    pw_conf_check_token_url(ctx, section, path);
}

static void log_ssl(const char *server, const char *what)
{
    char buf[256];
    unsigned long e = ERR_get_error();

    ERR_error_string_n(e, buf, sizeof(buf));
    pw_log_err(AUTH, "server %s: %s: %s", server, what, e ? buf : "unknown OpenSSL error");
    ERR_clear_error();
}

static int load_key(struct pw_auth *auth, struct smart *sm)
{
    const struct pw_auth_conf *c = pw_auth_conf(auth);
    char *pem = NULL;
    size_t len = 0;
    int err = pw_secret_read(sm->key_file, &pem, &len);
    BIO *bio;

    if (err) {
        return err;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    sm->key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    pw_secret_free(pem);
    if (!sm->key) {
        log_ssl(c->server, "key_file is not a PEM private key");
        return PW_ESECRET;
    }
    return 0;
}

/* The algorithm follows the key; a configured alg must agree with it. */
static int pick_alg(struct pw_auth *auth, struct smart *sm)
{
    const struct pw_auth_conf *c = pw_auth_conf(auth);
    char group[64] = "";

    if (EVP_PKEY_is_a(sm->key, "RSA")) {
        if (EVP_PKEY_get_bits(sm->key) < 2048) {
            pw_log_err(AUTH, "server %s: RSA key under 2048 bits", c->server);
            return PW_ECONFIG;
        }
        sm->es384 = false;
    } else if (EVP_PKEY_is_a(sm->key, "EC") &&
               EVP_PKEY_get_group_name(sm->key, group, sizeof(group), NULL) &&
               strcmp(group, "secp384r1") == 0) {
        sm->es384 = true;
    } else {
        pw_log_err(AUTH, "server %s: key must be RSA (RS384) or EC P-384 (ES384)", c->server);
        return PW_ECONFIG;
    }
    if (sm->alg && strcmp(sm->alg, sm->es384 ? "ES384" : "RS384") != 0) {
        pw_log_err(AUTH, "server %s: alg %s does not match the %s key", c->server, sm->alg,
                   sm->es384 ? "EC P-384" : "RSA");
        return PW_ECONFIG;
    }
    return 0;
}

static int smart_init(struct pw_auth *auth)
{
    struct smart *sm = pw_auth_ctx(auth);
    const struct pw_auth_conf *c = pw_auth_conf(auth);
    int err;

    if (!sm->oauth.client_id || !sm->key_file || !sm->key_id) {
        pw_log_err(AUTH, "server %s: auth smart-backend needs client_id, key_file and key_id",
                   c->server);
        return PW_ECONFIG;
    }
    if (sm->alg && strcmp(sm->alg, "RS384") != 0 && strcmp(sm->alg, "ES384") != 0) {
        pw_log_err(AUTH, "server %s: alg must be RS384 or ES384", c->server);
        return PW_ECONFIG;
    }
    err = pw_auth_oauth_use(auth, &sm->oauth);
    if (err) {
        return err;
    }
    err = load_key(auth, sm);
    if (!err) {
        err = pick_alg(auth, sm);
    }
    if (err) {
        EVP_PKEY_free(sm->key);
        sm->key = NULL;
    }
    return err;
}

/* base64url without padding (RFC 7515 2), through EVP_EncodeBlock. Caller frees. */
static char *b64url(const unsigned char *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    int n;

    if (!out) {
        return NULL;
    }
    n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    while (n > 0 && out[n - 1] == '=') {
        n--;
    }
    out[n] = '\0';
    for (char *p = out; *p; p++) {
        if (*p == '+') {
            *p = '-';
        } else if (*p == '/') {
            *p = '_';
        }
    }
    return out;
}

static char *b64url_json(json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT);
    char *out = s ? b64url((const unsigned char *)s, strlen(s)) : NULL;

    free(s);
    json_decref(obj);
    return out;
}

/* JWS ES384 wants r || s, 48 bytes each; OpenSSL produces DER. */
static int der_to_raw(const unsigned char *der, size_t len, unsigned char raw[2 * ES384_PART])
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    const BIGNUM *r;
    const BIGNUM *s;
    int ok;

    if (!sig) {
        return PW_EAUTH;
    }
    ECDSA_SIG_get0(sig, &r, &s);
    ok = BN_bn2binpad(r, raw, ES384_PART) == ES384_PART &&
         BN_bn2binpad(s, raw + ES384_PART, ES384_PART) == ES384_PART;
    ECDSA_SIG_free(sig);
    return ok ? 0 : PW_EAUTH;
}

/* Sign "header.claims" and return the signature, base64url. */
static char *sign(struct smart *sm, const char *input)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *sig = NULL;
    unsigned char raw[2 * ES384_PART];
    size_t slen = 0;
    char *out = NULL;

    if (!md || EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, sm->key) != 1 ||
        EVP_DigestSign(md, NULL, &slen, (const unsigned char *)input, strlen(input)) != 1) {
        goto out;
    }
    sig = malloc(slen);
    if (!sig || EVP_DigestSign(md, sig, &slen, (const unsigned char *)input, strlen(input)) != 1) {
        goto out;
    }
    if (sm->es384) {
        if (der_to_raw(sig, slen, raw) == 0) {
            out = b64url(raw, sizeof(raw));
        }
        pw_secret_wipe(raw, sizeof(raw));
    } else {
        out = b64url(sig, slen);
    }
out:
    if (sig) {
        pw_secret_wipe(sig, slen); /* the signature completes a usable assertion */
    }
    free(sig);
    EVP_MD_CTX_free(md);
    return out;
}

/* A fresh client assertion: new jti from RAND_bytes on every attempt. Caller frees. */
static char *make_assertion(struct pw_auth *auth, struct smart *sm, const char *aud)
{
    const struct pw_auth_conf *c = pw_auth_conf(auth);
    unsigned char rnd[16];
    char jti[33];
    time_t now = time(NULL);
    char *h = NULL;
    char *p = NULL;
    char *s = NULL;
    char *input = NULL;
    char *jwt = NULL;

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        log_ssl(c->server, "RAND_bytes");
        return NULL;
    }
    pw_hex_encode(rnd, sizeof(rnd), jti);
    h = b64url_json(json_pack("{s:s, s:s, s:s}", "alg", sm->es384 ? "ES384" : "RS384", "kid",
                              sm->key_id, "typ", "JWT"));
    p = b64url_json(json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "iss", sm->oauth.client_id, "sub",
                              sm->oauth.client_id, "aud", aud, "iat", (json_int_t)now, "exp",
                              (json_int_t)now + ASSERTION_LIFETIME_S, "jti", jti));
    if (!h || !p) {
        goto out;
    }
    size_t n = strlen(h) + strlen(p) + 2;
    input = malloc(n);
    if (!input) {
        goto out;
    }
    snprintf(input, n, "%s.%s", h, p);
    s = sign(sm, input);
    if (!s) {
        log_ssl(c->server, "signing the client assertion");
        goto out;
    }
    n += strlen(s) + 1;
    jwt = malloc(n);
    if (jwt) {
        snprintf(jwt, n, "%s.%s", input, s);
    }
out:
    free(h);
    free(p);
    if (s) {
        pw_secret_wipe(s, strlen(s));
    }
    free(s);
    free(input);
    return jwt;
}

static int smart_form(struct pw_auth *auth, const char *aud, struct pw_http_req *req, char **form)
{
    struct smart *sm = pw_auth_ctx(auth);
    char *jwt = make_assertion(auth, sm, aud);
    int err;

    (void)req;
    if (!jwt) {
        return PW_EAUTH;
    }
    err = pw_auth_form_add(form, "client_assertion_type",
                           "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    if (!err) {
        err = pw_auth_form_add(form, "client_assertion", jwt);
    }
    /* A signed assertion is a credential for its lifetime: wiped, like the form (issue 18). */
    pw_secret_wipe(jwt, strlen(jwt));
    free(jwt);
    return err;
}

static int smart_refresh(struct pw_auth *auth, pw_auth_done_fn *done, void *arg)
{
    return pw_auth_oauth_refresh(auth, smart_form, done, arg);
}

static void smart_cleanup(struct pw_auth *auth)
{
    struct smart *sm = pw_auth_ctx(auth);

    EVP_PKEY_free(sm->key);
    sm->key = NULL;
}

/* What `painwatch auth test` and `painwatch jwks` read of the section. */
static const struct pw_auth_keys tool_keys = {
    .client_id = "client_id",
    .token_url = "token_url",
    .key_file = "private_key_file",
    .kid = "kid",
    .alg = "alg",
};

const struct pw_auth_ops pw_auth_smart_backend = {
    .adapter = {.name = "smart-backend",
                .config_map = smart_map,
                .ctx_size = sizeof(struct smart),
                .check = smart_check,
                .help = "SMART Backend Services: client_credentials with a signed JWT assertion "
                        "(the usual choice for a system-to-system gateway)"},
    .init = smart_init,
    .apply = pw_auth_bearer_apply,
    .refresh = smart_refresh,
    .invalidate = pw_auth_token_drop,
    .cleanup = smart_cleanup,
    .keys = &tool_keys,
};
