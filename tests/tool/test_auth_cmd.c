/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `painwatch jwks` and `painwatch auth test` as processes, the go-live day sequence: the JWK Set
 * printed from the configured private key is what the loopback token endpoint is given to
 * verify client assertions with (so a wrong n/e/x/y fails the token step), then `auth test`
 * obtains a token and reads /metadata with it; refusals are reported as failures in words.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "support/jwk.h"
#include "support/pwtest.h"
#include "support/responder.h"
#include "support/token_endpoint.h"

#define CAPSTMT                                                            \
    "{\"resourceType\":\"CapabilityStatement\",\"fhirVersion\":\"4.0.1\"," \
    "\"software\":{\"name\":\"loopback\",\"version\":\"1\"}}"
#define SCOPE "system/Observation.read system/Flag.write"

static char *dir;
static char *out;
static char *err;

static int setup(void **state)
{
    (void)state;
    dir = pwt_mkdtemp();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pwt_tool_cleanup(&dir, &out, &err);
    return 0;
}

static int run(const char *args)
{
    return pwt_tool_run(dir, "", args, &out, &err);
}

static EVP_PKEY *key_from_jwk(const json_t *jwk)
{
    EVP_PKEY *key = pwt_jwk_public_key(jwk);

    assert_non_null(key);
    return key;
}

static void write_key(const char *name, EVP_PKEY *key)
{
    char path[4200];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
}

static EVP_PKEY *read_key(const char *name)
{
    char path[4200];
    FILE *f;
    EVP_PKEY *key;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "r");
    assert_non_null(f);
    key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(key);
    return key;
}

/* /metadata guarded by the token endpoint's tokens: a CapabilityStatement with a valid one. */
static void metadata(void *arg, const struct pwt_request *req, struct pwt_reply *rep)
{
    pwt_token_endpoint_protected(arg, req, rep);
    if (rep->status == 200) {
        free(rep->body);
        rep->body = strdup(CAPSTMT);
        rep->body_len = strlen(CAPSTMT);
    }
}

struct ehr {
    struct pwt_responder *fhir;
    struct pwt_token_endpoint *te;
    char token_url[256];
};

static void ehr_start(struct ehr *h, const struct pwt_te_conf *tc)
{
    struct pwt_te_conf c = *tc;

    h->fhir = pwt_responder_start(NULL);
    snprintf(h->token_url, sizeof(h->token_url), "%s/oauth2/token", pwt_responder_url(h->fhir));
    c.aud = h->token_url;
    c.scope = SCOPE;
    h->te = pwt_token_endpoint_new(&c);
    pwt_responder_add(h->fhir, &(struct pwt_rule){.method = "POST",
                                                  .path = "/oauth2/token",
                                                  .handler = pwt_token_endpoint_handler,
                                                  .handler_arg = h->te});
    pwt_responder_add(h->fhir, &(struct pwt_rule){.method = "GET",
                                                  .path = "/fhir/metadata",
                                                  .handler = metadata,
                                                  .handler_arg = h->te});
}

static void ehr_stop(struct ehr *h)
{
    pwt_responder_stop(h->fhir);
    pwt_token_endpoint_free(h->te);
}

/* A configuration for one loopback server with @p auth lines (indented 6). */
static void write_conf(const char *name, const char *origin, const char *token_url,
                       const char *auth)
{
    char path[4200];
    char text[8192];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(text, sizeof(text),
             "state_dir: %s/state\n"
             "audit: {key_file: %s/audit.key}\n"
             "servers:\n"
             "  - name: ehr\n"
             "    base_url: %s/fhir\n"
             "    cohort: {type: server-wide}\n"
             "    auth:\n"
             "      token_url: %s\n"
             "      scope: " SCOPE "\n"
             "%s",
             dir, dir, origin, token_url, auth);
    pwt_write_file(path, text);
}

static void audit_key(void)
{
    char path[4200];

    snprintf(path, sizeof(path), "%s/audit.key", dir);
    pwt_write_file(path, "0123456789abcdef0123456789abcdef\n");
    assert_int_equal(chmod(path, 0600), 0);
}

/* jwks from the configuration -> the token endpoint's key -> auth test passes. */
static void go_live(const char *key_name, const char *alg)
{
    struct ehr h = {0};
    char args[8192];
    char auth[2048];
    json_t *set;
    EVP_PKEY *priv = read_key(key_name);
    EVP_PKEY *pub;

    audit_key();
    /* The configuration first names the key; the EHR registration comes from jwks. */
    snprintf(auth, sizeof(auth),
             "      type: smart-backend\n"
             "      client_id: painwatch-test\n"
             "      private_key_file: %s/%s\n"
             "      kid: site-key-1\n"
             "      alg: %s\n",
             dir, key_name, alg);
    write_conf("painwatch.yaml", "http://127.0.0.1:1", "http://127.0.0.1:1/t", auth);
    snprintf(args, sizeof(args), "jwks --config %s/painwatch.yaml", dir);
    assert_int_equal(run(args), 0);
    set = json_loads(out, 0, NULL);
    assert_non_null(set);
    const json_t *jwk = json_array_get(json_object_get(set, "keys"), 0);
    assert_int_equal(json_array_size(json_object_get(set, "keys")), 1);
    assert_string_equal(json_string_value(json_object_get(jwk, "kid")), "site-key-1");
    assert_string_equal(json_string_value(json_object_get(jwk, "alg")), alg);
    assert_null(json_object_get(jwk, "d")); /* never a private part */
    assert_null(strstr(out, "PRIVATE"));
    pub = key_from_jwk(jwk);
    assert_int_equal(EVP_PKEY_eq(pub, priv), 1);

    /* Registered: the token endpoint verifies assertions with the key built from the JWK. */
    ehr_start(&h, &(struct pwt_te_conf){.mode = PWT_TE_JWT,
                                        .client_id = "painwatch-test",
                                        .pub = pub,
                                        .alg = alg,
                                        .kid = "site-key-1"});
    write_conf("painwatch.yaml", pwt_responder_url(h.fhir), h.token_url, auth);
    snprintf(args, sizeof(args), "auth test --config %s/painwatch.yaml", dir);
    int rc = run(args);
    if (rc != 0) {
        fprintf(stderr, "stdout:\n%s\nstderr:\n%s\n", out, err);
    }
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "ehr: token: obtained (smart-backend, client_id painwatch-test, "
                                "kid site-key-1)"));
    assert_non_null(strstr(out, "/fhir/metadata: HTTP 200, CapabilityStatement, FHIR 4.0.1"));
    assert_non_null(strstr(out, "auth test: 1 of 1 server(s) OK"));
    assert_int_equal(pwt_token_endpoint_issued(h.te), 1);
    ehr_stop(&h);
    json_decref(set);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(priv);
}

static void test_go_live_rs384(void **state)
{
    char cmd[4400];

    (void)state;
    snprintf(cmd, sizeof(cmd),
             "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out '%s/rsa.pem' "
             "2>/dev/null && chmod 600 '%s/rsa.pem'",
             dir, dir);
    assert_int_equal(system(cmd), 0);
    go_live("rsa.pem", "RS384");
}

static void test_go_live_es384(void **state)
{
    EVP_PKEY *k = EVP_EC_gen("P-384");

    (void)state;
    assert_non_null(k);
    write_key("ec.pem", k);
    EVP_PKEY_free(k);
    go_live("ec.pem", "ES384");
}

/* The EHR registered another key, or refuses the token at /metadata: exit 1, said in words. */
static void test_refusals(void **state)
{
    struct ehr h = {0};
    EVP_PKEY *mine = EVP_EC_gen("P-384");
    EVP_PKEY *other = EVP_EC_gen("P-384");
    char auth[2048];
    char args[4400];

    (void)state;
    audit_key();
    write_key("ec.pem", mine);
    snprintf(auth, sizeof(auth),
             "      type: smart-backend\n"
             "      client_id: painwatch-test\n"
             "      private_key_file: %s/ec.pem\n"
             "      kid: site-key-1\n"
             "      alg: ES384\n",
             dir);
    ehr_start(&h, &(struct pwt_te_conf){.mode = PWT_TE_JWT,
                                        .client_id = "painwatch-test",
                                        .pub = other,
                                        .alg = "ES384",
                                        .kid = "site-key-1"});
    write_conf("painwatch.yaml", pwt_responder_url(h.fhir), h.token_url, auth);
    snprintf(args, sizeof(args), "auth test --config %s/painwatch.yaml", dir);
    assert_int_equal(run(args), 1);
    assert_non_null(strstr(out, "ehr: token: FAILED:"));
    assert_non_null(strstr(out, "ehr: GET metadata: skipped (no token)"));
    assert_non_null(strstr(out, "auth test: 0 of 1 server(s) OK"));
    ehr_stop(&h);

    /* Token issued, but /metadata says 401 whatever the token. */
    memset(&h, 0, sizeof(h));
    h.fhir = pwt_responder_start(NULL);
    snprintf(h.token_url, sizeof(h.token_url), "%s/oauth2/token", pwt_responder_url(h.fhir));
    h.te = pwt_token_endpoint_new(&(struct pwt_te_conf){.mode = PWT_TE_JWT,
                                                        .client_id = "painwatch-test",
                                                        .aud = h.token_url,
                                                        .pub = mine,
                                                        .alg = "ES384",
                                                        .kid = "site-key-1"});
    pwt_responder_add(h.fhir, &(struct pwt_rule){.method = "POST",
                                                 .path = "/oauth2/token",
                                                 .handler = pwt_token_endpoint_handler,
                                                 .handler_arg = h.te});
    pwt_responder_add(h.fhir, &(struct pwt_rule){.path = "/fhir/metadata", .status = 401});
    write_conf("painwatch.yaml", pwt_responder_url(h.fhir), h.token_url, auth);
    assert_int_equal(run(args), 1);
    assert_non_null(strstr(out, "ehr: token: obtained"));
    assert_non_null(strstr(out, "FAILED: HTTP 401: the server refuses these credentials"));
    ehr_stop(&h);

    /* Nothing listening. */
    write_conf("painwatch.yaml", "http://127.0.0.1:1", "http://127.0.0.1:1/t",
               "      type: none\n");
    assert_int_equal(run(args), 1);
    assert_non_null(strstr(out, "ehr: auth: none"));
    assert_non_null(strstr(out, "FAILED: no answer"));

    /* A configuration painwatchd would refuse: exit 2, no network. */
    write_conf("painwatch.yaml", "http://127.0.0.1:1", "http://127.0.0.1:1/t",
               "      type: smart-backend\n      client_id: x\n");
    assert_int_equal(run(args), 2);
    EVP_PKEY_free(mine);
    EVP_PKEY_free(other);
}

/* jwks refuses what SMART cannot use, and works from a single key file. */
static void test_jwks_keys(void **state)
{
    char cmd[4400];

    (void)state;
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "
             "p256.pem 2>/dev/null && chmod 600 p256.pem",
             dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "jwks --key %s/p256.pem --kid k", dir);
    assert_int_equal(run(cmd), 2);
    assert_non_null(strstr(err, "RSA key of 2048 bits or more (RS384) or an EC P-384 key"));
    assert_string_equal(out, "");
    /* World-readable private key: refused like everywhere else. */
    EVP_PKEY *k = EVP_EC_gen("P-384");
    write_key("ec.pem", k);
    EVP_PKEY_free(k);
    snprintf(cmd, sizeof(cmd), "%s/ec.pem", dir);
    assert_int_equal(chmod(cmd, 0644), 0);
    snprintf(cmd, sizeof(cmd), "jwks --key %s/ec.pem --kid k", dir);
    assert_int_equal(run(cmd), 2);
    assert_string_equal(out, "");
    snprintf(cmd, sizeof(cmd), "%s/ec.pem", dir);
    assert_int_equal(chmod(cmd, 0600), 0);
    snprintf(cmd, sizeof(cmd), "jwks --key %s/ec.pem --kid k", dir);
    assert_int_equal(run(cmd), 0);
    assert_non_null(strstr(out, "\"crv\": \"P-384\""));
    assert_int_equal(run("jwks --key x.pem"), 2); /* --kid is required with --key */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_go_live_rs384, setup, teardown),
        cmocka_unit_test_setup_teardown(test_go_live_es384, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jwks_keys, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
