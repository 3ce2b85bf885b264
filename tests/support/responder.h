/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A scripted loopback HTTP(S) responder for tests, on libmicrohttpd: its own threads on
 * 127.0.0.1 with an ephemeral port, a script of rules, and a log of every request received.
 */
#ifndef PAINWATCH_TESTS_RESPONDER_H
#define PAINWATCH_TESTS_RESPONDER_H

#include <stdbool.h>
#include <stddef.h>

/** One request as the responder received it. Immutable once logged. */
struct pwt_request {
    char *method;
    char *path;    /* URL path, decoded, without the query */
    char *raw_uri; /* the request target exactly as sent ("/fhir/Obs?a=b%2Bc") */
    char *query;   /* decoded as a form ('+' is a space): "k=v&k2=v2" in order, "" if none */
    char *body;    /* NUL-terminated, "" when none */
    size_t body_len;
    char **hnames; /* request headers as received */
    char **hvalues;
    size_t nheaders;
    int rule;            /* index of the rule that answered (add order), -1 when none matched */
    bool client_cert_ok; /* TLS: the client presented a certificate the trust CA verifies */
    unsigned concurrent; /* requests in progress (this one included) when it arrived */
};

/** A handler's answer. Strings are heap-allocated by the handler; the responder frees them. */
struct pwt_reply {
    int status;
    char *headers; /* "Name: value\n" lines, or NULL */
    char *body;    /* or NULL */
    size_t body_len;
};

/** Compute an answer for @p req (called on a responder thread). */
typedef void pwt_handler_fn(void *arg, const struct pwt_request *req, struct pwt_reply *reply);

/** One scripted answer. The first rule that matches and has uses left answers. */
struct pwt_rule {
    const char *method;       /* NULL: any */
    const char *path;         /* exact path; a trailing '*' matches a prefix; NULL: any */
    const char *query;        /* substring the decoded query must contain; NULL: any */
    unsigned times;           /* how many requests this rule answers; 0: unlimited */
    int status;               /* 0: 200 */
    const char *headers;      /* "Name: value\n" lines; Content-Type defaults to fhir+json */
    const char *body;         /* NULL: empty */
    size_t body_len;          /* 0: strlen(body) */
    unsigned delay_ms;        /* sleep before answering */
    bool close_mid_body;      /* announce the full length, send half, close the connection */
    bool never_answer;        /* hold the request until the responder stops */
    unsigned wait_concurrent; /* hold answers in groups of this many requests (released
                                 together, or after 10 s): proves concurrency without timing */
    pwt_handler_fn *handler;  /* computes the answer instead of status/headers/body */
    void *handler_arg;
};

struct pwt_responder_opts {
    const char *tls_cert_file;  /* PEM server certificate: serve HTTPS */
    const char *tls_key_file;   /* PEM server key */
    const char *client_ca_file; /* ask for a client certificate verified against this CA */
    bool require_client_cert;   /* answer 403 when no verified client certificate came */
};

struct pwt_responder;

/** Start on 127.0.0.1 with an ephemeral port. @p opts may be NULL (plain HTTP). Fails the test
 *  on error. Stop with pwt_responder_stop(). */
struct pwt_responder *pwt_responder_start(const struct pwt_responder_opts *opts);

/** Stop, release held requests, free everything. NULL is a no-op. */
void pwt_responder_stop(struct pwt_responder *r);

/** "http://127.0.0.1:PORT" (or https). Borrowed: valid until stop. */
const char *pwt_responder_url(const struct pwt_responder *r);

/** Append a rule (copied). Safe while requests arrive. */
void pwt_responder_add(struct pwt_responder *r, const struct pwt_rule *rule);

/** Disable every rule added so far (later rules still apply). */
void pwt_responder_clear_rules(struct pwt_responder *r);

/** Number of requests received so far (rules that never answer included). */
size_t pwt_responder_count(struct pwt_responder *r);

/** Wait up to @p ms for at least @p n requests to have arrived. @return true if they did. */
bool pwt_responder_wait_count(struct pwt_responder *r, size_t n, unsigned ms);

/** Requests received with this exact path. */
size_t pwt_responder_count_path(struct pwt_responder *r, const char *path);

/** Request @p i (arrival order). Borrowed: valid until stop. Fails the test when out of range. */
const struct pwt_request *pwt_responder_request(struct pwt_responder *r, size_t i);

/** Most requests that were in progress at the same time. */
unsigned pwt_responder_max_concurrent(struct pwt_responder *r);

/** How many wait_concurrent holds gave up (10 s) before their group was complete. */
unsigned pwt_responder_wait_expired(struct pwt_responder *r);

/** A header of a logged request (case-insensitive), or NULL. */
const char *pwt_request_header(const struct pwt_request *req, const char *name);

#endif
