/* SPDX-License-Identifier: Apache-2.0 */
/* methadone-conversion-review: methadone started or increased while converting from another
 * opioid. The conversion is non-linear (ratio grows with the previous dose): specialist input,
 * never a linear mg figure. */
#include <ctype.h>
#include <math.h>
#include <string.h>

#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"

enum { P_GAP_H, P_WINDOW_H };

static const struct pw_rule_param params[] = {
    [P_GAP_H] = {"max_gap_h", 24, 0, 720,
                 "hours between another opioid's stop and methadone's start (or increase) that "
                 "still make a conversion (issue 16 default, as the rotation window)"},
    [P_WINDOW_H] = {"window_h", 168, 1, 8760,
                    "only a methadone start or increase within this many hours is judged; "
                    "methadone reaches steady state over about 5-7 days (site)"},
};

static bool is_methadone(const struct pw_med_order *o)
{
    return (o->classes & PW_MED_METHADONE) != 0;
}

static void lower(char *dst, size_t size, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < size; i++) {
        dst[i] = (char)tolower((unsigned char)src[i]);
    }
    dst[i] = '\0';
}

/*
 * The methadone baseline that @p o follows (another order or part still in force at o's start,
 * or ended within PW_STEP_COALESCE_S before it), or NULL when o starts methadone.
 */
static const struct pw_med_order *methadone_before(const struct pw_timeline *tl,
                                                   const struct pw_med_order *o)
{
    const struct pw_med_order *prev = NULL;
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *p = &tl->orders.v[i];
        if (p == o || p->role != PW_ROLE_BASELINE || !is_methadone(p) || p->start == PW_TIME_NONE ||
            p->start >= o->start) {
            continue;
        }
        bool before = pw_order_active_at(p, o->start) ||
                      (p->end != PW_TIME_NONE && p->end != PW_TIME_FOREVER && p->end <= o->start &&
                       o->start - p->end <= PW_STEP_COALESCE_S);
        if (before && (prev == NULL || p->start > prev->start)) {
            prev = p;
        }
    }
    return prev;
}

/* True when @p o raises methadone over @p prev: an added order, or a replacement with a higher
 * daily dose (unknown doses are not judged: a data-quality event says why). */
static bool is_increase(const struct pw_med_order *o, const struct pw_med_order *prev)
{
    if (pw_order_active_at(prev, o->start)) {
        return true;
    }
    return isfinite(o->mg_per_day) && isfinite(prev->mg_per_day) &&
           o->mg_per_day > prev->mg_per_day * (1 + 1e-9);
}

/* True when @p a (another opioid's baseline, started before @p t) was in force at @p t or ended
 * at most @p gap seconds before it. */
static bool converting_at(const struct pw_med_order *a, int64_t t, int64_t gap)
{
    return pw_order_active_at(a, t) || (a->end != PW_TIME_NONE && a->end != PW_TIME_FOREVER &&
                                        a->end <= t && t - a->end <= gap);
}

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    const struct pw_timeline *tl = in->tl;
    const double *p = in->params;
    int64_t gap = (int64_t)(p[P_GAP_H] * PW_HOUR);
    int64_t window = (int64_t)(p[P_WINDOW_H] * PW_HOUR);
    const struct pw_med_order *m = NULL, *other = NULL, *prev_m = NULL;
    if (pw_ru_oud(tl, in->now)) {
        return 0;
    }
    /*
     * The latest methadone baseline start or increase within the window while converting from
     * another opioid: for a start, another opioid in force at that time or stopped within
     * max_gap_h; for an increase (an added order, or a new order or part with a higher daily
     * dose), another opioid still in force, or one the methadone was started from (in force or
     * stopped within max_gap_h at the start of the methadone) that stopped within window_h.
     */
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if (o->role != PW_ROLE_BASELINE || !is_methadone(o) || o->start == PW_TIME_NONE ||
            o->start > in->now || in->now - o->start > window || !pw_order_active_at(o, in->now)) {
            continue;
        }
        const struct pw_med_order *prev = methadone_before(tl, o);
        if (prev != NULL && !is_increase(o, prev)) {
            continue; /* a methadone decrease or an unchanged renewal */
        }
        int64_t run = prev ? pw_ru_exposure_start(tl, prev->start, PW_MED_METHADONE) : o->start;
        if (run == PW_TIME_NONE) {
            run = prev->start;
        }
        for (size_t k = 0; k < tl->orders.n; k++) {
            const struct pw_med_order *a = &tl->orders.v[k];
            if (a->role != PW_ROLE_BASELINE || is_methadone(a) ||
                (a->start != PW_TIME_NONE && a->start >= o->start)) {
                continue;
            }
            bool conv = prev == NULL ? converting_at(a, o->start, gap)
                                     : pw_order_active_at(a, o->start) ||
                                           (converting_at(a, run, gap) &&
                                            converting_at(a, o->start, window));
            if (conv && (m == NULL || o->start > m->start)) {
                m = o;
                other = a;
                prev_m = prev;
            }
        }
    }
    if (m == NULL) {
        return 0;
    }
    struct pw_finding f;
    char from[48], t[32], x[32], y[32];
    lower(from, sizeof(from), other->ingredient[0] ? other->ingredient : other->drug_name);
    pw_ru_finding_init(&f, rule, PW_SEV_MEDIUM);
    if (prev_m == NULL) {
        pw_ru_cat(f.text, sizeof(f.text), "Methadone started on %s while converting from %s.",
                  pw_ru_time(t, m->start), from);
    } else if (pw_order_active_at(prev_m, m->start)) {
        pw_ru_cat(f.text, sizeof(f.text),
                  "Methadone increased on %s (an added methadone order) while converting from %s.",
                  pw_ru_time(t, m->start), from);
    } else {
        pw_ru_cat(f.text, sizeof(f.text),
                  "Methadone increased on %s (%s to %s mg/day) while converting from %s.",
                  pw_ru_time(t, m->start), pw_ru_num(x, prev_m->mg_per_day),
                  pw_ru_num(y, m->mg_per_day), from);
    }
    pw_ru_cat(f.text, sizeof(f.text),
              " Conversion to methadone is non-linear (the ratio depends on the previous dose; "
              "methadone accumulates over days): it needs specialist (palliative care or pain) "
              "input and close monitoring. painwatch gives no mg conversion for methadone.");
    pw_ru_sit(f.situation, sizeof(f.situation), "methadone:");
    pw_ru_sit_ref(f.situation, sizeof(f.situation), &m->src);
    pw_ru_sit_ref(f.situation, sizeof(f.situation), &other->src);
    if (prev_m != NULL) {
        pw_ru_sit(f.situation, sizeof(f.situation), "increase:part%d|", m->part);
    }
    f.since = m->start;
    pw_finding_add_evidence(&f, &m->src);
    pw_finding_add_evidence(&f, &other->src);
    if (prev_m != NULL) {
        pw_finding_add_evidence(&f, &prev_m->src);
    }
    return pw_findings_push(out, &f);
}

const struct pw_rule pw_rule_methadone_conversion_review = {
    .id = "methadone-conversion-review",
    .title = "Methadone conversion needs specialist review",
    .category = "drug",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .reads = PW_RES_MEDICATION_REQUEST | PW_RES_CONDITION, /* orders; an OUD Condition */
    .absence = 0,
    .eval = eval,
};
