/* SPDX-License-Identifier: Apache-2.0 */
/* The loopback token endpoint: verifies what a real SMART/OAuth server would, with OpenSSL. */
#define _GNU_SOURCE
#include "token_endpoint.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#define MAX_JTI 256

struct pwt_token_endpoint {
    struct pwt_te_conf conf; /* strings owned */
    pthread_mutex_t mu;
    unsigned issued;
    unsigned revoked_upto;
    unsigned rejected;
    char last_error[256];
    char *jti[MAX_JTI];
    size_t njti;
};

static char *sdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

struct pwt_token_endpoint *pwt_token_endpoint_new(const struct pwt_te_conf *conf)
{
    struct pwt_token_endpoint *te = calloc(1, sizeof(*te));

    if (!te) {
        abort();
    }
    te->conf = *conf;
    te->conf.client_id = sdup(conf->client_id);
    te->conf.aud = sdup(conf->aud);
    te->conf.alg = sdup(conf->alg);
    te->conf.kid = sdup(conf->kid);
    te->conf.secret = sdup(conf->secret);
    te->conf.scope = sdup(conf->scope);
    if (conf->pub) {
        EVP_PKEY_up_ref(conf->pub);
    }
    pthread_mutex_init(&te->mu, NULL);
    return te;
}

void pwt_token_endpoint_free(struct pwt_token_endpoint *te)
{
    if (!te) {
        return;
    }
    free((char *)(uintptr_t)te->conf.client_id);
    free((char *)(uintptr_t)te->conf.aud);
    free((char *)(uintptr_t)te->conf.alg);
    free((char *)(uintptr_t)te->conf.kid);
    free((char *)(uintptr_t)te->conf.secret);
    free((char *)(uintptr_t)te->conf.scope);
    EVP_PKEY_free(te->conf.pub);
    for (size_t i = 0; i < te->njti; i++) {
        free(te->jti[i]);
    }
    pthread_mutex_destroy(&te->mu);
    free(te);
}

/* The value of form field @p name, URL-decoded, or NULL. Caller frees. */
static char *form_get(const char *form, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = form;

    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            int outlen = 0;
            char *v = curl_easy_unescape(NULL, p + nlen + 1, (int)(len - nlen - 1), &outlen);
            char *copy = v ? strndup(v, (size_t)outlen) : NULL;
            curl_free(v);
            return copy;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

/* base64url (no padding) -> bytes. Caller frees. */
static unsigned char *b64url_decode(const char *in, size_t len, size_t *outlen)
{
    size_t padded = (len + 3) / 4 * 4;
    char *tmp = calloc(padded + 1, 1);
    unsigned char *out = calloc(padded, 1);
    int n;

    if (!tmp || !out) {
        abort();
    }
    for (size_t i = 0; i < len; i++) {
        char ch = in[i];
        tmp[i] = ch == '-' ? '+' : ch == '_' ? '/' : ch;
    }
    for (size_t i = len; i < padded; i++) {
        tmp[i] = '=';
    }
    n = EVP_DecodeBlock(out, (unsigned char *)tmp, (int)padded);
    free(tmp);
    if (n < 0) {
        free(out);
        return NULL;
    }
    *outlen = (size_t)n - (padded - len); /* EVP_DecodeBlock counts padding as zero bytes */
    return out;
}

static json_t *b64url_json(const char *in, size_t len)
{
    size_t n = 0;
    unsigned char *raw = b64url_decode(in, len, &n);
    json_t *j = raw ? json_loadb((const char *)raw, n, 0, NULL) : NULL;

    free(raw);
    return j;
}

static bool verify_sig(struct pwt_token_endpoint *te, const char *input, size_t ilen,
                       const unsigned char *sig, size_t slen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *der = NULL;
    int derlen = 0;
    bool ok = false;

    if (strcmp(te->conf.alg, "ES384") == 0) {
        /* JWS: raw r || s, 48 bytes each. Rebuild the DER OpenSSL verifies. */
        if (slen != 96) {
            goto out;
        }
        ECDSA_SIG *es = ECDSA_SIG_new();
        ECDSA_SIG_set0(es, BN_bin2bn(sig, 48, NULL), BN_bin2bn(sig + 48, 48, NULL));
        derlen = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
        if (derlen <= 0) {
            goto out;
        }
        sig = der;
        slen = (size_t)derlen;
    }
    ok = EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, te->conf.pub) == 1 &&
         EVP_DigestVerify(md, sig, slen, (const unsigned char *)input, ilen) == 1;
out:
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    return ok;
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Check a client assertion. @return NULL when valid, else the reason. Called under the lock. */
static const char *check_jwt(struct pwt_token_endpoint *te, const char *jwt)
{
    const char *d1 = strchr(jwt, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    json_t *h = NULL;
    json_t *c = NULL;
    unsigned char *sig = NULL;
    size_t slen = 0;
    const char *why = NULL;
    time_t now = time(NULL);

    if (!d1 || !d2 || strchr(d2 + 1, '.')) {
        return "assertion is not a compact JWS";
    }
    h = b64url_json(jwt, (size_t)(d1 - jwt));
    c = b64url_json(d1 + 1, (size_t)(d2 - d1 - 1));
    sig = b64url_decode(d2 + 1, strlen(d2 + 1), &slen);
    if (!h || !c || !sig) {
        why = "assertion parts do not decode";
    } else if (!jstr(h, "alg") || strcmp(jstr(h, "alg"), te->conf.alg) != 0) {
        why = "wrong alg";
    } else if (!jstr(h, "typ") || strcmp(jstr(h, "typ"), "JWT") != 0) {
        why = "typ is not JWT";
    } else if (!jstr(h, "kid") || strcmp(jstr(h, "kid"), te->conf.kid) != 0) {
        why = "wrong kid";
    } else if (!verify_sig(te, jwt, (size_t)(d2 - jwt), sig, slen)) {
        why = "signature does not verify";
    } else if (!jstr(c, "iss") || strcmp(jstr(c, "iss"), te->conf.client_id) != 0 ||
               !jstr(c, "sub") || strcmp(jstr(c, "sub"), te->conf.client_id) != 0) {
        why = "iss/sub are not the client_id";
    } else if (!jstr(c, "aud") || strcmp(jstr(c, "aud"), te->conf.aud) != 0) {
        why = "aud is not the token endpoint";
    } else if (!json_is_integer(json_object_get(c, "exp")) ||
               json_integer_value(json_object_get(c, "exp")) <= now ||
               json_integer_value(json_object_get(c, "exp")) > now + 300) {
        why = "exp missing, past, or more than 5 minutes ahead";
    } else if (!jstr(c, "jti") || !*jstr(c, "jti")) {
        why = "no jti";
    } else {
        for (size_t i = 0; i < te->njti; i++) {
            if (strcmp(te->jti[i], jstr(c, "jti")) == 0) {
                why = "jti replayed";
            }
        }
        if (!why && te->njti < MAX_JTI) {
            te->jti[te->njti++] = strdup(jstr(c, "jti"));
        }
    }
    json_decref(h);
    json_decref(c);
    free(sig);
    return why;
}

static const char *check_basic(struct pwt_token_endpoint *te, const struct pwt_request *req)
{
    const char *auth = pwt_request_header(req, "Authorization");
    char expect[512];
    char *id = curl_easy_escape(NULL, te->conf.client_id, 0);
    char *sec = curl_easy_escape(NULL, te->conf.secret, 0);
    unsigned char b64[1024];
    const char *why = NULL;

    snprintf(expect, sizeof(expect), "%s:%s", id, sec);
    curl_free(id);
    curl_free(sec);
    EVP_EncodeBlock(b64, (const unsigned char *)expect, (int)strlen(expect));
    if (!auth || strncmp(auth, "Basic ", 6) != 0 || strcmp(auth + 6, (char *)b64) != 0) {
        why = "Basic credentials missing or wrong";
    } else if (strstr(req->body, "client_secret")) {
        why = "secret sent in the body too";
    }
    return why;
}

static const char *check_post(struct pwt_token_endpoint *te, const char *form,
                              const struct pwt_request *req)
{
    char *id = form_get(form, "client_id");
    char *sec = form_get(form, "client_secret");
    const char *why = NULL;

    if (!id || strcmp(id, te->conf.client_id) != 0 || !sec || strcmp(sec, te->conf.secret) != 0) {
        why = "client_id/client_secret missing or wrong";
    } else if (pwt_request_header(req, "Authorization")) {
        why = "Authorization header sent with post";
    }
    free(id);
    free(sec);
    return why;
}

static void reply_json(struct pwt_reply *rep, int status, json_t *doc)
{
    rep->status = status;
    rep->body = json_dumps(doc, JSON_COMPACT);
    rep->body_len = strlen(rep->body);
    rep->headers = strdup("Content-Type: application/json\nCache-Control: no-store\n");
    json_decref(doc);
}

void pwt_token_endpoint_handler(void *arg, const struct pwt_request *req, struct pwt_reply *rep)
{
    struct pwt_token_endpoint *te = arg;
    const char *form = req->body;
    char *grant = form_get(form, "grant_type");
    char *scope = form_get(form, "scope");
    char *atype = form_get(form, "client_assertion_type");
    char *assertion = form_get(form, "client_assertion");
    const char *why = NULL;

    pthread_mutex_lock(&te->mu);
    if (strcmp(req->method, "POST") != 0) {
        why = "not a POST";
    } else if (!pwt_request_header(req, "Content-Type") ||
               strcmp(pwt_request_header(req, "Content-Type"),
                      "application/x-www-form-urlencoded") != 0) {
        why = "not a form";
    } else if (!grant || strcmp(grant, "client_credentials") != 0) {
        why = "grant_type is not client_credentials";
    } else if (te->conf.scope && (!scope || strcmp(scope, te->conf.scope) != 0)) {
        why = "wrong scope";
    } else if (te->conf.mode == PWT_TE_JWT) {
        if (!atype ||
            strcmp(atype, "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") != 0) {
            why = "wrong client_assertion_type";
        } else {
            why = assertion ? check_jwt(te, assertion) : "no client_assertion";
        }
    } else if (te->conf.mode == PWT_TE_BASIC) {
        why = check_basic(te, req);
    } else {
        why = check_post(te, form, req);
    }
    if (why) {
        te->rejected++;
        snprintf(te->last_error, sizeof(te->last_error), "%s", why);
        reply_json(rep, 401,
                   json_pack("{s:s, s:s}", "error", "invalid_client", "error_description", why));
    } else {
        char tok[32];
        snprintf(tok, sizeof(tok), "tok-%u", ++te->issued);
        reply_json(rep, 200,
                   json_pack("{s:s, s:s, s:I, s:s}", "access_token", tok, "token_type", "Bearer",
                             "expires_in",
                             (json_int_t)(te->conf.expires_in ? te->conf.expires_in : 300), "scope",
                             scope ? scope : ""));
    }
    pthread_mutex_unlock(&te->mu);
    free(grant);
    free(scope);
    free(atype);
    free(assertion);
}

void pwt_token_endpoint_protected(void *arg, const struct pwt_request *req, struct pwt_reply *rep)
{
    struct pwt_token_endpoint *te = arg;
    const char *auth = pwt_request_header(req, "Authorization");
    unsigned n = 0;
    bool ok = false;

    pthread_mutex_lock(&te->mu);
    if (auth && sscanf(auth, "Bearer tok-%u", &n) == 1) {
        ok = n > te->revoked_upto && n <= te->issued;
    }
    pthread_mutex_unlock(&te->mu);
    if (ok) {
        reply_json(rep, 200,
                   json_pack("{s:s, s:s}", "resourceType", "Bundle", "type", "searchset"));
    } else {
        reply_json(rep, 401, json_pack("{s:s}", "resourceType", "OperationOutcome"));
        free(rep->headers);
        rep->headers = strdup("Content-Type: application/fhir+json\n"
                              "WWW-Authenticate: Bearer error=\"invalid_token\"\n");
    }
}

void pwt_token_endpoint_revoke_all(struct pwt_token_endpoint *te)
{
    pthread_mutex_lock(&te->mu);
    te->revoked_upto = te->issued;
    pthread_mutex_unlock(&te->mu);
}

unsigned pwt_token_endpoint_issued(struct pwt_token_endpoint *te)
{
    unsigned n;

    pthread_mutex_lock(&te->mu);
    n = te->issued;
    pthread_mutex_unlock(&te->mu);
    return n;
}

unsigned pwt_token_endpoint_rejected(struct pwt_token_endpoint *te)
{
    unsigned n;

    pthread_mutex_lock(&te->mu);
    n = te->rejected;
    pthread_mutex_unlock(&te->mu);
    return n;
}

const char *pwt_token_endpoint_last_error(struct pwt_token_endpoint *te)
{
    return te->last_error; /* read after the loop is idle: no handler is running */
}
