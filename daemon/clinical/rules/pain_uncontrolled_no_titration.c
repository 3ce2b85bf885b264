/* SPDX-License-Identifier: Apache-2.0 */
/* pain-uncontrolled-no-titration: severe pain persists and the baseline was not increased. */
#include <math.h>

#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"

enum { P_HIGH_PAIN, P_MIN_SCORES, P_MIN_SPAN_H, P_WINDOW_H, P_NO_INCREASE_H, P_STEP_LO, P_STEP_HI };

static const struct pw_rule_param params[] = {
    [P_HIGH_PAIN] = {"high_pain", 7, 0, 10, "NRS score counted as severe pain (guide: NRS 0-10)"},
    [P_MIN_SCORES] = {"min_scores", 2, 1, 100,
                      "severe scores needed within window_h (site; one score can be a spike)"},
    [P_MIN_SPAN_H] = {"min_span_h", 24, 0, 720,
                      "hours the severe scores must span (guide: titrate every 24-48 h)"},
    [P_WINDOW_H] = {"window_h", 72, 1, 720, "look-back for severe scores (site)"},
    [P_NO_INCREASE_H] = {"no_increase_h", 48, 1, 720,
                         "a baseline increase within this many hours counts as titration "
                         "(guide: increase every 24-48 h until pain is controlled)"},
    [P_STEP_LO] = {"suggest_step_low_pct", 25, 0, 1000, "lower end of the suggested step (guide)"},
    [P_STEP_HI] = {"suggest_step_high_pct", 50, 0, 1000, "upper end of the suggested step (guide)"},
};

/* True when the baseline increased (initiation included) after @p since, up to now. */
static int increased_since(const struct pw_timeline *tl, int64_t now, int64_t since, bool *yes)
{
    struct pw_steps steps;
    int err = pw_steps_build(tl, now, &steps);
    if (err) {
        return err;
    }
    *yes = false;
    for (size_t i = 0; i < steps.n; i++) {
        if (pw_step_is_increase(&steps.v[i]) && steps.v[i].at > since) {
            *yes = true;
        }
    }
    pw_steps_cleanup(&steps);
    return 0;
}

static void write_text(struct pw_finding *f, const struct pw_rule_input *in, size_t n_high,
                       const struct pw_pain_score *first, const struct pw_pain_score *last)
{
    const double *p = in->params;
    char a[32], b[32], c[32], t1[32], t2[32];
    double tdd = pw_ru_tdd(in->tl, in->now);
    pw_ru_cat(f->text, sizeof(f->text), "%zu pain scores >= %s between %s and %s (latest %s/10) ",
              n_high, pw_ru_num(a, p[P_HIGH_PAIN]), pw_ru_time(t1, first->at),
              pw_ru_time(t2, last->at), pw_ru_num(b, last->value));
    if (pw_ru_active(in->tl, in->now, PW_MED_OPIOID, PW_ROLE_BASELINE)) {
        pw_ru_cat(f->text, sizeof(f->text),
                  "and no baseline opioid increase in the last %s h (baseline %s MME/day). ",
                  pw_ru_num(c, p[P_NO_INCREASE_H]), pw_ru_num(a, tdd));
        if (isfinite(tdd)) {
            pw_ru_cat(f->text, sizeof(f->text),
                      "Guide: increase the baseline by %s-%s%%, i.e. to %s-%s MME/day, and "
                      "reassess within 24-48 h.",
                      pw_ru_num(a, p[P_STEP_LO]), pw_ru_num(b, p[P_STEP_HI]),
                      pw_ru_num(c, tdd * (1 + p[P_STEP_LO] / 100)),
                      pw_ru_num(t1, tdd * (1 + p[P_STEP_HI] / 100)));
        }
    } else {
        pw_ru_cat(f->text, sizeof(f->text),
                  "and no scheduled (baseline) opioid is active. Guide: consider starting a "
                  "regular opioid for baseline control, with a rescue dose of 10-20%% of the "
                  "24-h dose, and titrate every 24-48 h.");
    }
}

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    const double *p = in->params;
    const struct pw_timeline *tl = in->tl;
    /* Issue 16: an opioid-use-disorder product or Condition puts the patient outside the
     * cancer-pain opioid rules; their titration is not judged here. */
    if (pw_ru_oud(tl, in->now)) {
        return 0;
    }
    const struct pw_pain_score *latest = pw_ru_score_at(tl, in->now);
    if (!latest || latest->value < p[P_HIGH_PAIN]) {
        return 0;
    }
    int64_t from = in->now - (int64_t)(p[P_WINDOW_H] * PW_HOUR);
    const struct pw_pain_score *first = NULL;
    size_t n_high = 0;
    size_t i_latest = 0;
    for (size_t i = 0; i < tl->scores.n; i++) {
        const struct pw_pain_score *s = &tl->scores.v[i];
        if (s == latest) {
            i_latest = i;
        }
        if (s->at < from || s->at > in->now || s->value < p[P_HIGH_PAIN]) {
            continue;
        }
        if (!first || s->at < first->at) {
            first = s;
        }
        n_high++;
    }
    if ((double)n_high < p[P_MIN_SCORES] || !first ||
        (double)(latest->at - first->at) < p[P_MIN_SPAN_H] * PW_HOUR) {
        return 0;
    }
    bool titrated = false;
    int err =
        increased_since(tl, in->now, in->now - (int64_t)(p[P_NO_INCREASE_H] * PW_HOUR), &titrated);
    if (err || titrated) {
        return err;
    }
    /* The episode starts at the first score of the unbroken run of severe scores that ends
     * with the latest one: it does not move as `now` advances, and a controlled score between
     * two runs starts a new episode. */
    size_t run = i_latest;
    while (run > 0 && tl->scores.v[run - 1].value >= p[P_HIGH_PAIN] &&
           tl->scores.v[run - 1].at != PW_TIME_NONE) {
        run--;
    }
    const struct pw_pain_score *run_start = &tl->scores.v[run];

    struct pw_finding f;
    pw_ru_finding_init(&f, rule, PW_SEV_HIGH);
    write_text(&f, in, n_high, first, latest);
    pw_ru_sit(f.situation, sizeof(f.situation), "run:");
    pw_ru_sit_ref(f.situation, sizeof(f.situation), &run_start->src);
    pw_ru_sit(f.situation, sizeof(f.situation), "|");
    pw_ru_sit_regimen(f.situation, sizeof(f.situation), tl, in->now);
    f.since = run_start->at;
    pw_finding_add_evidence(&f, &first->src);
    pw_finding_add_evidence(&f, &latest->src);
    pw_ru_evidence_regimen(&f, tl, in->now);
    pw_finding_add_number(&f, "severe_scores", (double)n_high);
    pw_finding_add_number(&f, "latest_pain_score", latest->value);
    pw_finding_add_number(&f, "span_h", (double)(latest->at - first->at) / PW_HOUR);
    pw_finding_add_number(&f, "baseline_mme_per_day", pw_ru_tdd(tl, in->now));
    return pw_findings_push(out, &f);
}

const struct pw_rule pw_rule_pain_uncontrolled_no_titration = {
    .id = "pain-uncontrolled-no-titration",
    .title = "Severe pain persists without opioid titration",
    .category = "clinical",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .eval = eval,
    .reads = PW_RES_OBSERVATION | PW_RES_MEDICATION_REQUEST,
    .absence = PW_RES_MEDICATION_REQUEST,
};
