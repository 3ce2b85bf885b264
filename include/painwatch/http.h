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

#include <uv.h>

struct pw_http;

/** TLS and politeness settings of one upstream server (a FHIR base or a token endpoint). */
struct pw_http_server {
    const char *name;    /* config name, used in logs and metrics */
    const char *origin;  /* "https://ehr.example.org:443": requests may not leave it */
    const char *ca_file; /* PEM bundle; NULL = system store (/etc/ssl/certs/ca-certificates.crt) */
    const char *client_cert; /* mTLS certificate file, or NULL */
    const char *client_key;  /* mTLS private key file, or NULL (must not be world-readable) */
    unsigned max_concurrent; /* requests in flight to this server; 0 = PW_HTTP_PER_HOST */
    long connect_timeout_ms; /* 0 = PW_HTTP_CONNECT_MS */
    long timeout_ms;         /* 0 = PW_HTTP_TOTAL_MS */
    size_t body_max;         /* 0 = PW_HTTP_BODY_MAX */
};

/** One request. Build with pw_http_req_new(); ownership passes to pw_http_submit_new(). */
struct pw_http_req;

/** A response. Borrowed: valid until the done callback returns. */
struct pw_http_resp {
    long status;      /* HTTP status, 0 when no response arrived */
    const char *body; /* NUL-terminated, may contain NULs before body_len */
    size_t body_len;
    const char *url;   /* the URL that answered (after same-origin redirects) */
    const char *error; /* transport error detail (curl's), "" when none */
    bool sent;         /* the request was fully sent (an unknown outcome if no status) */
};

/**
 * Completion of one exchange. @p err is 0 when an HTTP response arrived (any status), else
 * PW_ETIMEDOUT, PW_E2BIG (body over the cap), PW_EORIGIN (redirect off origin), PW_ECANCELED
 * (shutdown) or PW_EHTTP (transport). @p resp is never NULL.
 */
typedef void pw_http_done_fn(void *arg, int err, const struct pw_http_resp *resp);

/** One per daemon, on @p loop. Caller owns; free with pw_http_free() before closing the loop. */
int pw_http_new(struct pw_http **out, uv_loop_t *loop);

/** Cancel in-flight requests (their callbacks run with PW_ECANCELED), clean up. NULL is a no-op. */
void pw_http_free(struct pw_http *http);

/** Register a server; @p srv is copied. @return 0, PW_EEXIST, PW_EINVAL or PW_ENOMEM. */
int pw_http_server_add(struct pw_http *http, const struct pw_http_server *srv);

/** A new request for @p method ("GET", "POST", "PUT") on @p url, bound to server @p server. */
int pw_http_req_new(struct pw_http_req **out, const char *server, const char *method,
                    const char *url);
/** Add a header line "Name: value" (copied). */
int pw_http_req_add_header(struct pw_http_req *req, const char *line);
/** Set the body (copied) and its Content-Type. */
int pw_http_req_set_body(struct pw_http_req *req, const char *body, size_t len,
                         const char *content_type);
/** Free a request that was never submitted. NULL is a no-op. */
void pw_http_req_free(struct pw_http_req *req);

/** Response header lookup (case-insensitive), or NULL. Valid while @p resp is. */
const char *pw_http_resp_header(const struct pw_http_resp *resp, const char *name);

/**
 * Queue @p req. Takes ownership of @p req on every path, failure included.
 * On 0, @p done runs exactly once, never before this call returns. On error it never runs.
 */
int pw_http_submit_new(struct pw_http *http, struct pw_http_req *req, pw_http_done_fn *done,
                       void *arg);

#endif
