/* SPDX-License-Identifier: Apache-2.0 */
/* palliative-referral-suggested: severe pain on several days and no palliative care involved. */
#include <math.h>

#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"

enum { P_HIGH_PAIN, P_MIN_DAYS, P_WINDOW_DAYS, P_UTC_OFFSET_H };

#define MAX_WINDOW_DAYS 90

static const struct pw_rule_param params[] = {
    [P_HIGH_PAIN] = {"high_pain", 7, 0, 10, "NRS score counted as severe pain (guide: NRS 0-10)"},
    [P_MIN_DAYS] = {"min_days", 3, 1, MAX_WINDOW_DAYS,
                    "distinct days with severe pain that suggest a referral (site; guide: "
                    "involve palliative care early)"},
    [P_WINDOW_DAYS] = {"window_days", 7, 1, MAX_WINDOW_DAYS, "look-back in days (site)"},
    [P_UTC_OFFSET_H] = {"utc_offset_h", 0, -14, 14,
                        "site time zone offset used to split calendar days (site)"},
};

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    const double *p = in->params;
    const struct pw_timeline *tl = in->tl;
    for (size_t i = 0; i < tl->referrals.n; i++) {
        if (tl->referrals.v[i].at <= in->now) {
            return 0;
        }
    }
    int64_t off = (int64_t)(p[P_UTC_OFFSET_H] * PW_HOUR);
    int64_t from = in->now - (int64_t)(p[P_WINDOW_DAYS] * PW_DAY);
    int64_t days[MAX_WINDOW_DAYS + 2];
    size_t n_days = 0;
    const struct pw_pain_score *first = NULL;
    const struct pw_pain_score *last = NULL;
    for (size_t i = 0; i < tl->scores.n; i++) {
        const struct pw_pain_score *s = &tl->scores.v[i];
        if (s->at <= from || s->at > in->now || s->value < p[P_HIGH_PAIN]) {
            continue;
        }
        first = first && first->at <= s->at ? first : s;
        last = last && last->at >= s->at ? last : s;
        /* floor division: days before 1970 must not share day 0 */
        int64_t local = s->at + off;
        int64_t day = local / PW_DAY - (local % PW_DAY < 0);
        bool seen = false;
        for (size_t k = 0; k < n_days; k++) {
            seen = seen || days[k] == day;
        }
        if (!seen && n_days < sizeof(days) / sizeof(days[0])) {
            days[n_days++] = day;
        }
    }
    if (!first || (double)n_days < p[P_MIN_DAYS]) {
        return 0;
    }
    struct pw_finding f;
    char a[32], b[32], t[32];
    pw_ru_finding_init(&f, rule, PW_SEV_LOW);
    pw_ru_cat(f.text, sizeof(f.text),
              "Pain >= %s on %zu different days in the last %s days (since %s) and no palliative "
              "care referral or encounter on record. Guide: involve palliative care early; it "
              "improves pain control and is not only end-of-life care.",
              pw_ru_num(a, p[P_HIGH_PAIN]), n_days, pw_ru_num(b, p[P_WINDOW_DAYS]),
              pw_ru_time(t, first->at));
    /* One episode per patient until a referral exists: the window slides with `now`, the
     * situation (no referral yet) does not. */
    pw_ru_sit(f.situation, sizeof(f.situation), "no-referral");
    f.since = first->at;
    pw_finding_add_evidence(&f, &first->src);
    pw_finding_add_evidence(&f, &last->src);
    pw_finding_add_number(&f, "days_with_severe_pain", (double)n_days);
    pw_finding_add_number(&f, "window_days", p[P_WINDOW_DAYS]);
    return pw_findings_push(out, &f);
}

const struct pw_rule pw_rule_palliative_referral_suggested = {
    .id = "palliative-referral-suggested",
    .title = "Palliative care referral suggested",
    .category = "clinical",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .eval = eval,
    .reads = PW_RES_OBSERVATION | PW_RES_SERVICE_REQUEST | PW_RES_ENCOUNTER,
    .absence = PW_RES_SERVICE_REQUEST | PW_RES_ENCOUNTER,
};
