/* SPDX-License-Identifier: Apache-2.0 */
/* pain-not-assessed-at-visit: a finished encounter of a patient on opioids without a pain score. */
#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"

enum { P_LOOKBACK_D, P_GRACE_H };

static const struct pw_rule_param params[] = {
    [P_LOOKBACK_D] = {"lookback_days", 7, 1, 365,
                      "encounters that finished within this many days are checked; older ones "
                      "are history (site)"},
    [P_GRACE_H] = {"grace_h", 1, 0, 24,
                   "a score this many hours before or after the encounter still counts (scores "
                   "charted at check-in or after the visit; site)"},
};

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    const struct pw_timeline *tl = in->tl;
    /* Issue 16: an opioid-use-disorder product or Condition puts the patient outside the
     * cancer-pain opioid rules; the visit is judged on its cancer-pain opioid, which this patient's
     * is not taken to be. */
    if (pw_ru_oud(tl, in->now)) {
        return 0;
    }
    const struct pw_context *miss = NULL;
    int64_t grace = (int64_t)(in->params[P_GRACE_H] * PW_HOUR);
    for (size_t i = 0; i < tl->context.n; i++) {
        const struct pw_context *c = &tl->context.v[i];
        if (c->kind != PW_CTX_ENCOUNTER || !c->finished || c->end > in->now ||
            (double)(in->now - c->end) > in->params[P_LOOKBACK_D] * PW_DAY ||
            !pw_ru_active(tl, c->at, PW_MED_OPIOID, -1) ||
            pw_ru_score_between(tl, c->at - grace, c->end + grace) != NULL) {
            continue;
        }
        miss = c; /* the latest such encounter (sorted by start) */
    }
    if (!miss) {
        return 0;
    }
    struct pw_finding f;
    char t[32];
    pw_ru_finding_init(&f, rule, PW_SEV_LOW);
    pw_ru_cat(f.text, sizeof(f.text),
              "Encounter on %s finished without a pain score while opioids are prescribed. "
              "Guide: assess pain at every visit (intensity 0-10, and whether the plan works).",
              pw_ru_time(t, miss->at));
    return pw_ru_push_about(out, &f, "encounter", &miss->src, miss->end, "setting", miss->value);
}

const struct pw_rule pw_rule_pain_not_assessed_at_visit = {
    .id = "pain-not-assessed-at-visit",
    .title = "Pain not assessed at a visit",
    .category = "clinical",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .eval = eval,
    .reads = PW_RES_ENCOUNTER | PW_RES_OBSERVATION | PW_RES_MEDICATION_REQUEST,
    .absence = PW_RES_OBSERVATION,
};
