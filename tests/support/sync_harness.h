/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test harness for the sync driver with the FHIR search source: a real loop, the real HTTP core,
 * a loopback responder and an in-memory consumer that records every page and cursor (the
 * store's stand-in). Included by the FHIR search source's tests (tests/adapters/test_source_*,
 * test_sync_*) and the driver's (tests/daemon/core/test_scheduler.c).
 */
#ifndef PAINWATCH_TESTS_SYNC_HARNESS_H
#define PAINWATCH_TESTS_SYNC_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "painwatch/auth.h"
#include "painwatch/check.h"
#include "painwatch/cohort.h"
#include "painwatch/conf.h"
#include "painwatch/err.h"
#include "painwatch/fhir.h"
#include "painwatch/fhir_search.h"
#include "painwatch/http.h"
#include "painwatch/source.h"
#include "painwatch/sync.h"
#include "support/loop.h"
#include "support/pwtest.h"
#include "support/responder.h"

#define SH_T0  1714557600000LL /* 2024-05-01T10:00:00Z */
#define SH_NOW (SH_T0 + 3600000LL)

struct sh {
    uv_loop_t loop;
    struct pw_http *http;
    struct pw_sync *sync;
    struct pw_sync_conf sched; /* the next server's scheduling (sh_conf() sets the defaults) */
    struct pw_auth *auth;      /* optional; freed between the engine and the HTTP core */
    struct pwt_responder *r;
    char base[128];
    /* The consumer: key -> cursor text, and one line per delivered resource. */
    json_t *cursors;
    json_t *delivered; /* "key|Type/id/vid" */
    json_t *pages;     /* {"key", "n", "cursor": bool} per page */
    int page_error;    /* done(page_error) for every page when set */
    bool defer;        /* call done from a 0 ms timer instead of inside on_page */
    bool hold;         /* keep done in pending_done: the test calls it */
    uv_timer_t defer_timer;
    pw_sync_page_done_fn *pending_done;
    void *pending_arg;
    size_t requests_at_done; /* responder count seen when the deferred done ran */
    bool cycle_done;
    int cycle_err;
    unsigned cycle_failed;
    json_t *unreadable; /* "key|Type/id/vid|patient" per resource skipped as unreadable */
};

static inline int64_t sh_clock(void)
{
    return SH_NOW;
}

static inline int sh_cursor_load(void *arg, const struct pw_sync_source *src, char **out)
{
    struct sh *h = arg;
    const char *t = json_string_value(json_object_get(h->cursors, src->key));
    *out = t ? strdup(t) : NULL;
    return 0;
}

static inline void sh_on_deferred(uv_timer_t *t)
{
    struct sh *h = container_of(t, struct sh, defer_timer);
    pw_sync_page_done_fn *done = h->pending_done;
    h->pending_done = NULL;
    /* Nothing more was requested while the page was not durable. */
    h->requests_at_done = pwt_responder_count(h->r);
    done(h->pending_arg, 0);
}

static inline void sh_on_page(void *arg, const struct pw_sync_source *src, json_t *resources,
                              const char *cursor, pw_sync_page_done_fn *done, void *done_arg)
{
    struct sh *h = arg;
    size_t i;
    json_t *res;

    json_array_foreach(resources, i, res)
    {
        char line[512];
        snprintf(line, sizeof(line), "%s|%s/%s/%s", src->key,
                 json_string_value(json_object_get(res, "resourceType")),
                 json_string_value(json_object_get(res, "id")),
                 json_string_value(json_object_get(json_object_get(res, "meta"), "versionId")));
        json_array_append_new(h->delivered, json_string(line));
    }
    json_array_append_new(h->pages,
                          json_pack("{s:s, s:i, s:b}", "key", src->key, "n",
                                    (int)json_array_size(resources), "cursor", cursor != NULL));
    if (cursor && !h->page_error) {
        json_object_set_new(h->cursors, src->key, json_string(cursor));
    }
    json_decref(resources);
    if (h->hold) {
        h->pending_done = done;
        h->pending_arg = done_arg;
        return;
    }
    if (h->defer && !h->page_error) {
        assert_null(h->pending_done);
        h->pending_done = done;
        h->pending_arg = done_arg;
        uv_timer_start(&h->defer_timer, sh_on_deferred, 0, 0);
        return;
    }
    done(done_arg, h->page_error);
}

static inline void sh_on_unreadable(void *arg, const struct pw_sync_source *src,
                                    const struct pw_sync_unreadable *u)
{
    struct sh *h = arg;
    char line[512];
    snprintf(line, sizeof(line), "%s|%s/%s/%s|%s", src->key, u->type ? u->type : "-",
             u->id ? u->id : "-", u->version ? u->version : "-", u->patient ? u->patient : "-");
    json_array_append_new(h->unreadable, json_string(line));
}

static inline void sh_init(struct sh *h)
{
    memset(h, 0, sizeof(*h));
    assert_int_equal(uv_loop_init(&h->loop), 0);
    assert_int_equal(uv_timer_init(&h->loop, &h->defer_timer), 0);
    assert_int_equal(pw_http_new(&h->http, &h->loop), 0);
    h->r = pwt_responder_start(NULL);
    snprintf(h->base, sizeof(h->base), "%s/fhir", pwt_responder_url(h->r));
    h->cursors = json_object();
    h->delivered = json_array();
    h->pages = json_array();
    h->unreadable = json_array();
    struct pw_sync_consumer c = {.cursor_load = sh_cursor_load,
                                 .on_page = sh_on_page,
                                 .arg = h,
                                 .on_unreadable = sh_on_unreadable};
    assert_int_equal(pw_sync_new(&h->sync, &h->loop, h->http, &c), 0);
    pw_sync_set_clock(h->sync, sh_clock);
}

/* Register an HTTP server and give @p conf and h->sched their defaults (one stream at a time). */
static inline void sh_conf(struct sh *h, struct pw_fhir_search_conf *conf, const char *name,
                           const char *base, long timeout_ms, size_t body_max)
{
    struct pw_http_server srv = {
        .name = name, .origin = base, .timeout_ms = timeout_ms, .body_max = body_max};
    assert_int_equal(pw_http_server_add(h->http, &srv), 0);
    assert_int_equal(pw_fhir_search_conf_init(conf, name, base), 0);
    pw_sync_conf_init(&h->sched, name, base);
    h->sched.parallel = 1;
}

/* The FHIR search source built from @p conf (its typed configuration). */
static inline struct pw_source *sh_source(const struct pw_fhir_search_conf *conf)
{
    struct pw_source_env env = {.typed = conf};
    struct pw_source *src = NULL;
    char err[256] = "";
    if (pw_source_new(&src, &pw_source_fhir_search, &env, err, sizeof(err)) != 0) {
        fail_msg("source: %s", err);
    }
    return src;
}

/*
 * Server 0 of configuration @p yaml through the real config path (schema, typed view, the
 * source's init): its source into *out and its scheduling into @p sched (which borrows from
 * *conf: free that with pw_conf_free() after use).
 */
static inline void sh_source_yaml(const char *yaml, struct pw_conf **conf, struct pw_source **out,
                                  struct pw_sync_conf *sched)
{
    struct pw_conf_errors errs = {0};
    char err[256] = "";
    int rc = pw_conf_load_string(conf, "test.yaml", NULL, yaml, strlen(yaml), &errs);
    if (rc != 0) {
        fail_msg("config: %s", errs.n ? errs.lines[0] : pw_strerror(rc));
    }
    pw_conf_errors_cleanup(&errs);
    const struct pw_conf_daemon *cd = pw_conf_daemon(*conf);
    if (pw_source_from_conf(out, json_array_get(pw_conf_get(*conf, "servers"), 0), &cd->servers[0],
                            &cd->pain_codes, cd->sink.section, err, sizeof(err)) != 0) {
        fail_msg("source: %s", err);
    }
    pw_sync_conf_from_daemon(sched, &cd->servers[0]);
}

static inline void sh_add(struct sh *h, struct pw_fhir_search_conf *conf, const char *cohort_json,
                          struct pw_auth *auth)
{
    char err[256] = "";
    struct pw_cohort *c = NULL;
    json_t *cj = json_loads(cohort_json, 0, NULL);
    assert_non_null(cj);
    if (pw_cohort_new(&c, cj, err, sizeof(err)) != 0) {
        fail_msg("cohort: %s", err);
    }
    json_decref(cj);
    h->sched.name = conf->name;
    h->sched.base = conf->base;
    assert_int_equal(pw_sync_add_server(h->sync, &h->sched, sh_source(conf), c, auth), 0);
    pw_fhir_search_conf_cleanup(conf);
}

static inline void sh_on_cycle(void *arg, int err, unsigned failed)
{
    struct sh *h = arg;
    h->cycle_done = true;
    h->cycle_err = err;
    h->cycle_failed = failed;
}

/* One full cycle of every server; returns when the cycle callback ran. */
static inline void sh_run_once(struct sh *h)
{
    h->cycle_done = false;
    assert_int_equal(pw_sync_run_once(h->sync, sh_on_cycle, h), 0);
    assert_false(h->cycle_done); /* never synchronous */
    while (!h->cycle_done) {
        uv_run(&h->loop, UV_RUN_ONCE);
    }
}

static inline void sh_fini(struct sh *h)
{
    pw_sync_free(h->sync);
    pw_auth_free(h->auth);
    pw_http_free(h->http);
    uv_close((uv_handle_t *)&h->defer_timer, NULL);
    pwt_loop_close(&h->loop);
    pwt_responder_stop(h->r);
    json_decref(h->cursors);
    json_decref(h->delivered);
    json_decref(h->pages);
    json_decref(h->unreadable);
}

/* An Observation entry as JSON text. */
static inline json_t *sh_obs(const char *id, const char *vid, const char *lu)
{
    return json_pack("{s:{s:s, s:s, s:{s:s, s:s}, s:s}, s:{s:s}}", "resource", "resourceType",
                     "Observation", "id", id, "meta", "versionId", vid, "lastUpdated", lu, "status",
                     "final", "search", "mode", "match");
}

/* A MedicationRequest entry: @p status ("active", "completed"...), written at @p authored. */
static inline json_t *sh_med(const char *id, const char *vid, const char *lu, const char *status,
                             const char *authored)
{
    return json_pack("{s:{s:s, s:s, s:{s:s, s:s}, s:s, s:s, s:s}, s:{s:s}}", "resource",
                     "resourceType", "MedicationRequest", "id", id, "meta", "versionId", vid,
                     "lastUpdated", lu, "status", status, "intent", "order", "authoredOn", authored,
                     "search", "mode", "match");
}

/* A searchset Bundle with @p entries (stolen) and an optional next link. Caller frees. */
static inline char *sh_bundle(json_t *entries, const char *next)
{
    json_t *b = json_pack("{s:s, s:s, s:o}", "resourceType", "Bundle", "type", "searchset", "entry",
                          entries);
    if (next) {
        json_object_set_new(b, "link", json_pack("[{s:s, s:s}]", "relation", "next", "url", next));
    }
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return s;
}

static inline void sh_rule(struct sh *h, const char *path, const char *query, unsigned times,
                           int status, const char *headers, const char *body)
{
    struct pwt_rule rule = {.method = "GET",
                            .path = path,
                            .query = query,
                            .times = times,
                            .status = status,
                            .headers = headers,
                            .body = body};
    pwt_responder_add(h->r, &rule);
}

/* Does the delivered list hold exactly @p n entries and this one? */
static inline bool sh_delivered(struct sh *h, const char *line)
{
    size_t i;
    json_t *v;
    json_array_foreach(h->delivered, i, v)
    {
        if (strcmp(json_string_value(v), line) == 0) {
            return true;
        }
    }
    return false;
}

static inline const char *sh_query(struct sh *h, size_t i)
{
    return pwt_responder_request(h->r, i)->query;
}

static inline const char *sh_path(struct sh *h, size_t i)
{
    return pwt_responder_request(h->r, i)->path;
}

#endif
