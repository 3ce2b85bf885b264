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
    [P_WINDOW_H] = {"window_h", 72, 1, 8760,
                    "only an increase within this many hours is judged; older steps are history "
                    "(site)"},
    [P_CONV_H] = {"conversion_window_h", 24, 0, 720,
                  "a baseline started within this many hours of another opioid or route being "
                  "stopped is a conversion, judged by opioid-rotation-without-reduction, not as "
                  "titration (issue 16 default)"},
};

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    const double *p = in->params;
    struct pw_steps steps;
    const struct pw_step *s;
    double pct;
    int err = pw_steps_recent_increase(in, p[P_WINDOW_H], &steps, &s, &pct);
    if (err) {
        return err;
    }
    if (!s || pw_ru_oud(in->tl, in->now) || pw_ru_step_is_conversion(in->tl, s, p[P_CONV_H])) {
        goto done;
    }
    /* Without a pain score we cannot say the pain called for more. */
    const struct pw_pain_score *sc = pw_ru_score_at(in->tl, s->at);
    if (!sc || sc->value < p[P_PAIN] || pct >= p[P_MIN_PCT] - 1e-9) {
        goto done;
    }

    struct pw_finding f;
    char a[32], b[32], c[32], d[32], e[32], t[32];
    pw_ru_finding_init(&f, rule, PW_SEV_LOW);
    pw_ru_cat(f.text, sizeof(f.text),
              "Baseline opioid increased only %s%% (%s -> %s MME/day on %s) while the last pain "
              "score before it was %s/10. ",
              pw_ru_num(c, pct), pw_ru_num(a, s->old_mme), pw_ru_num(b, s->new_mme),
              pw_ru_time(t, s->at), pw_ru_num(d, sc->value));
    pw_ru_cat(f.text, sizeof(f.text), "Guide: steps of at least %s%%", pw_ru_num(e, p[P_MIN_PCT]));
    /* Methadone's MME is not linear: no MME figure as advice (issue 16). */
    if (pw_ru_regimen_class(in->tl, s->at, PW_MED_METHADONE)) {
        pw_ru_cat(f.text, sizeof(f.text), " (with methadone, with specialist advice)");
    } else {
        pw_ru_cat(f.text, sizeof(f.text), ", i.e. at least %s MME/day",
                  pw_ru_num(a, s->old_mme * (1 + p[P_MIN_PCT] / 100)));
    }
    pw_ru_cat(f.text, sizeof(f.text), "; smaller steps prolong uncontrolled pain.");
    pw_ru_sit(f.situation, sizeof(f.situation), "step:%lld|", (long long)s->at);
    pw_ru_sit_regimen(f.situation, sizeof(f.situation), in->tl, s->at);
    f.since = s->at;
    pw_ru_evidence_regimen(&f, in->tl, s->at);
    pw_finding_add_evidence(&f, &sc->src);
    pw_finding_add_number(&f, "old_baseline_mme_per_day", s->old_mme);
    pw_finding_add_number(&f, "new_baseline_mme_per_day", s->new_mme);
    pw_finding_add_number(&f, "step_pct", pct);
    pw_finding_add_number(&f, "last_pain_score", sc->value);
    err = pw_findings_push(out, &f);
done:
    pw_steps_cleanup(&steps);
    return err;
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
