/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The FHIR search source, its runs: one incremental run of one stream (paging, restarts after
 * expired links, pages refused and asked again smaller, unreadable resources set aside, dedupe,
 * the page cap, the cursor handed over with the last page). The driver (daemon/core/scheduler.c)
 * starts runs, carries their requests and pages (source.h) and schedules the cycles.
 *
 * A server-level failure (transport, timeout, 5xx, 429, auth) ends the run and the driver aborts
 * the rest of that server's cycle; a stream-level one (bad JSON, bad Bundle, off-origin link,
 * 4xx) only fails this stream.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "painwatch/err.h"
#include "painwatch/fhir.h"
#include "painwatch/fhir_search.h"
#include "painwatch/http.h"
#include "painwatch/jarena.h"
#include "painwatch/log.h"
#include "painwatch/metrics.h"
#include "painwatch/page_parse.h"
#include "painwatch/source.h"
#include "painwatch/sync.h"

/*
 * One run of one stream, from run_start() to run_end().
 *
 * A run is one search query, paged; the first sync of a MedicationRequest stream is two: the
 * clinical lookback, then the orders still in force whatever their date (second_url). The
 * cursor comes only with the last page of the last query, so a failure of either leaves none.
 */
struct run {
    struct pw_fhir_search *fs;
    struct pw_source_run *run; /* the driver's handle */
    const struct pw_sync_source *src;
    size_t type; /* index into fs->conf.types */
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
};

static void run_fetch(struct run *r, const char *url);
static void run_advance(struct run *r);

/* Free the page's parse. The consumer has let go of what it was given (its done has run, or
 * the page never reached it): nothing of the tree is referenced any more. */
static void run_drop_tree(struct run *r)
{
    pw_jarena_page_drop(&r->arena, r->tree);
    r->tree = NULL;
}

void pw_fhir_search_run_cleanup(void *state)
{
    struct run *r = state;

    run_drop_tree(r);
    pw_sync_state_cleanup(&r->st);
    free(r->second_url);
    free(r->first_url);
    free(r->url);
    free(r->next);
    free(r);
}

/* The run is over: the driver counts it and starts the next stream; @p r is gone after this. */
static void run_end(struct run *r, int err)
{
    struct pw_source_run_result res = {
        .err = err,
        .status = r->status,
        .transport = r->transport,
        .page_failed = r->page_failed,
        .retry_after_ms = r->retry_after_ms,
        .pages = r->pages_before + r->pages,
    };
    pw_source_run_end(r->run, &res);
}

void pw_fhir_search_run_page_done(void *state, int err)
{
    struct run *r = state;

    run_drop_tree(r);
    if (err || r->after_page) {
        run_end(r, err ? err : r->after_page);
    } else if (r->final) {
        run_end(r, 0);
    } else if (pw_source_run_stopping(r->run)) {
        run_end(r, PW_ECANCELED);
    } else {
        run_advance(r);
    }
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

/*
 * Keep the seen-set of a long run bounded. In a search sorted by _lastUpdated, an entry older
 * than the query's progress minus the overlap cannot come back in this query (a new version
 * has a new key), so it is dropped. Pruning runs when the set has doubled since the last
 * prune (amortised O(1) per resource); unsorted searches keep every entry.
 */
static void seen_prune(struct run *r)
{
    const struct pw_fhir_search_conf *conf = &r->fs->conf;
    struct pw_sync_health *health = pw_source_run_health(r->run);
    size_t n = json_object_size(r->st.seen);

    if (n > health->seen_peak) {
        health->seen_peak = n;
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
/*
 * @p type_max: the newest meta.lastUpdated among the page's new resources of the stream's own
 * type (pw_sync_page_filter_typed); in a search sorted by _lastUpdated that is how far the query
 * has got (included resources, e.g. a Medication, do not follow the sort).
 */
static void run_account(struct run *r, int64_t type_max, bool *final)
{
    if (type_max > r->query_max) {
        r->query_max = type_max;
    }
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
static void run_deliver(struct run *r, json_t *resources, int64_t type_max, bool final)
{
    char *cursor = NULL;
    int err = 0;

    run_account(r, type_max, &final);
    if (final) {
        /* The newest resource of the run, unless a capped query got less far. */
        int64_t upto = r->max_ms < r->cap_ms ? r->max_ms : r->cap_ms;
        if (upto > r->st.cursor_ms) {
            r->st.cursor_ms = upto;
        }
        err = pw_sync_state_dump(&r->st, r->fs->conf.overlap_ms, &cursor);
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
        if (pw_source_run_stopping(r->run)) {
            run_end(r, PW_ECANCELED);
        } else {
            run_advance(r);
        }
        return;
    }
    r->final = final;
    /* The consumer's done may come at once and end the run: @p r is not touched after this. */
    pw_source_run_deliver(r->run, resources, cursor);
    free(cursor);
}

/* One line per page for the entries it rejected (never one per entry: a page of a million
 * bad entries is one line, not a million). */
static void page_rejects_log(const struct run *r, const struct pw_page_stats *ps)
{
    char sum[256];

    if (pw_page_stats_summary(ps, sum, sizeof(sum)) > 0) {
        pw_log_warn(SYNC, "%s: page %u: %s", r->src->key, r->pages, sum);
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
    const struct pw_sync_source *src = r->src;
    struct pw_sync_health *health = pw_source_run_health(r->run);
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
                health->duplicates++;
                (*n_out)--; /* a duplicate, not a rejection */
                continue;
            }
            if (json_object_set_new(r->st.seen, key, json_integer(lu_ms)) != 0) {
                json_decref(bad);
                return PW_ENOMEM;
            }
        }
        health->unreadable++;
        pw_metric_inc(PW_M_UNREADABLE, src->server, u.type ? u.type : "unknown", NULL);
        pw_log_warn(SYNC, "%s: page %u: %s/%s skipped: %s", r->src->key, r->pages + 1,
                    u.type ? u.type : "?", u.id ? u.id : "?", u.reason);
        pw_source_run_unreadable(r->run, &u);
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
    const struct pw_fhir_search_conf *conf = &r->fs->conf;
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
        pw_log_err(SYNC, "%s: page %u is not JSON (line %d, column %d, byte %zu)", r->src->key,
                   r->pages + 1, pp->line, pp->column, pp->position);
    }
    int herr = pw_search_url_halve_count(r->url, dflt ? dflt : 1, &smaller, &count);
    if (herr == 0) {
        pw_source_run_health(r->run)->pages_refused++;
        pw_log_warn(SYNC, "%s: page %u %s: asking again with _count=%u", r->src->key, r->pages + 1,
                    why[pp->refusal], count);
        run_fetch(r, smaller);
        free(smaller);
        return;
    }
    pw_log_err(SYNC, "%s: page %u %s at _count=1: run ends, cursor kept", r->src->key, r->pages + 1,
               why[pp->refusal]);
    r->page_failed = true;
    run_end(r, herr == PW_ERANGE ? err : herr);
}

static void run_page(struct run *r, const struct pw_http_resp *resp)
{
    const struct pw_fhir_search_conf *conf = &r->fs->conf;
    json_t *resources = NULL;
    size_t budget;
    size_t entries_max;
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
    pw_source_run_page_limits(r->run, &budget, &entries_max);
    int perr = pw_page_parse(resp->body, resp->body_len, budget, entries_max, &r->arena, &pp);
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
    int64_t type_max = INT64_MIN;
    int err = pw_sync_page_filter_typed(&r->st, bundle, r->src->type, &resources, &next, &r->max_ms,
                                        &type_max, &ps);
    if (!err && next && !(r->next = strdup(next))) {
        err = PW_ENOMEM;
    }
    if (!err && next && pw_page_value_unreadable(json_object_get(bundle, "link"))) {
        err = PW_EFHIR; /* the next link itself was unreadable: where to go on is unknown */
    }
    if (err) {
        json_decref(resources);
        run_drop_tree(r);
        pw_log_err(SYNC, "%s: page %u: %s", r->src->key, r->pages + 1, pw_strerror(err));
        r->page_failed = err == PW_EFHIR;
        run_end(r, err);
        return;
    }
    ps.unreadable = unreadable;
    r->pages++;
    pw_source_run_health(r->run)->duplicates += ps.duplicates;
    page_rejects_log(r, &ps);
    bool final = !r->next;
    if (r->next && !pw_url_same_origin(r->next, conf->base)) {
        /* Never follow a link off the configured origin: the page itself is good data. */
        pw_log_err(SYNC, "%s: next link leaves the server's origin, run ends", r->src->key);
        r->after_page = PW_EORIGIN;
    } else if (r->next && r->pages >= conf->pages_max) {
        if (conf->dialect.sort && conf->dialect.last_updated) {
            /* Sorted by _lastUpdated: everything up to max_ms is in, so the cursor may move
             * and the next run resumes from there. */
            pw_log_notice(SYNC, "%s: page cap %u reached, resuming next run", r->src->key,
                          conf->pages_max);
            final = true;
        } else {
            pw_log_warn(SYNC, "%s: page cap %u reached on an unsorted search, cursor kept",
                        r->src->key, conf->pages_max);
            r->after_page = PW_E2BIG;
        }
    }
    run_deliver(r, resources, type_max, final);
}

static void run_status(struct run *r, const struct pw_http_resp *resp)
{
    long st = resp->status;

    r->status = st;
    if (st == 200) {
        run_page(r, resp);
    } else if (st == 400 && r->in_second && r->pages == 0) {
        /* /metadata said status is searchable, the server refuses it anyway: the lookback
         * stands on its own and the query is not sent again (else the stream would never
         * get a cursor). */
        pw_log_warn(SYNC, "%s: %s query refused (HTTP 400)%s", r->src->key,
                    strcmp(r->src->type, "Condition") == 0 ? "problem-list" : "orders-in-force",
                    strcmp(r->src->type, "Condition") == 0 ? "" : "; not asked again");
        /* issue 17: a refused problem-list query says nothing about MedicationRequest status */
        r->fs->no_status_search = r->fs->no_status_search || strcmp(r->src->type, "Condition") != 0;
        json_t *none = json_array();
        if (none) {
            run_deliver(r, none, INT64_MIN, true);
        } else {
            run_end(r, PW_ENOMEM);
        }
    } else if ((st == 404 || st == 410) && strcmp(r->url, r->first_url) != 0 &&
               r->restarts < PW_SYNC_RESTARTS_MAX) {
        /* The paging link expired (server-side result sets do): start over from the
         * cursor; the seen-set drops what this run already delivered. */
        r->restarts++;
        pw_log_notice(SYNC, "%s: paging link expired (HTTP %ld), restarting from the cursor",
                      r->src->key, st);
        run_fetch(r, r->first_url);
    } else if (st == 429 || st == 503) {
        const char *ra = pw_http_resp_header(resp, "Retry-After");
        uint64_t ms = 0;
        if (ra && pw_retry_after_parse(ra, pw_source_run_now(r->run) / 1000, &ms) == 0) {
            r->retry_after_ms = ms;
        }
        run_end(r, PW_EAGAIN);
    } else if (st == 401 || st == 403) {
        /* With an auth, pw_auth_submit_new() already renewed and retried once. A 403 refuses
         * this type (a scope not granted, a restricted record): only this stream fails, the
         * consumer turns the rules off that rest on the type's absence. */
        pw_source_run_refused(r->run, st);
        run_end(r, st == 403 ? PW_EACCES : PW_EAUTH);
    } else {
        run_end(r, PW_EHTTP);
    }
}

/* The driver has opened the journal context and turned a response after pw_sync_free() into
 * PW_ECANCELED (a mere stop lets the page in hand be committed). */
static void on_response(void *arg, int err, const struct pw_http_resp *resp)
{
    struct run *r = arg;

    if (err) {
        r->status = resp ? resp->status : 0;
        r->transport = err == PW_EHTTP;
        if (err != PW_ECANCELED) {
            pw_log_err(SYNC, "%s: %s%s%s", r->src->key, pw_strerror(err),
                       resp && resp->error && *resp->error ? ": " : "",
                       resp && resp->error ? resp->error : "");
        }
        run_end(r, err);
    } else {
        run_status(r, resp);
    }
}

static void run_fetch(struct run *r, const char *url)
{
    char *copy = strdup(url);

    if (!copy) {
        run_end(r, PW_ENOMEM);
        return;
    }
    free(r->url);
    r->url = copy;
    int err = pw_source_run_get(r->run, url, on_response, r);
    if (err) {
        run_end(r, err);
    }
}

/*
 * The run's queries. The first sync of a MedicationRequest stream adds the orders still in force
 * whatever their date: an opioid ordered before the lookback and still running drives the
 * bowel-regimen and rescue-dose rules, and the lookback (authoredon) cannot see it.
 */
static int run_urls(struct run *r)
{
    const struct pw_fhir_search_conf *conf = &r->fs->conf;
    const struct pw_sync_source *src = r->src;
    struct pw_search_window w = {.cursor_ms = r->st.cursor_ms, .now_ms = pw_source_run_now(r->run)};

    int err = pw_search_url(conf, r->type, src->patient, &w, &r->first_url);
    bool problems = strcmp(src->type, "Condition") == 0; /* issue 17: the problem list */
    if (err || r->st.cursor_ms != PW_SYNC_NO_CURSOR ||
        (!problems && (strcmp(src->type, "MedicationRequest") != 0 || r->fs->no_status_search))) {
        return err;
    }
    /*
     * The second query covers what the lookback does not (authoredon=lt its bound): no order is
     * expected in both, so nothing is held back from pruning for it (a server that answers both
     * with the same order gets it stored twice, idempotently).
     */
    w.active_orders = true;
    return pw_search_url(conf, r->type, src->patient, &w, &r->second_url);
}

/* Start one stream from its stored cursor; failures before the first request are returned. */
int pw_fhir_search_run_start(void *ctx, struct pw_source_run *run, size_t type, const char *cursor,
                             void **state)
{
    struct run *r = calloc(1, sizeof(*r));

    *state = NULL;
    if (!r) {
        return PW_ENOMEM;
    }
    r->fs = ctx;
    r->run = run;
    r->src = pw_source_run_src(run);
    r->type = type;
    int err = pw_sync_state_init(&r->st);
    if (!err && pw_sync_state_load(&r->st, cursor) != 0) {
        /* An unreadable cursor is re-derived: the lookback is fetched again, the store's
         * idempotence absorbs the repeat. */
        pw_log_err(SYNC, "%s: stored cursor unreadable, starting from the lookback", r->src->key);
        pw_sync_state_load(&r->st, NULL);
    }
    r->max_ms = r->st.cursor_ms;
    r->query_max = PW_SYNC_NO_CURSOR;
    r->cap_ms = INT64_MAX;
    r->prune_at = PW_SYNC_SEEN_PRUNE_MIN;
    if (!err) {
        err = run_urls(r);
    }
    if (err) {
        pw_fhir_search_run_cleanup(r);
        return err;
    }
    *state = r;
    run_fetch(r, r->first_url);
    return 0;
}
