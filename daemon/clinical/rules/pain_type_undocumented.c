/* SPDX-License-Identifier: Apache-2.0 */
/* pain-type-undocumented: moderate or worse pain and the pain type was never documented. */
#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"

enum { P_PAIN };

static const struct pw_rule_param params[] = {
    [P_PAIN] = {"pain_threshold", 4, 0, 10,
                "NRS score from which the pain type should be on record (guide: document "
                "neuropathic / somatic / visceral at the first visit; 4-6 moderate)"},
};

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    const struct pw_timeline *tl = in->tl;
    for (size_t i = 0; i < tl->pain_types.n; i++) {
        if (tl->pain_types.v[i].at <= in->now) {
            return 0;
        }
    }
    const struct pw_pain_score *first = NULL;
    for (size_t i = 0; i < tl->scores.n; i++) {
        const struct pw_pain_score *s = &tl->scores.v[i];
        if (s->at <= in->now && s->value >= in->params[P_PAIN] && (!first || s->at < first->at)) {
            first = s;
        }
    }
    if (!first) {
        return 0;
    }
    struct pw_finding f;
    char a[32], b[32], t[32];
    pw_ru_finding_init(&f, rule, PW_SEV_INFO);
    pw_ru_cat(f.text, sizeof(f.text),
              "Pain score %s/10 on %s (>= %s) and the pain type was never documented. Guide: "
              "record whether the pain is neuropathic, somatic, visceral or mixed; it decides "
              "adjuvants and the choice of treatment.",
              pw_ru_num(a, first->value), pw_ru_time(t, first->at),
              pw_ru_num(b, in->params[P_PAIN]));
    return pw_ru_push_about(out, &f, "first-score", &first->src, first->at, "pain_score",
                            first->value);
}

const struct pw_rule pw_rule_pain_type_undocumented = {
    .id = "pain-type-undocumented",
    .title = "Pain type not documented",
    .category = "clinical",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .eval = eval,
    .reads = PW_RES_OBSERVATION | PW_RES_CONDITION,
    .absence = PW_RES_OBSERVATION | PW_RES_CONDITION,
};
