/* SPDX-License-Identifier: Apache-2.0 */
/* titration-step-too-small: a baseline increase too small to help moderate or severe pain. */
#include <math.h>

#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"

enum { P_MIN_PCT, P_PAIN, P_WINDOW_H, P_CONV_H };

static const struct pw_rule_param params[] = {
    [P_MIN_PCT] = {"min_increase_pct", 25, 0, 1000,
                   "smallest useful step (%); guide: titrate by 25-50%, smaller steps that leave "
                   "pain unmanaged are not safer"},
    [P_PAIN] = {"pain_threshold", 4, 0, 10,
                "last pain score (NRS) before the step from which a small step is flagged "
                "(guide: NRS 0-10; 4-6 moderate)"},
    [P_WINDOW_H] = PW_RU_PARAM_WINDOW_H("an increase", "steps", "site"),
    [P_CONV_H] = PW_RU_PARAM_CONVERSION_H,
};

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    const double *p = in->params;
    struct pw_step s;
    double pct;
    int err = pw_ru_titration_step(in, p[P_WINDOW_H], p[P_CONV_H], &s, &pct);
    if (err <= 0) {
        return err;
    }
    /* Without a pain score we cannot say the pain called for more. */
    const struct pw_pain_score *sc = pw_ru_score_at(in->tl, s.at);
    if (!sc || sc->value < p[P_PAIN] || pct >= p[P_MIN_PCT] - 1e-9) {
        return 0;
    }

    struct pw_finding f;
    char a[32], b[32], c[32], d[32], e[32], t[32];
    pw_ru_finding_init(&f, rule, PW_SEV_LOW);
    pw_ru_cat(f.text, sizeof(f.text),
              "Baseline opioid increased only %s%% (%s -> %s MME/day on %s) while the last pain "
              "score before it was %s/10. ",
              pw_ru_num(c, pct), pw_ru_num(a, s.old_mme), pw_ru_num(b, s.new_mme),
              pw_ru_time(t, s.at), pw_ru_num(d, sc->value));
    pw_ru_cat(f.text, sizeof(f.text), "Guide: steps of at least %s%%", pw_ru_num(e, p[P_MIN_PCT]));
    /* Methadone's MME is not linear: no MME figure as advice (issue 16). */
    if (pw_ru_regimen_class(in->tl, s.at, PW_MED_METHADONE)) {
        pw_ru_cat(f.text, sizeof(f.text), " (with methadone, with specialist advice)");
    } else {
        pw_ru_cat(f.text, sizeof(f.text), ", i.e. at least %s MME/day",
                  pw_ru_num(a, s.old_mme * (1 + p[P_MIN_PCT] / 100)));
    }
    pw_ru_cat(f.text, sizeof(f.text), "; smaller steps prolong uncontrolled pain.");
    pw_ru_step_context(&f, in->tl, &s);
    pw_finding_add_evidence(&f, &sc->src);
    pw_ru_step_numbers(&f, &s, pct);
    pw_finding_add_number(&f, "last_pain_score", sc->value);
    return pw_findings_push(out, &f);
}

const struct pw_rule pw_rule_titration_step_too_small = {
    .id = "titration-step-too-small",
    .title = "Opioid titration step too small for the pain",
    .category = "drug",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .eval = eval,
    .reads = PW_RES_OBSERVATION | PW_RES_MEDICATION_REQUEST,
    .absence = 0,
};
