/* SPDX-License-Identifier: Apache-2.0 */
/* neuropathic-pain-no-adjuvant: neuropathic pain documented and no adjuvant analgesic active. */
#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"

enum { P_INCLUDE_MIXED };

static const struct pw_rule_param params[] = {
    [P_INCLUDE_MIXED] = {"include_mixed", 1, 0, 1,
                         "1: mixed pain (nociceptive + neuropathic) also calls for an adjuvant "
                         "(guide: adjuvants address specific pain types such as nerve pain)"},
};

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    const struct pw_timeline *tl = in->tl;
    const struct pw_pain_type *first = NULL;
    for (size_t i = 0; i < tl->pain_types.n; i++) {
        const struct pw_pain_type *pt = &tl->pain_types.v[i];
        bool neuro = pt->kind == PW_PAIN_NEUROPATHIC ||
                     (pt->kind == PW_PAIN_MIXED && in->params[P_INCLUDE_MIXED] >= 0.5);
        if (neuro && pt->at <= in->now && (!first || pt->at < first->at)) {
            first = pt;
        }
    }
    if (!first || pw_ru_active(tl, in->now, PW_MED_ADJUVANT, -1)) {
        return 0;
    }
    int64_t adj_end = pw_ru_last_end(tl, in->now, PW_MED_ADJUVANT);
    int64_t since = adj_end > first->at ? adj_end : first->at;

    struct pw_finding f;
    char t[32];
    pw_ru_finding_init(&f, rule, PW_SEV_LOW);
    pw_ru_cat(f.text, sizeof(f.text),
              "%s pain documented on %s and no adjuvant analgesic is active%s. Guide: "
              "neuropathic (burning, shooting) pain responds poorly to opioids alone; consider "
              "a gabapentinoid, an SNRI (duloxetine), a tricyclic, or a corticosteroid.",
              first->kind == PW_PAIN_MIXED ? "Mixed (partly neuropathic)" : "Neuropathic",
              pw_ru_time(t, first->at),
              adj_end != PW_TIME_NONE && adj_end > first->at ? " (the last one was stopped)" : "");
    pw_ru_sit(f.situation, sizeof(f.situation), "pain-type:");
    pw_ru_sit_ref(f.situation, sizeof(f.situation), &first->src);
    pw_ru_sit(f.situation, sizeof(f.situation), "|adjuvant-end:%lld",
              (long long)(adj_end > first->at ? adj_end : 0));
    f.since = since;
    pw_finding_add_evidence(&f, &first->src);
    pw_finding_add_number(&f, "pain_kind", (double)first->kind);
    return pw_findings_push(out, &f);
}

const struct pw_rule pw_rule_neuropathic_pain_no_adjuvant = {
    .id = "neuropathic-pain-no-adjuvant",
    .title = "Neuropathic pain without an adjuvant analgesic",
    .category = "clinical",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .eval = eval,
    .reads = PW_RES_OBSERVATION | PW_RES_CONDITION | PW_RES_MEDICATION_REQUEST,
    .absence = PW_RES_MEDICATION_REQUEST,
};
