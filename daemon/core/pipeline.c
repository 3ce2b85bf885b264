/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pipeline: sync pages -> store (one transaction per page, marking its patients due), then
 * at the end of a server's cycle normalize -> engine -> reconcile -> outbox rows (one transaction
 * per patient). Pure of the network: the outbox delivers what is committed here.
 */
#include "core/pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/outbox.h"
#include "core/reconcile.h"
#include "painwatch/audit.h"
#include "painwatch/engine.h"
#include "painwatch/err.h"
#include "painwatch/fhir.h"
#include "painwatch/log.h"
#include "painwatch/metrics.h"
#include "painwatch/normalize.h"
#include "painwatch/source.h"
#include "painwatch/store.h"

/*
 * A patient stays on the time-driven re-evaluation schedule while its timeline can still change
 * a finding as time passes: an active order, or an event newer than the longest look-back window
 * of any rule (palliative-referral-suggested looks 7 days back; one more day of margin).
 */
#define PIPELINE_HORIZON_S (8 * 24 * 3600)

/* Servers whose cycle is under way (pages seen, on_cycle_end not yet): the configuration allows 64.
 */
#define PIPELINE_SERVERS_MAX 64

struct pw_pipeline {
    struct pw_pipeline_conf conf;
    struct pw_pipeline_stats stats;
    char *open[PIPELINE_SERVERS_MAX];
};

static void cycle_mark(struct pw_pipeline *p, const char *server, bool open)
{
    size_t free_slot = PIPELINE_SERVERS_MAX;

    for (size_t i = 0; i < PIPELINE_SERVERS_MAX; i++) {
        if (p->open[i] && strcmp(p->open[i], server) == 0) {
            if (!open) {
                free(p->open[i]);
                p->open[i] = NULL;
            }
            return;
        }
        if (!p->open[i] && free_slot == PIPELINE_SERVERS_MAX) {
            free_slot = i;
        }
    }
    if (open && free_slot < PIPELINE_SERVERS_MAX) {
        p->open[free_slot] = strdup(server); /* NULL on ENOMEM: only the guard is lost */
    }
}

bool pw_pipeline_cycle_open(const struct pw_pipeline *p)
{
    for (size_t i = 0; i < PIPELINE_SERVERS_MAX; i++) {
        if (p->open[i]) {
            return true;
        }
    }
    return false;
}

static int64_t real_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ms(const struct pw_pipeline *p)
{
    return p->conf.clock_ms ? p->conf.clock_ms() : real_clock_ms();
}

int pw_pipeline_new(struct pw_pipeline **out, const struct pw_pipeline_conf *conf)
{
    struct pw_pipeline *p = calloc(1, sizeof(*p));

    if (!p) {
        return PW_ENOMEM;
    }
    p->conf = *conf;
    if (p->conf.reevaluate_ms <= 0) {
        p->conf.reevaluate_ms = 5 * 60 * 1000;
    }
    *out = p;
    return 0;
}

void pw_pipeline_free(struct pw_pipeline *p)
{
    if (!p) {
        return;
    }
    for (size_t i = 0; i < PIPELINE_SERVERS_MAX; i++) {
        free(p->open[i]);
    }
    free(p);
}

void pw_pipeline_stats(const struct pw_pipeline *p, struct pw_pipeline_stats *out)
{
    *out = p->stats;
}

/* ---- evaluation of one patient ---------------------------------------------------------- */

struct loaded {
    json_t *list; /* array of resources, store order */
    struct pw_fhir_index *idx;
};

static int on_stored_resource(void *arg, const struct pw_store_resource *res)
{
    struct loaded *ld = arg;
    json_error_t jerr;
    json_t *r = json_loadb(res->json, res->json_len, 0, &jerr);

    if (!r) {
        /* The store only keeps what parsed when it arrived: this is corruption, not input. */
        pw_log_err(STORE, "%s/%s: stored JSON unreadable: %s", res->type, res->id, jerr.text);
        return 0;
    }
    if (pw_fhir_index_add(ld->idx, NULL, r) < 0 || json_array_append_new(ld->list, r) < 0) {
        return PW_ENOMEM;
    }
    return 0;
}

/* Whether time alone can still change this patient's findings (see PIPELINE_HORIZON_S). */
static bool timeline_is_live(const struct pw_timeline *tl, int64_t now)
{
    int64_t since = now - PIPELINE_HORIZON_S;

    for (size_t i = 0; i < tl->orders.n; i++) {
        if (tl->orders.v[i].end >= since) {
            return true;
        }
    }
    for (size_t i = 0; i < tl->scores.n; i++) {
        if (tl->scores.v[i].at >= since) {
            return true;
        }
    }
    for (size_t i = 0; i < tl->pain_types.n; i++) {
        if (tl->pain_types.v[i].at >= since) {
            return true;
        }
    }
    return false;
}

/* An episode event about a flag painwatch holds (resolved, suppressed): rule, key, patient. */
static int audit_episode(struct pw_pipeline *p, const char *subtype, const char *desc,
                         const struct pw_flag_rec *flag)
{
    if (!p->conf.audit) {
        return 0;
    }
    return pw_audit_event(p->conf.audit, subtype, 'E', PW_AUDIT_SUCCESS, desc,
                          json_pack("{s:{s:s,s:s,s:s}}", "painwatch", "rule", flag->rule,
                                    "episode_key", flag->key, "patient", flag->patient));
}

static int audit_plan(struct pw_pipeline *p, const struct pw_rc_plan *plan)
{
    int rc = 0;

    for (size_t i = 0; i < plan->n && rc == 0; i++) {
        const struct pw_rc_item *it = &plan->v[i];
        switch (it->action) {
        case PW_RC_CREATE:
        case PW_RC_REACTIVATE:
            pw_metric_inc(PW_M_FINDINGS, it->finding->rule, NULL);
            rc = p->conf.audit
                     ? pw_audit_finding(p->conf.audit, "finding-raised", it->finding, NULL)
                     : 0;
            break;
        case PW_RC_RESOLVE:
            rc = audit_episode(p, "finding-resolved",
                               "the finding no longer holds; its Flag is resolved", it->flag);
            break;
        case PW_RC_SUPPRESSED:
            rc = audit_episode(p, "finding-suppressed",
                               "a clinician set this episode's Flag inactive; not re-created",
                               it->flag);
            break;
        case PW_RC_KEEP:
            break;
        }
    }
    return rc;
}

int pw_pipeline_evaluate_patient(struct pw_pipeline *p, const char *patient, int64_t now_s)
{
    struct loaded ld = {0};
    struct pw_timeline tl;
    struct pw_findings findings = {0};
    struct pw_flag_list flags = {0};
    struct pw_rc_plan plan = {0};
    struct pw_resolver resolver;
    size_t i;
    json_t *res;
    int rc;

    pw_timeline_init(&tl, patient);
    ld.list = json_array();
    rc = ld.list ? pw_fhir_index_new(&ld.idx) : PW_ENOMEM;
    if (rc == 0) {
        rc = pw_store_load_patient(p->conf.store, patient, on_stored_resource, &ld);
    }
    if (rc < 0) {
        goto out;
    }
    pw_fhir_index_resolver(ld.idx, &resolver);
    json_array_foreach(ld.list, i, res)
    {
        rc = pw_normalize_resource(p->conf.norm, res, &resolver, &tl);
        if (rc == PW_E2BIG) {
            pw_log_warn(CLIN, "%s: timeline over its cap; evaluated on what fits", patient);
            rc = 0;
            break;
        }
        if (rc < 0) {
            goto out;
        }
    }
    pw_timeline_sort(&tl);
    rc = pw_engine_eval(p->conf.engine, &tl, now_s, &findings);
    if (rc < 0) {
        /* A failing rule is logged by the engine; the others' findings still count. */
        rc = 0;
    }
    rc = pw_outbox_plan(p->conf.store, p->conf.sink, patient, findings.v, findings.n, now_s, &flags,
                        &plan);
    if (rc == 0) {
        rc = audit_plan(p, &plan);
    }
    if (rc == 0) {
        rc = pw_store_patient_schedule(
            p->conf.store, patient,
            timeline_is_live(&tl, now_s) ? now_s + p->conf.reevaluate_ms / 1000 : PW_TIME_NONE);
    }
    if (rc == 0) {
        p->stats.patients_evaluated++;
        p->stats.findings += findings.n;
        for (size_t k = 0; k < plan.n; k++) {
            if (plan.v[k].action != PW_RC_KEEP && plan.v[k].action != PW_RC_SUPPRESSED) {
                p->stats.flags_planned++;
            }
        }
    }
out:
    pw_rc_plan_cleanup(&plan);
    pw_flag_list_cleanup(&flags);
    pw_findings_cleanup(&findings);
    pw_timeline_cleanup(&tl);
    pw_fhir_index_free(ld.idx);
    json_decref(ld.list);
    return rc;
}

/* ---- sync consumer ---------------------------------------------------------------------- */

static int cursor_load(void *arg, const struct pw_sync_source *src, char **out)
{
    struct pw_pipeline *p = arg;
    char *buf = malloc(PW_SYNC_CURSOR_MAX);
    int rc;

    *out = NULL;
    if (!buf) {
        return PW_ENOMEM;
    }
    rc = pw_store_cursor_get(p->conf.store, src->key, buf, PW_SYNC_CURSOR_MAX);
    if (rc == PW_ENOENT) {
        free(buf);
        return 0;
    }
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    return 0;
}

/* A small set of patient references touched by one page (pages hold one patient usually). */
struct touched {
    char (*v)[PW_REF_MAX];
    size_t n, cap;
};

static int touched_add(struct touched *t, const char *patient)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->v[i], patient) == 0) {
            return 0;
        }
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        void *v = realloc(t->v, cap * sizeof(*t->v));
        if (!v) {
            return PW_ENOMEM;
        }
        t->v = v;
        t->cap = cap;
    }
    snprintf(t->v[t->n++], PW_REF_MAX, "%s", patient);
    return 0;
}

static int store_one(struct pw_pipeline *p, const struct pw_sync_source *src, json_t *res,
                     struct touched *touched, int64_t *max_updated)
{
    const char *type = pw_fhir_str(res, "resourceType");
    const char *id = pw_fhir_str(res, "id");
    const json_t *meta = json_object_get(res, "meta");
    const char *version = meta ? pw_fhir_str(meta, "versionId") : NULL;
    const char *lu = meta ? pw_fhir_str(meta, "lastUpdated") : NULL;
    char patient[PW_REF_MAX];
    struct pw_store_resource sr;
    bool changed = false;
    char *json;
    int rc;

    if (!type || !id) {
        pw_log_warn(SYNC, "%s: resource without type or id skipped", src->key);
        return 0;
    }
    if (strcmp(type, "Flag") == 0) {
        /* painwatch's own Flags read back: a clinician's inactive or entered-in-error stands. */
        return pw_outbox_observe_flag(p->conf.store, p->conf.identifier_system, res);
    }
    if (src->patient) {
        snprintf(patient, sizeof(patient), "Patient/%s", src->patient);
    } else if (pw_normalize_patient(res, NULL, patient, sizeof(patient)) < 0) {
        pw_log_debug(SYNC, "%s/%s: no patient; not kept", type, id);
        return 0;
    }
    json = json_dumps(res, JSON_COMPACT);
    if (!json) {
        return PW_ENOMEM;
    }
    memset(&sr, 0, sizeof(sr));
    sr.type = type;
    sr.id = id;
    sr.version = version ? version : "";
    sr.last_updated = PW_TIME_NONE;
    if (lu) {
        int64_t t;
        if (pw_fhir_parse_time(lu, &t) == 0) {
            sr.last_updated = t;
            if (*max_updated == PW_TIME_NONE || t > *max_updated) {
                *max_updated = t;
            }
        }
    }
    sr.patient = patient;
    sr.json = json;
    sr.json_len = strlen(json);
    rc = pw_store_put_resource(p->conf.store, &sr, &changed);
    free(json);
    if (rc == 0 && changed) {
        rc = touched_add(touched, patient);
    }
    return rc;
}

/*
 * One page, one transaction. With @p batched, the page's audit records (the search, every
 * finding raised) go to the trail as one batch: one write and one fsync per page instead of one
 * per record, committed before the store (audit before effect).
 */
static int process_page_once(struct pw_pipeline *p, const struct pw_sync_source *src,
                             json_t *resources, const char *cursor, bool batched)
{
    struct touched touched = {0};
    int64_t now_s = now_ms(p) / 1000;
    int64_t max_updated = PW_TIME_NONE;
    size_t i;
    json_t *res;
    int rc = pw_store_begin(p->conf.store);

    if (rc < 0) {
        return rc;
    }
    batched = batched && p->conf.audit && pw_audit_batch_begin(p->conf.audit) == 0;
    if (p->conf.audit) {
        /* What painwatch read about whom, before it is acted upon (audit before effect). */
        char query[PW_REF_MAX + 64];
        char patient[PW_REF_MAX];
        struct pw_audit_fhir ix = {
            .interaction = "search",
            .server = src->server,
            .method = "GET",
            .url = query,
            .status = 200,
            .patient = src->patient ? patient : NULL,
            .entries = (long)json_array_size(resources),
        };
        snprintf(patient, sizeof(patient), "Patient/%s", src->patient ? src->patient : "");
        snprintf(query, sizeof(query), "%s?%s%s", src->type, src->patient ? "patient=" : "",
                 src->patient ? src->patient : "");
        rc = pw_audit_fhir_interaction(p->conf.audit, &ix);
        if (rc < 0) {
            goto fail;
        }
    }
    json_array_foreach(resources, i, res)
    {
        rc = store_one(p, src, res, &touched, &max_updated);
        if (rc < 0) {
            goto fail;
        }
    }
    /*
     * The touched patients are marked due now, durably with the page; they are evaluated at the
     * end of the server's cycle (on_cycle_end), once, on every resource type. Evaluating here,
     * per page, would judge a patient whose Conditions or orders have not arrived yet (they come
     * in other streams) and raise Flags that vanish minutes later. A crash in between leaves
     * the mark, and the next start evaluates the patient.
     */
    for (i = 0; i < touched.n; i++) {
        rc = pw_store_patient_schedule(p->conf.store, touched.v[i], now_s);
        if (rc < 0) {
            goto fail;
        }
    }
    if (cursor) {
        rc = pw_store_cursor_set(p->conf.store, src->key, cursor);
        if (rc < 0) {
            goto fail;
        }
    }
    if (batched) {
        batched = false;
        rc = pw_audit_batch_commit(p->conf.audit);
        if (rc < 0) {
            goto fail;
        }
    }
    rc = pw_store_commit(p->conf.store);
    free(touched.v);
    if (rc == 0) {
        p->stats.pages++;
        p->stats.resources += json_array_size(resources);
        pw_metric_add(PW_M_INGESTED, (double)json_array_size(resources), src->server, src->type,
                      NULL);
        if (cursor) {
            /* The final page of a completed run: this stream is current as of now. */
            pw_metric_set(PW_M_SYNC_LAST_SUCCESS, (double)now_s, src->server, NULL);
        }
        if (max_updated != PW_TIME_NONE) {
            pw_metric_set(PW_M_SYNC_LAG, (double)(now_s - max_updated), src->server, src->type,
                          NULL);
        }
    }
    return rc;
fail:
    if (batched) {
        /* What was read is recorded even though the page repeats (as without a batch). */
        pw_audit_batch_commit(p->conf.audit);
    }
    pw_store_rollback(p->conf.store);
    free(touched.v);
    return rc;
}

static int process_page(struct pw_pipeline *p, const struct pw_sync_source *src, json_t *resources,
                        const char *cursor)
{
    int rc = process_page_once(p, src, resources, cursor, true);

    if (rc == PW_E2BIG) {
        /* The page's records overflow one audit batch (PW_AUDIT_BATCH_MAX): one fsync each. */
        rc = process_page_once(p, src, resources, cursor, false);
    }
    return rc;
}

static void on_page(void *arg, const struct pw_sync_source *src, json_t *resources,
                    const char *cursor, pw_sync_page_done_fn *done, void *done_arg)
{
    struct pw_pipeline *p = arg;
    int rc;

    cycle_mark(p, src->server, true);
    rc = process_page(p, src, resources, cursor);

    if (rc < 0) {
        p->stats.page_failures++;
        pw_log_err(STORE, "%s: page not committed (%s); the run repeats it", src->key,
                   pw_strerror(rc));
    }
    json_decref(resources);
    done(done_arg, rc);
}

static void on_cycle_end(void *arg, const char *server, int err)
{
    struct pw_pipeline *p = arg;
    size_t n = 0;

    cycle_mark(p, server, false);
    (void)err; /* a failed cycle still evaluates what its committed pages brought */
    pw_pipeline_reevaluate_due(p, &n);
    if (n > 0) {
        pw_log_info(CLIN, "evaluated %zu patient(s) after a sync cycle", n);
    }
}

void pw_pipeline_consumer(struct pw_pipeline *p, struct pw_sync_consumer *out)
{
    memset(out, 0, sizeof(*out));
    out->cursor_load = cursor_load;
    out->on_page = on_page;
    out->on_cycle_end = on_cycle_end;
    out->arg = p;
}

/* ---- time-driven re-evaluation ------------------------------------------------------------ */

static int on_due(void *arg, const char *patient)
{
    return touched_add((struct touched *)arg, patient);
}

int pw_pipeline_reevaluate_due(struct pw_pipeline *p, size_t *n_out)
{
    struct touched due = {0};
    int64_t now_s = now_ms(p) / 1000;
    size_t done = 0;
    int first = 0;
    int rc;

    /* Collect first: the walk must not interleave with the writes of the evaluations. */
    rc = pw_store_patients_due(p->conf.store, now_s, 0, on_due, &due);
    if (rc < 0) {
        free(due.v);
        return rc;
    }
    for (size_t i = 0; i < due.n; i++) {
        rc = pw_store_begin(p->conf.store);
        if (rc == 0) {
            rc = pw_pipeline_evaluate_patient(p, due.v[i], now_s);
            if (rc == 0) {
                rc = pw_store_commit(p->conf.store);
            } else {
                pw_store_rollback(p->conf.store);
            }
        }
        if (rc < 0) {
            pw_log_err(CLIN, "%s: time-driven evaluation failed: %s", due.v[i], pw_strerror(rc));
            if (first == 0) {
                first = rc;
            }
            continue;
        }
        done++;
    }
    free(due.v);
    if (n_out) {
        *n_out = done;
    }
    if (done > 0 && p->conf.outbox) {
        pw_outbox_kick(p->conf.outbox);
    }
    return first;
}
