/* SPDX-License-Identifier: Apache-2.0 */
/* reassessment-overdue-after-dose-change: no pain score since the last regimen change. */
#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"

enum { P_OVERDUE_H, P_LOOKBACK_D };

static const struct pw_rule_param params[] = {
    [P_OVERDUE_H] = {"overdue_h", 24, 0.25, 720,
                     "hours after a baseline change or a new rescue order by which a pain score "
                     "is expected (guide: reassess at every encounter, titration every 24-48 h; "
                     "inpatient sites often use 1-4 h)"},
    [P_LOOKBACK_D] = {"lookback_days", 7, 1, 365,
                      "a change older than this many days is history, not an overdue "
                      "reassessment (issue 17: a years-old order is not 'no score since'; site)"},
};

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    const struct pw_timeline *tl = in->tl;
    /* Issue 16: an opioid-use-disorder product or Condition puts the patient outside the
     * cancer-pain opioid rules; their dose changes are not cancer-pain titration. */
    if (pw_ru_oud(tl, in->now)) {
        return 0;
    }
    struct pw_steps steps;
    int err = pw_steps_build(tl, in->now, &steps);
    if (err) {
        return err;
    }
    const struct pw_step *step = steps.n ? &steps.v[steps.n - 1] : NULL;
    const struct pw_med_order *rescue = NULL;
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if (o->role == PW_ROLE_RESCUE && o->start != PW_TIME_NONE && o->start <= in->now &&
            (!rescue || o->start >= rescue->start)) {
            rescue = o;
        }
    }
    int64_t at = PW_TIME_NONE;
    if (step) {
        at = step->at;
    }
    if (rescue && rescue->start > at) {
        at = rescue->start;
        step = NULL; /* the newer event is the rescue order */
    }
    const struct pw_pain_score *last = pw_ru_score_at(tl, in->now);
    /* A score at the very instant of the change is the one that led to it, not a reassessment. */
    if (at == PW_TIME_NONE || (last && last->at > at) ||
        (double)(in->now - at) > in->params[P_LOOKBACK_D] * PW_DAY) {
        goto done;
    }
    /* issue 17: a change made at a clinic or virtual visit is reassessed at the next visit */
    const struct pw_context *enc = pw_ru_encounter_at(tl, at);
    const struct pw_context *next = NULL;
    bool visit = pw_ru_visit_setting(enc) && !pw_ru_acute_setting(pw_ru_encounter_at(tl, in->now));
    if (visit) {
        next = pw_ru_next_encounter(tl, enc->end, in->now);
        if (!next || !next->finished) {
            goto done;
        }
    } else if ((double)(in->now - at) <= in->params[P_OVERDUE_H] * PW_HOUR) {
        goto done;
    }

    struct pw_finding f;
    char a[32], b[32], t[32], h[32];
    pw_ru_finding_init(&f, rule, PW_SEV_MEDIUM);
    if (step) {
        pw_ru_cat(f.text, sizeof(f.text), "Baseline opioid changed %s -> %s MME/day on %s",
                  pw_ru_num(a, step->old_mme), pw_ru_num(b, step->new_mme), pw_ru_time(t, at));
        pw_ru_sit(f.situation, sizeof(f.situation), "step:%lld|", (long long)at);
        pw_ru_sit_regimen(f.situation, sizeof(f.situation), tl, at);
        pw_ru_evidence_regimen(&f, tl, at);
        pw_finding_add_number(&f, "new_baseline_mme_per_day", step->new_mme);
    } else {
        pw_ru_cat(f.text, sizeof(f.text), "New rescue opioid order (%s) on %s", rescue->drug_name,
                  pw_ru_time(t, at));
        pw_ru_sit(f.situation, sizeof(f.situation), "rescue:");
        pw_ru_sit_ref(f.situation, sizeof(f.situation), &rescue->src);
        pw_finding_add_evidence(&f, &rescue->src);
    }
    if (visit) {
        pw_ru_cat(f.text, sizeof(f.text),
                  " at a visit and not reassessed at the next visit (%s). Guide: reassess pain "
                  "after every dose change, at every encounter.",
                  pw_ru_time(h, next->at));
        pw_finding_add_evidence(&f, &next->src);
    } else {
        pw_ru_cat(f.text, sizeof(f.text),
                  " and no pain score since (%s ago). Guide: reassess pain after every dose "
                  "change, within %s here.",
                  pw_ru_dur(a, in->now - at),
                  pw_ru_dur(h, (int64_t)(in->params[P_OVERDUE_H] * PW_HOUR)));
    }
    if (last) {
        pw_finding_add_evidence(&f, &last->src);
    }
    const struct pw_context *eol = pw_ru_end_of_life(tl, in->now);
    if (eol != NULL) {
        f.severity = PW_SEV_LOW;
        pw_ru_cat(f.text, sizeof(f.text), "%s", PW_RU_EOL_TEXT);
        pw_finding_add_evidence(&f, &eol->src);
    }
    f.since = at;
    pw_finding_add_number(&f, "hours_since_change", (double)(in->now - at) / PW_HOUR);
    pw_finding_add_number(&f, "overdue_h", in->params[P_OVERDUE_H]);
    err = pw_findings_push(out, &f);
done:
    pw_steps_cleanup(&steps);
    return err;
}

const struct pw_rule pw_rule_reassessment_overdue_after_dose_change = {
    .id = "reassessment-overdue-after-dose-change",
    .title = "Pain not reassessed after an opioid dose change",
    .category = "clinical",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .eval = eval,
    .reads = PW_RES_OBSERVATION | PW_RES_MEDICATION_REQUEST | PW_RES_ENCOUNTER,
    .absence = PW_RES_OBSERVATION,
};
