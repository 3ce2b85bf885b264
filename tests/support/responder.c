/* SPDX-License-Identifier: Apache-2.0 */
/* The scripted loopback responder: libmicrohttpd, one thread per connection, a request log. */
#define _GNU_SOURCE
#include "responder.h"

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <microhttpd.h>

#include "pwtest.h"

#define REQ_BODY_MAX (8u * 1024u * 1024u)
#define HOLD_MAX_MS  60000 /* never_answer gives up after this, so a test cannot hang forever */
#define WAIT_CONC_MS 10000

struct rule {
    struct pwt_rule r; /* strings below are owned copies */
    char *body;
    unsigned used;
};

struct pwt_responder {
    struct MHD_Daemon *mhd;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    char url[64];
    char *cert_pem;
    char *key_pem;
    char *ca_pem;
    bool require_client_cert;
    struct rule *rules;
    size_t nrules;
    struct pwt_request **log;
    size_t nlog;
    size_t caplog;
    unsigned inflight;
    unsigned max_inflight;
    unsigned wait_expired; /* wait_concurrent holds that gave up */
    unsigned barrier_waiting;
    unsigned barrier_gen;
};

/* Per-request state (MHD's con_cls). */
struct conn {
    char *uri; /* as sent, before any decoding */
    char *body;
    size_t len;
    bool too_big;
    bool started;
};

/* Half-body reader for close_mid_body. */
struct partial {
    char *body;
    size_t half;
};

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");

    if (!d) {
        abort();
    }
    return d;
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);

    if (!p) {
        abort();
    }
    return p;
}

static bool path_matches(const char *pat, const char *path)
{
    size_t n;

    if (!pat) {
        return true;
    }
    n = strlen(pat);
    if (n && pat[n - 1] == '*') {
        return strncmp(pat, path, n - 1) == 0;
    }
    return strcmp(pat, path) == 0;
}

struct kv_acc {
    char *buf;
    size_t len;
    struct pwt_request *req;
};

static void acc_append(struct kv_acc *a, const char *s)
{
    size_t n = strlen(s);
    char *nb = realloc(a->buf, a->len + n + 1);

    if (!nb) {
        abort();
    }
    memcpy(nb + a->len, s, n + 1);
    a->buf = nb;
    a->len += n;
}

static enum MHD_Result on_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    struct kv_acc *a = cls;

    (void)kind;
    if (a->len) {
        acc_append(a, "&");
    }
    acc_append(a, key);
    if (value) {
        acc_append(a, "=");
        acc_append(a, value);
    }
    return MHD_YES;
}

static enum MHD_Result on_header_kv(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    struct pwt_request *req = cls;
    size_t n = req->nheaders;

    (void)kind;
    req->hnames = realloc(req->hnames, (n + 1) * sizeof(char *));
    req->hvalues = realloc(req->hvalues, (n + 1) * sizeof(char *));
    if (!req->hnames || !req->hvalues) {
        abort();
    }
    req->hnames[n] = xstrdup(key);
    req->hvalues[n] = xstrdup(value);
    req->nheaders = n + 1;
    return MHD_YES;
}

static bool client_cert_verified(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    unsigned status = 1;
    unsigned n = 0;

    if (!ci || !ci->tls_session) {
        return false;
    }
    gnutls_session_t s = (gnutls_session_t)ci->tls_session;
    if (!gnutls_certificate_get_peers(s, &n) || n == 0) {
        return false;
    }
    return gnutls_certificate_verify_peers2(s, &status) == 0 && status == 0;
}

static struct pwt_request *record(struct pwt_responder *r, struct MHD_Connection *c,
                                  const char *url, const char *method, struct conn *cc)
{
    struct pwt_request *req = xcalloc(1, sizeof(*req));
    struct kv_acc q = {0};

    req->method = xstrdup(method);
    req->path = xstrdup(url);
    req->raw_uri = cc->uri ? cc->uri : xstrdup(url);
    cc->uri = NULL;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, on_query_arg, &q);
    req->query = q.buf ? q.buf : xstrdup("");
    MHD_get_connection_values(c, MHD_HEADER_KIND, on_header_kv, req);
    req->body = cc->body ? cc->body : xstrdup("");
    req->body_len = cc->len;
    cc->body = NULL;
    req->rule = -1;
    req->client_cert_ok = r->cert_pem ? client_cert_verified(c) : false;
    return req;
}

/* Log @p req and pick its rule, under the lock. @return the rule (a copy) or NULL. */
static bool log_and_match(struct pwt_responder *r, struct pwt_request *req, struct pwt_rule *out)
{
    bool found = false;

    pthread_mutex_lock(&r->mu);
    req->concurrent = r->inflight;
    for (size_t i = 0; i < r->nrules; i++) {
        struct rule *ru = &r->rules[i];
        if (ru->r.times && ru->used >= ru->r.times) {
            continue;
        }
        if (ru->r.method && strcmp(ru->r.method, req->method) != 0) {
            continue;
        }
        if (!path_matches(ru->r.path, req->path)) {
            continue;
        }
        if (ru->r.query && !strstr(req->query, ru->r.query)) {
            continue;
        }
        ru->used++;
        req->rule = (int)i;
        *out = ru->r;
        found = true;
        break;
    }
    if (r->nlog == r->caplog) {
        r->caplog = r->caplog ? r->caplog * 2 : 16;
        r->log = realloc(r->log, r->caplog * sizeof(*r->log));
        if (!r->log) {
            abort();
        }
    }
    r->log[r->nlog++] = req;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return found;
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Hold until the responder stops or @p ms pass (never_answer). */
static void hold(struct pwt_responder *r, unsigned ms)
{
    struct timespec ts;

    deadline_in(&ts, ms);
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0) {
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
}

/*
 * A barrier: requests wait here in groups of @p n and are released together. Counting arrivals
 * here, rather than requests "in progress", keeps a response that was sent but whose
 * completion MHD has not reported yet from releasing the next request alone.
 */
static void barrier(struct pwt_responder *r, unsigned n, unsigned ms)
{
    struct timespec ts;

    deadline_in(&ts, ms);
    pthread_mutex_lock(&r->mu);
    unsigned gen = r->barrier_gen;
    if (++r->barrier_waiting >= n) {
        r->barrier_waiting = 0;
        r->barrier_gen++;
        pthread_cond_broadcast(&r->cv);
    }
    while (!r->stopping && r->barrier_gen == gen) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0) {
            r->barrier_waiting--;
            r->wait_expired++;
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
}

static ssize_t on_partial_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct partial *p = cls;

    if (pos >= p->half) {
        return MHD_CONTENT_READER_END_WITH_ERROR; /* MHD closes the connection mid-body */
    }
    size_t n = p->half - (size_t)pos;
    if (n > max) {
        n = max;
    }
    memcpy(buf, p->body + pos, n);
    return (ssize_t)n;
}

static void on_partial_free(void *cls)
{
    struct partial *p = cls;

    free(p->body);
    free(p);
}

static void add_headers(struct MHD_Response *resp, const char *lines, bool has_body)
{
    bool has_ct = false;
    char *copy = xstrdup(lines);
    char *save = NULL;

    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *colon = strchr(l, ':');
        if (!colon) {
            continue;
        }
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ') {
            v++;
        }
        size_t vl = strlen(v);
        if (vl && v[vl - 1] == '\r') {
            v[vl - 1] = '\0';
        }
        if (strcasecmp(l, "Content-Type") == 0) {
            has_ct = true;
        }
        MHD_add_response_header(resp, l, v);
    }
    if (has_body && !has_ct) {
        MHD_add_response_header(resp, "Content-Type", "application/fhir+json");
    }
    free(copy);
}

static enum MHD_Result answer(struct MHD_Connection *c, int status, const char *headers,
                              const char *body, size_t len, bool close_mid)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if (close_mid) {
        struct partial *p = xcalloc(1, sizeof(*p));
        p->body = xcalloc(len + 1, 1);
        memcpy(p->body, body, len);
        p->half = len / 2;
        resp = MHD_create_response_from_callback(len, 4096, on_partial_read, p, on_partial_free);
    } else {
        resp = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    }
    if (!resp) {
        return MHD_NO;
    }
    add_headers(resp, headers ? headers : "", len > 0);
    ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result respond(struct pwt_responder *r, struct MHD_Connection *c,
                               struct pwt_request *req)
{
    struct pwt_rule rule;

    if (r->require_client_cert && !req->client_cert_ok) {
        log_and_match(r, req, &rule);
        return answer(c, 403, NULL, "", 0, false);
    }
    if (!log_and_match(r, req, &rule)) {
        static const char nf[] = "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":"
                                 "\"error\",\"code\":\"not-found\"}]}";
        return answer(c, 404, NULL, nf, sizeof(nf) - 1, false);
    }
    if (rule.never_answer) {
        hold(r, HOLD_MAX_MS);
        return MHD_NO; /* close without a response */
    }
    if (rule.wait_concurrent) {
        barrier(r, rule.wait_concurrent, WAIT_CONC_MS);
    }
    if (rule.delay_ms) {
        struct timespec ts = {rule.delay_ms / 1000, (long)(rule.delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (rule.handler) {
        struct pwt_reply rep = {.status = 200};
        rule.handler(rule.handler_arg, req, &rep);
        enum MHD_Result ret =
            answer(c, rep.status, rep.headers, rep.body ? rep.body : "", rep.body_len, false);
        free(rep.headers);
        free(rep.body);
        return ret;
    }
    return answer(c, rule.status ? rule.status : 200, rule.headers, rule.body ? rule.body : "",
                  rule.body_len, rule.close_mid_body);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct pwt_responder *r = cls;
    struct conn *cc = *con_cls;

    (void)version;
    if (!cc) { /* the URI log callback did not run */
        cc = xcalloc(1, sizeof(*cc));
        *con_cls = cc;
    }
    if (!cc->started) {
        cc->started = true;
        pthread_mutex_lock(&r->mu);
        r->inflight++;
        if (r->inflight > r->max_inflight) {
            r->max_inflight = r->inflight;
        }
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (cc->len + *upload_data_size > REQ_BODY_MAX) {
            cc->too_big = true;
        } else {
            cc->body = realloc(cc->body, cc->len + *upload_data_size + 1);
            if (!cc->body) {
                abort();
            }
            memcpy(cc->body + cc->len, upload_data, *upload_data_size);
            cc->len += *upload_data_size;
            cc->body[cc->len] = '\0';
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (cc->too_big) {
        return answer(c, 413, NULL, "", 0, false);
    }
    return respond(r, c, record(r, c, url, method, cc));
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct pwt_responder *r = cls;
    struct conn *cc = *con_cls;

    (void)c;
    (void)toe;
    if (!cc) {
        return;
    }
    if (cc->started) {
        pthread_mutex_lock(&r->mu);
        r->inflight--;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
    }
    free(cc->uri);
    free(cc->body);
    free(cc);
    *con_cls = NULL;
}

/* MHD_OPTION_URI_LOG_CALLBACK: the raw request URI, before MHD decodes it. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct conn *cc = xcalloc(1, sizeof(*cc));

    (void)cls;
    (void)c;
    cc->uri = xstrdup(uri);
    return cc;
}

static char *read_pem(const char *path)
{
    size_t len;

    return path ? pwt_read_file(path, &len) : NULL;
}

struct pwt_responder *pwt_responder_start(const struct pwt_responder_opts *opts)
{
    struct pwt_responder *r = xcalloc(1, sizeof(*r));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
    const union MHD_DaemonInfo *info;

    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (opts && opts->tls_cert_file) {
        r->cert_pem = read_pem(opts->tls_cert_file);
        r->key_pem = read_pem(opts->tls_key_file);
        r->ca_pem = read_pem(opts->client_ca_file);
        r->require_client_cert = opts->require_client_cert;
        flags |= MHD_USE_TLS;
    }
    if (r->cert_pem && r->ca_pem) {
        r->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_access, r, MHD_OPTION_SOCK_ADDR, &sa,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, r,
                                  MHD_OPTION_URI_LOG_CALLBACK, on_uri, r, MHD_OPTION_HTTPS_MEM_KEY,
                                  r->key_pem, MHD_OPTION_HTTPS_MEM_CERT, r->cert_pem,
                                  MHD_OPTION_HTTPS_MEM_TRUST, r->ca_pem, MHD_OPTION_END);
    } else if (r->cert_pem) {
        r->mhd =
            MHD_start_daemon(flags, 0, NULL, NULL, on_access, r, MHD_OPTION_SOCK_ADDR, &sa,
                             MHD_OPTION_NOTIFY_COMPLETED, on_completed, r,
                             MHD_OPTION_URI_LOG_CALLBACK, on_uri, r, MHD_OPTION_HTTPS_MEM_KEY,
                             r->key_pem, MHD_OPTION_HTTPS_MEM_CERT, r->cert_pem, MHD_OPTION_END);
    } else {
        r->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_access, r, MHD_OPTION_SOCK_ADDR, &sa,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, r,
                                  MHD_OPTION_URI_LOG_CALLBACK, on_uri, r, MHD_OPTION_END);
    }
    if (!r->mhd) {
        fail_msg("responder: MHD_start_daemon failed");
    }
    info = MHD_get_daemon_info(r->mhd, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || !info->port) {
        fail_msg("responder: no bound port");
    }
    snprintf(r->url, sizeof(r->url), "%s://127.0.0.1:%u", r->cert_pem ? "https" : "http",
             (unsigned)info->port);
    return r;
}

static void request_free(struct pwt_request *req)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        free(req->hnames[i]);
        free(req->hvalues[i]);
    }
    free(req->hnames);
    free(req->hvalues);
    free(req->method);
    free(req->path);
    free(req->raw_uri);
    free(req->query);
    free(req->body);
    free(req);
}

void pwt_responder_stop(struct pwt_responder *r)
{
    if (!r) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->stopping = true; /* releases never_answer and wait_concurrent holds */
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    MHD_stop_daemon(r->mhd);
    for (size_t i = 0; i < r->nlog; i++) {
        request_free(r->log[i]);
    }
    for (size_t i = 0; i < r->nrules; i++) {
        struct rule *ru = &r->rules[i];
        free((char *)(uintptr_t)ru->r.method);
        free((char *)(uintptr_t)ru->r.path);
        free((char *)(uintptr_t)ru->r.query);
        free((char *)(uintptr_t)ru->r.headers);
        free(ru->body);
    }
    free(r->rules);
    free(r->log);
    free(r->cert_pem);
    free(r->key_pem);
    free(r->ca_pem);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void pwt_responder_clear_rules(struct pwt_responder *r)
{
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nrules; i++) {
        /* Rules are only disabled: a handler thread may still hold a copy of one. */
        r->rules[i].r.times = 1;
        r->rules[i].used = 1;
    }
    pthread_mutex_unlock(&r->mu);
}

const char *pwt_responder_url(const struct pwt_responder *r)
{
    return r->url;
}

static char *dup_opt(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void pwt_responder_add(struct pwt_responder *r, const struct pwt_rule *rule)
{
    struct rule ru = {.r = *rule};
    size_t blen = rule->body ? (rule->body_len ? rule->body_len : strlen(rule->body)) : 0;

    ru.r.method = dup_opt(rule->method);
    ru.r.path = dup_opt(rule->path);
    ru.r.query = dup_opt(rule->query);
    ru.r.headers = dup_opt(rule->headers);
    ru.body = xcalloc(blen + 1, 1);
    if (blen) {
        memcpy(ru.body, rule->body, blen);
    }
    ru.r.body = ru.body;
    ru.r.body_len = blen;
    pthread_mutex_lock(&r->mu);
    r->rules = realloc(r->rules, (r->nrules + 1) * sizeof(*r->rules));
    if (!r->rules) {
        abort();
    }
    r->rules[r->nrules++] = ru;
    pthread_mutex_unlock(&r->mu);
}

size_t pwt_responder_count(struct pwt_responder *r)
{
    size_t n;

    pthread_mutex_lock(&r->mu);
    n = r->nlog;
    pthread_mutex_unlock(&r->mu);
    return n;
}

bool pwt_responder_wait_count(struct pwt_responder *r, size_t n, unsigned ms)
{
    struct timespec ts;
    bool ok;

    deadline_in(&ts, ms);
    pthread_mutex_lock(&r->mu);
    while (r->nlog < n) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0) {
            break;
        }
    }
    ok = r->nlog >= n;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

size_t pwt_responder_count_path(struct pwt_responder *r, const char *path)
{
    size_t n = 0;

    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nlog; i++) {
        n += strcmp(r->log[i]->path, path) == 0;
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

const struct pwt_request *pwt_responder_request(struct pwt_responder *r, size_t i)
{
    const struct pwt_request *req = NULL;

    pthread_mutex_lock(&r->mu);
    if (i < r->nlog) {
        req = r->log[i];
    }
    pthread_mutex_unlock(&r->mu);
    if (!req) {
        fail_msg("responder: no request #%zu", i);
    }
    return req;
}

unsigned pwt_responder_max_concurrent(struct pwt_responder *r)
{
    unsigned n;

    pthread_mutex_lock(&r->mu);
    n = r->max_inflight;
    pthread_mutex_unlock(&r->mu);
    return n;
}

unsigned pwt_responder_wait_expired(struct pwt_responder *r)
{
    unsigned n;

    pthread_mutex_lock(&r->mu);
    n = r->wait_expired;
    pthread_mutex_unlock(&r->mu);
    return n;
}

const char *pwt_request_header(const struct pwt_request *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->hnames[i], name) == 0) {
            return req->hvalues[i];
        }
    }
    return NULL;
}
