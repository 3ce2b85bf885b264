/* SPDX-License-Identifier: Apache-2.0 */
/* bowel-regimen-missing: an opioid for >= 24 h and no scheduled laxative. */
#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"

enum { P_MIN_OPIOID_H };

static const struct pw_rule_param params[] = {
    [P_MIN_OPIOID_H] = {"min_opioid_h", 24, 0, 720,
                        "hours of continuous opioid orders before a laxative is expected (guide: "
                        "constipation is nearly universal, a scheduled bowel regimen belongs from "
                        "the start; 24 h leaves room for the order set)"},
};

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    const struct pw_timeline *tl = in->tl;
    /* Issue 16: an opioid-use-disorder product or Condition puts the patient outside the
     * cancer-pain opioid rules; this rule judges the bowel care of cancer-pain opioids. */
    if (pw_ru_oud(tl, in->now)) {
        return 0;
    }
    if (!pw_ru_active(tl, in->now, PW_MED_OPIOID, -1)) {
        return 0;
    }
    int64_t exposure = pw_ru_exposure_start(tl, in->now, PW_MED_OPIOID);
    /* An order with an unknown start has been active for as long as we know. */
    if (exposure != PW_TIME_NONE &&
        (double)(in->now - exposure) < in->params[P_MIN_OPIOID_H] * PW_HOUR) {
        return 0;
    }
    const struct pw_med_order *prn = NULL;
    int64_t since = exposure;
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if (!(o->classes & PW_MED_LAXATIVE)) {
            continue;
        }
        if (pw_order_active_at(o, in->now)) {
            if (!o->prn) {
                return 0;
            }
            prn = prn ? prn : o;
        } else if (!o->prn && o->end <= in->now && o->end > since) {
            since = o->end; /* a scheduled laxative stopped: the gap starts there */
        }
    }

    struct pw_finding f;
    char t[32], h[32];
    pw_ru_finding_init(&f, rule, prn ? PW_SEV_LOW : PW_SEV_MEDIUM);
    if (prn) {
        pw_ru_cat(f.text, sizeof(f.text),
                  "Opioid ordered since %s with a laxative only as needed (PRN), not scheduled "
                  "(%s). Guide: constipation is nearly universal with opioids; give a scheduled "
                  "bowel regimen (e.g. stimulant +/- osmotic laxative).",
                  pw_ru_time(t, exposure), prn->drug_name);
    } else {
        pw_ru_cat(f.text, sizeof(f.text),
                  "Opioid ordered since %s (over %s) with no laxative ordered. Guide: "
                  "constipation is nearly universal with opioids; start a scheduled bowel "
                  "regimen (e.g. stimulant +/- osmotic laxative).",
                  pw_ru_time(t, exposure),
                  pw_ru_dur(h, (int64_t)(in->params[P_MIN_OPIOID_H] * PW_HOUR)));
    }
    pw_ru_sit(f.situation, sizeof(f.situation), "opioid-since:%lld|laxative-gap:%lld|",
              (long long)exposure, (long long)since);
    if (prn) {
        pw_ru_sit(f.situation, sizeof(f.situation), "prn:");
        pw_ru_sit_ref(f.situation, sizeof(f.situation), &prn->src);
        pw_finding_add_evidence(&f, &prn->src);
    }
    f.since = since;
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if ((o->classes & PW_MED_OPIOID) && pw_order_active_at(o, in->now)) {
            pw_finding_add_evidence(&f, &o->src);
        }
    }
    const struct pw_context *eol = pw_ru_end_of_life(tl, in->now);
    if (eol != NULL) {
        f.severity = PW_SEV_LOW;
        pw_ru_cat(f.text, sizeof(f.text), "%s", PW_RU_EOL_TEXT);
        pw_finding_add_evidence(&f, &eol->src);
    }
    pw_finding_add_number(&f, "opioid_hours",
                          exposure == PW_TIME_NONE ? -1 : (double)(in->now - exposure) / PW_HOUR);
    return pw_findings_push(out, &f);
}

const struct pw_rule pw_rule_bowel_regimen_missing = {
    .id = "bowel-regimen-missing",
    .title = "No scheduled bowel regimen with an opioid",
    .category = "drug",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .eval = eval,
    .reads = PW_RES_MEDICATION_REQUEST,
    .absence = PW_RES_MEDICATION_REQUEST,
};
