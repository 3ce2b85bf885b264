/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The libuv <-> curl_multi_socket_action bridge (STYLE.md section 3): the only file that knows
 * both libraries. One CURLM per daemon, one uv_timer, one uv_poll per socket curl watches.
 */
#include "painwatch/http.h"

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <uv.h>

#include "painwatch/check.h"
#include "painwatch/err.h"
#include "painwatch/limits.h"
#include "painwatch/log.h"
#include "painwatch/metrics.h"
#include "painwatch/secret.h"

#define ORIGIN_MAX 512

/* One registered server: settings plus its own queue (the per-server concurrency cap). */
struct srv {
    struct srv *next;
    char *name;
    char origin[ORIGIN_MAX];
    char *ca_file;
    char *client_cert;
    char *client_key;
    char *proxy; /* NULL: direct, whatever the environment says */
    unsigned max_concurrent;
    long connect_ms;
    long timeout_ms;
    size_t body_max;
    unsigned active;
    struct pw_http_req *q_head; /* waiting for a slot, FIFO */
    struct pw_http_req *q_tail;
};

/* One socket curl asked us to watch (3.1). Freed only in the uv_close callback. */
struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct pw_http *http;
    struct sock *prev;
    struct sock *next;
};

struct pw_http {
    uv_loop_t *loop;
    uv_timer_t timer; /* the single deadline curl asks for; its close callback frees us */
    CURLM *multi;
    struct srv *servers;
    struct pw_http_req *active; /* handed to curl, doubly linked */
    struct sock *socks;         /* live socket contexts (not yet closing) */
    struct pw_http_stats stats;
    long max_host;
    long max_conns; /* connection cache size: every server's max_concurrent summed */
    bool closing;
};

struct pw_http_req {
    struct pw_http_req *prev; /* active list, or (next only) a server queue */
    struct pw_http_req *next;
    struct pw_http *http;
    struct srv *srv;
    char *server;
    char *method;
    char *url; /* current URL: changes on a same-origin redirect */
    struct curl_slist *headers;
    char *body;
    size_t body_len;
    CURL *easy;
    char errbuf[CURL_ERROR_SIZE];
    char *in; /* response body, capped at in_max, always NUL-terminated when non-NULL */
    size_t in_len;
    size_t in_cap;
    size_t in_max;
    char *hdr; /* header block of the latest response */
    size_t hdr_len;
    size_t hdr_cap;
    bool over_cap;
    bool oom;
    bool sensitive; /* pw_http_req_set_sensitive(): body and response wiped, never left behind */
    unsigned redirects;
    pw_http_done_fn *done;
    void *arg;
    int (*gate)(void *arg); /* pw_http_req_set_gate(), NULL: none */
    void *gate_arg;
    struct pw_http_resp resp;
};

static void pump(struct srv *srv);

/* ---- small helpers ---------------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Header lists carry Authorization: every line is wiped before curl frees it (issue 18). */
static void slist_free_wiped(struct curl_slist *list)
{
    for (struct curl_slist *h = list; h; h = h->next) {
        pw_secret_wipe(h->data, strlen(h->data));
    }
    curl_slist_free_all(list);
}

/* Free a body or response buffer of @p req, wiped first when the request is sensitive. */
static void buf_free(const struct pw_http_req *req, char *buf, size_t len)
{
    if (buf && req->sensitive) {
        pw_secret_wipe(buf, len);
    }
    free(buf);
}

static struct srv *find_srv(const struct pw_http *http, const char *name)
{
    for (struct srv *s = http->servers; s; s = s->next) {
        if (strcmp(s->name, name) == 0) {
            return s;
        }
    }
    return NULL;
}

int pw_http_origin(const char *url, char *out, size_t cap)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    char *host = NULL;
    char *port = NULL;
    int err = PW_EINVAL;

    if (!u || !url || !out) {
        curl_url_cleanup(u);
        return u ? PW_EINVAL : PW_ENOMEM;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        goto out;
    }
    for (char *p = scheme; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
    for (char *p = host; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        goto out;
    }
    int n = snprintf(out, cap, "%s://%s:%s", scheme, host, port);
    err = (n < 0 || (size_t)n >= cap) ? PW_E2BIG : 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return err;
}

static bool in_origin(const struct srv *srv, const char *url)
{
    char o[ORIGIN_MAX];

    return pw_http_origin(url, o, sizeof(o)) == 0 && strcmp(o, srv->origin) == 0;
}

/* Is @p seg (length @p n) "." or "..", plain or percent-encoded ("%2e", "%2E")? */
static bool dot_segment(const char *seg, size_t n)
{
    size_t dots = 0;

    for (size_t i = 0; i < n; dots++) {
        if (seg[i] == '.') {
            i++;
        } else if (n - i >= 3 && seg[i] == '%' && seg[i + 1] == '2' &&
                   (seg[i + 2] == 'e' || seg[i + 2] == 'E')) {
            i += 3;
        } else {
            return false;
        }
    }
    return dots == 1 || dots == 2;
}

/*
 * Does the path of @p url have a "." or ".." segment? curl would resolve it (RFC 3986 5.2.4)
 * and send the request somewhere else on the origin: "Flag/../../Patient/p1" is a PUT on
 * Patient/p1 (issue 18). No URL painwatch builds has one, so such a URL is refused outright.
 */
static bool has_dot_segment(const char *url)
{
    const char *p = strstr(url, "://");
    size_t end;

    p = p ? p + 3 : url;
    p += strcspn(p, "/?#"); /* the path starts after the authority */
    end = strcspn(p, "?#");
    for (size_t i = 0; i < end;) {
        size_t n;

        if (p[i] == '/') {
            i++;
            continue;
        }
        n = strcspn(p + i, "/?#");
        if (dot_segment(p + i, n)) {
            return true;
        }
        i += n;
    }
    return false;
}

/* ---- requests --------------------------------------------------------------------------- */

int pw_http_req_new(struct pw_http_req **out, const char *server, const char *method,
                    const char *url)
{
    struct pw_http_req *req;

    if (!out || !server || !method || !url || !*method) {
        return PW_EINVAL;
    }
    req = calloc(1, sizeof(*req));
    if (!req) {
        return PW_ENOMEM;
    }
    req->server = strdup(server);
    req->method = strdup(method);
    req->url = strdup(url);
    if (!req->server || !req->method || !req->url) {
        pw_http_req_free(req);
        return PW_ENOMEM;
    }
    *out = req;
    return 0;
}

/* Length of the header name in "Name: value" (up to the colon), 0 if malformed. */
static size_t header_name_len(const char *line)
{
    const char *c = strchr(line, ':');

    return (c && c != line) ? (size_t)(c - line) : 0;
}

int pw_http_req_add_header(struct pw_http_req *req, const char *line)
{
    size_t nlen;
    struct curl_slist *kept = NULL;
    struct curl_slist *tmp;

    if (!req || !line || strpbrk(line, "\r\n")) {
        return PW_EINVAL;
    }
    nlen = header_name_len(line);
    if (!nlen) {
        return PW_EINVAL;
    }
    /* A later line with the same name replaces the earlier one (an Authorization header that
     * is renewed after a 401 must not be sent twice). */
    for (struct curl_slist *h = req->headers; h; h = h->next) {
        if (header_name_len(h->data) == nlen && strncasecmp(h->data, line, nlen) == 0) {
            continue;
        }
        tmp = curl_slist_append(kept, h->data);
        if (!tmp) {
            slist_free_wiped(kept);
            return PW_ENOMEM;
        }
        kept = tmp;
    }
    tmp = curl_slist_append(kept, line);
    if (!tmp) {
        slist_free_wiped(kept);
        return PW_ENOMEM;
    }
    slist_free_wiped(req->headers);
    req->headers = tmp;
    return 0;
}

static bool req_has_header(const struct pw_http_req *req, const char *name)
{
    size_t nlen = strlen(name);

    for (struct curl_slist *h = req->headers; h; h = h->next) {
        if (header_name_len(h->data) == nlen && strncasecmp(h->data, name, nlen) == 0) {
            return true;
        }
    }
    return false;
}

int pw_http_req_set_body(struct pw_http_req *req, const char *body, size_t len,
                         const char *content_type)
{
    char line[256];
    char *copy;

    if (!req || (!body && len)) {
        return PW_EINVAL;
    }
    copy = malloc(len + 1);
    if (!copy) {
        return PW_ENOMEM;
    }
    if (len) {
        memcpy(copy, body, len);
    }
    copy[len] = '\0';
    if (content_type) {
        int n = snprintf(line, sizeof(line), "Content-Type: %s", content_type);
        int err =
            (n < 0 || (size_t)n >= sizeof(line)) ? PW_EINVAL : pw_http_req_add_header(req, line);
        if (err) {
            buf_free(req, copy, len);
            return err;
        }
    }
    buf_free(req, req->body, req->body_len);
    req->body = copy;
    req->body_len = len;
    return 0;
}

int pw_http_req_dup(struct pw_http_req **out, const struct pw_http_req *req)
{
    struct pw_http_req *d = NULL;
    int err;

    if (!out || !req) {
        return PW_EINVAL;
    }
    err = pw_http_req_new(&d, req->server, req->method, req->url);
    if (!err) {
        d->sensitive = req->sensitive;
    }
    for (struct curl_slist *h = req->headers; !err && h; h = h->next) {
        struct curl_slist *t = curl_slist_append(d->headers, h->data);
        if (!t) {
            err = PW_ENOMEM;
        } else {
            d->headers = t;
        }
    }
    if (!err && req->body) {
        err = pw_http_req_set_body(d, req->body, req->body_len, NULL);
    }
    if (err) {
        pw_http_req_free(d);
        return err;
    }
    d->gate = req->gate;
    d->gate_arg = req->gate_arg;
    *out = d;
    return 0;
}

void pw_http_req_set_sensitive(struct pw_http_req *req)
{
    req->sensitive = true;
}

void pw_http_req_set_gate(struct pw_http_req *req, int (*gate)(void *arg), void *arg)
{
    req->gate = gate;
    req->gate_arg = arg;
}

const char *pw_http_req_url(const struct pw_http_req *req)
{
    return req->url;
}

const char *pw_http_req_server(const struct pw_http_req *req)
{
    return req->server;
}

void pw_http_req_free(struct pw_http_req *req)
{
    if (!req) {
        return;
    }
    if (req->easy) {
        curl_easy_cleanup(req->easy);
    }
    slist_free_wiped(req->headers);
    free(req->server);
    free(req->method);
    free(req->url);
    buf_free(req, req->body, req->body_len);
    buf_free(req, req->in, req->in_cap);
    buf_free(req, req->hdr, req->hdr_cap);
    free(req);
}

const char *pw_http_resp_header(const struct pw_http_resp *resp, const char *name)
{
    const struct pw_http_req *req = resp ? resp->internal : NULL;
    size_t nlen = name ? strlen(name) : 0;
    const char *p;
    const char *end;

    if (!req || !nlen) {
        return NULL;
    }
    if (!req->hdr) {
        return NULL;
    }
    /* complete() split the block into NUL-terminated lines. */
    p = req->hdr;
    end = req->hdr + req->hdr_len;
    while (p < end) {
        size_t l = strlen(p);
        if (l > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1;
            while (*v == ' ' || *v == '\t') {
                v++;
            }
            return v;
        }
        p += l + 1;
    }
    return NULL;
}

/* ---- curl data callbacks: they only record state (P7) ----------------------------------- */

/* @p wipe: a secret may be in *buf: move it by hand (realloc would leave the old block as it
 * was) and wipe the old copy. */
static bool grow(char **buf, size_t *cap, size_t need, size_t max, bool wipe)
{
    size_t ncap = *cap ? *cap : 4096;
    char *n;

    while (ncap < need + 1) {
        ncap *= 2;
    }
    if (ncap > max + 1) {
        ncap = max + 1;
    }
    if (wipe && *buf) {
        n = malloc(ncap);
        if (n) {
            memcpy(n, *buf, *cap);
            pw_secret_wipe(*buf, *cap);
            free(*buf);
        }
    } else {
        n = realloc(*buf, ncap);
    }
    if (!n) {
        return false;
    }
    *buf = n;
    *cap = ncap;
    return true;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct pw_http_req *req = userdata;
    size_t n = size * nmemb;

    /* Returning less than n makes curl fail the transfer (CURLE_WRITE_ERROR): the caller
     * gets PW_E2BIG, never a truncated body. */
    if (n > req->in_max - req->in_len) {
        req->over_cap = true;
        return 0;
    }
    if (req->in_len + n + 1 > req->in_cap &&
        !grow(&req->in, &req->in_cap, req->in_len + n, req->in_max, req->sensitive)) {
        req->oom = true;
        return 0;
    }
    memcpy(req->in + req->in_len, ptr, n);
    req->in_len += n;
    req->in[req->in_len] = '\0';
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct pw_http_req *req = userdata;
    size_t n = size * nmemb;

    /* Each response (100 Continue, then the final one) starts with its status line: keep only
     * the latest block. */
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        req->hdr_len = 0;
    }
    if (n > PW_HTTP_HEADERS_MAX - req->hdr_len) {
        req->over_cap = true;
        return 0;
    }
    if (req->hdr_len + n + 1 > req->hdr_cap &&
        !grow(&req->hdr, &req->hdr_cap, req->hdr_len + n, PW_HTTP_HEADERS_MAX, req->sensitive)) {
        req->oom = true;
        return 0;
    }
    memcpy(req->hdr + req->hdr_len, ptr, n);
    req->hdr_len += n;
    req->hdr[req->hdr_len] = '\0';
    return n;
}

/* ---- transfers ---------------------------------------------------------------------------- */

#define SET(opt, val)                                           \
    do {                                                        \
        if (curl_easy_setopt(easy, (opt), (val)) != CURLE_OK) { \
            goto fail;                                          \
        }                                                       \
    } while (0)

static CURL *make_easy(struct pw_http_req *req)
{
    const struct srv *srv = req->srv;
    CURL *easy = curl_easy_init();

    if (!easy) {
        return NULL;
    }
    req->errbuf[0] = '\0';
    SET(CURLOPT_PRIVATE, (char *)req);
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_USERAGENT, "painwatch/" PW_VERSION); /* lets EHR operators tell us apart */
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L); /* redirects are followed by complete(), origin-checked */
    SET(CURLOPT_CONNECTTIMEOUT_MS, srv->connect_ms);
    SET(CURLOPT_TIMEOUT_MS, srv->timeout_ms);
    SET(CURLOPT_ERRORBUFFER, req->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, req);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, req);
    SET(CURLOPT_ACCEPT_ENCODING, ""); /* every encoding curl can decode (gzip at least) */
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    /* No CURLOPT_PIPEWAIT: on a new host curl 7.88 would hold every further transfer until the
     * first response says whether the connection multiplexes, serialising a burst behind one
     * slow request. HTTP/2 connections, once open, are multiplexed anyway. */
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)srv->body_max);
    /* Debian's libcurl re-reads the whole CA directory on every new TLS connection unless
     * CAPATH is cleared (23-30 ms of CPU against 0.95 ms with a CA file): issue 4. */
    SET(CURLOPT_CAINFO, srv->ca_file ? srv->ca_file : PW_HTTP_CA_FILE);
    SET(CURLOPT_CAPATH, (char *)NULL);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (srv->client_cert) {
        SET(CURLOPT_SSLCERT, srv->client_cert);
    }
    if (srv->client_key) {
        SET(CURLOPT_SSLKEY, srv->client_key);
    }
    /* Proxies only from the server's own setting: libcurl would otherwise read http_proxy,
     * https_proxy, ALL_PROXY and no_proxy from the environment and hand the bearer token to
     * whatever they name. "" disables the environment lookup (issue 18, finding 9). */
    SET(CURLOPT_PROXY, srv->proxy ? srv->proxy : "");
    SET(CURLOPT_NOPROXY, "");
    SET(CURLOPT_HTTPHEADER, req->headers);
    if (strcmp(req->method, "GET") == 0) {
        SET(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(req->method, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(req->method, "POST") != 0) {
            SET(CURLOPT_CUSTOMREQUEST, req->method);
        }
        if (req->body || strcmp(req->method, "POST") == 0) {
            SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
            SET(CURLOPT_POSTFIELDS, req->body ? req->body : "");
        }
    }
    return easy;
fail:
    curl_easy_cleanup(easy);
    return NULL;
}

#undef SET

/* Hand @p req to curl. Never called from inside a curl callback (P7). */
static int start(struct pw_http_req *req)
{
    struct pw_http *http = req->http;
    struct srv *srv = req->srv;
    int refused = req->gate ? req->gate(req->gate_arg) : 0;

    if (refused) {
        return refused < 0 ? refused : PW_EINVAL;
    }
    req->in_len = 0;
    req->hdr_len = 0;
    req->over_cap = false;
    req->oom = false;
    req->easy = make_easy(req);
    if (!req->easy) {
        return PW_ENOMEM;
    }
    if (curl_multi_add_handle(http->multi, req->easy) != CURLM_OK) {
        curl_easy_cleanup(req->easy);
        req->easy = NULL;
        return PW_EHTTP;
    }
    req->prev = NULL;
    req->next = http->active;
    if (http->active) {
        http->active->prev = req;
    }
    http->active = req;
    srv->active++;
    http->stats.in_flight++;
    return 0;
}

/* Split the header block into NUL-terminated lines for pw_http_resp_header(). */
static void split_headers(struct pw_http_req *req)
{
    for (size_t i = 0; i < req->hdr_len; i++) {
        if (req->hdr[i] == '\r' || req->hdr[i] == '\n') {
            req->hdr[i] = '\0';
        }
    }
}

/* Take @p req off the active list and its server's slot; free its easy handle (already
 * removed from the multi). No-op for a request that never started. */
static void detach(struct pw_http_req *req)
{
    struct pw_http *http = req->http;

    if (!req->easy) {
        return;
    }
    if (http->active == req) {
        http->active = req->next;
    } else if (req->prev) {
        req->prev->next = req->next;
    }
    if (req->next) {
        req->next->prev = req->prev;
    }
    req->prev = NULL;
    req->next = NULL;
    curl_easy_cleanup(req->easy);
    req->easy = NULL;
    req->srv->active--;
    http->stats.in_flight--;
}

/*
 * Finish @p req: detach it from curl and its server, call its done callback once, free it.
 * @p do_pump starts the server's next queued request (not while failing or canceling all).
 */
/* Issue 19: the latency histogram's operation, from what the request is. */
static const char *operation_of(const struct pw_http_req *req)
{
    const char *q = strchr(req->url, '?');
    size_t n = q ? (size_t)(q - req->url) : strlen(req->url);

    if (strstr(req->srv->name, "~token~")) {
        return "token";
    }
    if (n >= 9 && strncmp(req->url + n - 9, "/metadata", 9) == 0) {
        return "metadata";
    }
    if (strcmp(req->method, "POST") == 0) {
        return "create";
    }
    if (strcmp(req->method, "PUT") == 0) {
        return "update";
    }
    return q ? "search" : "read";
}

static void observe_latency(const struct pw_http_req *req, int err)
{
    curl_off_t us = 0;
    char server[128];

    if (!req->easy || err == PW_ECANCELED ||
        curl_easy_getinfo(req->easy, CURLINFO_TOTAL_TIME_T, &us) != CURLE_OK) {
        return;
    }
    /* A token endpoint's pseudo-server "<server>~token~<url>" counts under its server. */
    snprintf(server, sizeof(server), "%.*s", (int)strcspn(req->srv->name, "~"), req->srv->name);
    pw_metric_observe(PW_M_HTTP_DURATION, (double)us / 1e6, server, operation_of(req), NULL);
}

static void complete(struct pw_http_req *req, int err, long status, bool sent, bool do_pump)
{
    struct pw_http *http = req->http;
    struct srv *srv = req->srv;

    observe_latency(req, err);
    detach(req);
    if (err && err != PW_ECANCELED) {
        http->stats.failures++;
        if (err == PW_ETIMEDOUT) {
            http->stats.timeouts++;
        }
        pw_log_debug(HTTP, "%s %s: %s (%s)", req->method, srv->name, pw_strerror(err), req->errbuf);
    }
    if (err != PW_ECANCELED) {
        /* Requests by server and status; no response is "timeout" or "error" (metrics.h). */
        char code[16];
        snprintf(code, sizeof(code), "%ld", status);
        pw_metric_inc(PW_M_HTTP_REQUESTS, srv->name,
                      status > 0            ? code
                      : err == PW_ETIMEDOUT ? "timeout"
                                            : "error",
                      NULL);
    }
    if (req->hdr) {
        split_headers(req);
    }
    req->resp.status = status;
    req->resp.body = req->in ? req->in : "";
    req->resp.body_len = req->in ? req->in_len : 0;
    if (err) {
        req->resp.body = ""; /* never a truncated or partial body */
        req->resp.body_len = 0;
    }
    req->resp.url = req->url;
    req->resp.error = req->errbuf;
    req->resp.sent = sent;
    req->resp.internal = req;
    req->done(req->arg, err, &req->resp);
    pw_http_req_free(req);
    if (do_pump && !http->closing) {
        pump(srv);
    }
}

/* Start queued requests while the server has free slots. */
static void pump(struct srv *srv)
{
    while (srv->q_head && srv->active < srv->max_concurrent) {
        struct pw_http_req *req = srv->q_head;
        srv->q_head = req->next;
        if (!srv->q_head) {
            srv->q_tail = NULL;
        }
        req->next = NULL;
        req->http->stats.queued--;
        int err = start(req);
        if (err) {
            snprintf(req->errbuf, sizeof(req->errbuf), "not sent: %s", pw_strerror(err));
            complete(req, err, 0, false, false);
        }
    }
}

static int map_result(const struct pw_http_req *req, CURLcode res)
{
    switch (res) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return PW_ETIMEDOUT;
    case CURLE_FILESIZE_EXCEEDED:
        return PW_E2BIG;
    case CURLE_OUT_OF_MEMORY:
        return PW_ENOMEM;
    default:
        if (req->over_cap) {
            return PW_E2BIG;
        }
        return req->oom ? PW_ENOMEM : PW_EHTTP;
    }
}

/*
 * A redirect is followed only inside the server's origin, so headers the caller attached
 * (Authorization) never reach another origin. @return true when the transfer was restarted.
 */
static bool follow_redirect(struct pw_http_req *req, long status, int *err)
{
    char *loc = NULL;
    char *copy;

    if (status != 301 && status != 302 && status != 303 && status != 307 && status != 308) {
        return false;
    }
    if (curl_easy_getinfo(req->easy, CURLINFO_REDIRECT_URL, &loc) != CURLE_OK || !loc) {
        return false; /* a 3xx without Location is handed out as it is */
    }
    if (!in_origin(req->srv, loc)) {
        req->http->stats.refused++;
        snprintf(req->errbuf, sizeof(req->errbuf), "redirect to another origin refused");
        *err = PW_EORIGIN;
        return false;
    }
    if (req->redirects >= PW_HTTP_REDIRECTS_MAX) {
        snprintf(req->errbuf, sizeof(req->errbuf), "more than %d redirects", PW_HTTP_REDIRECTS_MAX);
        *err = PW_EHTTP;
        return false;
    }
    copy = strdup(loc);
    if (!copy) {
        *err = PW_ENOMEM;
        return false;
    }
    /* 303, and 301/302 after a POST, continue as GET without a body (what browsers and curl
     * do); 307/308 repeat the method and body. */
    if (status == 303 || ((status == 301 || status == 302) && strcmp(req->method, "POST") == 0)) {
        char *get = strdup("GET");
        if (!get) {
            free(copy);
            *err = PW_ENOMEM;
            return false;
        }
        free(req->method);
        req->method = get;
        buf_free(req, req->body, req->body_len);
        req->body = NULL;
        req->body_len = 0;
    }
    free(req->url);
    req->url = copy;
    req->redirects++;
    req->http->stats.redirects++;
    return true;
}

/* A DONE message for @p req; called from drain() after socket_action returned (P7). */
static void on_done(struct pw_http *http, struct pw_http_req *req, CURLcode res)
{
    long status = 0;
    long connects = 0;
    curl_off_t req_size = 0;
    curl_off_t up = 0;
    int err = map_result(req, res);

    curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(req->easy, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(req->easy, CURLINFO_REQUEST_SIZE, &req_size);
    curl_easy_getinfo(req->easy, CURLINFO_SIZE_UPLOAD_T, &up);
    http->stats.requests++;
    http->stats.connects += (uint64_t)connects;
    if (!err && follow_redirect(req, status, &err)) {
        /* Restart on a fresh easy handle; the connection stays in the multi's pool. */
        detach(req);
        err = start(req);
        if (!err) {
            return;
        }
        snprintf(req->errbuf, sizeof(req->errbuf), "cannot restart after a redirect");
        complete(req, err, 0, false, true);
        return;
    }
    bool sent = req_size > 0 && (curl_off_t)req->body_len == up;
    complete(req, err, status, sent || status > 0, true);
}

/* Read every finished transfer. Called after EVERY socket_action, whatever `running` says
 * (P1: a transfer that ends on a timer tick leaves running == 0 and must still be read). */
static void drain(struct pw_http *http)
{
    CURLMsg *msg;
    int pending;

    /* http->multi is NULL once a done callback has called pw_http_free(). */
    while (http->multi && (msg = curl_multi_info_read(http->multi, &pending)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        /* P2: copy what we need before remove_handle invalidates msg. */
        CURL *easy = msg->easy_handle;
        CURLcode res = msg->data.result;
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        curl_multi_remove_handle(http->multi, easy);
        if (PW_CHECK(priv != NULL)) {
            continue;
        }
        on_done(http, (struct pw_http_req *)(void *)priv, res);
    }
}

/* P10: the state of every transfer is uncertain; fail them all, keep the multi usable. */
static void fail_all(struct pw_http *http, int err)
{
    while (http->active) {
        struct pw_http_req *req = http->active;
        PW_REQUIRE(req->easy != NULL); /* on the active list = handed to curl */
        curl_multi_remove_handle(http->multi, req->easy);
        snprintf(req->errbuf, sizeof(req->errbuf), "transfer engine error");
        complete(req, err, 0, false, false);
    }
    if (!http->closing) {
        for (struct srv *s = http->servers; s; s = s->next) {
            pump(s);
        }
    }
}

static void action(struct pw_http *http, curl_socket_t fd, int flags)
{
    int running = 0;
    CURLMcode mc = curl_multi_socket_action(http->multi, fd, flags, &running);

    if (mc != CURLM_OK) {
        pw_log_crit(HTTP, "curl_multi_socket_action: %s; failing all transfers",
                    curl_multi_strerror(mc));
        drain(http);
        fail_all(http, PW_EHTTP);
        return;
    }
    drain(http);
}

/* ---- libuv side ------------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    action(container_of(t, struct pw_http, timer), CURL_SOCKET_TIMEOUT, 0);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sock *ctx = container_of(p, struct sock, poll);
    int flags = 0;

    if (status < 0) {
        flags = CURL_CSELECT_ERR; /* P6 */
    } else {
        if (events & UV_READABLE) {
            flags |= CURL_CSELECT_IN;
        }
        if (events & UV_WRITABLE) {
            flags |= CURL_CSELECT_OUT;
        }
    }
    action(ctx->http, ctx->fd, flags);
}

static void on_sock_close(uv_handle_t *h)
{
    free(container_of((uv_poll_t *)(void *)h, struct sock, poll));
}

/* Stop watching now (uv_close stops the poll synchronously, P3/P4); free in the callback. */
static void sock_close(struct sock *ctx)
{
    struct pw_http *http = ctx->http;

    if (ctx->prev) {
        ctx->prev->next = ctx->next;
    } else {
        http->socks = ctx->next;
    }
    if (ctx->next) {
        ctx->next->prev = ctx->prev;
    }
    uv_close((uv_handle_t *)&ctx->poll, on_sock_close);
}

static struct sock *sock_new(struct pw_http *http, curl_socket_t s)
{
    struct sock *ctx = calloc(1, sizeof(*ctx));
    int rc;

    if (!ctx) {
        pw_log_crit(HTTP, "out of memory for a socket context");
        return NULL;
    }
    rc = uv_poll_init_socket(http->loop, &ctx->poll, s);
    if (rc) {
        /* P5: EEXIST here means a closed fd was still watched (P3 violated). */
        pw_log_crit(HTTP, "uv_poll_init_socket(%d): %s", (int)s, uv_strerror(rc));
        free(ctx);
        return NULL;
    }
    ctx->fd = s;
    ctx->http = http;
    ctx->next = http->socks;
    if (http->socks) {
        http->socks->prev = ctx;
    }
    http->socks = ctx;
    return ctx;
}

/* CURLMOPT_SOCKETFUNCTION: only uv calls and curl_multi_assign in here (P7). */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct pw_http *http = userp;
    struct sock *ctx = socketp; /* P11: never trust @p easy to be ours */
    int events = 0;
    int rc;

    (void)easy;
    switch (what) {
    case CURL_POLL_IN:
    case CURL_POLL_OUT:
    case CURL_POLL_INOUT:
        if (!ctx) { /* P12: a reused fd gets a fresh context */
            ctx = sock_new(http, s);
            if (!ctx) {
                return -1;
            }
            curl_multi_assign(http->multi, s, ctx);
        }
        if (what != CURL_POLL_IN) {
            events |= UV_WRITABLE;
        }
        if (what != CURL_POLL_OUT) {
            events |= UV_READABLE;
        }
        rc = uv_poll_start(&ctx->poll, events, on_poll);
        if (rc) {
            pw_log_crit(HTTP, "uv_poll_start(%d): %s", (int)s, uv_strerror(rc));
            return -1;
        }
        break;
    case CURL_POLL_REMOVE:
        if (ctx) {
            sock_close(ctx);
            curl_multi_assign(http->multi, s, NULL);
        }
        break;
    default:
        break;
    }
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: replace the single deadline. uv timers never fire synchronously. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct pw_http *http = userp;

    (void)multi;
    if (timeout_ms < 0) {
        uv_timer_stop(&http->timer);
        return 0;
    }
    return uv_timer_start(&http->timer, on_timer, (uint64_t)timeout_ms, 0) ? -1 : 0;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

int pw_http_new(struct pw_http **out, uv_loop_t *loop)
{
    struct pw_http *http;

    if (!out || !loop) {
        return PW_EINVAL;
    }
    /* With CURLOPT_NOSIGNAL curl leaves SIGPIPE alone, and OpenSSL writes to a socket the peer
     * closed would kill the process: ignore it process-wide, as the daemon would anyway. */
    struct sigaction sa = {.sa_handler = SIG_IGN};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return PW_EHTTP;
    }
    http = calloc(1, sizeof(*http));
    if (!http) {
        curl_global_cleanup();
        return PW_ENOMEM;
    }
    http->loop = loop;
    http->max_host = PW_HTTP_PER_HOST;
    http->multi = curl_multi_init();
    if (!http->multi || uv_timer_init(loop, &http->timer) != 0) {
        curl_multi_cleanup(http->multi);
        free(http);
        curl_global_cleanup();
        return PW_ENOMEM;
    }
    curl_multi_setopt(http->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(http->multi, CURLMOPT_SOCKETDATA, http);
    curl_multi_setopt(http->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(http->multi, CURLMOPT_TIMERDATA, http);
    curl_multi_setopt(http->multi, CURLMOPT_MAX_HOST_CONNECTIONS, http->max_host);
    *out = http;
    return 0;
}

static void srv_free(struct srv *s)
{
    if (s) {
        free(s->name);
        free(s->ca_file);
        free(s->client_cert);
        free(s->client_key);
        free(s->proxy);
        free(s);
    }
}

static void on_timer_close(uv_handle_t *h)
{
    struct pw_http *http = container_of((uv_timer_t *)(void *)h, struct pw_http, timer);

    while (http->servers) {
        struct srv *s = http->servers;
        http->servers = s->next;
        srv_free(s);
    }
    free(http);
    curl_global_cleanup();
}

void pw_http_free(struct pw_http *http)
{
    if (!http || http->closing) {
        return;
    }
    http->closing = true;
    /* 3.4 step 2: every transfer is removed and called back once with PW_ECANCELED. */
    while (http->active) {
        struct pw_http_req *req = http->active;
        PW_REQUIRE(req->easy != NULL); /* on the active list = handed to curl */
        curl_multi_remove_handle(http->multi, req->easy);
        snprintf(req->errbuf, sizeof(req->errbuf), "canceled at shutdown");
        complete(req, PW_ECANCELED, 0, false, false);
    }
    for (struct srv *s = http->servers; s; s = s->next) {
        while (s->q_head) {
            struct pw_http_req *req = s->q_head;
            s->q_head = req->next;
            req->next = NULL;
            http->stats.queued--;
            snprintf(req->errbuf, sizeof(req->errbuf), "canceled at shutdown");
            complete(req, PW_ECANCELED, 0, false, false);
        }
        s->q_tail = NULL;
    }
    /* Step 3: cleanup closes cached connections and may call on_socket (P8), so the socket
     * contexts and the timer are still alive here. */
    curl_multi_cleanup(http->multi);
    http->multi = NULL;
    /* Contexts curl did not REMOVE (should not happen) are closed so the loop can close. */
    while (http->socks) {
        sock_close(http->socks);
    }
    /* Step 4: the timer's close callback frees the rest once the loop runs (step 5). */
    uv_close((uv_handle_t *)&http->timer, on_timer_close);
}

static int srv_fill(struct srv *s, const struct pw_http_server *in)
{
    char path[4096];
    int err;

    s->name = strdup(in->name);
    s->ca_file = dup_or_null(in->ca_file);
    s->client_cert = dup_or_null(in->client_cert);
    s->proxy = in->proxy && *in->proxy ? strdup(in->proxy) : NULL;
    if (!s->name || (in->ca_file && !s->ca_file) || (in->client_cert && !s->client_cert) ||
        (in->proxy && *in->proxy && !s->proxy)) {
        return PW_ENOMEM;
    }
    err = pw_http_origin(in->origin, s->origin, sizeof(s->origin));
    if (err) {
        pw_log_err(HTTP, "server %s: origin is not an absolute http(s) URL", in->name);
        return PW_EINVAL;
    }
    if (in->ca_file && access(in->ca_file, R_OK) != 0) {
        pw_log_err(HTTP, "server %s: CA file %s is not readable", in->name, in->ca_file);
        return PW_EINVAL;
    }
    if (in->client_cert && access(in->client_cert, R_OK) != 0) {
        pw_log_err(HTTP, "server %s: client certificate %s is not readable", in->name,
                   in->client_cert);
        return PW_EINVAL;
    }
    if (in->client_key) {
        /* The key may be a systemd credential; curl gets the resolved path. */
        err = pw_secret_check(in->client_key);
        if (!err) {
            err = pw_secret_path(in->client_key, path, sizeof(path));
        }
        if (err) {
            return err == PW_ENOMEM ? err : PW_ESECRET;
        }
        s->client_key = strdup(path);
        if (!s->client_key) {
            return PW_ENOMEM;
        }
    }
    s->max_concurrent = in->max_concurrent ? in->max_concurrent : PW_HTTP_PER_HOST;
    s->connect_ms = in->connect_timeout_ms > 0 ? in->connect_timeout_ms : PW_HTTP_CONNECT_MS;
    s->timeout_ms = in->timeout_ms > 0 ? in->timeout_ms : PW_HTTP_TOTAL_MS;
    s->body_max = in->body_max ? in->body_max : PW_HTTP_BODY_MAX;
    return 0;
}

int pw_http_server_add(struct pw_http *http, const struct pw_http_server *in)
{
    struct srv *s;
    int err;

    if (!http || !in || !in->name || !*in->name || !in->origin) {
        return PW_EINVAL;
    }
    if (find_srv(http, in->name)) {
        return PW_EEXIST;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        return PW_ENOMEM;
    }
    err = srv_fill(s, in);
    if (err) {
        srv_free(s);
        return err;
    }
    s->next = http->servers;
    http->servers = s;
    if ((long)s->max_concurrent > http->max_host) {
        http->max_host = (long)s->max_concurrent;
        curl_multi_setopt(http->multi, CURLMOPT_MAX_HOST_CONNECTIONS, http->max_host);
    }
    /* curl's default cache keeps 4 idle connections per transfer still in the multi: when the
     * last transfer of a burst completes that is 4, and the oldest beyond it are closed. With
     * two servers (or a token endpoint beside the EHR) the next poll would reconnect (and
     * redo TLS) every time. Room for every server's full set keeps them all alive between
     * polls; servers that close idle connections themselves are detected by curl on reuse. */
    http->max_conns += (long)s->max_concurrent;
    curl_multi_setopt(http->multi, CURLMOPT_MAXCONNECTS, http->max_conns);
    return 0;
}

bool pw_http_server_has(const struct pw_http *http, const char *name)
{
    return http && name && find_srv(http, name) != NULL;
}

const struct pw_http_stats *pw_http_stats_get(const struct pw_http *http)
{
    return &http->stats;
}

int pw_http_submit_new(struct pw_http *http, struct pw_http_req *req, pw_http_done_fn *done,
                       void *arg)
{
    struct srv *srv;
    int err = 0;

    if (!http || !req || !done) {
        err = PW_EINVAL;
        goto fail;
    }
    if (http->closing) {
        err = PW_ECANCELED;
        goto fail;
    }
    srv = find_srv(http, req->server);
    if (!srv) {
        pw_log_err(HTTP, "request for unknown server %s", req->server);
        err = PW_ENOENT;
        goto fail;
    }
    if (!in_origin(srv, req->url)) {
        pw_log_err(HTTP, "server %s: refusing a URL outside %s", srv->name, srv->origin);
        err = PW_EORIGIN;
        goto fail;
    }
    if (has_dot_segment(req->url)) {
        pw_log_err(HTTP, "server %s: refusing a URL with a '.' or '..' path segment", srv->name);
        err = PW_EINVAL;
        goto fail;
    }
    if (!req_has_header(req, "Accept")) {
        err = pw_http_req_add_header(req, "Accept: application/fhir+json");
    }
    if (!err && !req_has_header(req, "Expect")) {
        err = pw_http_req_add_header(req, "Expect:"); /* no 100-continue round trip */
    }
    if (err) {
        goto fail;
    }
    req->http = http;
    req->srv = srv;
    req->done = done;
    req->arg = arg;
    req->in_max = srv->body_max;
    if (srv->active < srv->max_concurrent && !srv->q_head) {
        err = start(req);
        if (err) {
            goto fail;
        }
        return 0;
    }
    req->next = NULL;
    if (srv->q_tail) {
        srv->q_tail->next = req;
    } else {
        srv->q_head = req;
    }
    srv->q_tail = req;
    http->stats.queued++;
    return 0;
fail:
    pw_http_req_free(req);
    return err;
}

char *pw_http_escape(const char *s)
{
    /* curl ignores the handle argument of curl_easy_escape since 7.82. */
    return curl_easy_escape(NULL, s, 0);
}

void pw_http_escape_free(char *esc)
{
    curl_free(esc);
}
