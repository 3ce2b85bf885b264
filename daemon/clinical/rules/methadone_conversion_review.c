/* SPDX-License-Identifier: Apache-2.0 */
/* methadone-conversion-review: methadone started or increased while converting from another
 * opioid. The conversion is non-linear (ratio grows with the previous dose): specialist input,
 * never a linear mg figure. */
#include <ctype.h>
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

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    const struct pw_timeline *tl = in->tl;
    const double *p = in->params;
    int64_t gap = (int64_t)(p[P_GAP_H] * PW_HOUR);
    const struct pw_med_order *m = NULL, *other = NULL;
    if (pw_ru_oud(tl, in->now)) {
        return 0;
    }
    /* The latest methadone baseline start within the window with another opioid as baseline
     * (still active, or stopped within max_gap_h) at that time. */
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if (o->role != PW_ROLE_BASELINE || !is_methadone(o) || o->start == PW_TIME_NONE ||
            o->start > in->now || (double)(in->now - o->start) > p[P_WINDOW_H] * PW_HOUR ||
            !pw_order_active_at(o, in->now)) {
            continue;
        }
        for (size_t k = 0; k < tl->orders.n; k++) {
            const struct pw_med_order *a = &tl->orders.v[k];
            if (a->role != PW_ROLE_BASELINE || is_methadone(a) ||
                (a->start != PW_TIME_NONE && a->start >= o->start)) {
                continue;
            }
            bool overlaps = pw_order_active_at(a, o->start) ||
                            (a->end != PW_TIME_NONE && a->end != PW_TIME_FOREVER &&
                             a->end <= o->start && o->start - a->end <= gap);
            if (overlaps && (m == NULL || o->start > m->start)) {
                m = o;
                other = a;
            }
        }
    }
    if (m == NULL) {
        return 0;
    }
    struct pw_finding f;
    char from[48], t[32];
    lower(from, sizeof(from), other->ingredient[0] ? other->ingredient : other->drug_name);
    pw_ru_finding_init(&f, rule, PW_SEV_MEDIUM);
    pw_ru_cat(f.text, sizeof(f.text),
              "Methadone started or increased on %s while converting from %s. Conversion to "
              "methadone is non-linear (the ratio depends on the previous dose; methadone "
              "accumulates over days): it needs specialist (palliative care or pain) input and "
              "close monitoring. painwatch gives no mg conversion for methadone.",
              pw_ru_time(t, m->start), from);
    pw_ru_sit(f.situation, sizeof(f.situation), "methadone:");
    pw_ru_sit_ref(f.situation, sizeof(f.situation), &m->src);
    pw_ru_sit_ref(f.situation, sizeof(f.situation), &other->src);
    f.since = m->start;
    pw_finding_add_evidence(&f, &m->src);
    pw_finding_add_evidence(&f, &other->src);
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
