/* SPDX-License-Identifier: Apache-2.0 */
/* reassessment-overdue-after-high-score: a severe pain score left without a later score. */
#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"

enum { P_HIGH_PAIN, P_OVERDUE_H, P_LOOKBACK_D };

static const struct pw_rule_param params[] = {
    [P_HIGH_PAIN] = {"high_pain", 7, 0, 10, "NRS score counted as severe pain (guide: NRS 0-10)"},
    [P_OVERDUE_H] = {"overdue_h", 24, 0.25, 720,
                     "hours by which severe pain must be scored again (guide: reassess at every "
                     "encounter; sites set e.g. 4 h on wards, 1 h after IV rescue)"},
    [P_LOOKBACK_D] = {"lookback_days", 7, 1, 365,
                      "a severe score older than this many days is history, not an overdue "
                      "reassessment (issue 17; site)"},
};

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    const double *p = in->params;
    const struct pw_pain_score *last = pw_ru_score_at(in->tl, in->now);
    if (!last || last->value < p[P_HIGH_PAIN] ||
        (double)(in->now - last->at) > p[P_LOOKBACK_D] * PW_DAY) {
        return 0;
    }
    /*
     * The setting decides (issue 17): a score taken at a clinic or virtual visit is reassessed
     * at the next visit (unless the patient is now in hospital or the emergency department);
     * otherwise, or when no encounter tells, the timer applies.
     */
    const struct pw_context *enc = pw_ru_encounter_at(in->tl, last->at);
    const struct pw_context *next = NULL;
    bool visit =
        pw_ru_visit_setting(enc) && !pw_ru_acute_setting(pw_ru_encounter_at(in->tl, in->now));
    if (visit) {
        next = pw_ru_next_encounter(in->tl, enc->end, in->now);
        if (!next || !next->finished) {
            return 0;
        }
    } else if ((double)(in->now - last->at) <= p[P_OVERDUE_H] * PW_HOUR) {
        return 0;
    }
    struct pw_finding f;
    char a[32], t[32], d[32], h[32];
    pw_ru_finding_init(&f, rule, PW_SEV_MEDIUM);
    if (visit) {
        pw_ru_cat(f.text, sizeof(f.text),
                  "Pain score %s/10 at a visit on %s and not reassessed at the next visit (%s). "
                  "Guide: reassess pain at every encounter.",
                  pw_ru_num(a, last->value), pw_ru_time(t, last->at), pw_ru_time(d, next->at));
        pw_finding_add_evidence(&f, &next->src);
    } else {
        pw_ru_cat(f.text, sizeof(f.text),
                  "Pain score %s/10 on %s and no pain score since (%s ago). Guide: reassess "
                  "severe pain after treatment, within %s here.",
                  pw_ru_num(a, last->value), pw_ru_time(t, last->at),
                  pw_ru_dur(d, in->now - last->at),
                  pw_ru_dur(h, (int64_t)(p[P_OVERDUE_H] * PW_HOUR)));
    }
    const struct pw_context *eol = pw_ru_end_of_life(in->tl, in->now);
    if (eol != NULL) {
        f.severity = PW_SEV_LOW;
        pw_ru_cat(f.text, sizeof(f.text), "%s", PW_RU_EOL_TEXT);
        pw_finding_add_evidence(&f, &eol->src);
    }
    pw_ru_sit(f.situation, sizeof(f.situation), "score:");
    pw_ru_sit_ref(f.situation, sizeof(f.situation), &last->src);
    f.since = last->at;
    pw_finding_add_evidence(&f, &last->src);
    pw_finding_add_number(&f, "pain_score", last->value);
    pw_finding_add_number(&f, "hours_since_score", (double)(in->now - last->at) / PW_HOUR);
    return pw_findings_push(out, &f);
}

const struct pw_rule pw_rule_reassessment_overdue_after_high_score = {
    .id = "reassessment-overdue-after-high-score",
    .title = "Severe pain not reassessed",
    .category = "clinical",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .eval = eval,
    .reads = PW_RES_OBSERVATION | PW_RES_ENCOUNTER,
    .absence = PW_RES_OBSERVATION,
};
