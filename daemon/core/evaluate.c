/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one evaluation entry point (include/painwatch/evaluate.h): the configuration applied to the
 * engine and the normalization context once, a patient's timeline built from resources or from
 * the store, evaluated, and its findings reconciled into episodes with the daemon's reconcile.
 */
#include "painwatch/evaluate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/reconcile.h"
#include "painwatch/conf.h"
#include "painwatch/err.h"
#include "painwatch/fhir.h"
#include "painwatch/log.h"
#include "painwatch/mme.h"

/*
 * A patient stays on the time-driven re-evaluation schedule while its timeline can still change
 * a finding as time passes: an active order, or an event newer than the longest look-back window
 * of any rule (palliative-referral-suggested looks 7 days back; one more day of margin).
 */
#define EVAL_HORIZON_S (8 * 24 * 3600)

/* ---- 1. the evaluator ------------------------------------------------------------------- */

/* Rule overrides: rules.<id>.enabled and rules.<id>.<param> (checked against the catalog). */
static int apply_rules(struct pw_engine *engine, const json_t *rules, char *err, size_t cap)
{
    const char *rid;
    const char *param;
    json_t *sec;
    json_t *val;
    /* jansson's iterators take a non-const tree: walk a private copy. */
    json_t *copy = rules ? json_deep_copy(rules) : json_object();
    int rc = 0;

    if (!copy) {
        return PW_ENOMEM;
    }
    json_object_foreach(copy, rid, sec)
    {
        json_object_foreach(sec, param, val)
        {
            if (strcmp(param, "enabled") == 0) {
                rc = pw_engine_enable(engine, rid, json_is_true(val));
            } else {
                rc = pw_engine_set_param(engine, rid, param, json_number_value(val));
            }
            if (rc < 0) {
                snprintf(err, cap, "rules.%s.%s: %s", rid, param, pw_strerror(rc));
                json_decref(copy);
                return PW_ECONFIG;
            }
        }
    }
    json_decref(copy);
    return 0;
}

/* "system|code" lists from the configuration replace normalize's defaults when given. */
static int replace_codes(struct pw_code_set *set, const char **codes, size_t n)
{
    if (n == 0) {
        return 0;
    }
    pw_code_set_clear(set);
    for (size_t i = 0; i < n; i++) {
        char sys[PW_CODE_MAX];
        const char *bar = strchr(codes[i], '|');
        const char *code = bar ? bar + 1 : codes[i];
        size_t sl = bar ? (size_t)(bar - codes[i]) : 0;

        if (sl >= sizeof(sys)) {
            return PW_ECONFIG;
        }
        memcpy(sys, codes[i], sl);
        sys[sl] = '\0';
        if (pw_code_set_add(set, sys, code) < 0) {
            return PW_ENOMEM;
        }
    }
    return 0;
}

static int apply_codes(const struct pw_conf_pain_codes *pc, struct pw_norm_ctx *ctx, char *err,
                       size_t cap)
{
    int rc = replace_codes(&ctx->pain_intensity, pc->score, pc->n_score);

    if (rc == 0) {
        rc = replace_codes(&ctx->neuropathic, pc->type, pc->n_type);
    }
    if (rc == 0) {
        rc = replace_codes(&ctx->sedation_poss, pc->poss, pc->n_poss);
    }
    if (rc == 0) {
        rc = replace_codes(&ctx->sedation_rass, pc->rass, pc->n_rass);
    }
    if (rc < 0) {
        snprintf(err, cap, "pain_codes: %s", pw_strerror(rc));
    }
    return rc;
}

int pw_evaluator_engine_new(struct pw_engine **out, const struct pw_conf_daemon *cd,
                            const char *factor_set, const char *scope, char *err, size_t err_cap)
{
    struct pw_engine *engine = NULL;
    enum pw_scope sc = PW_SCOPE_PROBLEM_LIST;
    const char *set = factor_set ? factor_set : cd && cd->factor_set ? cd->factor_set : NULL;
    const char *scope_name = scope ? scope : cd ? cd->scope : NULL;
    char none[8];
    int rc;

    if (!err) {
        err = none;
        err_cap = sizeof(none);
    }
    *out = NULL;
    if (scope_name && pw_scope_parse(scope_name, &sc) < 0) {
        snprintf(err, err_cap, "scope '%s': problem-list or cohort", scope_name);
        return PW_ECONFIG;
    }
    rc = pw_engine_new(&engine, set ? set : PW_MME_DEFAULT_SET);
    if (rc < 0) {
        snprintf(err, err_cap, "%s", pw_strerror(rc));
        return rc;
    }
    rc = apply_rules(engine, cd ? cd->rules : NULL, err, err_cap);
    if (rc < 0) {
        pw_engine_free(engine);
        return rc;
    }
    pw_engine_set_scope(engine, sc);
    /* issue 21: timezone and post_min_severity, the same for the daemon, check and the tools */
    if (cd && pw_conf_apply_presentation(cd, engine) < 0) {
        snprintf(err, err_cap, "%s", "timezone or post_min_severity refused");
        pw_engine_free(engine);
        return PW_ECONFIG;
    }
    *out = engine;
    return 0;
}

int pw_evaluator_new(struct pw_evaluator **out, const struct pw_eval_opts *opts, char *err,
                     size_t err_cap)
{
    const struct pw_conf_daemon *cd = opts->cd;
    const char *set = opts->factor_set       ? opts->factor_set
                      : cd && cd->factor_set ? cd->factor_set
                                             : PW_MME_DEFAULT_SET;
    struct pw_evaluator *ev = calloc(1, sizeof(*ev));
    char none[8];
    int rc;

    if (!err) {
        err = none;
        err_cap = sizeof(none);
    }
    *out = NULL;
    if (!ev) {
        return PW_ENOMEM;
    }
    rc = pw_norm_ctx_init(&ev->norm, opts->term, set);
    if (rc < 0) {
        snprintf(err, err_cap, "unknown factor set '%s'", set);
        free(ev);
        return rc;
    }
    ev->norm_ready = true;
    rc = pw_evaluator_engine_new(&ev->engine, cd, set, opts->scope, err, err_cap);
    if (rc == 0 && cd) {
        rc = apply_codes(&cd->pain_codes, &ev->norm, err, err_cap);
    }
    if (rc < 0) {
        pw_evaluator_free(ev);
        return rc;
    }
    *out = ev;
    return 0;
}

void pw_evaluator_free(struct pw_evaluator *ev)
{
    if (!ev) {
        return;
    }
    pw_engine_free(ev->engine);
    if (ev->norm_ready) {
        pw_norm_ctx_cleanup(&ev->norm);
    }
    free(ev);
}

/* ---- 2. the patient's timeline ---------------------------------------------------------- */

/* The "timeline-cap" data-quality event of @p tl's patient; @p which: the events evaluated. */
static int add_cap_event(struct pw_timeline *tl, const char *which)
{
    struct pw_dq_event ev = {.code = PW_DQ_TIMELINE_CAP, .src = {.type = "Patient"}};
    const char *slash = strchr(tl->patient, '/');

    pw_fhir_copy(ev.src.id, sizeof(ev.src.id), slash ? slash + 1 : tl->patient);
    snprintf(ev.detail, sizeof(ev.detail), "over %d events: only %s were evaluated",
             PW_RESOURCES_PER_PATIENT_MAX, which);
    return pw_timeline_add_dq(tl, &ev);
}

/* The time a resource is about, for keeping the newest when a patient is over the cap. */
static int64_t resource_time(const json_t *r)
{
    static const char *const keys[] = {"authoredOn", "effectiveDateTime", "issued", "onsetDateTime",
                                       "recordedDate"};
    int64_t t;

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (pw_fhir_parse_time(pw_fhir_str(r, keys[i]), &t) == 0) {
            return t;
        }
    }
    const json_t *period = json_object_get(r, "effectivePeriod");
    if (period == NULL) {
        period = json_object_get(r, "period");
    }
    if (pw_fhir_parse_time(pw_fhir_str(period, "start"), &t) == 0 ||
        pw_fhir_parse_time(pw_fhir_str(json_object_get(r, "meta"), "lastUpdated"), &t) == 0) {
        return t;
    }
    return INT64_MIN;
}

struct timed {
    int64_t t;
    size_t index;
};

static int cmp_newest_first(const void *a, const void *b)
{
    const struct timed *x = a;
    const struct timed *y = b;

    if (x->t != y->t) {
        return x->t < y->t ? 1 : -1;
    }
    return x->index < y->index ? -1 : x->index > y->index;
}

int pw_eval_timeline_add_resources(const struct pw_evaluator *ev, const json_t *resources,
                                   const struct pw_resolver *refs, struct pw_timeline *tl)
{
    size_t n = json_array_size(resources);
    struct timed *order = calloc(n ? n : 1, sizeof(*order));
    int rc = 0;

    if (order == NULL) {
        return PW_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        order[i].t = resource_time(json_array_get(resources, i));
        order[i].index = i;
    }
    qsort(order, n, sizeof(*order), cmp_newest_first);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = pw_normalize_resource(&ev->norm, json_array_get(resources, order[i].index), refs, tl);
    }
    free(order);
    if (rc == PW_E2BIG) {
        rc = add_cap_event(tl, "the newest");
    }
    return rc;
}

struct loaded {
    const struct pw_norm_ctx *norm;
    struct pw_timeline *tl;
    bool full; /* the timeline reached its cap: the rest is skipped */
};

/* A row the store holds as the resource's FHIR JSON (an older schema): normalized here. */
static int add_json_row(struct loaded *ld, const struct pw_store_resource *res)
{
    json_t *r = json_loadb(res->events, res->events_len, 0, NULL);
    int rc;

    if (!r) {
        return PW_EJSON;
    }
    rc = pw_normalize_resource(ld->norm, r, NULL, ld->tl);
    json_decref(r);
    return rc;
}

static int on_stored_resource(void *arg, const struct pw_store_resource *res)
{
    struct loaded *ld = arg;
    int rc;

    if (ld->full) {
        return 0;
    }
    rc = res->json ? add_json_row(ld, res)
                   : pw_timeline_decode(ld->tl, res->events, res->events_len);
    if (rc == PW_E2BIG) {
        pw_log_warn(CLIN, "%s: timeline over its cap; evaluated on what fits", ld->tl->patient);
        ld->full = true;
        return add_cap_event(ld->tl, "those that fitted");
    }
    if (rc == PW_EJSON) {
        /* The store only keeps what was encoded when it arrived: corruption, not input. */
        pw_log_err(STORE, "%s/%s: stored events unreadable; skipped", res->type, res->id);
        return 0;
    }
    return rc;
}

int pw_eval_timeline_load(struct pw_store *st, const struct pw_norm_ctx *norm, const char *patient,
                          struct pw_timeline *tl)
{
    struct loaded ld = {.norm = norm, .tl = tl};

    return pw_store_load_patient(st, patient, on_stored_resource, &ld);
}

/* ---- 3. evaluation ---------------------------------------------------------------------- */

int pw_evaluate(const struct pw_engine *engine, struct pw_timeline *tl,
                const struct pw_synced *synced, int64_t now, struct pw_findings *out, int *rule_err)
{
    int rc;

    if (rule_err) {
        *rule_err = 0;
    }
    pw_timeline_sort(tl);
    if (synced) {
        tl->synced = *synced;
    }
    if (pw_engine_annotate(engine, tl, now) < 0) {
        return PW_ENOMEM;
    }
    rc = pw_engine_eval(engine, tl, now, out);
    if (rc < 0 && rule_err) {
        *rule_err = rc; /* logged by the engine; the other rules' findings count */
    }
    return 0;
}

int64_t pw_eval_next_due(const struct pw_timeline *tl, int64_t now, int64_t interval_s)
{
    int64_t since = now - EVAL_HORIZON_S;

    for (size_t i = 0; i < tl->orders.n; i++) {
        if (tl->orders.v[i].end >= since) {
            return now + interval_s;
        }
    }
    for (size_t i = 0; i < tl->scores.n; i++) {
        if (tl->scores.v[i].at >= since) {
            return now + interval_s;
        }
    }
    for (size_t i = 0; i < tl->pain_types.n; i++) {
        if (tl->pain_types.v[i].at >= since) {
            return now + interval_s;
        }
    }
    return PW_TIME_NONE;
}

/* ---- 4. episodes ------------------------------------------------------------------------ */

bool pw_rc_item_record(const struct pw_rc_item *it, int64_t now, struct pw_flag_rec *out)
{
    switch (it->action) {
    case PW_RC_CREATE:
        memset(out, 0, sizeof(*out));
        out->state = PW_FLAG_ACTIVE;
        out->since = it->finding->since;
        out->updated = now;
        snprintf(out->key, sizeof(out->key), "%s", it->finding->key);
        snprintf(out->patient, sizeof(out->patient), "%s", it->finding->patient);
        snprintf(out->rule, sizeof(out->rule), "%s", it->finding->rule);
        return true;
    case PW_RC_RESOLVE:
    case PW_RC_REACTIVATE:
        *out = *it->flag;
        out->state = it->action == PW_RC_RESOLVE ? PW_FLAG_RESOLVED : PW_FLAG_ACTIVE;
        out->updated = now;
        return true;
    case PW_RC_NOT_POSTED:
        if (it->flag) {
            break; /* audited once already: the marker stays */
        }
        /* Issue 21: the episode of an audit-only finding is remembered as audited, with no
         * Flag: a resolved record whose server id is the audit-only marker. */
        memset(out, 0, sizeof(*out));
        out->state = PW_FLAG_RESOLVED;
        out->since = it->finding->since;
        out->updated = now;
        snprintf(out->key, sizeof(out->key), "%s", it->finding->key);
        snprintf(out->patient, sizeof(out->patient), "%s", it->finding->patient);
        snprintf(out->rule, sizeof(out->rule), "%s", it->finding->rule);
        snprintf(out->server_id, sizeof(out->server_id), PW_RC_AUDIT_ONLY_PREFIX "%.*s",
                 (int)(sizeof(out->server_id) - sizeof(PW_RC_AUDIT_ONLY_PREFIX)), it->finding->key);
        return true;
    case PW_RC_KEEP:
    case PW_RC_SUPPRESSED:
        break;
    }
    *out = *it->flag;
    return false;
}

int pw_episodes_reconcile(struct pw_flag_list *flags, const struct pw_finding *findings,
                          size_t n_findings, int64_t now, struct pw_rc_plan *plan)
{
    struct pw_rc_plan local = {0};
    struct pw_rc_plan *pl = plan ? plan : &local;
    size_t need = flags->n + n_findings;
    size_t start = pl->n;
    int rc;

    /* Room for every possible CREATE first: the plan's pointers into flags->v stay valid. */
    if (need > flags->cap) {
        struct pw_flag_rec *v = realloc(flags->v, need * sizeof(*v));
        if (!v) {
            return PW_ENOMEM;
        }
        flags->v = v;
        flags->cap = need;
    }
    rc = pw_reconcile(findings, n_findings, flags->v, flags->n, pl);
    for (size_t i = start; rc == 0 && i < pl->n; i++) {
        const struct pw_rc_item *it = &pl->v[i];
        struct pw_flag_rec rec;

        if (!pw_rc_item_record(it, now, &rec)) {
            continue;
        }
        if (!it->flag) { /* CREATE, or the audit-only marker of a NOT_POSTED finding */
            flags->v[flags->n++] = rec;
            pl->v[i].flag = &flags->v[flags->n - 1];
        } else {
            /* it->flag points into flags->v: the record changes in place */
            flags->v[it->flag - flags->v] = rec;
        }
    }
    pw_rc_plan_cleanup(&local);
    return rc;
}
