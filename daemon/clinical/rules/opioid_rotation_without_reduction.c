/* SPDX-License-Identifier: Apache-2.0 */
/* opioid-rotation-without-reduction: a switch to another opioid without the cross-tolerance cut. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"

enum { P_MAX_PCT, P_MAX_GAP_H, P_WINDOW_H, P_MAX_PCT_ROUTE };

static const struct pw_rule_param params[] = {
    [P_MAX_PCT] = {"max_new_pct_of_old", 75, 0, 1000,
                   "largest new baseline as % of the old one after a switch of opioid (CDC 2022 "
                   "and palliative guidance: reduce the equianalgesic dose by 25-50% for "
                   "incomplete cross-tolerance)"},
    [P_MAX_GAP_H] = {"max_gap_h", 24, 0, 720,
                     "hours between stopping one opioid and starting another that still make "
                     "a rotation (issue 3 default)"},
    [P_WINDOW_H] = PW_RU_PARAM_WINDOW_H("a rotation", "ones", "site"),
    [P_MAX_PCT_ROUTE] = {"max_new_pct_of_old_route_change", 100, 0, 1000,
                         "largest new baseline as % of the old one when only the route of the "
                         "same opioid changes (no cross-tolerance to cover: the equianalgesic "
                         "dose by the route factors, issue 16; site)"},
};

static bool same_ingredient(const struct pw_med_order *a, const struct pw_med_order *b)
{
    if (a->ingredient_rxcui[0] && b->ingredient_rxcui[0]) {
        return strcmp(a->ingredient_rxcui, b->ingredient_rxcui) == 0;
    }
    return strcmp(a->ingredient, b->ingredient) == 0;
}

static void lower(char *dst, size_t size, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < size; i++) {
        dst[i] = (char)tolower((unsigned char)src[i]);
    }
    dst[i] = '\0';
}

struct rotation {
    const struct pw_med_order *old;
    const struct pw_med_order *new;
    int64_t t0, t1;
    double old_mme, new_mme;
};

/* Index of the first order starting at or after @p t (orders are sorted by start). */
static size_t first_start_at(const struct pw_timeline *tl, int64_t t)
{
    size_t lo = 0;
    size_t hi = tl->orders.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tl->orders.v[mid].start < t) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* @p t + @p d held within int64 (times from a damaged store may sit at its ends, issue 18). */
static int64_t time_add(int64_t t, int64_t d)
{
    int64_t r;
    return __builtin_add_overflow(t, d, &r) ? (d < 0 ? INT64_MIN : INT64_MAX) : r;
}

/* |@p a - @p b| held within int64. */
static int64_t time_dist(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_sub_overflow(a, b, &r) || r == INT64_MIN ? INT64_MAX : llabs(r);
}

/* The latest stop-and-start pair of different baseline opioids within max_gap_h. */
static bool find_rotation(const struct pw_rule_input *in, struct rotation *r)
{
    const struct pw_timeline *tl = in->tl;
    int64_t gap = (int64_t)(in->params[P_MAX_GAP_H] * PW_HOUR);
    bool found = false;
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *a = &tl->orders.v[i];
        if (a->role != PW_ROLE_BASELINE || a->end == PW_TIME_FOREVER || a->end == PW_TIME_NONE ||
            a->end > in->now) {
            continue;
        }
        for (size_t j = first_start_at(tl, time_add(a->end, -gap)); j < tl->orders.n; j++) {
            const struct pw_med_order *b = &tl->orders.v[j];
            if (b->start > time_add(a->end, gap)) {
                break; /* orders are sorted by start */
            }
            /* A switch of drug or of route; methadone conversions are judged by
             * methadone-conversion-review (non-linear: no percentage here). */
            if (b->role != PW_ROLE_BASELINE || b->start == PW_TIME_NONE || b->start > in->now ||
                b->start <= a->start || time_dist(b->start, a->end) > gap ||
                pw_ru_same_drug_route(a, b) || ((a->classes | b->classes) & PW_MED_METHADONE)) {
                continue;
            }
            int64_t t1 = a->end > b->start ? a->end : b->start;
            if (found && t1 <= r->t1) {
                continue;
            }
            found = true;
            r->old = a;
            r->new = b;
            r->t0 = a->end < b->start ? a->end : b->start;
            r->t1 = t1;
        }
    }
    return found;
}

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    const double *p = in->params;
    struct rotation r = {0};
    if (pw_ru_oud(in->tl, in->now) || !find_rotation(in, &r) ||
        (double)in->now - (double)r.t1 > p[P_WINDOW_H] * PW_HOUR) {
        return 0;
    }
    bool route_only = same_ingredient(r.old, r.new);
    double max_pct = route_only ? p[P_MAX_PCT_ROUTE] : p[P_MAX_PCT];
    r.old_mme = pw_ru_tdd(in->tl, r.t0 - 1);
    r.new_mme = pw_ru_tdd(in->tl, r.t1);
    if (!isfinite(r.old_mme) || !isfinite(r.new_mme) || r.old_mme < PW_MME_EPS) {
        return 0;
    }
    double pct = r.new_mme / r.old_mme * 100;
    if (pct <= max_pct + 1e-9) {
        return 0;
    }
    struct pw_finding f;
    char from[48], to[48], a[32], b[32], c[32], d[32], e[32], t[32];
    lower(from, sizeof(from), r.old->ingredient);
    lower(to, sizeof(to), r.new->ingredient);
    pw_ru_finding_init(&f, rule, PW_SEV_MEDIUM);
    if (route_only) {
        pw_ru_cat(f.text, sizeof(f.text),
                  "Route change of %s (%s -> %s) on %s: baseline %s -> %s MME/day = %s%% of the "
                  "previous dose by the route conversion factors. A change of route should not "
                  "raise the equianalgesic dose: at most %s%% = %s MME/day.",
                  from, pw_ru_route_word(r.old->route), pw_ru_route_word(r.new->route),
                  pw_ru_time(t, r.t1), pw_ru_num(a, r.old_mme), pw_ru_num(b, r.new_mme),
                  pw_ru_num(c, pct), pw_ru_num(d, max_pct),
                  pw_ru_num(e, r.old_mme * max_pct / 100));
    } else {
        pw_ru_cat(f.text, sizeof(f.text),
                  "Opioid rotation %s -> %s on %s: baseline %s -> %s MME/day = %s%% of the "
                  "previous dose. CDC 2022: start the new opioid 25-50%% below the calculated "
                  "equianalgesic dose (incomplete cross-tolerance), i.e. at most %s%% = %s "
                  "MME/day.",
                  from, to, pw_ru_time(t, r.t1), pw_ru_num(a, r.old_mme), pw_ru_num(b, r.new_mme),
                  pw_ru_num(c, pct), pw_ru_num(d, max_pct),
                  pw_ru_num(e, r.old_mme * max_pct / 100));
    }
    pw_ru_sit(f.situation, sizeof(f.situation), "rotation:");
    pw_ru_sit_ref(f.situation, sizeof(f.situation), &r.old->src);
    pw_ru_sit_ref(f.situation, sizeof(f.situation), &r.new->src);
    f.since = r.t1;
    pw_finding_add_evidence(&f, &r.old->src);
    pw_finding_add_evidence(&f, &r.new->src);
    pw_finding_add_number(&f, "old_baseline_mme_per_day", r.old_mme);
    pw_finding_add_number(&f, "new_baseline_mme_per_day", r.new_mme);
    pw_finding_add_number(&f, "new_pct_of_old", pct);
    return pw_findings_push(out, &f);
}

const struct pw_rule pw_rule_opioid_rotation_without_reduction = {
    .id = "opioid-rotation-without-reduction",
    .title = "Opioid rotation without dose reduction",
    .category = "drug",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .eval = eval,
    .reads = PW_RES_MEDICATION_REQUEST,
    .absence = 0,
};
