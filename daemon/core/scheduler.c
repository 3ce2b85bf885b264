/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sync engine: per-server cycles on libuv timers (poll interval with jitter, full-jitter
 * backoff, Retry-After), cohort refresh, and the incremental run of every stream (paging,
 * dedupe, cursor hand-off to the consumer). HTTP goes through http.h only.
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

#include "core/page_parse.h"
#include "painwatch/auth.h"
#include "painwatch/check.h"
#include "painwatch/cohort.h"
#include "painwatch/err.h"
#include "painwatch/http.h"
#include "painwatch/jarena.h"
#include "painwatch/log.h"
#include "painwatch/metrics.h"
#include "painwatch/notify.h"
#include "painwatch/source.h"
#include "painwatch/sync.h"

struct server;

struct stream {
    struct pw_sync_source src;
    size_t type;
    char *patient; /* owned, NULL in server-wide mode */
    char key[PW_SYNC_KEY_MAX];
};

/*
 * One run of one stream. Owned by the scheduler from run_start() to run_end().
 *
 * A run is one search query, paged; the first sync of a MedicationRequest stream is two: the
 * clinical lookback, then the orders still in force whatever their date (second_url). The
 * cursor comes only with the last page of the last query, so a failure of either leaves none.
 */
struct run {
    struct server *srv;
    const struct stream *stream;
    struct pw_sync_state st;
    int64_t max_ms;        /* largest meta.lastUpdated received in this run */
    int64_t query_max;     /* largest meta.lastUpdated of the stream's type in this query */
    int64_t cap_ms;        /* lowest query_max of a query cut by the page cap, INT64_MAX: none */
    char *first_url;       /* the current query's first request: restarts go back to it */
    char *second_url;      /* the query still to run after this one, or NULL */
    char *url;             /* the request in flight or to retry */
    char *next;            /* the next link of the page being committed */
    size_t prune_at;       /* seen-set size that triggers the next in-run prune */
    unsigned pages;        /* pages fetched in this query (the page cap is per query) */
    unsigned pages_before; /* pages of the queries before this one */
    unsigned restarts;     /* restarts after expired paging links */
    bool page_pending;     /* waiting for the consumer's done */
    json_t *tree;          /* the pending page's parse, dropped whole after done (jarena.h) */
    struct pw_jarena_page arena;
    bool final;     /* the pending page carried the cursor */
    bool query_end; /* the pending page ended the query: next comes second_url */
    bool in_second; /* the run is in its second query (the orders in force) */
    bool transport; /* the exchange itself failed (reset, timeout), whatever the status */
    int after_page; /* error to end with once the pending page is durable */
    long status;
    uint64_t retry_after_ms;
    bool page_failed; /* the run ends on a page it could not use (issue 18) */
    bool stored;      /* the stream had a stored cursor: a run of it completed before (N1) */
};

struct server {
    struct pw_sync *sync;
    struct pw_source_conf conf;
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
    bool no_status_search; /* /metadata: MedicationRequest cannot be searched by status */
    struct pw_sync_health health;
    unsigned page_failed; /* runs of this cycle ended by a page they could not use */
    int page_err;         /* the first such run's error */
    /* a reload's searches and cohort (pw_sync_replace_server), applied between cycles */
    struct pw_source_conf *next_conf;
    struct pw_cohort *next_cohort;
};

struct pw_sync {
    uv_loop_t *loop;
    struct pw_http *http;
    struct pw_sync_consumer consumer;
    struct server **servers;
    size_t nservers;
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

static void run_fetch(struct run *r, const char *url);
static void run_advance(struct run *r);
static void run_end(struct run *r, int err);
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
        pw_source_conf_cleanup(&srv->conf);
        if (srv->next_conf) {
            pw_source_conf_cleanup(srv->next_conf);
            free(srv->next_conf);
        }
        pw_cohort_free(srv->next_cohort);
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
    size_t per = c->server_wide ? 1 : c->nmembers;
    size_t n = per * srv->conf.ntypes;
    struct stream *s = calloc(n ? n : 1, sizeof(*s)); /* never NULL on success */

    if (!s) {
        return PW_ENOMEM;
    }
    for (size_t p = 0; p < per; p++) {
        for (size_t t = 0; t < srv->conf.ntypes; t++) {
            struct stream *st = &s[p * srv->conf.ntypes + t];
            const char *type = srv->conf.types[t].type;
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
 * Errors: which ones mean "the server is in trouble" (abort the cycle, back off).
 */

static bool server_level(const struct run *r, int err)
{
    if (err == PW_ETIMEDOUT || err == PW_EAGAIN || err == PW_EAUTH || err == PW_ECANCELED) {
        return true;
    }
    return err == PW_EHTTP && (r->transport || r->status >= 500);
}

/*
 * One run.
 */

/* Free the page's parse. The consumer has let go of what it was given (its done has run, or
 * the page never reached it): nothing of the tree is referenced any more. */
static void run_drop_tree(struct run *r)
{
    pw_jarena_page_drop(&r->arena, r->tree);
    r->tree = NULL;
}

static void run_free(struct run *r)
{
    run_drop_tree(r);
    pw_sync_state_cleanup(&r->st);
    free(r->second_url);
    free(r->first_url);
    free(r->url);
    free(r->next);
    free(r);
}

static void run_end(struct run *r, int err)
{
    struct server *srv = r->srv;
    const struct pw_sync_source *src = &r->stream->src;

    if (err) {
        srv->health.stream_failures++;
        srv->health.last_error = err;
        srv->health.last_status = r->status;
        srv->failed++;
        if (err != PW_ECANCELED) {
            char st[32];
            snprintf(st, sizeof(st), r->status > 0 ? "HTTP %ld" : "no HTTP response", r->status);
            pw_log_warn(SYNC, "%s: run failed after %u page(s): %s (%s)", src->key,
                        r->pages_before + r->pages, pw_strerror(err), st);
        }
        if (r->page_failed) {
            /* Not the server's transport: its content. Counted, and it makes the cycle a failed
             * one for readiness (never silently stuck), without the transport backoff. */
            srv->page_failed++;
            srv->health.page_failures++;
            srv->page_err = srv->page_err ? srv->page_err : err;
            pw_metric_inc(PW_M_SYNC_PAGE_FAILURES, srv->conf.name, NULL);
        }
        if (server_level(r, err) && !srv->cycle_err) {
            srv->cycle_err = err;
            srv->cycle_status = r->status;
            srv->abort_cycle = true;
        }
        if (r->retry_after_ms > srv->cycle_retry_after_ms) {
            srv->cycle_retry_after_ms = r->retry_after_ms;
        }
    }
    if (!err && srv->sync->consumer.on_type_access && !srv->sync->freeing) {
        srv->sync->consumer.on_type_access(srv->sync->consumer.arg, src, 0);
    }
    /* Bug N1: a stream that never completed a run and fails now has not been read at all: its
     * absence is no evidence (a 401/403 was reported as such by run_status()). */
    if (err && err != PW_ECANCELED && !r->stored && r->status != 401 && r->status != 403 &&
        srv->sync->consumer.on_type_access && !srv->sync->freeing) {
        srv->sync->consumer.on_type_access(srv->sync->consumer.arg, src, PW_SYNC_TYPE_UNREAD);
    }
    srv->running--;
    run_free(r);
    pump(srv);
}

static void on_page_done(void *arg, int err)
{
    struct run *r = arg;
    struct pw_sync *sync = r->srv->sync;

    if (PW_CHECK(r->page_pending)) {
        return; /* a second done() for the same page: ignored */
    }
    enter(sync);
    r->page_pending = false;
    run_drop_tree(r);
    sync->inflight--;
    if (err || r->after_page) {
        run_end(r, err ? err : r->after_page);
    } else if (r->final) {
        run_end(r, 0);
    } else if (sync->stopping) {
        run_end(r, PW_ECANCELED);
    } else {
        run_advance(r);
    }
    leave(sync);
}

/* Request what follows the page just handled: its next link, or the run's second query. */
static void run_advance(struct run *r)
{
    if (r->query_end) {
        r->query_end = false;
        free(r->next);
        r->next = NULL;
        free(r->first_url);
        r->first_url = r->second_url; /* restarts after an expired link come back here */
        r->second_url = NULL;
        r->in_second = true;
        r->pages_before += r->pages;
        r->pages = 0;
        r->restarts = 0;
        r->query_max = PW_SYNC_NO_CURSOR;
        run_fetch(r, r->first_url);
        return;
    }
    char *next = r->next;
    r->next = NULL;
    run_fetch(r, next);
    free(next);
}

static bool is_type(const json_t *res, const char *type)
{
    const char *t = json_string_value(json_object_get(res, "resourceType"));
    return t && strcmp(t, type) == 0;
}

/* Raise query_max over the page's new resources of the stream's own type: in a search sorted by
 * _lastUpdated that is how far the query has got (included resources, e.g. a Medication, do not
 * follow the sort). */
static void query_progress(struct run *r, const json_t *resources)
{
    size_t i;
    json_t *res;
    json_array_foreach(resources, i, res)
    {
        const char *lu =
            json_string_value(json_object_get(json_object_get(res, "meta"), "lastUpdated"));
        int64_t ms;
        if (is_type(res, r->stream->src.type) && lu && pw_fhir_instant_parse(lu, &ms) == 0 &&
            ms > r->query_max) {
            r->query_max = ms;
        }
    }
}

/*
 * Keep the seen-set of a long run bounded. In a search sorted by _lastUpdated, an entry older
 * than the query's progress minus the overlap cannot come back in this query (a new version
 * has a new key), so it is dropped. Pruning runs when the set has doubled since the last
 * prune (amortised O(1) per resource); unsorted searches keep every entry.
 */
static void seen_prune(struct run *r)
{
    const struct pw_source_conf *conf = &r->srv->conf;
    size_t n = json_object_size(r->st.seen);

    if (n > r->srv->health.seen_peak) {
        r->srv->health.seen_peak = n;
    }
    if (!conf->dialect.sort || !conf->dialect.last_updated || n < r->prune_at ||
        r->query_max == PW_SYNC_NO_CURSOR) {
        return;
    }
    pw_sync_state_prune(&r->st, r->query_max - (int64_t)conf->overlap_ms, NULL);
    n = json_object_size(r->st.seen);
    r->prune_at = n > PW_SYNC_SEEN_PRUNE_MIN / 2 ? 2 * n : PW_SYNC_SEEN_PRUNE_MIN;
}

/* A page has been filtered: track the query's progress, see whether it ended the query (a
 * capped query counts up to its progress only), prune. */
static void run_account(struct run *r, const json_t *resources, bool *final)
{
    query_progress(r, resources);
    if (*final && r->next) {
        /* The page cap on a sorted search: this query is in up to query_max only. */
        if (r->query_max < r->cap_ms) {
            r->cap_ms = r->query_max;
        }
        free(r->next);
        r->next = NULL;
    }
    if (*final && r->second_url) {
        r->query_end = true;
        *final = false;
    }
    seen_prune(r);
}

/* Hand a page to the consumer (or skip an empty intermediate page). */
static void run_deliver(struct run *r, json_t *resources, bool final)
{
    struct server *srv = r->srv;
    struct pw_sync *sync = srv->sync;
    char *cursor = NULL;
    int err = 0;

    run_account(r, resources, &final);
    if (final) {
        /* The newest resource of the run, unless a capped query got less far. */
        int64_t upto = r->max_ms < r->cap_ms ? r->max_ms : r->cap_ms;
        if (upto > r->st.cursor_ms) {
            r->st.cursor_ms = upto;
        }
        err = pw_sync_state_dump(&r->st, srv->conf.overlap_ms, &cursor);
    }
    if (err) {
        json_decref(resources);
        run_end(r, err);
        return;
    }
    if (!final && json_array_size(resources) == 0 && !r->after_page) {
        /* A page of duplicates is not the end of the run: go on to the next link (a stop
         * ends the run here, as after a delivered page). */
        json_decref(resources);
        run_drop_tree(r);
        if (sync->stopping) {
            run_end(r, PW_ECANCELED);
        } else {
            run_advance(r);
        }
        return;
    }
    r->final = final;
    r->page_pending = true;
    sync->inflight++;
    srv->health.pages++;
    srv->health.resources += json_array_size(resources);
    sync->consumer.on_page(sync->consumer.arg, &r->stream->src, resources, cursor, on_page_done, r);
    free(cursor);
}

/* One line per page for the entries it rejected (never one per entry: a page of a million
 * bad entries is one line, not a million). */
static void page_rejects_log(const struct run *r, const struct pw_page_stats *ps)
{
    char sum[256];

    if (pw_page_stats_summary(ps, sum, sizeof(sum)) > 0) {
        pw_log_warn(SYNC, "%s: page %u: %s", r->stream->key, r->pages, sum);
    }
}

/* A FHIR id ([A-Za-z0-9-.]{1,64}), or NULL. */
static const char *fhir_id_or_null(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= PW_ID_MAX ||
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.") != n) {
        return NULL;
    }
    return s;
}

/* A resource type name (an upper-case letter, then letters; at most 64), or NULL. */
static const char *fhir_type_or_null(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64 || s[0] < 'A' || s[0] > 'Z' ||
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != n) {
        return NULL;
    }
    return s;
}

static const char *readable_str(const json_t *v)
{
    const char *s = json_string_value(v);
    return s && !pw_page_value_unreadable(v) ? s : NULL;
}

/*
 * The page held values that could not be read (set aside by pw_page_parse()): take their
 * resources out of the page and report each to the consumer. The rest of the page goes on, and
 * so does the cursor: a readable meta.lastUpdated of a skipped resource counts as progress.
 */
static int run_unreadable(struct run *r, json_t *bundle, size_t *n_out)
{
    struct server *srv = r->srv;
    struct pw_sync *sync = srv->sync;
    const struct pw_sync_source *src = &r->stream->src;
    json_t *bad = json_array();
    char patient[PW_ID_MAX + 16];
    size_t i;
    json_t *res;

    *n_out = 0;
    if (!bad) {
        return PW_ENOMEM;
    }
    snprintf(patient, sizeof(patient), "Patient/%s", src->patient ? src->patient : "");
    *n_out = pw_page_take_unreadable(bundle, bad);
    json_array_foreach(bad, i, res)
    {
        const json_t *meta = json_object_get(res, "meta");
        const char *lu = readable_str(json_object_get(meta, "lastUpdated"));
        int64_t lu_ms;
        struct pw_sync_unreadable u = {
            .type = fhir_type_or_null(readable_str(json_object_get(res, "resourceType"))),
            .id = fhir_id_or_null(readable_str(json_object_get(res, "id"))),
            .version = fhir_id_or_null(readable_str(json_object_get(meta, "versionId"))),
            .patient = src->patient ? patient : NULL,
            .reason = "a value could not be read (a number out of range or invalid UTF-8)",
            .resource = res,
        };
        bool has_lu = lu && pw_fhir_instant_parse(lu, &lu_ms) == 0;
        if (has_lu && lu_ms > r->max_ms) {
            r->max_ms = lu_ms;
        }
        /* Reported once per version: the overlap brings it back in the next run. */
        char key[PW_REF_MAX + 64];
        if (has_lu && pw_sync_seen_key(res, key, sizeof(key)) && !strchr(key, '\001')) {
            if (json_object_get(r->st.seen, key)) {
                srv->health.duplicates++;
                (*n_out)--; /* a duplicate, not a rejection */
                continue;
            }
            if (json_object_set_new(r->st.seen, key, json_integer(lu_ms)) != 0) {
                json_decref(bad);
                return PW_ENOMEM;
            }
        }
        srv->health.unreadable++;
        pw_metric_inc(PW_M_UNREADABLE, srv->conf.name, u.type ? u.type : "unknown", NULL);
        pw_log_warn(SYNC, "%s: page %u: %s/%s skipped: %s", r->stream->key, r->pages + 1,
                    u.type ? u.type : "?", u.id ? u.id : "?", u.reason);
        if (sync->consumer.on_unreadable) {
            sync->consumer.on_unreadable(sync->consumer.arg, src, &u);
        }
    }
    json_decref(bad);
    return 0;
}

/*
 * A page refused whole (too large for its budget or entry cap, or not JSON): asked again with
 * half the _count, down to 1. Refused at _count=1 the run ends (its page failure counts towards
 * the server's readiness); the cursor stays.
 */
static void run_page_refused(struct run *r, const struct pw_page_parsed *pp, int perr)
{
    static const char *const why[] = {"", "is not JSON", "is over the parse budget",
                                      "is over the entry cap"};
    struct server *srv = r->srv;
    const struct pw_source_conf *conf = &srv->conf;
    unsigned dflt = conf->count < conf->dialect.count_max ? conf->count : conf->dialect.count_max;
    int err = pp->refusal == PW_PAGE_NOT_JSON ? PW_EJSON : PW_E2BIG;
    char *smaller = NULL;
    unsigned count = 0;

    if (perr) {
        run_end(r, perr);
        return;
    }
    if (pp->refusal == PW_PAGE_NOT_JSON) {
        /* Position only: the server's bytes never reach the log. */
        pw_log_err(SYNC, "%s: page %u is not JSON (line %d, column %d, byte %zu)", r->stream->key,
                   r->pages + 1, pp->line, pp->column, pp->position);
    }
    int herr = pw_search_url_halve_count(r->url, dflt ? dflt : 1, &smaller, &count);
    if (herr == 0) {
        srv->health.pages_refused++;
        pw_log_warn(SYNC, "%s: page %u %s: asking again with _count=%u", r->stream->key,
                    r->pages + 1, why[pp->refusal], count);
        run_fetch(r, smaller);
        free(smaller);
        return;
    }
    pw_log_err(SYNC, "%s: page %u %s at _count=1: run ends, cursor kept", r->stream->key,
               r->pages + 1, why[pp->refusal]);
    r->page_failed = true;
    run_end(r, herr == PW_ERANGE ? err : herr);
}

static void run_page(struct run *r, const struct pw_http_resp *resp)
{
    struct server *srv = r->srv;
    const struct pw_source_conf *conf = &srv->conf;
    json_t *resources = NULL;
    const char *next = NULL;
    struct pw_page_stats ps;
    struct pw_page_parsed pp;
    size_t unreadable = 0;

    /* The page's tree goes to the arena (jarena.h) when painwatchd installed it; refused (a
     * nested begin, the CLI, tests): plain malloc. Only the parse: what the filter and the
     * consumer build around the tree is malloc'd. The tree stays until the consumer's done and
     * is then dropped whole (the resources it was given are released by then: sync.h). The
     * parse has a memory budget and an entry cap (issue 18): a 32 MiB page of empty entries
     * would otherwise take gigabytes. */
    int perr = pw_page_parse(resp->body, resp->body_len, srv->sync->page_budget,
                             srv->sync->page_entries_max, &r->arena, &pp);
    if (perr || pp.refusal != PW_PAGE_OK) {
        run_page_refused(r, &pp, perr);
        return;
    }
    json_t *bundle = pp.bundle;
    r->tree = bundle;
    if (pp.repairs) {
        int uerr = run_unreadable(r, bundle, &unreadable);
        if (uerr) {
            run_drop_tree(r);
            run_end(r, uerr);
            return;
        }
    }
    int err = pw_sync_page_filter(&r->st, bundle, &resources, &next, &r->max_ms, &ps);
    if (!err && next && !(r->next = strdup(next))) {
        err = PW_ENOMEM;
    }
    if (!err && next && pw_page_value_unreadable(json_object_get(bundle, "link"))) {
        err = PW_EFHIR; /* the next link itself was unreadable: where to go on is unknown */
    }
    if (err) {
        json_decref(resources);
        run_drop_tree(r);
        pw_log_err(SYNC, "%s: page %u: %s", r->stream->key, r->pages + 1, pw_strerror(err));
        r->page_failed = err == PW_EFHIR;
        run_end(r, err);
        return;
    }
    ps.unreadable = unreadable;
    r->pages++;
    srv->health.duplicates += ps.duplicates;
    page_rejects_log(r, &ps);
    bool final = !r->next;
    if (r->next && !pw_url_same_origin(r->next, conf->base)) {
        /* Never follow a link off the configured origin: the page itself is good data. */
        pw_log_err(SYNC, "%s: next link leaves the server's origin, run ends", r->stream->key);
        r->after_page = PW_EORIGIN;
    } else if (r->next && r->pages >= conf->pages_max) {
        if (conf->dialect.sort && conf->dialect.last_updated) {
            /* Sorted by _lastUpdated: everything up to max_ms is in, so the cursor may move
             * and the next run resumes from there. */
            pw_log_notice(SYNC, "%s: page cap %u reached, resuming next run", r->stream->key,
                          conf->pages_max);
            final = true;
        } else {
            pw_log_warn(SYNC, "%s: page cap %u reached on an unsorted search, cursor kept",
                        r->stream->key, conf->pages_max);
            r->after_page = PW_E2BIG;
        }
    }
    run_deliver(r, resources, final);
}

static void run_status(struct run *r, const struct pw_http_resp *resp)
{
    struct server *srv = r->srv;
    long st = resp->status;

    r->status = st;
    if (st == 200) {
        run_page(r, resp);
    } else if (st == 400 && r->in_second && r->pages == 0) {
        /* /metadata said status is searchable, the server refuses it anyway: the lookback
         * stands on its own and the query is not sent again (else the stream would never
         * get a cursor). */
        pw_log_warn(SYNC, "%s: %s query refused (HTTP 400)%s", r->stream->key,
                    strcmp(r->stream->src.type, "Condition") == 0 ? "problem-list"
                                                                  : "orders-in-force",
                    strcmp(r->stream->src.type, "Condition") == 0 ? "" : "; not asked again");
        /* issue 17: a refused problem-list query says nothing about MedicationRequest status */
        srv->no_status_search =
            srv->no_status_search || strcmp(r->stream->src.type, "Condition") != 0;
        json_t *none = json_array();
        if (none) {
            run_deliver(r, none, true);
        } else {
            run_end(r, PW_ENOMEM);
        }
    } else if ((st == 404 || st == 410) && strcmp(r->url, r->first_url) != 0 &&
               r->restarts < PW_SYNC_RESTARTS_MAX) {
        /* The paging link expired (server-side result sets do): start over from the
         * cursor; the seen-set drops what this run already delivered. */
        r->restarts++;
        pw_log_notice(SYNC, "%s: paging link expired (HTTP %ld), restarting from the cursor",
                      r->stream->key, st);
        run_fetch(r, r->first_url);
    } else if (st == 429 || st == 503) {
        const char *ra = pw_http_resp_header(resp, "Retry-After");
        uint64_t ms = 0;
        if (ra && pw_retry_after_parse(ra, srv->sync->now_ms() / 1000, &ms) == 0) {
            r->retry_after_ms = ms;
        }
        run_end(r, PW_EAGAIN);
    } else if (st == 401 || st == 403) {
        /* With an auth, pw_auth_submit_new() already renewed and retried once. A 403 refuses
         * this type (a scope not granted, a restricted record): only this stream fails, the
         * consumer turns the rules off that rest on the type's absence. */
        if (srv->sync->consumer.on_type_access) {
            srv->sync->consumer.on_type_access(srv->sync->consumer.arg, &r->stream->src, st);
        }
        run_end(r, st == 403 ? PW_EACCES : PW_EAUTH);
    } else {
        run_end(r, PW_EHTTP);
    }
}

static void on_response(void *arg, int err, const struct pw_http_resp *resp)
{
    struct run *r = arg;
    struct pw_sync *sync = r->srv->sync;

    enter(sync);
    /* Journal fields for what this response leads to (issue 19); both strings outlive the run. */
    pw_log_context(r->srv->conf.name, NULL, r->stream->src.type);
    sync->inflight--;
    /* After pw_sync_free() the consumer may be gone: nothing more is delivered. A mere stop
     * lets the page in hand be committed (on_page_done ends the run). */
    if (sync->freeing) {
        err = PW_ECANCELED;
    }
    if (err) {
        r->status = resp ? resp->status : 0;
        r->transport = err == PW_EHTTP;
        if (err != PW_ECANCELED) {
            pw_log_err(SYNC, "%s: %s%s%s", r->stream->key, pw_strerror(err),
                       resp && resp->error && *resp->error ? ": " : "",
                       resp && resp->error ? resp->error : "");
        }
        run_end(r, err);
    } else {
        run_status(r, resp);
    }
    pw_log_context(NULL, NULL, NULL);
    leave(sync);
}

static void run_fetch(struct run *r, const char *url)
{
    struct server *srv = r->srv;
    struct pw_http_req *req = NULL;
    char *copy = strdup(url);

    if (!copy) {
        run_end(r, PW_ENOMEM);
        return;
    }
    free(r->url);
    r->url = copy;
    int err = pw_http_req_new(&req, srv->conf.name, "GET", url);
    if (err) {
        run_end(r, err);
        return;
    }
    srv->health.requests++;
    err = srv->auth ? pw_auth_submit_new(srv->auth, req, on_response, r)
                    : pw_http_submit_new(srv->sync->http, req, on_response, r);
    if (err) {
        run_end(r, err);
        return;
    }
    srv->sync->inflight++;
}

/*
 * The run's queries. The first sync of a MedicationRequest stream adds the orders still in force
 * whatever their date: an opioid ordered before the lookback and still running drives the
 * bowel-regimen and rescue-dose rules, and the lookback (authoredon) cannot see it.
 */
static int run_urls(struct run *r)
{
    struct server *srv = r->srv;
    const struct stream *stream = r->stream;
    struct pw_search_window w = {.cursor_ms = r->st.cursor_ms, .now_ms = srv->sync->now_ms()};

    int err = pw_search_url(&srv->conf, stream->type, stream->patient, &w, &r->first_url);
    bool problems = strcmp(stream->src.type, "Condition") == 0; /* issue 17: the problem list */
    if (err || r->st.cursor_ms != PW_SYNC_NO_CURSOR ||
        (!problems &&
         (strcmp(stream->src.type, "MedicationRequest") != 0 || srv->no_status_search))) {
        return err;
    }
    /*
     * The second query covers what the lookback does not (authoredon=lt its bound): no order is
     * expected in both, so nothing is held back from pruning for it (a server that answers both
     * with the same order gets it stored twice, idempotently).
     */
    w.active_orders = true;
    return pw_search_url(&srv->conf, stream->type, stream->patient, &w, &r->second_url);
}

/* Start one stream; failures before the first request are reported as a stream failure. */
static void run_start(struct server *srv, const struct stream *stream)
{
    struct pw_sync *sync = srv->sync;
    struct run *r = calloc(1, sizeof(*r));
    char *text = NULL;

    srv->running++;
    if (!r) {
        srv->running--;
        srv->failed++;
        return;
    }
    r->srv = srv;
    r->stream = stream;
    int err = pw_sync_state_init(&r->st);
    if (!err) {
        err = sync->consumer.cursor_load(sync->consumer.arg, &stream->src, &text);
    }
    r->stored = text != NULL;
    if (!err && pw_sync_state_load(&r->st, text) != 0) {
        /* An unreadable cursor is re-derived: the lookback is fetched again, the store's
         * idempotence absorbs the repeat. */
        pw_log_err(SYNC, "%s: stored cursor unreadable, starting from the lookback", stream->key);
        pw_sync_state_load(&r->st, NULL);
    }
    free(text);
    r->max_ms = r->st.cursor_ms;
    r->query_max = PW_SYNC_NO_CURSOR;
    r->cap_ms = INT64_MAX;
    r->prune_at = PW_SYNC_SEEN_PRUNE_MIN;
    if (!err) {
        err = run_urls(r);
    }
    if (err) {
        run_end(r, err);
        return;
    }
    run_fetch(r, r->first_url);
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
        .server = srv->conf.name,
        .base = srv->conf.base,
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
    const struct pw_source_conf *c = &srv->conf;

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

/* A reload's searches and cohort, once no cycle runs: the streams are rebuilt at the next. */
static void apply_pending(struct server *srv)
{
    uint64_t poll_ms = srv->conf.poll_ms;

    if (!srv->next_conf || srv->in_cycle) {
        return;
    }
    pw_source_conf_cleanup(&srv->conf);
    srv->conf = *srv->next_conf;
    srv->conf.poll_ms = poll_ms; /* pw_sync_set_poll()'s, applied at once */
    free(srv->next_conf);
    srv->next_conf = NULL;
    pw_cohort_free(srv->cohort);
    srv->cohort = srv->next_cohort;
    srv->next_cohort = NULL;
    /* The streams borrow the old conf's strings: gone with it, rebuilt when the next cycle
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
        if (strcmp(sync->servers[i]->conf.name, name) == 0) {
            return sync->servers[i];
        }
    }
    return NULL;
}

int pw_sync_add_server(struct pw_sync *sync, const struct pw_source_conf *conf,
                       struct pw_cohort *cohort, struct pw_auth *auth)
{
    int err = PW_EINVAL;
    struct server *srv = NULL;

    if (!conf || !conf->name || !conf->base || !cohort || conf->ntypes == 0 ||
        conf->parallel == 0 || sync->started || sync->freeing) {
        goto fail;
    }
    err = PW_EEXIST;
    if (server_find(sync, conf->name)) {
        goto fail;
    }
    err = PW_ENOMEM;
    struct server **grown = realloc(sync->servers, (sync->nservers + 1) * sizeof(sync->servers[0]));
    if (!grown) {
        goto fail;
    }
    sync->servers = grown;
    srv = calloc(1, sizeof(*srv));
    if (!srv || pw_source_conf_copy(&srv->conf, conf) != 0) {
        free(srv);
        goto fail;
    }
    if (srv->conf.pages_max == 0 || srv->conf.pages_max > PW_PAGES_PER_RUN_MAX) {
        srv->conf.pages_max = PW_PAGES_PER_RUN_MAX;
    }
    srv->sync = sync;
    srv->cohort = cohort;
    srv->auth = auth;
    uv_timer_init(sync->loop, &srv->timer);
    sync->servers[sync->nservers++] = srv;
    return 0;
fail:
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

/* Whether the first sync may ask for MedicationRequest by status (a server that lists its
 * search parameters and leaves status out would ignore or refuse the filter). */
static void capability_status(struct server *srv, const struct pw_capability *cap)
{
    const json_t *t = json_object_get(cap->types, "MedicationRequest");
    bool searched = false;

    for (size_t i = 0; i < srv->conf.ntypes; i++) {
        searched = searched || strcmp(srv->conf.types[i].type, "MedicationRequest") == 0;
    }
    srv->no_status_search = searched && json_array_size(json_object_get(t, "params")) > 0 &&
                            !pw_capability_has_param(cap, "MedicationRequest", "status");
    if (srv->no_status_search) {
        pw_log_notice(SYNC,
                      "%s: MedicationRequest 'status' search not advertised: the first sync "
                      "will not fetch orders in force written before the lookback",
                      srv->conf.name);
    }
}

/*
 * Issue 17: a context type (anything but Observation and MedicationRequest) the server does not
 * advertise is not synced rather than a startup error: it is dropped from the searches and the
 * consumer told (status -1), so the rules resting on its absence are off. The core types stay
 * required (pw_capability_check reports them).
 */
static void capability_context_types(struct server *srv, const struct pw_capability *cap)
{
    struct pw_source_conf *conf = &srv->conf;
    size_t i = 0;
    while (i < conf->ntypes && conf->ntypes > 1) {
        const char *type = conf->types[i].type;
        const json_t *t = json_object_get(cap->types, type);
        if (strcmp(type, "Observation") == 0 || strcmp(type, "MedicationRequest") == 0 ||
            json_is_true(json_object_get(t, "search"))) {
            i++;
            continue;
        }
        pw_log_warn(SYNC,
                    "%s: /metadata does not advertise %s search: not synced, the rules resting "
                    "on its absence are off",
                    conf->name, type);
        if (srv->sync->consumer.on_type_access) {
            char key[PW_SYNC_KEY_MAX];
            snprintf(key, sizeof(key), "%s/%s/-", conf->name, type);
            struct pw_sync_source src = {.server = conf->name, .type = type, .key = key};
            srv->sync->consumer.on_type_access(srv->sync->consumer.arg, &src, -1);
        }
        free(conf->types[i].type);
        free(conf->types[i].codes);
        free(conf->types[i].valueset);
        memmove(&conf->types[i], &conf->types[i + 1],
                (conf->ntypes - i - 1) * sizeof(conf->types[0]));
        conf->ntypes--;
        memset(&conf->types[conf->ntypes], 0, sizeof(conf->types[0]));
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
        capability_status(srv, cap);
        capability_context_types(srv, cap);
        err = pw_capability_check(cap, &srv->conf, &errors, &warnings);
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
        int err = pw_capability_fetch(sync->http, srv->conf.name, srv->conf.base, srv->auth,
                                      on_capability, srv);
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

int pw_sync_replace_server(struct pw_sync *sync, const struct pw_source_conf *conf,
                           struct pw_cohort *cohort)
{
    struct server *srv = conf && conf->name ? server_find(sync, conf->name) : NULL;
    struct pw_source_conf *next;

    if (!srv || !cohort || conf->ntypes == 0 || conf->parallel == 0 || sync->freeing) {
        pw_cohort_free(cohort);
        return srv ? PW_EINVAL : PW_ENOENT;
    }
    next = calloc(1, sizeof(*next));
    if (!next || pw_source_conf_copy(next, conf) != 0) {
        free(next);
        pw_cohort_free(cohort);
        return PW_ENOMEM;
    }
    if (next->pages_max == 0 || next->pages_max > PW_PAGES_PER_RUN_MAX) {
        next->pages_max = PW_PAGES_PER_RUN_MAX;
    }
    if (srv->next_conf) { /* a second reload before the first applied: the newest wins */
        pw_source_conf_cleanup(srv->next_conf);
        free(srv->next_conf);
    }
    pw_cohort_free(srv->next_cohort);
    srv->next_conf = next;
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
