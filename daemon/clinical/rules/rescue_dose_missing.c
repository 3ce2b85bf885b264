/* SPDX-License-Identifier: Apache-2.0 */
/* rescue-dose-missing: a baseline opioid is active and nothing is ordered for breakthrough pain. */
#include <math.h>

#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"

enum { P_GRACE_H, P_PCT_LO, P_PCT_HI };

static const struct pw_rule_param params[] = {
    [P_GRACE_H] = {"grace_h", 1, 0, 168,
                   "hours a baseline may run without a rescue order before this fires; guide: "
                   "rescue doses must be prescribed before breakthrough pain occurs; 1 h lets an "
                   "order set signed in pieces raise nothing (issue 16 default; site)"},
    [P_PCT_LO] = {"suggest_pct_low", 10, 0, 100,
                  "suggested rescue dose, low end, % of the 24-h baseline (guide: 10-20%)"},
    [P_PCT_HI] = {"suggest_pct_high", 20, 0, 100,
                  "suggested rescue dose, high end, % of the 24-h baseline (guide: 10-20%)"},
};

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    const struct pw_timeline *tl = in->tl;
    int64_t since = PW_TIME_NONE;
    if (pw_ru_oud(tl, in->now)) {
        return 0; /* outside the cancer-pain opioid rules (a data-quality event says why) */
    }
    const struct pw_med_order *first = NULL;
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if (!pw_order_active_at(o, in->now) || !(o->classes & PW_MED_OPIOID)) {
            continue;
        }
        /* Any PRN opioid covers breakthrough pain here, rapid-onset fentanyl included: it is
         * only outside the 10-20 % rule, not outside rescue dosing. */
        if (o->prn || o->role == PW_ROLE_RESCUE) {
            return 0;
        }
        if (o->role == PW_ROLE_BASELINE && (!first || o->start < first->start)) {
            first = o;
        }
    }
    if (!first) {
        return 0;
    }
    since = first->start;
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if ((o->prn || o->role == PW_ROLE_RESCUE) && (o->classes & PW_MED_OPIOID) &&
            o->end <= in->now && o->end > since) {
            since = o->end;
        }
    }
    if (since != PW_TIME_NONE && (double)(in->now - since) < in->params[P_GRACE_H] * PW_HOUR) {
        return 0;
    }

    struct pw_finding f;
    char a[32], b[32], c[32], t[32];
    const double *p = in->params;
    double tdd = pw_ru_tdd(tl, in->now);
    pw_ru_finding_init(&f, rule, PW_SEV_MEDIUM);
    const char *why = pw_ru_tdd_why(tl, in->now);
    bool methadone = pw_ru_regimen_class(tl, in->now, PW_MED_METHADONE);
    if (isfinite(tdd)) {
        pw_ru_cat(f.text, sizeof(f.text), "Baseline opioid active (%s MME/day)", pw_ru_num(a, tdd));
    } else {
        pw_ru_cat(f.text, sizeof(f.text), "Baseline opioid active (%s)", why);
    }
    pw_ru_cat(f.text, sizeof(f.text),
              " with no rescue (PRN) opioid ordered since %s. Guide: prescribe an "
              "immediate-release rescue dose",
              pw_ru_time(t, since));
    if (methadone) {
        pw_ru_cat(f.text, sizeof(f.text),
                  "; with methadone in the regimen its size needs specialist advice (methadone "
                  "conversion is non-linear)");
    } else {
        pw_ru_cat(f.text, sizeof(f.text), " of %s-%s%% of the 24-h baseline",
                  pw_ru_num(b, p[P_PCT_LO]), pw_ru_num(c, p[P_PCT_HI]));
        if (isfinite(tdd) && tdd > 0) {
            pw_ru_cat(f.text, sizeof(f.text), ", i.e. %s-%s MME per dose",
                      pw_ru_num(a, tdd * p[P_PCT_LO] / 100), pw_ru_num(b, tdd * p[P_PCT_HI] / 100));
        }
    }
    pw_ru_cat(f.text, sizeof(f.text), ", before breakthrough pain occurs.");
    pw_ru_sit_regimen(f.situation, sizeof(f.situation), tl, in->now);
    f.since = since;
    pw_ru_evidence_regimen(&f, tl, in->now);
    pw_finding_add_number(&f, "baseline_mme_per_day", tdd);
    return pw_findings_push(out, &f);
}

const struct pw_rule pw_rule_rescue_dose_missing = {
    .id = "rescue-dose-missing",
    .title = "No rescue opioid for breakthrough pain",
    .category = "drug",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .eval = eval,
    .reads = PW_RES_MEDICATION_REQUEST,
    .absence = PW_RES_MEDICATION_REQUEST,
};
