/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A loopback EHR for the operator's-guide walkthrough (guide_walkthrough.sh): the test token
 * endpoint, given the JWK Set the operator registered (the output of `painwatch jwks`), and a
 * FHIR base whose /metadata answers a CapabilityStatement to a valid token only. Prints its base
 * URL ("http://127.0.0.1:PORT") on stdout, then serves until SIGTERM or SIGINT.
 * Usage: ehr_stub JWKS_FILE CLIENT_ID
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "support/jwk.h"
#include "support/responder.h"
#include "support/token_endpoint.h"

#define CAPSTMT                                                            \
    "{\"resourceType\":\"CapabilityStatement\",\"fhirVersion\":\"4.0.1\"," \
    "\"software\":{\"name\":\"ehr-stub\",\"version\":\"1\"}}"

static void metadata(void *arg, const struct pwt_request *req, struct pwt_reply *rep)
{
    pwt_token_endpoint_protected(arg, req, rep);
    if (rep->status == 200) {
        free(rep->body);
        rep->body = strdup(CAPSTMT);
        rep->body_len = strlen(CAPSTMT);
    }
}

int main(int argc, char **argv)
{
    json_error_t jerr;
    json_t *set;
    const json_t *jwk;
    EVP_PKEY *pub;
    sigset_t sigs;
    int sig;
    char token_url[256];

    if (argc != 3) {
        fprintf(stderr, "usage: ehr_stub JWKS_FILE CLIENT_ID\n");
        return 2;
    }
    set = json_load_file(argv[1], 0, &jerr);
    jwk = json_array_get(json_object_get(set, "keys"), 0);
    pub = jwk ? pwt_jwk_public_key(jwk) : NULL;
    if (!pub) {
        fprintf(stderr, "ehr_stub: %s: no usable public JWK (%s)\n", argv[1], jerr.text);
        return 2;
    }
    /* Signals are taken with sigwait, so block them before the responder's threads start. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    struct pwt_responder *r = pwt_responder_start(NULL);
    snprintf(token_url, sizeof(token_url), "%s/oauth2/token", pwt_responder_url(r));
    struct pwt_token_endpoint *te = pwt_token_endpoint_new(&(struct pwt_te_conf){
        .mode = PWT_TE_JWT,
        .client_id = argv[2],
        .aud = token_url,
        .pub = pub,
        .alg = json_string_value(json_object_get(jwk, "alg")),
        .kid = json_string_value(json_object_get(jwk, "kid")),
    });
    pwt_responder_add(r, &(struct pwt_rule){.method = "POST",
                                            .path = "/oauth2/token",
                                            .handler = pwt_token_endpoint_handler,
                                            .handler_arg = te});
    pwt_responder_add(
        r, &(struct pwt_rule){
               .method = "GET", .path = "/fhir/metadata", .handler = metadata, .handler_arg = te});
    printf("%s\n", pwt_responder_url(r));
    fflush(stdout);
    sigwait(&sigs, &sig);
    fprintf(stderr, "ehr_stub: %u token(s) issued, %u request(s) refused%s%s\n",
            pwt_token_endpoint_issued(te), pwt_token_endpoint_rejected(te),
            pwt_token_endpoint_rejected(te) ? ": " : "", pwt_token_endpoint_last_error(te));
    pwt_responder_stop(r);
    pwt_token_endpoint_free(te);
    EVP_PKEY_free(pub);
    json_decref(set);
    return 0;
}
