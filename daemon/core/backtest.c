/* SPDX-License-Identifier: Apache-2.0 */
/* The backtest: history replayed through the engine and the daemon's reconcile (backtest.h). */
#include "core/backtest.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/reconcile.h"
#include "painwatch/err.h"
#include "painwatch/evaluate.h"

/* ---- the timeline as it stood at an instant --------------------------------------------- */

/* How many of the @p n elements at @p base (@p size bytes each, sorted by the int64_t time at
 * @p off) are at or before @p t. */
static size_t prefix(const void *base, size_t n, size_t size, size_t off, int64_t t)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t at;

        memcpy(&at, (const char *)base + mid * size + off, sizeof(at));
        if (at <= t) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}
#define PREFIX(vec, type, field, t) prefix((vec).v, (vec).n, sizeof(type), offsetof(type, field), t)

/*
 * @p view: @p full as it stood at @p t. The event arrays are the full timeline's (sorted by time,
 * borrowed; only their lengths are cut); the data-quality list is the view's own (the evaluation
 * appends to it), reset to normalization's events each time.
 */
struct view {
    struct pw_timeline tl;
    size_t base_dq;
};

static int view_init(struct view *v, const struct pw_timeline *full)
{
    v->tl = *full;
    v->tl.dq.v = NULL;
    v->tl.dq.n = v->tl.dq.cap = 0;
    v->base_dq = full->dq.n;
    if (full->dq.n) {
        v->tl.dq.v = malloc(full->dq.n * sizeof(*full->dq.v));
        if (!v->tl.dq.v) {
            return PW_ENOMEM;
        }
        memcpy(v->tl.dq.v, full->dq.v, full->dq.n * sizeof(*full->dq.v));
        v->tl.dq.n = v->tl.dq.cap = full->dq.n;
    }
    return 0;
}

static void view_at(struct view *v, const struct pw_timeline *full, int64_t t)
{
    v->tl.scores.n = PREFIX(full->scores, struct pw_pain_score, at, t);
    v->tl.pain_types.n = PREFIX(full->pain_types, struct pw_pain_type, at, t);
    v->tl.orders.n = PREFIX(full->orders, struct pw_med_order, start, t);
    v->tl.referrals.n = PREFIX(full->referrals, struct pw_referral, at, t);
    v->tl.context.n = PREFIX(full->context, struct pw_context, at, t);
    v->tl.dq.n = v->base_dq;
}

/* ---- the instants a patient is evaluated at --------------------------------------------- */

struct times {
    int64_t *v;
    size_t n, cap;
};

static int times_add(struct times *ts, int64_t t, int64_t lo, int64_t hi)
{
    if (t == PW_TIME_NONE || t == PW_TIME_FOREVER || t < lo || t > hi) {
        return 0;
    }
    if (ts->n == ts->cap) {
        size_t cap = ts->cap ? ts->cap * 2 : 64;
        int64_t *grown = realloc(ts->v, cap * sizeof(*grown));
        if (!grown) {
            return PW_ENOMEM;
        }
        ts->v = grown;
        ts->cap = cap;
    }
    ts->v[ts->n++] = t;
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Sort @p ts and keep each instant once. */
static void times_sort_unique(struct times *ts)
{
    size_t w = 0;

    if (ts->n > 1) {
        qsort(ts->v, ts->n, sizeof(*ts->v), cmp_i64);
    }
    for (size_t i = 0; i < ts->n; i++) {
        if (w == 0 || ts->v[w - 1] != ts->v[i]) {
            ts->v[w++] = ts->v[i];
        }
    }
    ts->n = w;
}

/* Every event time of @p tl in [lo, hi], sorted, each once. */
static int event_times(const struct pw_timeline *tl, int64_t lo, int64_t hi, struct times *ts)
{
    int rc = 0;

    for (size_t i = 0; i < tl->scores.n && !rc; i++) {
        rc = times_add(ts, tl->scores.v[i].at, lo, hi);
    }
    for (size_t i = 0; i < tl->pain_types.n && !rc; i++) {
        rc = times_add(ts, tl->pain_types.v[i].at, lo, hi);
    }
    for (size_t i = 0; i < tl->orders.n && !rc; i++) {
        rc = times_add(ts, tl->orders.v[i].start, lo, hi);
        rc = rc ? rc : times_add(ts, tl->orders.v[i].end, lo, hi);
    }
    for (size_t i = 0; i < tl->referrals.n && !rc; i++) {
        rc = times_add(ts, tl->referrals.v[i].at, lo, hi);
    }
    for (size_t i = 0; i < tl->context.n && !rc; i++) {
        rc = times_add(ts, tl->context.v[i].at, lo, hi);
        rc = rc ? rc : times_add(ts, tl->context.v[i].end, lo, hi);
    }
    if (rc) {
        return rc;
    }
    times_sort_unique(ts);
    return 0;
}

/*
 * The instants in [@p lo - 2, @p hi + 2] near which time alone may change the findings
 * (pw_engine_time_offsets): every event time of @p all (the timeline's, sorted), and every event
 * time plus an offset of @p off. Sorted, each once.
 */
static int change_times(const struct times *all, const int64_t *off, size_t n_off, int64_t lo,
                        int64_t hi, struct times *out)
{
    int rc = 0;

    for (size_t i = 0; i < all->n && all->v[i] <= hi + 2 && !rc; i++) {
        rc = times_add(out, all->v[i], lo - 2, hi + 2);
        for (size_t d = 0; d < n_off && !rc && all->v[i] <= hi + 2 - off[d]; d++) {
            rc = times_add(out, all->v[i] + off[d], lo - 2, hi + 2);
        }
    }
    if (rc == 0) {
        times_sort_unique(out);
    }
    return rc;
}

/*
 * Whether an evaluation at @p t may find something else than the last one, at @p before, on the
 * same data: an instant of @p ch within [before - 2, t + 2] (two seconds of slack: rules compare
 * elapsed times as doubles and cut thresholds to whole seconds). @p k walks @p ch forwards.
 */
static bool may_change(const struct times *ch, size_t *k, int64_t before, int64_t t)
{
    while (*k < ch->n && ch->v[*k] < before - 2) {
        (*k)++;
    }
    return *k < ch->n && ch->v[*k] <= t + 2;
}

/* ---- what a daemon started at the period's start holds ---------------------------------- */

/* The latest instant a date search on @p v (a dateTime or a Period) matches. */
static int64_t upper_of(const json_t *obj, const char *dt, const char *period)
{
    const json_t *p = json_object_get(obj, period);
    int64_t t = PW_TIME_NONE;

    if (pw_fhir_parse_time(pw_fhir_str(obj, dt), &t) == 0) {
        return t;
    }
    if (pw_fhir_parse_time(pw_fhir_str(p, "end"), &t) == 0 ||
        pw_fhir_parse_time(pw_fhir_str(p, "start"), &t) == 0) {
        return t;
    }
    return PW_TIME_NONE;
}

static bool status_in(const json_t *res, const char *const *codes)
{
    const json_t *cs = json_object_get(res, "clinicalStatus");
    const char *status = pw_fhir_str(res, "status");

    for (size_t i = 0; codes[i]; i++) {
        if ((status && strcmp(status, codes[i]) == 0) || pw_fhir_cc_has(cs, NULL, codes[i])) {
            return true;
        }
    }
    return false;
}

/*
 * Whether the daemon's first sync at @p from with window start @p bound (or a later incremental
 * sync, by _lastUpdated) fetches @p res (source_fhir_search.c: date_param, window_params).
 */
static bool daemon_fetches(const json_t *res, int64_t from, int64_t bound)
{
    static const char *const in_force[] = {"active", "on-hold", NULL};
    static const char *const problems[] = {"active", "recurrence", "relapse", NULL};
    const char *type = pw_fhir_str(res, "resourceType");
    int64_t t = PW_TIME_NONE, updated;
    bool has_updated =
        pw_fhir_parse_time(pw_fhir_str(json_object_get(res, "meta"), "lastUpdated"), &updated) == 0;

    if (has_updated && updated >= from) {
        return true; /* written after the start: an incremental sync reads it */
    }
    if (strcmp(type, "Observation") == 0) {
        t = upper_of(res, "effectiveDateTime", "effectivePeriod");
        if (t == PW_TIME_NONE) {
            pw_fhir_parse_time(pw_fhir_str(res, "effectiveInstant"), &t);
        }
    } else if (strcmp(type, "MedicationRequest") == 0) {
        if (status_in(res, in_force)) {
            return true; /* the orders in force, whatever their date */
        }
        pw_fhir_parse_time(pw_fhir_str(res, "authoredOn"), &t);
    } else if (strcmp(type, "ServiceRequest") == 0) {
        pw_fhir_parse_time(pw_fhir_str(res, "authoredOn"), &t);
    } else if (strcmp(type, "Condition") == 0) {
        if (status_in(res, problems)) {
            return true; /* the problem list, whatever its dates */
        }
        pw_fhir_parse_time(pw_fhir_str(res, "recordedDate"), &t);
    } else if (pw_res_type_bit(type) != 0) {
        return !has_updated || updated >= bound; /* searched by _lastUpdated */
    } else {
        return true; /* not searched by date (Patient, Medication) */
    }
    return t != PW_TIME_NONE && t >= bound;
}

/* @p resources less what the daemon would not have fetched (a new array, owned). */
static json_t *fetched(const json_t *resources, int64_t from, int64_t lookback)
{
    json_t *out = json_array();
    size_t i;
    json_t *r;

    json_array_foreach(resources, i, r)
    {
        if (out && (lookback <= 0 || daemon_fetches(r, from, from - lookback)) &&
            json_array_append(out, r) < 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* ---- one patient ------------------------------------------------------------------------ */

struct run {
    const struct pw_bt_opts *o;
    struct pw_bt_result *out;
    int64_t from, to;
    int64_t *offsets; /* pw_engine_time_offsets() */
    size_t n_offsets;
    char *err;
    size_t errlen;
};

static int64_t next_tick(int64_t from, int64_t step, int64_t after)
{
    if (after < from) {
        return from;
    }
    return from + ((after - from) / step + 1) * step;
}

/* The open episode of @p key among the patient's (from index @p first), or NULL. */
static struct pw_bt_episode *open_episode(struct pw_bt_result *r, size_t first, const char *key)
{
    for (size_t i = r->n_ep; i-- > first;) {
        if (r->ep[i].end == PW_TIME_NONE && strcmp(r->ep[i].key, key) == 0) {
            return &r->ep[i];
        }
    }
    return NULL;
}

static int record_plan(struct run *run, size_t first, const struct pw_rc_plan *plan, int64_t t)
{
    for (size_t i = 0; i < plan->n; i++) {
        const struct pw_rc_item *it = &plan->v[i];
        struct pw_bt_episode e = {.start = t, .end = PW_TIME_NONE};
        struct pw_bt_episode *cur;

        switch (it->action) {
        case PW_RC_CREATE:
        case PW_RC_REACTIVATE:
            pw_fhir_copy(e.rule, sizeof(e.rule), it->finding->rule);
            pw_fhir_copy(e.key, sizeof(e.key), it->finding->key);
            pw_fhir_copy(e.patient, sizeof(e.patient), it->finding->patient);
            e.severity = it->finding->severity;
            if (pw_bt_result_add_episode(run->out, &e) < 0) {
                return PW_ENOMEM;
            }
            break;
        case PW_RC_RESOLVE:
            cur = open_episode(run->out, first, it->flag->key);
            if (cur) {
                cur->end = t;
            }
            break;
        case PW_RC_NOT_POSTED: /* below post_min_severity: audited, never an alert (issue 21) */
        case PW_RC_KEEP:
        case PW_RC_SUPPRESSED:
            break;
        }
    }
    return 0;
}

static int add_point(struct pw_bt_point **v, size_t *n, int64_t at, double value)
{
    struct pw_bt_point *grown = realloc(*v, (*n + 1) * sizeof(**v));

    if (!grown) {
        return PW_ENOMEM;
    }
    *v = grown;
    grown[(*n)++] = (struct pw_bt_point){.at = at, .value = value};
    return 0;
}

/* What the HTML report draws of @p tl over [lo, hi]. */
static int build_chart(const struct pw_timeline *tl, int64_t lo, int64_t hi, struct pw_bt_chart *c)
{
    struct times ts = {0};
    int rc = 0;
    double last = NAN;

    for (size_t i = 0; i < tl->scores.n && !rc; i++) {
        if (tl->scores.v[i].at >= lo && tl->scores.v[i].at <= hi) {
            rc = add_point(&c->scores, &c->n_scores, tl->scores.v[i].at, tl->scores.v[i].value);
        }
    }
    /* Baseline MME/day: one point where it changes (orders starting and ending). */
    rc = rc ? rc : times_add(&ts, lo, lo, hi);
    for (size_t i = 0; i < tl->orders.n && !rc; i++) {
        if (tl->orders.v[i].role == PW_ROLE_BASELINE) {
            rc = times_add(&ts, tl->orders.v[i].start, lo, hi);
            rc = rc ? rc : times_add(&ts, tl->orders.v[i].end, lo, hi);
        }
    }
    if (!rc && ts.n > 1) {
        qsort(ts.v, ts.n, sizeof(*ts.v), cmp_i64);
    }
    for (size_t i = 0; i < ts.n && !rc; i++) {
        double mme = pw_timeline_baseline_mme_at(tl, ts.v[i]);
        if (!(isnan(mme) && isnan(last)) && mme != last) {
            rc = add_point(&c->mme, &c->n_mme, ts.v[i], mme);
            last = mme;
        }
    }
    free(ts.v);
    /* Rescue doses: given (administrations of a rescue order), else rescue orders started. */
    for (size_t i = 0; i < tl->context.n && !rc; i++) {
        const struct pw_context *x = &tl->context.v[i];
        if (x->kind == PW_CTX_ADMINISTRATION && x->prn_rescue && x->at >= lo && x->at <= hi) {
            int64_t *grown = realloc(c->rescue, (c->n_rescue + 1) * sizeof(*grown));
            rc = grown ? 0 : PW_ENOMEM;
            if (grown) {
                c->rescue = grown;
                c->rescue[c->n_rescue++] = x->at;
            }
        }
    }
    if (!rc && c->n_rescue == 0) {
        for (size_t i = 0; i < tl->orders.n && !rc; i++) {
            const struct pw_med_order *o = &tl->orders.v[i];
            if (o->role == PW_ROLE_RESCUE && o->part == 0 && o->start >= lo && o->start <= hi) {
                int64_t *grown = realloc(c->rescue, (c->n_rescue + 1) * sizeof(*grown));
                rc = grown ? 0 : PW_ENOMEM;
                if (grown) {
                    c->rescue = grown;
                    c->rescue[c->n_rescue++] = o->start;
                }
            }
        }
    }
    return rc;
}

/* Whether a patient with @p n episodes may enter the top list (its chart is then built). */
static bool may_be_top(const struct pw_bt_result *r, size_t n)
{
    if (n == 0) {
        return false;
    }
    if (r->n_charts < PW_BT_TOP) {
        return true;
    }
    for (size_t i = 0; i < r->n_charts; i++) {
        if (r->charts[i].n_episodes < n) {
            return true;
        }
    }
    return false;
}

/* @p all: every event time of @p tl, sorted, each once (event_times). */
static int replay(struct run *run, struct pw_timeline *tl, const struct times *all, int64_t lo,
                  int64_t hi)
{
    const struct pw_bt_opts *o = run->o;
    struct times ch = {0};
    /* the events of the period: a slice of @p all */
    struct times ev = {.v = all->v, .n = all->n};
    struct view view;
    struct pw_flag_list flags = {0};
    size_t first = run->out->n_ep, k = 0, kc = 0;
    int64_t t = lo, due, evaluated = PW_TIME_NONE;
    int rc = change_times(all, run->offsets, run->n_offsets, lo, hi, &ch);

    while (ev.n > 0 && ev.v[ev.n - 1] > hi) {
        ev.n--;
    }
    while (k < ev.n && ev.v[k] < lo) {
        k++;
    }
    rc = rc ? rc : view_init(&view, tl);
    if (rc) {
        free(ch.v);
        return rc;
    }
    for (;;) {
        view_at(&view, tl, t);
        due = pw_eval_next_due(&view.tl, t, o->step);
        /* The next instant: the next event; while live also the due time and the next tick. */
        while (k < ev.n && ev.v[k] <= t) {
            k++;
        }
        int64_t next = k < ev.n ? ev.v[k] : PW_TIME_NONE;
        if (due != PW_TIME_NONE) {
            int64_t tick = next_tick(run->from, o->step, t);
            int64_t live = due < tick ? due : tick;
            if (live <= t) {
                live = t + 1;
            }
            if (live > hi && t < hi) {
                live = hi; /* the end of the period: where open episodes are counted */
            }
            if (next == PW_TIME_NONE || live < next) {
                next = live;
            }
        }
        bool last = next == PW_TIME_NONE || next > hi || next <= t;
        /* The first and the last instant always (the last one's data-quality events are
         * counted); between them only where something may have changed since the last. */
        if (o->exhaustive || evaluated == PW_TIME_NONE || last ||
            may_change(&ch, &kc, evaluated, t)) {
            struct pw_findings fs = {0};
            struct pw_rc_plan plan = {0};

            rc = pw_evaluate(o->ev->engine, &view.tl, &o->synced, t, &fs, NULL);
            rc = rc ? rc : pw_episodes_reconcile(&flags, fs.v, fs.n, t, &plan);
            rc = rc ? rc : record_plan(run, first, &plan, t);
            pw_rc_plan_cleanup(&plan);
            pw_findings_cleanup(&fs);
            evaluated = t;
        }
        run->out->n_evaluations++; /* instants replayed, evaluated or proven unchanged */
        if (rc || last) {
            break;
        }
        t = next;
    }
    run->out->n_dq += view.tl.dq.n;
    free(view.tl.dq.v);
    free(ch.v);
    pw_flag_list_cleanup(&flags);
    return rc;
}

static int on_patient(void *arg, const char *patient, const json_t *resources,
                      const struct pw_resolver *refs)
{
    struct run *run = arg;
    struct pw_timeline tl;
    int rc;

    json_t *seen = fetched(resources, run->from, run->o->lookback);

    pw_timeline_init(&tl, patient);
    rc = seen ? pw_eval_timeline_add_resources(run->o->ev, seen, refs, &tl) : PW_ENOMEM;
    json_decref(seen);
    struct times all = {0};
    if (rc == 0) {
        pw_timeline_sort(&tl);
        rc = event_times(&tl, INT64_MIN + 1, INT64_MAX - 1, &all);
    }
    if (rc == 0) {
        int64_t first = all.n ? all.v[0] : PW_TIME_NONE;
        int64_t lo = first != PW_TIME_NONE && first > run->from ? first : run->from;
        /* A patient with no dated event before the end of the period is not counted. */
        if (first != PW_TIME_NONE && lo <= run->to) {
            size_t n0 = run->out->n_ep;
            run->out->n_patients++;
            run->out->live_s += run->to - lo; /* summed exactly: the same for any --jobs */
            rc = replay(run, &tl, &all, lo, run->to);
            if (rc == 0 && may_be_top(run->out, run->out->n_ep - n0)) {
                struct pw_bt_chart c = {.n_episodes = run->out->n_ep - n0};
                pw_fhir_copy(c.patient, sizeof(c.patient), patient);
                rc = build_chart(&tl, lo, run->to, &c);
                rc = rc ? rc : pw_bt_result_offer_chart(run->out, &c);
                pw_bt_chart_cleanup(&c);
            }
        }
    }
    if (rc) {
        snprintf(run->err, run->errlen, "%s: %s", patient, pw_strerror(rc));
    }
    free(all.v);
    pw_timeline_cleanup(&tl);
    return rc;
}

int pw_backtest_run(struct pw_bt_spool *sp, const struct pw_bt_opts *o, struct pw_bt_result *out,
                    char *err, size_t errlen)
{
    struct run run = {
        .o = o, .out = out, .from = o->from, .to = o->to, .err = err, .errlen = errlen};
    int64_t first, last;

    pw_bt_spool_span(sp, &first, &last);
    if (run.from == PW_TIME_NONE) {
        run.from = first;
    }
    if (run.to == PW_TIME_NONE) {
        run.to = last;
    }
    out->source = "backtest";
    out->step = o->step;
    out->from = run.from;
    out->to = run.to;
    if (run.from == PW_TIME_NONE || run.to == PW_TIME_NONE) {
        return 0; /* no dated event at all: nothing to replay */
    }
    if (run.from > run.to) {
        snprintf(err, errlen, "the period is empty (--from after --to)");
        return PW_EINVAL;
    }
    int rc = pw_engine_time_offsets(o->ev->engine, &run.offsets, &run.n_offsets);
    rc = rc ? rc : pw_bt_spool_each(sp, on_patient, &run);
    free(run.offsets);
    if (rc && !err[0]) {
        snprintf(err, errlen, "reading the input back: %s", pw_strerror(rc));
    }
    out->patient_days = (double)out->live_s / 86400.0;
    pw_bt_result_sort(out);
    return rc;
}
