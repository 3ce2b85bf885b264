/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sync driver: per-server cycles on libuv timers (poll interval with jitter, full-jitter
 * backoff, Retry-After), cohort refresh, the streams of a cycle, and the consumer contract
 * (sync.h). Each server's source adapter (source.h) runs its streams: the driver starts the
 * runs, carries their requests (http.h only) and pages, and counts how they end.
 *
 * A cycle of one server: refresh the cohort -> rebuild the streams if the members changed ->
 * run the streams, `parallel` at a time -> schedule the next cycle. A server-level failure
 * (transport, timeout, 5xx, 429, auth) aborts the rest of that server's cycle; a stream-level
 * one (bad JSON, bad Bundle, off-origin link, 4xx) only fails that stream.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <uv.h>

#include "painwatch/array.h"
#include "painwatch/auth.h"
#include "painwatch/capability.h"
#include "painwatch/check.h"
#include "painwatch/cohort.h"
#include "painwatch/conf.h"
#include "painwatch/err.h"
#include "painwatch/http.h"
#include "painwatch/jarena.h"
#include "painwatch/log.h"
#include "painwatch/metrics.h"
#include "painwatch/notify.h"
#include "painwatch/sink.h"
#include "painwatch/source.h"
#include "painwatch/sync.h"

struct server;

struct stream {
    struct pw_sync_source src;
    size_t type;
    char *patient; /* owned, NULL in server-wide mode */
    char key[PW_SYNC_KEY_MAX];
};

/* One run of one stream: the driver's side (source.h); the adapter keeps its own state. */
struct pw_source_run {
    struct server *srv;
    const struct stream *stream;
    const struct pw_source_ops *ops;
    void *state;           /* the adapter's */
    bool stored;           /* the stream had a stored cursor: a run of it completed before (N1) */
    bool page_pending;     /* waiting for the consumer's done */
    pw_http_done_fn *done; /* the adapter's request in flight */
    void *done_arg;
};

struct server {
    struct pw_sync *sync;
    struct pw_sync_conf conf; /* name and base point at the copies below */
    char *name;
    char *base;
    struct pw_source *source; /* runs the streams (source.h) */
    struct pw_cohort *cohort;
    struct pw_auth *auth; /* borrowed, NULL = none */
    uv_timer_t timer;
    struct stream *streams;
    size_t nstreams;
    uint64_t streams_gen; /* cohort generation the streams were built from */
    bool streams_built;
    bool in_cycle;
    bool once; /* this cycle belongs to pw_sync_run_once() */
    bool pumping;
    bool abort_cycle;
    size_t next_stream;
    unsigned running;
    unsigned failed;
    int cycle_err;
    long cycle_status;
    uint64_t cycle_retry_after_ms;
    struct pw_sync_health health;
    unsigned page_failed; /* runs of this cycle ended by a page they could not use */
    int page_err;         /* the first such run's error */
    /* a reload's source, scheduling and cohort (pw_sync_replace_server), applied between
     * cycles (next_source set: the three are pending) */
    struct pw_source *next_source;
    struct pw_sync_conf next_conf;
    char *next_base;
    struct pw_cohort *next_cohort;
};

struct pw_sync {
    uv_loop_t *loop;
    struct pw_http *http;
    struct pw_sync_consumer consumer;
    struct server **servers;
    size_t nservers;
    size_t servers_cap;
    bool started;
    bool stopping;
    bool freeing;
    unsigned inflight; /* requests, pending pages, auth refreshes, cohort refreshes */
    unsigned closing;  /* timers whose close callback has not run */
    unsigned depth;    /* callbacks on the stack: the engine is freed only at depth 0 */
    int64_t (*now_ms)(void);
    size_t page_budget;      /* one page's parse, bytes (PW_PAGE_PARSE_BUDGET) */
    size_t page_entries_max; /* one page's entries (PW_PAGE_ENTRIES_MAX) */
    /* pw_sync_run_once() */
    pw_sync_cycle_fn *once_done;
    void *once_arg;
    size_t once_pending;
    unsigned once_failed;
    int once_err;
    /* pw_sync_check_servers() */
    pw_sync_cycle_fn *check_done;
    void *check_arg;
    size_t check_pending;
    unsigned check_failed;
    int check_err;
};

static void pump(struct server *srv);
static void cycle_end(struct server *srv);

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Release the engine once nothing can call back into it any more. A consumer may call done()
 * from inside on_page() and free the engine from inside a cycle callback, so the release waits
 * until the outermost callback unwinds (enter/leave count the nesting). */
static void maybe_free(struct pw_sync *sync)
{
    if (!sync->freeing || sync->inflight || sync->closing || sync->depth) {
        return;
    }
    for (size_t i = 0; i < sync->nservers; i++) {
        struct server *srv = sync->servers[i];
        for (size_t j = 0; j < srv->nstreams; j++) {
            free(srv->streams[j].patient);
        }
        free(srv->streams);
        pw_cohort_free(srv->cohort);
        pw_source_free(srv->source);
        pw_source_free(srv->next_source);
        pw_cohort_free(srv->next_cohort);
        free(srv->next_base);
        free(srv->name);
        free(srv->base);
        free(srv);
    }
    free(sync->servers);
    free(sync);
}

static void enter(struct pw_sync *sync)
{
    sync->depth++;
}

static void leave(struct pw_sync *sync)
{
    sync->depth--;
    maybe_free(sync);
}

/*
 * Streams.
 */

static int streams_build(struct server *srv)
{
    struct pw_cohort *c = srv->cohort;
    const struct pw_source *source = srv->source;
    size_t per = c->server_wide ? 1 : c->nmembers;
    size_t ntypes = 0;
    while (source->ops->stream_type(source->ctx, ntypes)) {
        ntypes++;
    }
    size_t n = per * ntypes;
    struct stream *s = calloc(n ? n : 1, sizeof(*s)); /* never NULL on success */

    if (!s) {
        return PW_ENOMEM;
    }
    for (size_t p = 0; p < per; p++) {
        for (size_t t = 0; t < ntypes; t++) {
            struct stream *st = &s[p * ntypes + t];
            const char *type = source->ops->stream_type(source->ctx, t);
            st->type = t;
            if (c->server_wide) {
                snprintf(st->key, sizeof(st->key), "%s/%s/-", srv->conf.name, type);
            } else {
                st->patient = strdup(c->members[p]);
                if (!st->patient) {
                    goto fail;
                }
                snprintf(st->key, sizeof(st->key), "%s/%s/Patient/%s", srv->conf.name, type,
                         c->members[p]);
            }
            st->src = (struct pw_sync_source){
                .server = srv->conf.name, .type = type, .patient = st->patient, .key = st->key};
        }
    }
    for (size_t j = 0; j < srv->nstreams; j++) {
        free(srv->streams[j].patient);
    }
    free(srv->streams);
    srv->streams = s;
    srv->nstreams = n;
    srv->streams_gen = c->generation;
    srv->streams_built = true;
    return 0;
fail:
    for (size_t j = 0; j < n; j++) {
        free(s[j].patient);
    }
    free(s);
    return PW_ENOMEM;
}

/*
 * Runs. The source adapter runs a stream (source.h); the driver carries its requests and pages,
 * and counts how it ended.
 */

/* Which errors mean "the server is in trouble" (abort the cycle, back off). */
static bool server_level(const struct pw_source_run_result *res)
{
    int err = res->err;
    if (err == PW_ETIMEDOUT || err == PW_EAGAIN || err == PW_EAUTH || err == PW_ECANCELED) {
        return true;
    }
    return err == PW_EHTTP && (res->transport || res->status >= 500);
}

static void run_free(struct pw_source_run *run)
{
    if (run->state) {
        run->ops->run_cleanup(run->state);
    }
    free(run);
}

void pw_source_run_end(struct pw_source_run *run, const struct pw_source_run_result *res)
{
    struct server *srv = run->srv;
    const struct pw_sync_source *src = &run->stream->src;
    int err = res->err;

    if (err) {
        srv->health.stream_failures++;
        srv->health.last_error = err;
        srv->health.last_status = res->status;
        srv->failed++;
        if (err != PW_ECANCELED) {
            char st[32];
            snprintf(st, sizeof(st), res->status > 0 ? "HTTP %ld" : "no HTTP response",
                     res->status);
            pw_log_warn(SYNC, "%s: run failed after %u page(s): %s (%s)", src->key, res->pages,
                        pw_strerror(err), st);
        }
        if (res->page_failed) {
            /* Not the server's transport: its content. Counted, and it makes the cycle a failed
             * one for readiness (never silently stuck), without the transport backoff. */
            srv->page_failed++;
            srv->health.page_failures++;
            srv->page_err = srv->page_err ? srv->page_err : err;
            pw_metric_inc(PW_M_SYNC_PAGE_FAILURES, srv->name, NULL);
        }
        if (server_level(res) && !srv->cycle_err) {
            srv->cycle_err = err;
            srv->cycle_status = res->status;
            srv->abort_cycle = true;
        }
        if (res->retry_after_ms > srv->cycle_retry_after_ms) {
            srv->cycle_retry_after_ms = res->retry_after_ms;
        }
    }
    if (!err && srv->sync->consumer.on_type_access && !srv->sync->freeing) {
        srv->sync->consumer.on_type_access(srv->sync->consumer.arg, src, 0);
    }
    /* Bug N1: a stream that never completed a run and fails now has not been read at all: its
     * absence is no evidence (a 401/403 was reported as such by pw_source_run_refused()). */
    if (err && err != PW_ECANCELED && !run->stored && res->status != 401 && res->status != 403 &&
        srv->sync->consumer.on_type_access && !srv->sync->freeing) {
        srv->sync->consumer.on_type_access(srv->sync->consumer.arg, src, PW_SYNC_TYPE_UNREAD);
    }
    srv->running--;
    run_free(run);
    pump(srv);
}

static void run_on_page_done(void *arg, int err)
{
    struct pw_source_run *run = arg;
    struct pw_sync *sync = run->srv->sync;

    if (PW_CHECK(run->page_pending)) {
        return; /* a second done() for the same page: ignored */
    }
    enter(sync);
    run->page_pending = false;
    sync->inflight--;
    run->ops->run_page_done(run->state, err);
    leave(sync);
}

void pw_source_run_deliver(struct pw_source_run *run, json_t *resources, const char *cursor)
{
    struct server *srv = run->srv;
    struct pw_sync *sync = srv->sync;

    run->page_pending = true;
    sync->inflight++;
    srv->health.pages++;
    srv->health.resources += json_array_size(resources);
    sync->consumer.on_page(sync->consumer.arg, &run->stream->src, resources, cursor,
                           run_on_page_done, run);
}

static void run_on_response(void *arg, int err, const struct pw_http_resp *resp)
{
    struct pw_source_run *run = arg;
    struct pw_sync *sync = run->srv->sync;

    enter(sync);
    /* Journal fields for what this response leads to (issue 19); both strings outlive the run. */
    pw_log_context(run->srv->name, NULL, run->stream->src.type);
    sync->inflight--;
    /* After pw_sync_free() the consumer may be gone: nothing more is delivered. A mere stop
     * lets the page in hand be committed (its done ends the run). */
    if (sync->freeing) {
        err = PW_ECANCELED;
    }
    run->done(run->done_arg, err, resp);
    pw_log_context(NULL, NULL, NULL);
    leave(sync);
}

int pw_source_run_get(struct pw_source_run *run, const char *url,
                      void (*done)(void *arg, int err, const struct pw_http_resp *resp), void *arg)
{
    struct server *srv = run->srv;
    struct pw_http_req *req = NULL;

    int err = pw_http_req_new(&req, srv->name, "GET", url);
    if (err) {
        return err;
    }
    srv->health.requests++;
    run->done = done;
    run->done_arg = arg;
    err = srv->auth ? pw_auth_submit_new(srv->auth, req, run_on_response, run)
                    : pw_http_submit_new(srv->sync->http, req, run_on_response, run);
    if (err) {
        return err;
    }
    srv->sync->inflight++;
    return 0;
}

const struct pw_sync_source *pw_source_run_src(const struct pw_source_run *run)
{
    return &run->stream->src;
}

int64_t pw_source_run_now(const struct pw_source_run *run)
{
    return run->srv->sync->now_ms();
}

void pw_source_run_page_limits(const struct pw_source_run *run, size_t *budget, size_t *entries_max)
{
    *budget = run->srv->sync->page_budget;
    *entries_max = run->srv->sync->page_entries_max;
}

struct pw_sync_health *pw_source_run_health(struct pw_source_run *run)
{
    return &run->srv->health;
}

bool pw_source_run_stopping(const struct pw_source_run *run)
{
    return run->srv->sync->stopping;
}

void pw_source_run_unreadable(struct pw_source_run *run, const struct pw_sync_unreadable *u)
{
    struct pw_sync *sync = run->srv->sync;
    if (sync->consumer.on_unreadable) {
        sync->consumer.on_unreadable(sync->consumer.arg, &run->stream->src, u);
    }
}

void pw_source_run_refused(struct pw_source_run *run, long status)
{
    struct pw_sync *sync = run->srv->sync;
    if (sync->consumer.on_type_access) {
        sync->consumer.on_type_access(sync->consumer.arg, &run->stream->src, status);
    }
}

/* Start one stream from its stored cursor; failures before the first request are reported as a
 * stream failure. */
static void run_start(struct server *srv, const struct stream *stream)
{
    struct pw_sync *sync = srv->sync;
    struct pw_source_run *run = calloc(1, sizeof(*run));
    char *text = NULL;

    srv->running++;
    if (!run) {
        srv->running--;
        srv->failed++;
        return;
    }
    run->srv = srv;
    run->stream = stream;
    run->ops = srv->source->ops;
    int err = sync->consumer.cursor_load(sync->consumer.arg, &stream->src, &text);
    run->stored = text != NULL;
    if (!err) {
        err = run->ops->run_start(srv->source->ctx, run, stream->type, text, &run->state);
    }
    free(text);
    if (err) {
        struct pw_source_run_result res = {.err = err};
        pw_source_run_end(run, &res);
    }
}

/*
 * Cycles.
 */

static void pump(struct server *srv)
{
    struct pw_sync *sync = srv->sync;

    /* run_start() may end a run synchronously, which calls pump() again: the flag keeps one
     * loop in charge instead of recursing once per stream. */
    if (srv->pumping) {
        return;
    }
    srv->pumping = true;
    while (!srv->abort_cycle && !sync->stopping && srv->running < srv->conf.parallel &&
           srv->next_stream < srv->nstreams) {
        run_start(srv, &srv->streams[srv->next_stream++]);
    }
    srv->pumping = false;
    if (sync->stopping && srv->next_stream < srv->nstreams && !srv->cycle_err) {
        srv->cycle_err = PW_ECANCELED; /* a cycle cut short by stop is not a finished cycle */
    }
    if (srv->in_cycle && srv->running == 0 &&
        (srv->abort_cycle || sync->stopping || srv->next_stream >= srv->nstreams)) {
        cycle_end(srv);
    }
}

static void cycle_streams(struct server *srv, int err)
{
    if (!err && (!srv->streams_built || srv->streams_gen != srv->cohort->generation)) {
        err = streams_build(srv);
    }
    if (err) {
        srv->cycle_err = err;
        srv->abort_cycle = true;
    }
    srv->next_stream = 0;
    pump(srv);
}

static void on_cohort_refreshed(void *arg, int err)
{
    struct server *srv = arg;
    struct pw_sync *sync = srv->sync;

    enter(sync);
    sync->inflight--;
    if (err) {
        pw_log_err(SYNC, "%s: cohort refresh failed: %s", srv->conf.name, pw_strerror(err));
    }
    cycle_streams(srv, err ? err : sync->freeing ? PW_ECANCELED : 0);
    leave(sync);
}

static void cycle_start(struct server *srv)
{
    struct pw_sync *sync = srv->sync;
    struct pw_cohort_env env = {
        .http = sync->http,
        .server = srv->name,
        .base = srv->base,
        .auth = srv->auth,
        .refresh_ms = srv->conf.group_refresh_ms,
    };

    srv->in_cycle = true;
    srv->abort_cycle = false;
    srv->failed = 0;
    srv->cycle_err = 0;
    srv->cycle_status = 0;
    srv->cycle_retry_after_ms = 0;
    srv->page_failed = 0;
    srv->page_err = 0;
    int rc = srv->cohort->ops->refresh(srv->cohort, &env, sync->now_ms(), on_cohort_refreshed, srv);
    if (rc == 0) {
        sync->inflight++;
        return;
    }
    cycle_streams(srv, rc < 0 ? rc : 0);
}

static uint64_t next_delay(struct server *srv, bool failed)
{
    const struct pw_sync_conf *c = &srv->conf;

    if (!failed) {
        return pw_poll_jitter(c->poll_ms, c->jitter, pw_rand32());
    }
    if (srv->cycle_retry_after_ms) {
        /* The server said when: honour it exactly, no sooner and no jitter on top. */
        return srv->cycle_retry_after_ms;
    }
    return pw_backoff_full_jitter(c->backoff_base_ms, c->backoff_cap_ms,
                                  srv->health.consecutive_failures - 1, pw_rand32());
}

static void cycle_health(struct server *srv, bool failed)
{
    struct pw_sync_health *h = &srv->health;

    h->cycles++;
    if (!failed) {
        if (h->unhealthy) {
            pw_log_notice(SYNC, "%s: healthy again", srv->conf.name);
            pw_notify_status("ready: server %s healthy again", srv->conf.name);
        }
        h->consecutive_failures = 0;
        h->unhealthy = false;
        return;
    }
    h->consecutive_failures++;
    if (!h->unhealthy && h->consecutive_failures >= srv->conf.unhealthy_after) {
        int err = srv->cycle_err ? srv->cycle_err : srv->page_err;
        h->unhealthy = true;
        char st[32];
        snprintf(st, sizeof(st), srv->cycle_status > 0 ? "HTTP %ld" : "no HTTP response",
                 srv->cycle_status);
        pw_log_err(SYNC, "%s: unhealthy after %u failed cycles (%s, %s)", srv->conf.name,
                   h->consecutive_failures, pw_strerror(err), st);
        pw_notify_status("degraded: server %s failing (%s)", srv->conf.name, pw_strerror(err));
    }
}

static void on_timer(uv_timer_t *t);

/* A reload's source, scheduling and cohort, once no cycle runs: the streams are rebuilt at the
 * next. */
static void apply_pending(struct server *srv)
{
    uint64_t poll_ms = srv->conf.poll_ms;

    if (!srv->next_source || srv->in_cycle) {
        return;
    }
    if (srv->next_source->ops == srv->source->ops && srv->source->ops->adopt) {
        srv->source->ops->adopt(srv->next_source->ctx, srv->source->ctx);
    }
    pw_source_free(srv->source);
    srv->source = srv->next_source;
    srv->next_source = NULL;
    free(srv->base);
    srv->base = srv->next_base;
    srv->next_base = NULL;
    srv->conf = srv->next_conf;
    srv->conf.name = srv->name;
    srv->conf.base = srv->base;
    srv->conf.poll_ms = poll_ms; /* pw_sync_set_poll()'s, applied at once */
    pw_cohort_free(srv->cohort);
    srv->cohort = srv->next_cohort;
    srv->next_cohort = NULL;
    /* The streams borrow the old source's strings: gone with it, rebuilt when the next cycle
     * starts (their cursors are in the store, by key). */
    for (size_t j = 0; j < srv->nstreams; j++) {
        free(srv->streams[j].patient);
    }
    free(srv->streams);
    srv->streams = NULL;
    srv->nstreams = 0;
    srv->next_stream = 0;
    srv->streams_built = false;
    pw_log_info(SYNC, "%s: reload: searches and cohort applied", srv->conf.name);
}

/* Bug N1: the streams an aborted cycle never started that were never read (no stored cursor). */
static void cycle_unstarted(struct server *srv)
{
    struct pw_sync *sync = srv->sync;

    if (!sync->consumer.on_type_access || sync->freeing) {
        return;
    }
    for (size_t i = srv->next_stream; i < srv->nstreams; i++) {
        const struct stream *stream = &srv->streams[i];
        char *text = NULL;
        int err = sync->consumer.cursor_load(sync->consumer.arg, &stream->src, &text);
        if (!err && !text) {
            sync->consumer.on_type_access(sync->consumer.arg, &stream->src, PW_SYNC_TYPE_UNREAD);
        }
        free(text);
    }
}

static void cycle_end(struct server *srv)
{
    struct pw_sync *sync = srv->sync;
    bool canceled = srv->cycle_err == PW_ECANCELED;
    bool failed = srv->cycle_err != 0 && !canceled;
    /* A stream stuck on a page it cannot use fails the cycle for readiness too (issue 18). */
    bool degraded = failed || (!canceled && srv->page_failed > 0);

    srv->in_cycle = false;
    if (!canceled && srv->abort_cycle && srv->streams_built) {
        cycle_unstarted(srv);
    }
    apply_pending(srv);
    if (!canceled && sync->consumer.on_cycle_end && !sync->freeing) {
        sync->consumer.on_cycle_end(sync->consumer.arg, srv->conf.name,
                                    srv->cycle_err ? srv->cycle_err : srv->page_err);
    }
    /* The server goes idle: the page arena's memory beyond its small resident prefix goes back
     * to the kernel (idle RSS). */
    pw_jarena_trim();
    if (!canceled) {
        cycle_health(srv, degraded);
        srv->health.next_delay_ms = next_delay(srv, failed);
        srv->health.retry_after_ms = failed ? srv->cycle_retry_after_ms : 0;
    }
    if (srv->once) {
        srv->once = false;
        sync->once_failed += srv->failed;
        if (srv->cycle_err && !sync->once_err) {
            sync->once_err = srv->cycle_err;
        }
        if (--sync->once_pending == 0) {
            pw_sync_cycle_fn *done = sync->once_done;
            sync->once_done = NULL;
            /* After pw_sync_free() the caller hears nothing more. */
            if (!sync->freeing) {
                done(sync->once_arg, sync->once_err, sync->once_failed);
            }
        }
    } else if (sync->started && !sync->stopping && !sync->freeing) {
        uv_timer_start(&srv->timer, on_timer, srv->health.next_delay_ms, 0);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct server *srv = container_of(t, struct server, timer);
    enter(srv->sync);
    if (!srv->in_cycle && !srv->sync->stopping) {
        cycle_start(srv);
    }
    leave(srv->sync);
}

/*
 * Public API.
 */

int pw_sync_new(struct pw_sync **out, struct uv_loop_s *loop, struct pw_http *http,
                const struct pw_sync_consumer *consumer)
{
    if (!loop || !http || !consumer || !consumer->cursor_load || !consumer->on_page) {
        return PW_EINVAL;
    }
    struct pw_sync *sync = calloc(1, sizeof(*sync));
    if (!sync) {
        return PW_ENOMEM;
    }
    sync->loop = loop;
    sync->http = http;
    sync->consumer = *consumer;
    sync->now_ms = wall_ms;
    sync->page_budget = PW_PAGE_PARSE_BUDGET;
    sync->page_entries_max = PW_PAGE_ENTRIES_MAX;
    *out = sync;
    return 0;
}

void pw_sync_set_page_limits(struct pw_sync *sync, size_t budget, size_t entries_max)
{
    sync->page_budget = budget ? budget : PW_PAGE_PARSE_BUDGET;
    sync->page_entries_max = entries_max ? entries_max : PW_PAGE_ENTRIES_MAX;
}

void pw_sync_set_clock(struct pw_sync *sync, int64_t (*now_ms)(void))
{
    sync->now_ms = now_ms ? now_ms : wall_ms;
}

static struct server *server_find(const struct pw_sync *sync, const char *name)
{
    for (size_t i = 0; i < sync->nservers; i++) {
        if (strcmp(sync->servers[i]->name, name) == 0) {
            return sync->servers[i];
        }
    }
    return NULL;
}

void pw_sync_conf_init(struct pw_sync_conf *conf, const char *name, const char *base)
{
    *conf = (struct pw_sync_conf){
        .name = name,
        .base = base,
        .poll_ms = 5u * 60u * 1000u,
        .jitter = 0.1,
        .backoff_base_ms = 5000,
        .backoff_cap_ms = 15u * 60u * 1000u,
        .unhealthy_after = 3,
        .parallel = 2,
        .group_refresh_ms = 3600u * 1000u,
    };
}

void pw_sync_conf_from_daemon(struct pw_sync_conf *conf, const struct pw_conf_server *cs)
{
    pw_sync_conf_init(conf, cs->name, cs->base_url);
    if (cs->poll_interval_ms > 0) {
        conf->poll_ms = (uint64_t)cs->poll_interval_ms;
    }
    if (cs->max_concurrent > 0) {
        conf->parallel = (unsigned)cs->max_concurrent;
    }
}

/* A copy of base URL @p base without its trailing slashes, or NULL. */
static char *base_copy(const char *base)
{
    char *b = strdup(base);
    size_t n = b ? strlen(b) : 0;
    while (n > 0 && b[n - 1] == '/') {
        b[--n] = '\0';
    }
    return b;
}

static bool conf_usable(const struct pw_sync_conf *conf, const struct pw_source *source)
{
    return conf && conf->name && conf->base && conf->parallel > 0 && source &&
           source->ops->stream_type(source->ctx, 0) != NULL;
}

int pw_sync_add_server(struct pw_sync *sync, const struct pw_sync_conf *conf,
                       struct pw_source *source, struct pw_cohort *cohort, struct pw_auth *auth)
{
    int err = PW_EINVAL;
    struct server *srv = NULL;

    if (!conf_usable(conf, source) || !cohort || sync->started || sync->freeing) {
        goto fail;
    }
    err = PW_EEXIST;
    if (server_find(sync, conf->name)) {
        goto fail;
    }
    err = PW_ENOMEM;
    if (pw_array_reserve(&sync->servers, &sync->servers_cap, sync->nservers + 1,
                         sizeof(*sync->servers)) != 0) {
        goto fail;
    }
    srv = calloc(1, sizeof(*srv));
    if (!srv || !(srv->name = strdup(conf->name)) || !(srv->base = base_copy(conf->base))) {
        if (srv) {
            free(srv->name);
        }
        free(srv);
        goto fail;
    }
    srv->conf = *conf;
    srv->conf.name = srv->name;
    srv->conf.base = srv->base;
    srv->sync = sync;
    srv->source = source;
    srv->cohort = cohort;
    srv->auth = auth;
    uv_timer_init(sync->loop, &srv->timer);
    sync->servers[sync->nservers++] = srv;
    return 0;
fail:
    pw_source_free(source);
    pw_cohort_free(cohort);
    return err;
}

int pw_sync_start(struct pw_sync *sync)
{
    if (sync->nservers == 0 || sync->started || sync->once_done || sync->freeing) {
        return PW_EINVAL;
    }
    sync->started = true;
    sync->stopping = false;
    for (size_t i = 0; i < sync->nservers; i++) {
        /* A small spread at start keeps servers from being hit in lock-step forever. */
        uv_timer_start(&sync->servers[i]->timer, on_timer, pw_rand32() % 1000u, 0);
    }
    return 0;
}

static void on_once_timer(uv_timer_t *t)
{
    struct server *srv = container_of(t, struct server, timer);
    enter(srv->sync);
    cycle_start(srv);
    leave(srv->sync);
}

int pw_sync_run_once(struct pw_sync *sync, pw_sync_cycle_fn *done, void *arg)
{
    if (sync->nservers == 0 || sync->started || sync->once_done || sync->freeing || !done) {
        return PW_EINVAL;
    }
    sync->stopping = false;
    sync->once_done = done;
    sync->once_arg = arg;
    sync->once_pending = sync->nservers;
    sync->once_failed = 0;
    sync->once_err = 0;
    for (size_t i = 0; i < sync->nservers; i++) {
        /* Through a 0 ms timer so done never runs before this call returns. */
        sync->servers[i]->once = true;
        uv_timer_start(&sync->servers[i]->timer, on_once_timer, 0, 0);
    }
    return 0;
}

/* Issue 17: a type the source will not sync (not advertised): the consumer is told (-1), so the
 * rules resting on its absence are off. */
static void capability_unsynced(void *arg, const char *type)
{
    struct server *srv = arg;
    struct pw_sync *sync = srv->sync;

    if (sync->consumer.on_type_access) {
        char key[PW_SYNC_KEY_MAX];
        snprintf(key, sizeof(key), "%s/%s/-", srv->name, type);
        struct pw_sync_source src = {.server = srv->name, .type = type, .key = key};
        sync->consumer.on_type_access(sync->consumer.arg, &src, -1);
    }
}

static void on_capability(void *arg, int err, const struct pw_capability *cap)
{
    struct server *srv = arg;
    struct pw_sync *sync = srv->sync;
    unsigned errors = 0;
    unsigned warnings = 0;

    enter(sync);
    sync->inflight--;
    if (!err) {
        srv->health.capability_known = true;
        srv->health.conditional_create = cap->flag_conditional_create;
        srv->health.flag_writable = pw_capability_writable(cap, "Flag", NULL);
        srv->health.detected_issue_writable = pw_capability_writable(
            cap, "DetectedIssue", &srv->health.detected_issue_conditional_create);
        const struct pw_source *source = srv->source;
        if (source->ops->capability) {
            err = source->ops->capability(source->ctx, cap, capability_unsynced, srv, &errors,
                                          &warnings);
        }
        if (err) {
            sync->check_failed++;
        }
    }
    if (err && (!sync->check_err || sync->check_err == PW_ECONFIG)) {
        sync->check_err = err;
    }
    if (--sync->check_pending == 0) {
        pw_sync_cycle_fn *done = sync->check_done;
        sync->check_done = NULL;
        if (!sync->freeing) {
            done(sync->check_arg, sync->check_err, sync->check_failed);
        }
    }
    leave(sync);
}

int pw_sync_check_servers(struct pw_sync *sync, pw_sync_cycle_fn *done, void *arg)
{
    if (sync->nservers == 0 || sync->check_done || sync->freeing || !done) {
        return PW_EINVAL;
    }
    sync->check_done = done;
    sync->check_arg = arg;
    sync->check_pending = sync->nservers;
    sync->check_failed = 0;
    sync->check_err = 0;
    for (size_t i = 0; i < sync->nservers; i++) {
        struct server *srv = sync->servers[i];
        int err =
            pw_capability_fetch(sync->http, srv->name, srv->base, srv->auth, on_capability, srv);
        if (err) {
            /* Already-submitted fetches still call back: account for this one as done. */
            sync->check_err = sync->check_err ? sync->check_err : err;
            if (--sync->check_pending == 0) {
                /* Every fetch failed synchronously: nothing will call back. */
                sync->check_done = NULL;
                return sync->check_err;
            }
            continue;
        }
        sync->inflight++;
    }
    return 0;
}

/* One server's /metadata read again for a reload's sink (pw_sync_check_writes). */
struct write_check {
    struct server *srv;
    struct pw_sink_writes writes;
};

static void on_write_capability(void *arg, int err, const struct pw_capability *cap)
{
    struct write_check *wc = arg;
    struct pw_sync *sync = wc->srv->sync;

    enter(sync);
    sync->inflight--;
    if (err) {
        pw_log_warn(SYNC, "%s: /metadata not read again: the new sink's writes are not checked",
                    wc->srv->name);
    } else if (pw_capability_check_writes(cap, wc->srv->name, &wc->writes) == 0) {
        pw_log_info(SYNC, "%s: /metadata advertises what the new sink writes", wc->srv->name);
    }
    free(wc);
    leave(sync);
}

int pw_sync_check_writes(struct pw_sync *sync, const struct pw_sink_writes *writes)
{
    int first = 0;

    if (sync->freeing || !writes) {
        return PW_EINVAL;
    }
    for (size_t i = 0; i < sync->nservers; i++) {
        struct server *srv = sync->servers[i];
        struct write_check *wc = malloc(sizeof(*wc));
        int err = wc ? 0 : PW_ENOMEM;

        if (wc) {
            wc->srv = srv;
            wc->writes = *writes;
            err = pw_capability_fetch(sync->http, srv->name, srv->base, srv->auth,
                                      on_write_capability, wc);
        }
        if (err) {
            free(wc);
            first = first ? first : err;
            continue;
        }
        sync->inflight++;
    }
    return first;
}

void pw_sync_stop(struct pw_sync *sync)
{
    if (!sync) {
        return;
    }
    sync->stopping = true;
    sync->started = false;
    for (size_t i = 0; i < sync->nservers; i++) {
        uv_timer_stop(&sync->servers[i]->timer);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    struct server *srv = container_of((uv_timer_t *)(void *)h, struct server, timer);
    struct pw_sync *sync = srv->sync;
    sync->closing--;
    maybe_free(sync);
}

void pw_sync_free(struct pw_sync *sync)
{
    if (!sync || sync->freeing) {
        return;
    }
    pw_sync_stop(sync);
    sync->freeing = true;
    for (size_t i = 0; i < sync->nservers; i++) {
        sync->closing++;
        uv_close((uv_handle_t *)&sync->servers[i]->timer, on_timer_closed);
    }
    maybe_free(sync);
}

int pw_sync_health(const struct pw_sync *sync, const char *server, struct pw_sync_health *out)
{
    const struct server *srv = server_find(sync, server);
    if (!srv) {
        return PW_ENOENT;
    }
    *out = srv->health;
    return 0;
}

size_t pw_sync_stream_count(const struct pw_sync *sync, const char *server)
{
    const struct server *srv = server_find(sync, server);
    return srv ? srv->nstreams : 0;
}

int pw_sync_set_poll(struct pw_sync *sync, const char *server, uint64_t poll_ms)
{
    struct server *srv = server_find(sync, server);
    if (!srv) {
        return PW_ENOENT;
    }
    srv->conf.poll_ms = poll_ms;
    return 0;
}

int pw_sync_replace_server(struct pw_sync *sync, const struct pw_sync_conf *conf,
                           struct pw_source *source, struct pw_cohort *cohort)
{
    struct server *srv = conf && conf->name ? server_find(sync, conf->name) : NULL;
    char *base;

    if (!srv || !conf_usable(conf, source) || !cohort || sync->freeing) {
        pw_source_free(source);
        pw_cohort_free(cohort);
        return srv ? PW_EINVAL : PW_ENOENT;
    }
    base = base_copy(conf->base);
    if (!base) {
        pw_source_free(source);
        pw_cohort_free(cohort);
        return PW_ENOMEM;
    }
    /* a second reload before the first applied: the newest wins */
    pw_source_free(srv->next_source);
    pw_cohort_free(srv->next_cohort);
    free(srv->next_base);
    srv->next_source = source;
    srv->next_conf = *conf;
    srv->next_base = base;
    srv->next_cohort = cohort;
    apply_pending(srv);
    return 0;
}

int pw_sync_set_auth(struct pw_sync *sync, const char *server, struct pw_auth *auth)
{
    struct server *srv = server_find(sync, server);
    if (!srv) {
        return PW_ENOENT;
    }
    srv->auth = auth;
    return 0;
}
