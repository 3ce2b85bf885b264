/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A loopback OAuth token endpoint for tests, as responder handlers: it verifies SMART client
 * assertions with OpenSSL (signature, alg, kid, iss/sub, aud, exp, unique jti) or client
 * secrets (basic/post), issues "tok-N" tokens, and guards a protected resource with them.
 */
#ifndef PAINWATCH_TESTS_TOKEN_ENDPOINT_H
#define PAINWATCH_TESTS_TOKEN_ENDPOINT_H

#include <stdbool.h>

#include <openssl/evp.h>

#include "responder.h"

enum pwt_te_mode {
    PWT_TE_JWT,   /* private_key_jwt client assertion */
    PWT_TE_BASIC, /* client secret in HTTP Basic */
    PWT_TE_POST,  /* client secret in the form */
};

struct pwt_te_conf {
    enum pwt_te_mode mode;
    const char *client_id;
    const char *aud;    /* the token endpoint URL the assertion must name */
    EVP_PKEY *pub;      /* JWT: verification key (borrowed, up-ref'd) */
    const char *alg;    /* JWT: "RS384" or "ES384" */
    const char *kid;    /* JWT */
    const char *secret; /* BASIC/POST */
    const char *scope;  /* when set, the request must carry exactly this scope */
    long expires_in;    /* 0: 300 */
};

struct pwt_token_endpoint;

struct pwt_token_endpoint *pwt_token_endpoint_new(const struct pwt_te_conf *conf);
void pwt_token_endpoint_free(struct pwt_token_endpoint *te);

/** Responder handler for the token URL (handler_arg = the endpoint). */
void pwt_token_endpoint_handler(void *arg, const struct pwt_request *req, struct pwt_reply *rep);

/** Responder handler for a protected resource: 200 with a Bundle when the request carries a
 *  valid, unrevoked "Bearer tok-N", else 401. */
void pwt_token_endpoint_protected(void *arg, const struct pwt_request *req, struct pwt_reply *rep);

/** Revoke every token issued so far (the next protected request with one gets a 401). */
void pwt_token_endpoint_revoke_all(struct pwt_token_endpoint *te);

/** Tokens issued, requests rejected, and the reason of the last rejection ("" if none). */
unsigned pwt_token_endpoint_issued(struct pwt_token_endpoint *te);
unsigned pwt_token_endpoint_rejected(struct pwt_token_endpoint *te);
const char *pwt_token_endpoint_last_error(struct pwt_token_endpoint *te);

#endif
