/* SPDX-License-Identifier: Apache-2.0 */
/* The per-patient timeline: growable event arrays, latest-version replacement, sorting. */
#include "painwatch/timeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "painwatch/array.h"
#include "painwatch/err.h"

void pw_timeline_init(struct pw_timeline *tl, const char *patient)
{
    memset(tl, 0, sizeof(*tl));
    if (patient != NULL) {
        size_t n = strlen(patient);
        if (n >= sizeof(tl->patient)) {
            n = sizeof(tl->patient) - 1;
        }
        memcpy(tl->patient, patient, n);
    }
}

void pw_timeline_cleanup(struct pw_timeline *tl)
{
    free(tl->scores.v);
    free(tl->pain_types.v);
    free(tl->orders.v);
    free(tl->referrals.v);
    free(tl->dq.v);
    free(tl->context.v);
    memset(tl, 0, sizeof(*tl));
}

static size_t total_events(const struct pw_timeline *tl)
{
    return tl->scores.n + tl->pain_types.n + tl->orders.n + tl->referrals.n + tl->dq.n +
           tl->context.n;
}

static bool same_resource(const struct pw_ref *a, const struct pw_ref *b)
{
    return strcmp(a->type, b->type) == 0 && strcmp(a->id, b->id) == 0;
}

/*
 * True when version @p nv replaces @p cv: numeric versionIds (what servers assign) compare as
 * numbers, so an older copy arriving late does not win; other strings replace when different.
 */
static bool newer_version(const char *cv, const char *nv)
{
    if (strcmp(cv, nv) == 0) {
        return false;
    }
    char *ce, *ne;
    long long c = strtoll(cv, &ce, 10), n = strtoll(nv, &ne, 10);
    if (*cv != '\0' && *nv != '\0' && *ce == '\0' && *ne == '\0') {
        return n > c;
    }
    return true;
}

/* Drop the data-quality events of an older version of @p ref (the new copy has its own). */
static void purge_dq(struct pw_timeline *tl, const struct pw_ref *ref)
{
    size_t w = 0;
    for (size_t i = 0; i < tl->dq.n; i++) {
        const struct pw_ref *d = &tl->dq.v[i].src;
        if (same_resource(d, ref) && strcmp(d->version, ref->version) != 0) {
            continue;
        }
        tl->dq.v[w++] = tl->dq.v[i];
    }
    tl->dq.n = w;
}

/*
 * The shared add logic: find an element from the same resource (its pw_ref sits at @p ref_off);
 * a newer version overwrites it in place (and drops the old version's data-quality events),
 * an older or equal one is ignored; else append.
 */
static int add_event(void **v, size_t *n, size_t *cap, size_t size, size_t ref_off, const void *ev,
                     struct pw_timeline *tl)
{
    const struct pw_ref *nref = (const struct pw_ref *)(const void *)((const char *)ev + ref_off);
    for (size_t i = 0; i < *n; i++) {
        char *cur = (char *)*v + i * size;
        const struct pw_ref *cref = (const struct pw_ref *)(void *)(cur + ref_off);
        if (same_resource(cref, nref)) {
            if (newer_version(cref->version, nref->version)) {
                memcpy(cur, ev, size);
                purge_dq(tl, nref);
            }
            return 0;
        }
    }
    if (total_events(tl) >= PW_RESOURCES_PER_PATIENT_MAX) {
        return PW_E2BIG;
    }
    int rc = pw_array_reserve(v, cap, *n + 1, size);
    if (rc < 0) {
        return rc;
    }
    memcpy((char *)*v + *n * size, ev, size);
    (*n)++;
    return 0;
}

int pw_timeline_add_score(struct pw_timeline *tl, const struct pw_pain_score *ev)
{
    return add_event((void **)&tl->scores.v, &tl->scores.n, &tl->scores.cap, sizeof(*ev),
                     offsetof(struct pw_pain_score, src), ev, tl);
}

int pw_timeline_add_pain_type(struct pw_timeline *tl, const struct pw_pain_type *ev)
{
    return add_event((void **)&tl->pain_types.v, &tl->pain_types.n, &tl->pain_types.cap,
                     sizeof(*ev), offsetof(struct pw_pain_type, src), ev, tl);
}

/* One resource may give several kinds of context (an encounter and its hospice setting): the
 * latest-version rule applies per (resource, kind). */
int pw_timeline_add_context(struct pw_timeline *tl, const struct pw_context *ev)
{
    for (size_t i = 0; i < tl->context.n; i++) {
        struct pw_context *cur = &tl->context.v[i];
        if (cur->kind == ev->kind && same_resource(&cur->src, &ev->src)) {
            if (newer_version(cur->src.version, ev->src.version)) {
                *cur = *ev;
            }
            return 0;
        }
    }
    if (total_events(tl) >= PW_RESOURCES_PER_PATIENT_MAX) {
        return PW_E2BIG;
    }
    int rc = PW_ARRAY_GROW(&tl->context);
    if (rc < 0) {
        return rc;
    }
    tl->context.v[tl->context.n++] = *ev;
    return 0;
}

/*
 * Orders: one MedicationRequest yields one element per part (dosageInstruction or taper step).
 * A newer version of the resource drops every part of the old one (it may have fewer parts); an
 * older version is ignored; the same version adds a part not yet present.
 */
int pw_timeline_add_order(struct pw_timeline *tl, const struct pw_med_order *ev)
{
    size_t w = 0;
    bool dropped = false;
    for (size_t i = 0; i < tl->orders.n; i++) {
        struct pw_med_order *cur = &tl->orders.v[i];
        if (same_resource(&cur->src, &ev->src)) {
            if (strcmp(cur->src.version, ev->src.version) == 0) {
                if (cur->part == ev->part) {
                    return 0;
                }
            } else if (newer_version(cur->src.version, ev->src.version)) {
                dropped = true;
                continue;
            } else {
                return 0;
            }
        }
        tl->orders.v[w++] = *cur;
    }
    tl->orders.n = w;
    if (dropped) {
        purge_dq(tl, &ev->src);
    }
    if (total_events(tl) >= PW_RESOURCES_PER_PATIENT_MAX) {
        return PW_E2BIG;
    }
    int rc = PW_ARRAY_GROW(&tl->orders);
    if (rc < 0) {
        return rc;
    }
    tl->orders.v[tl->orders.n++] = *ev;
    return 0;
}

int pw_timeline_add_referral(struct pw_timeline *tl, const struct pw_referral *ev)
{
    return add_event((void **)&tl->referrals.v, &tl->referrals.n, &tl->referrals.cap, sizeof(*ev),
                     offsetof(struct pw_referral, src), ev, tl);
}

/* Data-quality events: one resource may have several; only exact duplicates are dropped. */
int pw_timeline_add_dq(struct pw_timeline *tl, const struct pw_dq_event *ev)
{
    for (size_t i = 0; i < tl->dq.n; i++) {
        const struct pw_dq_event *d = &tl->dq.v[i];
        if (same_resource(&d->src, &ev->src) && strcmp(d->code, ev->code) == 0 &&
            strcmp(d->detail, ev->detail) == 0) {
            return 0;
        }
    }
    /* Patient-level events (the cap, scope, rules off: a few per patient) pass the cap. */
    if (total_events(tl) >= PW_RESOURCES_PER_PATIENT_MAX &&
        strcmp(ev->code, PW_DQ_TIMELINE_CAP) != 0 && strcmp(ev->src.type, "Patient") != 0) {
        return PW_E2BIG;
    }
    int rc = PW_ARRAY_GROW(&tl->dq);
    if (rc < 0) {
        return rc;
    }
    tl->dq.v[tl->dq.n++] = *ev;
    return 0;
}

static int cmp_time(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

static int cmp_ref(const struct pw_ref *a, const struct pw_ref *b)
{
    int c = strcmp(a->type, b->type);
    if (c == 0) {
        c = strcmp(a->id, b->id);
    }
    return c;
}

static int cmp_score(const void *a, const void *b)
{
    const struct pw_pain_score *x = a, *y = b;
    int c = cmp_time(x->at, y->at);
    return c ? c : cmp_ref(&x->src, &y->src);
}

static int cmp_pain_type(const void *a, const void *b)
{
    const struct pw_pain_type *x = a, *y = b;
    int c = cmp_time(x->at, y->at);
    return c ? c : cmp_ref(&x->src, &y->src);
}

static int cmp_order(const void *a, const void *b)
{
    const struct pw_med_order *x = a, *y = b;
    int c = cmp_time(x->start, y->start);
    c = c ? c : cmp_ref(&x->src, &y->src);
    return c ? c : (x->part > y->part) - (x->part < y->part);
}

static int cmp_referral(const void *a, const void *b)
{
    const struct pw_referral *x = a, *y = b;
    int c = cmp_time(x->at, y->at);
    return c ? c : cmp_ref(&x->src, &y->src);
}

static int cmp_dq(const void *a, const void *b)
{
    const struct pw_dq_event *x = a, *y = b;
    int c = cmp_ref(&x->src, &y->src);
    if (c == 0) {
        c = strcmp(x->code, y->code);
    }
    return c ? c : strcmp(x->detail, y->detail);
}

static int cmp_context(const void *a, const void *b)
{
    const struct pw_context *x = a, *y = b;
    int c = cmp_time(x->at, y->at);
    if (c == 0) {
        c = (int)x->kind - (int)y->kind;
    }
    return c ? c : cmp_ref(&x->src, &y->src);
}

/*
 * A replacement order (priorPrescription) ends the order it replaces: EHRs often leave the old
 * order active or stopped without an end date, and counting both would double the baseline (a
 * 60 -> 67.5 MME titration would read as +112 %). The old order ends when the new one starts,
 * unless it already ended earlier.
 */
static void link_replacements(struct pw_timeline *tl)
{
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *n = &tl->orders.v[i];
        if (n->prior[0] == '\0' || n->start == PW_TIME_NONE) {
            continue;
        }
        for (size_t k = 0; k < tl->orders.n; k++) {
            struct pw_med_order *o = &tl->orders.v[k];
            char ref[PW_REF_MAX];
            if (k == i) {
                continue;
            }
            snprintf(ref, sizeof(ref), "%s/%s", o->src.type, o->src.id);
            if (strcmp(ref, n->prior) == 0 && (o->start == PW_TIME_NONE || o->start <= n->start) &&
                o->end > n->start) {
                o->end = n->start;
            }
        }
    }
}

void pw_timeline_sort(struct pw_timeline *tl)
{
    link_replacements(tl);
    if (tl->scores.n > 1) {
        qsort(tl->scores.v, tl->scores.n, sizeof(*tl->scores.v), cmp_score);
    }
    if (tl->pain_types.n > 1) {
        qsort(tl->pain_types.v, tl->pain_types.n, sizeof(*tl->pain_types.v), cmp_pain_type);
    }
    if (tl->orders.n > 1) {
        qsort(tl->orders.v, tl->orders.n, sizeof(*tl->orders.v), cmp_order);
    }
    if (tl->referrals.n > 1) {
        qsort(tl->referrals.v, tl->referrals.n, sizeof(*tl->referrals.v), cmp_referral);
    }
    if (tl->dq.n > 1) {
        qsort(tl->dq.v, tl->dq.n, sizeof(*tl->dq.v), cmp_dq);
    }
    if (tl->context.n > 1) {
        qsort(tl->context.v, tl->context.n, sizeof(*tl->context.v), cmp_context);
    }
}

bool pw_order_active_at(const struct pw_med_order *o, int64_t t)
{
    return o->start <= t && t < o->end;
}

double pw_timeline_baseline_mme_at(const struct pw_timeline *tl, int64_t t)
{
    double sum = 0.0;
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        /* An unknown dose makes the total unknown (NAN): a partial sum would understate it. */
        if (o->role == PW_ROLE_BASELINE && pw_order_active_at(o, t)) {
            sum += o->mme_per_day;
        }
    }
    return sum;
}
