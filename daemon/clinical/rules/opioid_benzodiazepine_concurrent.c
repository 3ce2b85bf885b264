/* SPDX-License-Identifier: Apache-2.0 */
/* opioid-benzodiazepine-concurrent: an opioid and a benzodiazepine active together. */
#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    const struct pw_timeline *tl = in->tl;
    if (!pw_ru_active(tl, in->now, PW_MED_OPIOID, -1) ||
        !pw_ru_active(tl, in->now, PW_MED_BENZODIAZEPINE, -1)) {
        return 0;
    }
    /* Issue 16: an opioid-use-disorder product or Condition does NOT exempt the patient here:
     * an opioid (buprenorphine or methadone for OUD included) with a benzodiazepine is a
     * respiratory-depression risk whatever the opioid is for (a safety rule, not a cancer-pain
     * opioid rule). */
    /* Palliative sedation or comfort care: the combination is intended (issue 17). */
    if (pw_ru_end_of_life(tl, in->now) != NULL) {
        return 0;
    }
    int64_t op = pw_ru_exposure_start(tl, in->now, PW_MED_OPIOID);
    int64_t bz = pw_ru_exposure_start(tl, in->now, PW_MED_BENZODIAZEPINE);
    struct pw_finding f;
    char t[32];
    pw_ru_finding_init(&f, rule, PW_SEV_MEDIUM);
    f.since = op > bz ? op : bz;
    pw_ru_cat(f.text, sizeof(f.text), "Opioid and benzodiazepine active together since %s (",
              pw_ru_time(t, f.since));
    pw_ru_sit(f.situation, sizeof(f.situation), "benzodiazepine:");
    const char *sep = "";
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if ((o->classes & PW_MED_BENZODIAZEPINE) && pw_order_active_at(o, in->now)) {
            pw_ru_cat(f.text, sizeof(f.text), "%s%s", sep, o->drug_name);
            pw_ru_sit_ref(f.situation, sizeof(f.situation), &o->src);
            pw_finding_add_evidence(&f, &o->src);
            sep = ", ";
        }
    }
    pw_ru_sit(f.situation, sizeof(f.situation), "|opioid-since:%lld", (long long)op);
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if ((o->classes & PW_MED_OPIOID) && pw_order_active_at(o, in->now)) {
            pw_finding_add_evidence(&f, &o->src);
        }
    }
    pw_ru_cat(f.text, sizeof(f.text),
              "). CDC 2022: use particular caution with opioids and benzodiazepines together "
              "(additive respiratory depression); review the need for the benzodiazepine, monitor "
              "sedation and "
              "consider naloxone.");
    pw_finding_add_number(&f, "baseline_mme_per_day", pw_ru_tdd(tl, in->now));
    return pw_findings_push(out, &f);
}

const struct pw_rule pw_rule_opioid_benzodiazepine_concurrent = {
    .id = "opioid-benzodiazepine-concurrent",
    .title = "Opioid and benzodiazepine prescribed together",
    .category = "drug",
    .params = NULL,
    .n_params = 0,
    .eval = eval,
    .reads = PW_RES_MEDICATION_REQUEST,
    .absence = 0,
};
