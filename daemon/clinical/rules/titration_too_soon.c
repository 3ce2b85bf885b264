/* SPDX-License-Identifier: Apache-2.0 */
/* titration-too-soon: a baseline increase before the previous one could reach steady state. */
#include <string.h>

#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"

enum { P_MIN_H, P_MIN_H_FENTANYL, P_MIN_H_METHADONE, P_WINDOW_H, P_CONV_H };

static const struct pw_rule_param params[] = {
    [P_MIN_H] = {"min_interval_h", 24, 0, 720,
                 "shortest time between two increases; guide: increase every 24-48 h"},
    [P_MIN_H_FENTANYL] = {"min_interval_h_transdermal_fentanyl", 72, 0, 720,
                          "transdermal fentanyl reaches steady state about 72 h after a change "
                          "(product label; issue 3 default)"},
    [P_MIN_H_METHADONE] = {"min_interval_h_methadone", 120, 0, 720,
                           "methadone's long, variable half-life: no increase within 5 days "
                           "(issue 3 default; steady state takes about 5 days)"},
    [P_WINDOW_H] = PW_RU_PARAM_WINDOW_H("an increase", "steps", "site"),
    [P_CONV_H] = PW_RU_PARAM_CONVERSION_H,
};

/* Classes of the baseline orders that started within step @p s (what was increased). */
static unsigned step_classes(const struct pw_timeline *tl, const struct pw_step *s)
{
    unsigned classes = 0;
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if (o->role == PW_ROLE_BASELINE && o->start >= s->first && o->start <= s->at) {
            classes |= o->classes;
        }
    }
    return classes;
}

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    const double *p = in->params;
    struct pw_steps steps;
    int err = pw_steps_build(in->tl, in->now, &steps);
    if (err) {
        return err;
    }
    long li = pw_steps_last_increase(&steps, (long)steps.n - 1);
    long pi = li > 0 ? pw_steps_last_increase(&steps, li - 1) : -1;
    if (pi < 0) {
        goto done;
    }
    const struct pw_step *s = &steps.v[li];
    const struct pw_step *prev = &steps.v[pi];
    if ((double)(in->now - s->at) > p[P_WINDOW_H] * PW_HOUR || pw_ru_oud(in->tl, in->now) ||
        pw_ru_step_is_conversion(in->tl, s, p[P_CONV_H])) {
        goto done;
    }
    /* A methadone or patch change in either step sets the longer interval: the earlier change
     * has not reached steady state, whatever is changed next. */
    unsigned cls = step_classes(in->tl, s) | step_classes(in->tl, prev);
    double min_h = p[P_MIN_H];
    const char *why = "";
    if (cls & PW_MED_METHADONE) {
        min_h = p[P_MIN_H_METHADONE];
        why = " (methadone)";
    } else if (cls & PW_MED_TRANSDERMAL) {
        min_h = p[P_MIN_H_FENTANYL];
        why = " (transdermal fentanyl)";
    }
    int64_t gap = s->at - prev->at;
    if ((double)gap >= min_h * PW_HOUR) {
        goto done;
    }

    struct pw_finding f;
    char a[32], b[32], c[32], t1[32], t2[32], d[32], g[32];
    pw_ru_finding_init(&f, rule, PW_SEV_MEDIUM);
    pw_ru_cat(f.text, sizeof(f.text), "Baseline opioid increased %s -> %s MME/day on %s, only %s ",
              pw_ru_num(a, s->old_mme), pw_ru_num(b, s->new_mme), pw_ru_time(t1, s->at),
              pw_ru_dur(g, gap));
    if (prev->old_mme < PW_MME_EPS) {
        pw_ru_cat(f.text, sizeof(f.text),
                  "after the baseline opioid was started (%s MME/day on %s). ",
                  pw_ru_num(d, prev->new_mme), pw_ru_time(t2, prev->at));
    } else {
        pw_ru_cat(f.text, sizeof(f.text), "after the previous increase (%s -> %s MME/day on %s). ",
                  pw_ru_num(c, prev->old_mme), pw_ru_num(d, prev->new_mme),
                  pw_ru_time(t2, prev->at));
    }
    pw_ru_cat(f.text, sizeof(f.text),
              "Guide: wait at least %s between increases%s so the previous dose reaches steady "
              "state; reassess before the next step.",
              pw_ru_dur(a, (int64_t)(min_h * PW_HOUR)), why);
    pw_ru_sit(f.situation, sizeof(f.situation), "step:%lld|prev:%lld|", (long long)s->at,
              (long long)prev->at);
    pw_ru_sit_regimen(f.situation, sizeof(f.situation), in->tl, s->at);
    f.since = s->at;
    pw_ru_evidence_regimen(&f, in->tl, s->at);
    pw_ru_evidence_regimen(&f, in->tl, prev->at);
    pw_finding_add_number(&f, "interval_h", (double)gap / PW_HOUR);
    pw_finding_add_number(&f, "min_interval_h", min_h);
    pw_finding_add_number(&f, "old_baseline_mme_per_day", s->old_mme);
    pw_finding_add_number(&f, "new_baseline_mme_per_day", s->new_mme);
    err = pw_findings_push(out, &f);
done:
    pw_steps_cleanup(&steps);
    return err;
}

const struct pw_rule pw_rule_titration_too_soon = {
    .id = "titration-too-soon",
    .title = "Opioid increased again too soon",
    .category = "drug",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .eval = eval,
    .reads = PW_RES_MEDICATION_REQUEST,
    .absence = 0,
};
