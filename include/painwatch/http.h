/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP client: the only door to the network. daemon/core/http.c is the one file that knows
 * both libuv and libcurl; everyone else builds a pw_http_req, submits it, and gets exactly one
 * callback, never synchronously.
 */
#ifndef PAINWATCH_HTTP_H
#define PAINWATCH_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct pw_http;

/**
 * TLS and politeness settings of one upstream server (a FHIR base or a token endpoint).
 * Every request is bound to one server and may only go to that server's origin
 * (scheme + host + port): a URL or a redirect elsewhere fails with PW_EORIGIN, so credentials
 * attached to a request never leave the origin they were configured for.
 */
struct pw_http_server {
    const char *name;        /* config name, used in logs and metrics; unique */
    const char *origin;      /* any URL on the server, e.g. its FHIR base; reduced to its origin */
    const char *ca_file;     /* PEM bundle; NULL = system store (PW_HTTP_CA_FILE) */
    const char *client_cert; /* mTLS certificate file, or NULL */
    const char *client_key;  /* mTLS private key file, or NULL (must not be world-readable) */
    unsigned max_concurrent; /* requests in flight to this server; 0 = PW_HTTP_PER_HOST */
    long connect_timeout_ms; /* 0 = PW_HTTP_CONNECT_MS */
    long timeout_ms;         /* whole request; 0 = PW_HTTP_TOTAL_MS */
    size_t body_max;         /* response body cap after decompression; 0 = PW_HTTP_BODY_MAX */
    const char *proxy;       /* proxy URL for this server only, or NULL: direct. The proxy
                                environment variables (http_proxy, ALL_PROXY, no_proxy...)
                                are never consulted (issue 18). */
};

/** System CA bundle used when a server sets no ca_file (CURLOPT_CAPATH is always cleared). */
#define PW_HTTP_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

/** One request. Build with pw_http_req_new(); ownership passes to pw_http_submit_new(). */
struct pw_http_req;

/** A response. Borrowed: valid until the done callback returns. */
struct pw_http_resp {
    long status;          /* HTTP status of the final response, 0 when none arrived */
    const char *body;     /* NUL-terminated (never NULL), may contain NULs before body_len */
    size_t body_len;      /* decompressed length */
    const char *url;      /* the URL that answered (after same-origin redirects) */
    const char *error;    /* transport error detail (curl's), "" when none */
    bool sent;            /* the request was fully sent (an unknown outcome if no status) */
    const void *internal; /* http.c's (header lookup); NULL in responses made elsewhere */
};

/**
 * Completion of one exchange. @p err is 0 when an HTTP response arrived (any status, 4xx and
 * 5xx included), else PW_ETIMEDOUT (connect or total timeout), PW_E2BIG (body or headers over
 * the cap: no partial body is handed out), PW_EORIGIN (redirect off the origin, not followed),
 * PW_ECANCELED (pw_http_free) or PW_EHTTP (transport, TLS verification included; see
 * resp->error). @p resp is never NULL. A done callback may submit new requests, and may call
 * pw_http_free() (the remaining requests are then canceled).
 */
typedef void pw_http_done_fn(void *arg, int err, const struct pw_http_resp *resp);

/** Counters for metrics and benchmarks. Read-only for everyone but http.c. */
struct pw_http_stats {
    uint64_t requests;  /* transfers finished (each redirect hop counts) */
    uint64_t connects;  /* new connections opened (CURLINFO_NUM_CONNECTS summed) */
    uint64_t redirects; /* same-origin redirects followed */
    uint64_t refused;   /* redirects refused because they left the origin */
    uint64_t failures;  /* completions with err != 0, cancellations excluded */
    uint64_t timeouts;  /* completions with PW_ETIMEDOUT */
    unsigned in_flight; /* handed to curl now */
    unsigned queued;    /* waiting for a per-server slot */
};

/** One per daemon, on @p loop. Caller owns; free with pw_http_free() before closing the loop. */
int pw_http_new(struct pw_http **out, uv_loop_t *loop);

/**
 * Shut down (STYLE.md 3.4 steps 2-4): every queued or in-flight request is called back once
 * with PW_ECANCELED (from inside this call), then the curl multi is cleaned up and our handles
 * are closed. The memory is released by close callbacks: run the loop (uv_run) before
 * uv_loop_close(). NULL is a no-op.
 */
void pw_http_free(struct pw_http *http);

/** Register a server; @p srv and its strings are copied. @return 0, PW_EEXIST, PW_EINVAL
 *  (bad origin or settings), PW_ESECRET (client key world-readable) or PW_ENOMEM. */
int pw_http_server_add(struct pw_http *http, const struct pw_http_server *srv);

/** Is a server called @p name registered? */
bool pw_http_server_has(const struct pw_http *http, const char *name);

/** Live counters. Borrowed: valid until pw_http_free(). */
const struct pw_http_stats *pw_http_stats_get(const struct pw_http *http);

/**
 * Percent-encode @p s for a URL query value or form field (libcurl's encoder; the one place that
 * calls it). Caller owns the result (the only copy: wipe it first when @p s is a secret); free
 * with pw_http_escape_free(). @return NULL on allocation failure.
 */
char *pw_http_escape(const char *s);
void pw_http_escape_free(char *esc);

/**
 * The origin of @p url, normalised as "scheme://host:port" (lower case, default port filled
 * in) into @p out. @return 0, PW_EINVAL (not an absolute http(s) URL) or PW_E2BIG.
 */
int pw_http_origin(const char *url, char *out, size_t cap);

/**
 * A new request for @p method ("GET", "POST", "PUT", "DELETE") on absolute @p url, bound to
 * server @p server. Caller owns; pass to pw_http_submit_new() or free with pw_http_req_free().
 */
int pw_http_req_new(struct pw_http_req **out, const char *server, const char *method,
                    const char *url);
/** Add a header line "Name: value" (copied). A later line with the same name wins. */
int pw_http_req_add_header(struct pw_http_req *req, const char *line);
/** Set the body (copied) and its Content-Type (NULL: none). */
int pw_http_req_set_body(struct pw_http_req *req, const char *body, size_t len,
                         const char *content_type);
/**
 * A last check right before the request goes on the wire (when it leaves the server's queue,
 * or at submit when a slot is free): @p gate returns 0 to send, or a negative PW_E* code to
 * refuse. A refused request is not sent: submit returns that code, or, once queued, the done
 * callback gets it with resp->sent false. For writes that must not go out once a condition
 * fails while they wait (the outbox's fail-closed audit trail). Kept by pw_http_req_dup().
 */
void pw_http_req_set_gate(struct pw_http_req *req, int (*gate)(void *arg), void *arg);
/**
 * Mark @p req as carrying secrets in its body or response (a token request: client secret or
 * assertion out, access token back): both are wiped before they are freed, and the response
 * buffer is never left behind by a realloc. Header lists are always wiped (Authorization).
 * Kept by pw_http_req_dup().
 */
void pw_http_req_set_sensitive(struct pw_http_req *req);
/** A copy of @p req as built (method, URL, headers, body, gate), for a retry. Caller owns. */
int pw_http_req_dup(struct pw_http_req **out, const struct pw_http_req *req);
/** The request's URL and server name. Borrowed: valid while @p req is. */
const char *pw_http_req_url(const struct pw_http_req *req);
const char *pw_http_req_server(const struct pw_http_req *req);
/** Free a request that was never submitted. NULL is a no-op. */
void pw_http_req_free(struct pw_http_req *req);

/** Response header lookup (case-insensitive, final response only), or NULL. Valid while
 *  @p resp is. Safe on any resp (NULL when resp->internal is NULL). */
const char *pw_http_resp_header(const struct pw_http_resp *resp, const char *name);

/**
 * Queue @p req. Takes ownership of @p req on every path, failure included.
 * On 0, @p done runs exactly once, never before this call returns. On error it never runs:
 * PW_ENOENT (unknown server), PW_EORIGIN (URL not on the server's origin), PW_EINVAL (a "." or
 * ".." path segment, plain or %2e-encoded: curl would resolve it to another path), PW_ECANCELED
 * (shutting down), PW_ENOMEM, PW_EHTTP.
 * Every request carries Accept: application/fhir+json (unless the caller set Accept),
 * Accept-Encoding (gzip), the server's timeouts and body cap.
 */
int pw_http_submit_new(struct pw_http *http, struct pw_http_req *req, pw_http_done_fn *done,
                       void *arg);

#endif
