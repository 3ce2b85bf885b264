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
#include "painwatch/array.h"
#include "painwatch/audit.h"
#include "painwatch/engine.h"
#include "painwatch/err.h"
#include "painwatch/evaluate.h"
#include "painwatch/fhir.h"
#include "painwatch/log.h"
#include "painwatch/metrics.h"
#include "painwatch/normalize.h"
#include "painwatch/store.h"
#include "painwatch/sync.h"

/* Servers whose cycle is under way (pages seen, on_cycle_end not yet): the configuration allows 64.
 */
#define PIPELINE_SERVERS_MAX 64

/* Patients remembered as marked due in this cycle (~100 bytes each); past it, forgotten. */
#define PIPELINE_MARKED_MAX 16384

/* The meta key under which the store remembers the normalization its events were derived by. */
#define PIPELINE_META_NORM "events-norm"

struct pw_pipeline {
    struct pw_pipeline_conf conf;
    struct pw_pipeline_stats stats;
    char *open[PIPELINE_SERVERS_MAX];
    char norm[PW_NORM_DIGEST_MAX]; /* pw_norm_ctx_digest of conf.norm */
    /*
     * Patients marked due by a page since the last evaluation pass: a later page touching one
     * again need not write the same mark (server-wide pages meet each patient in every
     * resource type's stream). Forgotten at every evaluation pass, which may move marks.
     */
    json_t *marked;
    struct pw_timeline scratch; /* one resource's events while a page is stored */
    struct pw_bytes enc;        /* their encoding */
    /*
     * Issue 19: what each server's open cycle has read, audited as one record at its end
     * (reads_flush): {"<server>": {"queries": {...}, "streams": {...}, "patients": {...},
     * "ids": [...], "pages": n, "entries": n}}.
     */
    json_t *reads;
    /* issue 17: "<type>|Patient/<id>" (per-patient stream) or "<type>|*" (server-wide) -> the
     * HTTP status that refused it, until a run of that stream completes */
    json_t *refused;
    /* data-quality events recorded by the open evaluation transaction, code -> count: added to
     * PW_M_DATA_QUALITY when it commits, forgotten when it rolls back */
    json_t *dq_counts;
    bool refused_patient; /* a per-patient key was ever set in refused */
};

/* A cycle's record is written early (and a new one begun) past this many ids: bounded memory. */
#define PIPELINE_READS_MAX 5000

static int merge_staged(struct pw_pipeline *p);

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

/*
 * Stored resources hold events derived by one normalization (terminology tables, factor set,
 * code sets, release). When it changed, every cursor is reset: the next cycle re-reads the
 * look-back window from the servers and each copy replaces its stale row (put_resource replaces
 * a row of another digest). Until then stale rows still count, so no Flag is resolved for want
 * of data in between.
 */
static int norm_check(struct pw_pipeline *p)
{
    char stored[PW_NORM_DIGEST_MAX] = "";
    int rc = pw_store_meta_get(p->conf.store, PIPELINE_META_NORM, stored, sizeof(stored));

    if (rc == 0 && strcmp(stored, p->norm) == 0) {
        return 0;
    }
    if (rc < 0 && rc != PW_ENOENT && rc != PW_E2BIG) {
        return rc;
    }
    if (rc < 0) {
        stored[0] = '\0'; /* none yet (a new store, or one from before digests) */
    }
    rc = pw_store_begin(p->conf.store);
    if (rc < 0) {
        return rc;
    }
    rc = pw_store_cursors_reset(p->conf.store);
    if (rc == 0) {
        rc = pw_store_meta_set(p->conf.store, PIPELINE_META_NORM, p->norm);
    }
    if (rc == 0) {
        rc = pw_store_commit(p->conf.store);
    } else {
        pw_store_rollback(p->conf.store);
    }
    if (rc == 0 && stored[0]) {
        pw_log_notice(STORE, "normalization %.12s (was %.12s): every stream re-syncs its look-back",
                      p->norm, stored);
    }
    return rc;
}

int pw_pipeline_new(struct pw_pipeline **out, const struct pw_pipeline_conf *conf)
{
    struct pw_pipeline *p = calloc(1, sizeof(*p));
    int rc;

    if (!p) {
        return PW_ENOMEM;
    }
    p->conf = *conf;
    if (p->conf.reevaluate_ms <= 0) {
        p->conf.reevaluate_ms = 5 * 60 * 1000;
    } else if (p->conf.reevaluate_ms < 1000) {
        p->conf.reevaluate_ms = 1000; /* a re-evaluated patient must leave the current second */
    }
    pw_timeline_init(&p->scratch, NULL);
    p->marked = json_object();
    p->reads = json_object();
    p->refused = json_object();
    p->dq_counts = json_object();
    rc = !p->marked || !p->refused || !p->dq_counts ? PW_ENOMEM
         : p->conf.norm                             ? pw_norm_ctx_digest(p->conf.norm, p->norm)
                                                    : PW_EINVAL;
    if (rc == 0 && p->conf.store) {
        rc = norm_check(p);
    }
    if (rc == 0 && p->conf.store && !pw_store_keeps_dq(p->conf.store)) {
        pw_log_warn(STORE,
                    "store backend %s keeps no data-quality state: data-quality events are "
                    "not recorded in the audit trail",
                    p->conf.store->ops->adapter.name);
    }
    if (rc == 0 && p->conf.store) {
        /* Rows a previous run staged and did not merge are merged before any page or
         * evaluation. When that fails (logged), the store stages later pages behind them, so
         * copies keep their order, and the next merge tries again. */
        merge_staged(p);
    }
    if (rc < 0) {
        pw_pipeline_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* ---- what a cycle read (issue 19) ------------------------------------------------------- */

static json_t *obj_child(json_t *parent, const char *key)
{
    json_t *o = json_object_get(parent, key);

    if (!o) {
        o = json_object();
        json_object_set_new(parent, key, o);
    }
    return o;
}

static void count_add(json_t *obj, const char *key, json_int_t n)
{
    json_object_set_new(obj, key, json_integer(json_integer_value(json_object_get(obj, key)) + n));
}

/* Audit what @p server's cycle read (one record) and forget it. */
static void reads_flush(struct pw_pipeline *p, const char *server, int err)
{
    json_t *r = json_object_get(p->reads, server);
    json_t *patients;
    const char *key;
    json_t *v;
    int rc;

    if (!r || !p->conf.audit) {
        json_object_del(p->reads, server);
        return;
    }
    patients = json_array();
    json_object_foreach(json_object_get(r, "patients"), key, v)
    {
        json_array_append_new(patients, json_string(key));
    }
    rc = pw_audit_search_cycle(p->conf.audit, server, json_incref(obj_child(r, "queries")),
                               patients, json_incref(json_object_get(r, "ids")),
                               (long)json_integer_value(json_object_get(r, "pages")),
                               (long)json_integer_value(json_object_get(r, "entries")), err);
    if (rc < 0) {
        pw_log_err(AUDIT, "server %s: the cycle's search record not written: %s", server,
                   pw_strerror(rc));
    }
    json_object_del(p->reads, server);
}

/* A committed page of @p src: its query shape, patient and resource ids join the cycle's. */
static void reads_add(struct pw_pipeline *p, const struct pw_sync_source *src,
                      const json_t *resources, const char *const *tid)
{
    char shape[PW_REF_MAX + 64];
    char patient[PW_REF_MAX];
    json_t *r;
    json_t *ids;
    json_t *q;
    json_t *res;
    size_t i;

    if (!p->conf.audit) {
        return;
    }
    r = obj_child(p->reads, src->server);
    ids = json_object_get(r, "ids");
    if (!ids) {
        ids = json_array();
        json_object_set_new(r, "ids", ids);
    }
    /* BALP query shape: the search, its patient parameter abstracted. */
    snprintf(shape, sizeof(shape), "%s%s", src->type, src->patient ? "?patient={id}" : "");
    q = obj_child(obj_child(r, "queries"), shape);
    if (!json_object_get(obj_child(r, "streams"), src->key)) {
        json_object_set_new(obj_child(r, "streams"), src->key, json_true());
        count_add(q, "searches", 1);
    }
    count_add(q, "pages", 1);
    count_add(q, "entries", (json_int_t)json_array_size(resources));
    count_add(r, "pages", 1);
    count_add(r, "entries", (json_int_t)json_array_size(resources));
    if (src->patient && json_array_size(resources) > 0) {
        snprintf(patient, sizeof(patient), "Patient/%s", src->patient);
        json_object_set_new(obj_child(r, "patients"), patient, json_true());
    }
    json_t *patients = NULL; /* r's "patients", made on first use */
    const char *last = NULL; /* a page's resources mostly come a patient at a time */
    json_array_foreach(resources, i, res)
    {
        /* @p tid: each resource's type and id as store_one() read them, when there */
        const char *type =
            tid ? tid[2 * i] : json_string_value(json_object_get(res, "resourceType"));
        const char *id = tid ? tid[2 * i + 1] : json_string_value(json_object_get(res, "id"));
        const char *subject =
            src->patient
                ? NULL
                : json_string_value(json_object_get(json_object_get(res, "subject"), "reference"));
        char ref[PW_REF_MAX];

        if (type && id) {
            size_t tn = strlen(type);
            size_t in = strlen(id);
            pw_fhir_join(ref, sizeof(ref), type, "/", id);
            /* Two strings jansson parsed (valid UTF-8) and a '/' need no second check unless
             * cut to fit, when json_string() refuses a split character as before. */
            json_array_append_new(ids, tn + 1 + in < sizeof(ref)
                                           ? json_stringn_nocheck(ref, tn + 1 + in)
                                           : json_string(ref));
        }
        if (subject && strncmp(subject, "Patient/", 8) == 0 &&
            !(last && strcmp(last, subject) == 0)) {
            if (!patients) {
                patients = obj_child(r, "patients");
            }
            if (!json_object_get(patients, subject)) { /* a lookup is cheaper than a set */
                json_object_set_new(patients, subject, json_true());
            }
            last = subject;
        }
    }
    if (json_array_size(ids) > PIPELINE_READS_MAX) {
        reads_flush(p, src->server, 0); /* a long catch-up: one record per few thousand reads */
    }
}

void pw_pipeline_free(struct pw_pipeline *p)
{
    if (!p) {
        return;
    }
    for (size_t i = 0; i < PIPELINE_SERVERS_MAX; i++) {
        free(p->open[i]);
    }
    pw_timeline_cleanup(&p->scratch);
    pw_bytes_cleanup(&p->enc);
    json_decref(p->marked);
    if (p->conf.audit) {
        /* A stop mid-cycle: what was read so far is recorded all the same. */
        const char *server;
        json_t *r;
        void *tmp;
        json_object_foreach_safe(p->reads, tmp, server, r)
        {
            reads_flush(p, server, PW_ECANCELED);
        }
    }
    json_decref(p->reads);
    json_decref(p->refused);
    json_decref(p->dq_counts);
    free(p);
}

void pw_pipeline_stats(const struct pw_pipeline *p, struct pw_pipeline_stats *out)
{
    *out = p->stats;
}

/* ---- evaluation of one patient ---------------------------------------------------------- */

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
            rc = p->conf.audit ? pw_audit_finding_via(p->conf.audit, "finding-raised", it->finding,
                                                      NULL, p->conf.sink->ops->adapter.name)
                               : 0;
            break;
        case PW_RC_NOT_POSTED: /* issue 21: audit trail (and reports) only */
            rc = p->conf.audit ? pw_audit_finding_via(p->conf.audit, "finding-not-posted",
                                                      it->finding, NULL, "audit-only")
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

/* ---- data-quality events: recorded once per episode ------------------------------------ */

/* A data-quality event's identity across evaluations: "<code> <Type>/<id>" (its detail and the
 * resource's version may change while it stands). */
#define DQ_KEY_MAX (sizeof(((struct pw_dq_event *)0)->code) + sizeof(struct pw_ref) + 4)

static void dq_key(const struct pw_dq_event *ev, char *out, size_t cap)
{
    snprintf(out, cap, "%s %s/%s", ev->code, ev->src.type, ev->src.id);
}

/* Codes are painwatch's own words ("unit-not-convertible"); anything else is "other", so a
 * label never carries what came from the EHR. */
static const char *dq_label(const char *code)
{
    size_t n = 0;

    for (const char *c = code; *c; c++, n++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-')) {
            return "other";
        }
    }
    return n > 0 && n < 40 ? code : "other";
}

static int dq_collect(void *arg, const char *key)
{
    json_t **was = arg;

    if (!*was && !(*was = json_object())) {
        return PW_ENOMEM;
    }
    return json_object_set_new_nocheck(*was, key, json_true()) ? PW_ENOMEM : 0;
}

/* The pipeline's transaction ended: count what it recorded (@p committed) or forget it. */
static void dq_counts_flush(struct pw_pipeline *p, bool committed)
{
    const char *code;
    json_t *n;

    if (committed) {
        json_object_foreach(p->dq_counts, code, n)
        {
            pw_metric_add(PW_M_DATA_QUALITY, (double)json_integer_value(n), code, NULL);
        }
    }
    json_object_clear(p->dq_counts);
}

/*
 * Whether @p ev is about this patient's record. Not: out of scope (a population decision the
 * record's conditions show) and rules off only because the configuration does not sync a type
 * (one fact for every patient, in `painwatch config check` and the log); yes: rules off because
 * a read was refused (401/403) or has not completed for this patient.
 */
static bool dq_of_the_record(const struct pw_dq_event *ev, const struct pw_synced *synced)
{
    if (strcmp(ev->code, PW_DQ_OUT_OF_SCOPE) == 0) {
        return false;
    }
    if (strcmp(ev->code, PW_DQ_RULES_OFF) == 0) {
        return (synced->refused | synced->unread) != 0;
    }
    return true;
}

/*
 * Record the data-quality events of @p tl that were not standing at the last evaluation (one
 * "data-quality" audit record each, and their keys in the store), and forget the keys of those
 * gone, so that an event that comes back is recorded again. Inside the evaluation's transaction.
 */
static int dq_record(struct pw_pipeline *p, const char *patient, const struct pw_timeline *tl,
                     const struct pw_synced *synced)
{
    json_t *was = NULL;
    json_t *now = NULL;
    char key[DQ_KEY_MAX];
    int rc;

    if (!pw_store_keeps_dq(p->conf.store)) {
        return 0; /* warned at pw_pipeline_new() */
    }
    rc = pw_store_dq_of_patient(p->conf.store, patient, dq_collect, &was);

    if (rc == 0 && tl->dq.n > 0 && !(now = json_object())) {
        rc = PW_ENOMEM;
    }
    for (size_t i = 0; i < tl->dq.n && rc == 0; i++) {
        const struct pw_dq_event *ev = &tl->dq.v[i];
        if (!dq_of_the_record(ev, synced)) {
            continue;
        }
        dq_key(ev, key, sizeof(key));
        if (json_object_get(now, key)) {
            continue; /* the same event twice (two parts of one order) */
        }
        if (json_object_set_new_nocheck(now, key, json_true())) {
            rc = PW_ENOMEM;
            break;
        }
        if (json_object_get(was, key)) {
            continue; /* it stands: recorded when it began */
        }
        rc = p->conf.audit ? pw_audit_data_quality(p->conf.audit, patient, ev) : 0;
        if (rc == 0) {
            rc = pw_store_dq_set(p->conf.store, patient, key, true);
        }
        if (rc == 0) {
            const char *label = dq_label(ev->code);
            json_t *c = json_object_get(p->dq_counts, label);
            json_object_set_new(p->dq_counts, label,
                                json_integer(c ? json_integer_value(c) + 1 : 1));
            /* no patient data in the log: the code and the resource only */
            pw_log_debug(CLIN, "data-quality event %s on %s/%s recorded", label, ev->src.type,
                         strcmp(ev->src.type, "Patient") == 0 ? "-" : ev->src.id);
        }
    }
    const char *k;
    json_t *v;
    json_object_foreach(was, k, v)
    {
        if (rc == 0 && !json_object_get(now, k)) {
            rc = pw_store_dq_set(p->conf.store, patient, k, false); /* gone: its episode ends */
        }
    }
    json_decref(was);
    json_decref(now);
    return rc;
}

/* The types synced and readable for @p patient: the configured ones less the refused. */
void pw_pipeline_synced_for(const struct pw_pipeline *p, const char *patient, struct pw_synced *out)
{
    *out = p->conf.synced;
    if (!out->known || json_object_size(p->refused) == 0) {
        return;
    }
    for (unsigned i = 0; i < PW_RES_COUNT; i++) {
        char key[PW_REF_MAX + 48];
        const char *type = pw_res_type_name(1u << i);
        const json_t *mine = NULL;
        if (p->refused_patient) {
            pw_fhir_join(key, sizeof(key), type, "|", patient);
            mine = json_object_get(p->refused, key);
        }
        pw_fhir_join(key, sizeof(key), type, "|*", NULL);
        const json_t *all = json_object_get(p->refused, key);
        const json_t *why = mine ? mine : all;
        if (why != NULL) {
            out->synced &= ~(1u << i);
            if (json_integer_value(why) == PW_SYNC_TYPE_UNREAD) {
                out->unread |= 1u << i; /* bug N1: its first run failed */
            } else if (json_integer_value(why) < 0) {
                out->unadvertised |= 1u << i; /* status -1: /metadata does not offer it */
            } else {
                out->refused |= 1u << i;
            }
        }
    }
}

int pw_pipeline_evaluate_patient(struct pw_pipeline *p, const char *patient, int64_t now_s)
{
    struct pw_timeline tl;
    struct pw_synced synced;
    struct pw_findings findings = {0};
    struct pw_flag_list flags = {0};
    struct pw_rc_plan plan = {0};
    int rc;

    pw_timeline_init(&tl, patient);
    json_object_del(p->marked, patient); /* its mark moves below: a page writes it again */
    rc = pw_eval_timeline_load(p->conf.store, p->conf.norm, patient, &tl);
    if (rc < 0) {
        goto out;
    }
    pw_pipeline_synced_for(p, patient, &synced);
    /* A failing rule is logged by the engine; the others' findings still count. */
    rc = pw_evaluate(p->conf.engine, &tl, &synced, now_s, &findings, NULL);
    if (rc < 0) {
        goto out;
    }
    rc = dq_record(p, patient, &tl, &synced);
    if (rc < 0) {
        goto out;
    }
    rc = pw_outbox_plan(p->conf.store, p->conf.sink, patient, findings.v, findings.n, now_s, &flags,
                        &plan);
    if (rc == 0) {
        rc = audit_plan(p, &plan);
    }
    if (rc == 0) {
        rc = pw_store_patient_schedule(p->conf.store, patient,
                                       pw_eval_next_due(&tl, now_s, p->conf.reevaluate_ms / 1000));
    }
    if (rc == 0) {
        p->stats.patients_evaluated++;
        p->stats.findings += findings.n;
        for (size_t k = 0; k < plan.n; k++) {
            if (plan.v[k].action != PW_RC_KEEP && plan.v[k].action != PW_RC_SUPPRESSED &&
                plan.v[k].action != PW_RC_NOT_POSTED) {
                p->stats.flags_planned++;
            }
        }
    }
out:
    if (p->conf.store->depth == 0) {
        dq_counts_flush(p, rc == 0); /* no transaction around: its writes stand as they are */
    }
    pw_rc_plan_cleanup(&plan);
    pw_flag_list_cleanup(&flags);
    pw_findings_cleanup(&findings);
    pw_timeline_cleanup(&tl);
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

/*
 * Patient references touched by one page: appended as they come (the last one is skipped when
 * repeated, the usual per-patient page), made unique once by touched_unique(). A server-wide
 * page of 1000 entries touches up to 1000 patients: a scan per add would be quadratic.
 */
struct touched {
    char (*v)[PW_REF_MAX];
    size_t n, cap;
};

static int touched_add(struct touched *t, const char *patient)
{
    if (t->n > 0 && strcmp(t->v[t->n - 1], patient) == 0) {
        return 0;
    }
    if (PW_ARRAY_GROW(t) != 0) {
        return PW_ENOMEM;
    }
    pw_fhir_copy(t->v[t->n++], PW_REF_MAX, patient);
    return 0;
}

static int cmp_ref_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void touched_unique(struct touched *t)
{
    size_t w = 0;

    if (t->n < 2) {
        return;
    }
    qsort(t->v, t->n, sizeof(*t->v), cmp_ref_str);
    for (size_t i = 0; i < t->n; i++) {
        if (w == 0 || strcmp(t->v[w - 1], t->v[i]) != 0) {
            memmove(t->v[w++], t->v[i], sizeof(*t->v));
        }
    }
    t->n = w;
}

/*
 * References between the page's resources (a Medication brought by _include next to its
 * MedicationRequest): indexed on first use, most pages never need it.
 */
struct page_refs {
    json_t *resources;
    struct pw_fhir_index *idx;
    bool failed;
};

static const json_t *page_resolve(const struct pw_resolver *self, const char *reference)
{
    struct page_refs *pr = self->arg;
    size_t i;
    json_t *res;

    if (!pr->idx && !pr->failed) {
        pr->failed = pw_fhir_index_new(&pr->idx) < 0;
        json_array_foreach(pr->resources, i, res)
        {
            if (pr->failed || pw_fhir_index_add(pr->idx, NULL, res) < 0) {
                pr->failed = true; /* unresolved: the order gets its data-quality event */
            }
        }
    }
    return pr->failed ? NULL : pw_fhir_index_get(pr->idx, reference);
}

/* Normalize @p res once, now, into p->enc (the events the store keeps for every evaluation). */
static int encode_events(struct pw_pipeline *p, const json_t *res, const char *type,
                         const struct pw_ref *ref, struct page_refs *refs, const char *patient)
{
    struct pw_resolver resolver = {.resolve = page_resolve, .arg = refs};
    int rc;

    pw_timeline_clear(&p->scratch);
    pw_fhir_copy(p->scratch.patient, sizeof(p->scratch.patient), patient);
    rc = pw_normalize_resource_of(p->conf.norm, res, type, ref, &resolver, &p->scratch);
    if (rc == PW_E2BIG) {
        rc = 0; /* one resource over the per-patient cap: keep what fits */
    }
    return rc < 0 ? rc : pw_timeline_encode(&p->scratch, &p->enc);
}

static int store_one(struct pw_pipeline *p, const struct pw_sync_source *src, json_t *res,
                     struct page_refs *refs, struct touched *touched, int64_t *max_updated,
                     const char **tid)
{
    const char *type = pw_fhir_str(res, "resourceType");
    const char *id = pw_fhir_str(res, "id");

    if (tid) {
        tid[0] = type; /* for reads_add() */
        tid[1] = id;
    }
    const json_t *meta = json_object_get(res, "meta");
    const char *version = meta ? pw_fhir_str(meta, "versionId") : NULL;
    const char *lu = meta ? pw_fhir_str(meta, "lastUpdated") : NULL;
    char patient[PW_REF_MAX];
    struct pw_store_resource sr;
    bool changed = false;
    int rc;

    if (!type || !id) {
        pw_log_warn(SYNC, "%s: resource without type or id skipped", src->key);
        return 0;
    }
    if (pw_sink_for_resource(type)) {
        /* painwatch's own Flags and DetectedIssues read back: a clinician's inactive, status
         * change, mitigation or entered-in-error stands. */
        return pw_outbox_observe_flag(p->conf.store, p->conf.identifier_system, res);
    }
    if (src->patient) {
        snprintf(patient, sizeof(patient), "Patient/%s", src->patient);
    } else if (pw_normalize_patient_of(res, type, id, NULL, patient, sizeof(patient)) < 0) {
        pw_log_debug(SYNC, "%s/%s: no patient; not kept", type, id);
        return 0;
    }
    struct pw_ref ref; /* pw_fhir_ref_of(res), from what was read above */
    pw_fhir_copy(ref.type, sizeof(ref.type), type);
    pw_fhir_copy(ref.id, sizeof(ref.id), id);
    pw_fhir_copy(ref.version, sizeof(ref.version), version);
    rc = encode_events(p, res, type, &ref, refs, patient);
    if (rc < 0) {
        return rc;
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
    sr.norm = p->norm;
    sr.events = p->enc.v;
    sr.events_len = p->enc.n;
    /* Put, or staged by the store's policy: then its patient is marked when the merge finds
     * that it changed something (on_merged). */
    rc = pw_store_ingest_resource(p->conf.store, &sr, &changed);
    if (rc == 0 && changed) {
        rc = touched_add(touched, patient);
    }
    return rc;
}

/* ---- merging what the store staged ------------------------------------------------------- */

struct merge_marks {
    struct pw_pipeline *p;
    int64_t now_s;
    char last[PW_REF_MAX];
};

/*
 * A patient whose stored resources changed: due now (calls come in patient order). NULL starts
 * a chunk (its own transaction): what an earlier, rolled-back chunk named is void.
 */
static int on_merged(void *arg, const char *patient)
{
    struct merge_marks *m = arg;

    if (!patient) {
        m->now_s = now_ms(m->p) / 1000;
        m->last[0] = '\0';
        return 0;
    }
    if (strcmp(m->last, patient) == 0 || json_object_get(m->p->marked, patient)) {
        return 0;
    }
    snprintf(m->last, sizeof(m->last), "%s", patient);
    return pw_store_patient_due_by(m->p->conf.store, patient, m->now_s);
}

/*
 * Merge everything the store staged, marking the patients whose stored resources changed (as a
 * page does when it puts them). The store keeps a failed chunk staged for the next merge.
 */
static int merge_staged(struct pw_pipeline *p)
{
    struct merge_marks m = {.p = p};

    return pw_store_merge_all(p->conf.store, on_merged, &m, NULL);
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
    struct page_refs refs = {.resources = resources};
    int64_t now_s = now_ms(p) / 1000;
    int64_t max_updated = PW_TIME_NONE;
    size_t i;
    json_t *res;
    size_t n = json_array_size(resources);
    /* each resource's type and id, read once for the store and the cycle's read record (NULL
     * without memory: reads_add() reads them again) */
    const char **tid = p->conf.audit && n ? malloc(2 * n * sizeof(*tid)) : NULL;
    int rc = pw_store_begin(p->conf.store);

    if (rc < 0) {
        free(tid);
        return rc;
    }
    batched = batched && p->conf.audit && pw_audit_batch_begin(p->conf.audit) == 0;
    json_array_foreach(resources, i, res)
    {
        rc = store_one(p, src, res, &refs, &touched, &max_updated, tid ? tid + 2 * i : NULL);
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
    touched_unique(&touched);
    for (i = 0; i < touched.n; i++) {
        if (json_object_get(p->marked, touched.v[i])) {
            continue; /* marked by an earlier page, durably, and not evaluated since */
        }
        rc = pw_store_patient_due_by(p->conf.store, touched.v[i], now_s);
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
    if (json_object_size(p->marked) > PIPELINE_MARKED_MAX) {
        json_object_clear(p->marked); /* only an economy: a huge catch-up writes marks again */
    }
    for (i = 0; rc == 0 && i < touched.n; i++) {
        /* Only once committed: a mark rolled back must be written by the page's repeat. */
        json_object_set_new(p->marked, touched.v[i], json_true());
    }
    free(touched.v);
    pw_fhir_index_free(refs.idx);
    if (rc == 0) {
        p->stats.pages++;
        p->stats.resources += json_array_size(resources);
        reads_add(p, src, resources, tid);
        free(tid);
        tid = NULL;
        pw_metric_add(PW_M_INGESTED, (double)json_array_size(resources), src->server, src->type,
                      NULL);
        if (max_updated != PW_TIME_NONE) {
            /* The newest lastUpdated: the registry renders the lag at each scrape. */
            pw_metric_set(PW_M_SYNC_LAG, (double)max_updated, src->server, src->type, NULL);
        }
    }
    free(tid);
    return rc;
fail:
    if (batched) {
        /* What was read is recorded even though the page repeats (as without a batch). */
        pw_audit_batch_commit(p->conf.audit);
    }
    pw_store_rollback(p->conf.store);
    free(tid);
    free(touched.v);
    pw_fhir_index_free(refs.idx);
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
    if (rc == 0 && pw_store_merge_wanted(p->conf.store)) {
        /* The page is committed whatever the merge does: staged rows wait for the next one. */
        merge_staged(p);
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

/*
 * A resource the sync engine skipped as unreadable (issue 18): an audit record, and, when its
 * patient and id are known, a data-quality event stored as that resource's events (the patient
 * is due: the evaluation says in words that a record could not be read). Its own transaction:
 * the page that carried it commits after this, and a repeat of the page records it again.
 */
static void on_unreadable(void *arg, const struct pw_sync_source *src,
                          const struct pw_sync_unreadable *u)
{
    struct pw_pipeline *p = arg;
    const char *type = u->type ? u->type : "resource";
    const char *id = u->id ? u->id : "(unknown id)";
    const char *patient = u->patient;
    char found[PW_REF_MAX];
    char desc[512];
    int rc = 0;

    if (!patient && u->resource &&
        pw_normalize_patient(u->resource, NULL, found, sizeof(found)) == 0 &&
        !strchr(found, '\001')) {
        patient = found; /* server-wide: the resource's own subject, when it is readable */
    }

    snprintf(desc, sizeof(desc), "%s/%s from %s skipped: %s", type, id, src->server, u->reason);
    if (p->conf.audit) {
        rc = pw_audit_event(p->conf.audit, "resource-unreadable", 'R', PW_AUDIT_MINOR, desc,
                            json_pack("{s:{s:s, s:s, s:s?, s:s?, s:s?, s:s?}}", "painwatch",
                                      "server", src->server, "stream", src->key, "resource_type",
                                      u->type, "resource_id", u->id, "version", u->version,
                                      "patient", patient));
    }
    if (rc == 0 && patient && u->type && u->id && strlen(u->type) < 32) {
        struct pw_dq_event ev = {.code = "resource-unreadable"};
        struct pw_store_resource sr = {0};
        bool changed = false;

        pw_fhir_copy(ev.src.type, sizeof(ev.src.type), u->type);
        pw_fhir_copy(ev.src.id, sizeof(ev.src.id), u->id);
        pw_fhir_copy(ev.src.version, sizeof(ev.src.version), u->version ? u->version : "");
        snprintf(ev.detail, sizeof(ev.detail),
                 "%s/%s could not be read (a value out of range or invalid text) and was not "
                 "used; correct it in the EHR",
                 u->type, u->id);
        pw_timeline_clear(&p->scratch);
        pw_fhir_copy(p->scratch.patient, sizeof(p->scratch.patient), patient);
        rc = pw_timeline_add_dq(&p->scratch, &ev);
        if (rc == 0) {
            rc = pw_timeline_encode(&p->scratch, &p->enc);
        }
        if (rc == 0) {
            rc = pw_store_begin(p->conf.store);
        }
        if (rc == 0) {
            sr.type = u->type;
            sr.id = u->id;
            sr.version = u->version ? u->version : "";
            sr.last_updated = PW_TIME_NONE;
            sr.patient = patient;
            sr.norm = p->norm;
            sr.events = p->enc.v;
            sr.events_len = p->enc.n;
            rc = pw_store_put_resource(p->conf.store, &sr, &changed);
            if (rc == 0) {
                rc = pw_store_patient_due_by(p->conf.store, patient, now_ms(p) / 1000);
            }
            rc = rc == 0 ? pw_store_commit(p->conf.store) : (pw_store_rollback(p->conf.store), rc);
        }
    }
    if (rc < 0) {
        pw_log_err(STORE, "%s: unreadable %s/%s not recorded (%s)", src->key, type, id,
                   pw_strerror(rc));
    }
}

static void on_cycle_end(void *arg, const char *server, int err)
{
    struct pw_pipeline *p = arg;
    size_t n = 0;

    cycle_mark(p, server, false);
    reads_flush(p, server, err); /* before the evaluation it feeds: audit before effect */
    if (err == 0) {
        /* Every stream of the server completed: it is current as of now (the last *complete*
         * cycle). Not on a failed cycle: a stream stuck on a bad page must not look fresh. */
        pw_metric_set(PW_M_SYNC_LAST_SUCCESS, (double)(now_ms(p) / 1000), server, NULL);
    }
    /* A failed cycle still evaluates what its committed pages brought. */
    if (p->conf.on_due) {
        p->conf.on_due(p->conf.on_due_arg); /* the owner evaluates, a batch at a time */
        return;
    }
    pw_pipeline_reevaluate_due(p, &n);
    if (n > 0) {
        pw_log_info(CLIN, "evaluated %zu patient(s) after a sync cycle", n);
    }
}

/* A stream's type refused (401/403), never read (PW_SYNC_TYPE_UNREAD, bug N1) or readable again
 * (0): kept per patient (or server-wide). */
static void on_type_access(void *arg, const struct pw_sync_source *src, long status)
{
    struct pw_pipeline *p = arg;
    char key[PW_REF_MAX + 48];

    if (src->patient) {
        snprintf(key, sizeof(key), "%s|Patient/%s", src->type, src->patient);
    } else {
        snprintf(key, sizeof(key), "%s|*", src->type);
    }
    if (status == 0) {
        json_object_del(p->refused, key);
    } else if (status == PW_SYNC_TYPE_UNREAD && json_object_get(p->refused, key)) {
        /* a refusal (401/403) or "not advertised" already says why: kept */
    } else if (json_object_set_new(p->refused, key, json_integer(status)) < 0) {
        pw_log_err(CLIN, "%s refused: not remembered (out of memory)", src->key);
    } else if (src->patient) {
        p->refused_patient = true;
    }
}

void pw_pipeline_consumer(struct pw_pipeline *p, struct pw_sync_consumer *out)
{
    memset(out, 0, sizeof(*out));
    out->on_type_access = on_type_access;
    out->cursor_load = cursor_load;
    out->on_page = on_page;
    out->on_cycle_end = on_cycle_end;
    out->on_unreadable = on_unreadable;
    out->arg = p;
}

/* ---- time-driven re-evaluation ------------------------------------------------------------ */

static int on_due(void *arg, const char *patient)
{
    return touched_add((struct touched *)arg, patient);
}

/*
 * Evaluate @p n patients in one store transaction and one audit batch (audit before effect:
 * the batch is durable before the commit). Any failure rolls everything back and drops the
 * batch unwritten. With @p batched false, each record is written on its own (a batch that
 * would overflow PW_AUDIT_BATCH_MAX).
 */
static int evaluate_group(struct pw_pipeline *p, char (*names)[PW_REF_MAX], size_t n, int64_t now_s,
                          bool batched)
{
    struct pw_audit *audit = p->conf.audit;
    int rc = pw_store_begin(p->conf.store);

    if (rc < 0) {
        return rc;
    }
    batched = batched && audit && pw_audit_batch_begin(audit) == 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = pw_pipeline_evaluate_patient(p, names[i], now_s);
    }
    if (batched) {
        rc = rc == 0 ? pw_audit_batch_commit(audit) : (pw_audit_batch_abort(audit), rc);
    }
    if (rc == 0) {
        rc = pw_store_commit(p->conf.store);
    } else {
        pw_store_rollback(p->conf.store);
    }
    dq_counts_flush(p, rc == 0);
    return rc;
}

/*
 * @p n due patients: as one group; when their records overflow one audit batch, in halves (each
 * its own batch, a patient alone record by record); on any other failure one by one to find the
 * failing patient. @return how many were evaluated.
 */
static size_t evaluate_span(struct pw_pipeline *p, char (*names)[PW_REF_MAX], size_t n,
                            int64_t now_s, int *first)
{
    struct pw_pipeline_stats mark = p->stats;
    size_t done = 0;
    int rc = evaluate_group(p, names, n, now_s, true);

    if (rc == PW_E2BIG && n == 1) {
        rc = evaluate_group(p, names, 1, now_s, false);
    }
    if (rc == 0) {
        return n;
    }
    p->stats = mark; /* the group rolled back: undo its counts */
    if (n == 1) {
        pw_log_err(CLIN, "%s: evaluation failed: %s", names[0], pw_strerror(rc));
        *first = *first ? *first : rc;
        return 0;
    }
    if (rc == PW_E2BIG) {
        done = evaluate_span(p, names, n / 2, now_s, first);
        return done + evaluate_span(p, names + n / 2, n - n / 2, now_s, first);
    }
    for (size_t i = 0; i < n; i++) {
        done += evaluate_span(p, names + i, 1, now_s, first);
    }
    return done;
}

/*
 * Due patients are read a chunk at a time (an evaluation moves each one's mark into the future
 * or removes it, so the next read starts after them): memory stays one chunk whatever the
 * number of patients. A chunk with a failure ends the pass; the rest waits for the next one.
 */
int pw_pipeline_reevaluate_step(struct pw_pipeline *p, size_t *n_out, bool *more)
{
    struct touched due = {0};
    int64_t now_s = now_ms(p) / 1000;
    size_t done = 0;
    int first = 0;
    int rc;

    *more = false;
    /* What pages staged counts before anyone is judged (a failed merge keeps it for later). */
    merge_staged(p);
    /* Read first: the walk must not interleave with the writes of the evaluations. Each
     * evaluation forgets its patient's mark memo (pw_pipeline_evaluate_patient). */
    rc = pw_store_patients_due(p->conf.store, now_s, PW_EVAL_BATCH, on_due, &due);
    if (rc >= 0 && due.n > 0) {
        done = evaluate_span(p, due.v, due.n, now_s, &first);
        *more = first == 0 && due.n == PW_EVAL_BATCH; /* a short read took the last */
    }
    free(due.v);
    if (n_out) {
        *n_out = done;
    }
    if (done > 0 && p->conf.outbox) {
        pw_outbox_kick(p->conf.outbox); /* this batch's Flags go out while the next is judged */
    }
    return first ? first : rc < 0 ? rc : 0;
}

int pw_pipeline_reevaluate_due(struct pw_pipeline *p, size_t *n_out)
{
    size_t total = 0;
    size_t n = 0;
    bool more = true;
    int rc = 0;

    while (more && rc == 0) {
        rc = pw_pipeline_reevaluate_step(p, &n, &more);
        total += n;
    }
    if (n_out) {
        *n_out = total;
    }
    return rc;
}

void pw_pipeline_reconfigure(struct pw_pipeline *p, const struct pw_engine *engine,
                             const struct pw_sink *sink, const char *identifier_system,
                             int64_t reevaluate_ms)
{
    p->conf.engine = engine;
    p->conf.sink = sink;
    p->conf.identifier_system = identifier_system;
    p->conf.reevaluate_ms = reevaluate_ms < 1000 ? 1000 : reevaluate_ms;
}
