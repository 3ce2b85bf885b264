/* SPDX-License-Identifier: Apache-2.0 */
/* titration-step-too-large: the latest baseline increase is bigger than the guide allows. */
#include <math.h>

#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"

enum { P_MAX_PCT_LOW_PAIN, P_MAX_PCT_ANY, P_HIGH_PAIN, P_WINDOW_H, P_CONV_H, P_SCORE_AGE_H };

static const struct pw_rule_param params[] = {
    [P_MAX_PCT_LOW_PAIN] = {"max_increase_pct_low_pain", 50, 0, 1000,
                            "largest step (%) while the last pain score was below high_pain; "
                            "guide: titrate by 25-50%"},
    [P_MAX_PCT_ANY] = {"max_increase_pct", 100, 0, 1000,
                       "largest step (%) whatever the pain; guide steps are 25-50%, doubling is "
                       "the outer limit even for severe pain (site)"},
    [P_HIGH_PAIN] = {"high_pain", 7, 0, 10,
                     "NRS score from which pain is severe and steps above 50% may be justified "
                     "(guide: NRS 0-10; 7-10 severe)"},
    [P_WINDOW_H] =
        PW_RU_PARAM_WINDOW_H("an increase", "steps", "site; guide reassesses every 24-48 h"),
    [P_CONV_H] = PW_RU_PARAM_CONVERSION_H,
    [P_SCORE_AGE_H] = {"score_max_age_h", 72, 1, 8760,
                       "a severe score justifies a step above 50% only when taken at most this "
                       "many hours before it (issue 17; site: pain is reassessed every 24-48 h)"},
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
    const struct pw_pain_score *sc = pw_ru_score_at(in->tl, s.at);
    /* issue 17: a severe score weeks old does not justify a large step today */
    bool stale = sc && (double)(s.at - sc->at) > p[P_SCORE_AGE_H] * PW_HOUR;
    bool low_pain = !sc || stale || sc->value < p[P_HIGH_PAIN];
    double limit = low_pain ? p[P_MAX_PCT_LOW_PAIN] : p[P_MAX_PCT_ANY];
    if (low_pain && p[P_MAX_PCT_ANY] < limit) {
        limit = p[P_MAX_PCT_ANY];
    }
    if (pct <= limit + 1e-9) {
        return 0;
    }

    struct pw_finding f;
    char a[32], b[32], c[32], d[32], e[32], t[32];
    pw_ru_finding_init(&f, rule, PW_SEV_MEDIUM);
    pw_ru_cat(f.text, sizeof(f.text), "Baseline opioid increased %s -> %s MME/day (+%s%%) on %s; ",
              pw_ru_num(a, s.old_mme), pw_ru_num(b, s.new_mme), pw_ru_num(c, pct),
              pw_ru_time(t, s.at));
    if (sc && stale) {
        pw_ru_cat(f.text, sizeof(f.text),
                  "last pain score before it %s/10 on %s, older than %s: too old to justify a "
                  "step above %s%%. ",
                  pw_ru_num(d, sc->value), pw_ru_time(e, sc->at),
                  pw_ru_dur(a, (int64_t)(p[P_SCORE_AGE_H] * PW_HOUR)),
                  pw_ru_num(b, p[P_MAX_PCT_LOW_PAIN]));
    } else if (sc) {
        pw_ru_cat(f.text, sizeof(f.text), "last pain score before it %s/10. ",
                  pw_ru_num(d, sc->value));
    } else {
        pw_ru_cat(f.text, sizeof(f.text), "no pain score documented before it. ");
    }
    pw_ru_cat(f.text, sizeof(f.text),
              "Guide: steps of 25-50%% (more than %s%% only for pain >= %s, never more than "
              "%s%%)",
              pw_ru_num(d, p[P_MAX_PCT_LOW_PAIN]), pw_ru_num(e, p[P_HIGH_PAIN]),
              pw_ru_num(c, p[P_MAX_PCT_ANY]));
    /* Methadone's MME is not linear: no MME figure as advice (issue 16). */
    if (pw_ru_regimen_class(in->tl, s.at, PW_MED_METHADONE)) {
        pw_ru_cat(f.text, sizeof(f.text), "; with methadone, dose changes need specialist advice");
    } else {
        pw_ru_cat(f.text, sizeof(f.text), ", i.e. at most %s MME/day",
                  pw_ru_num(a, s.old_mme * (1 + limit / 100)));
    }
    pw_ru_cat(f.text, sizeof(f.text), ". Watch for sedation and respiratory depression.");
    pw_ru_step_context(&f, in->tl, &s);
    if (sc) {
        pw_finding_add_evidence(&f, &sc->src);
    }
    pw_ru_step_numbers(&f, &s, pct);
    pw_finding_add_number(&f, "limit_pct", limit);
    pw_finding_add_number(&f, "last_pain_score", sc ? sc->value : NAN);
    return pw_findings_push(out, &f);
}

const struct pw_rule pw_rule_titration_step_too_large = {
    .id = "titration-step-too-large",
    .title = "Opioid titration step too large",
    .category = "drug",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .eval = eval,
    .reads = PW_RES_OBSERVATION | PW_RES_MEDICATION_REQUEST,
    .absence = PW_RES_OBSERVATION,
};
