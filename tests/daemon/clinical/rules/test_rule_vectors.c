/* SPDX-License-Identifier: Apache-2.0 */
/* The rule vectors of issue 3 and the boundaries of every rule, on hand-built timelines. */
#include <stdlib.h>
#include <string.h>

#include "support/pwtest.h"
#include "tl_build.h"

#define MORPHINE "Morphine", "7052"

static int setup(void **state)
{
    struct pw_timeline *tl = calloc(1, sizeof(*tl));
    assert_non_null(tl);
    pw_timeline_init(tl, "Patient/p1");
    *state = tl;
    return 0;
}

static int teardown(void **state)
{
    pw_timeline_cleanup(*state);
    free(*state);
    return 0;
}

/* Morphine ER 60 mg q12h (120 MME) with a morphine IR PRN of @p mg. */
static void rescue_vector(struct pw_timeline *tl, double mg)
{
    tlb_baseline(tl, "er", MORPHINE, 0, T0, PW_TIME_FOREVER, 120);
    tlb_rescue(tl, "ir", T0, mg);
}

static void rescue_15mg_in_range(void **state)
{
    rescue_vector(*state, 15);
    assert_int_equal(tlb_eval(*state, T0 + 2 * H, "rescue-dose-out-of-range", NULL), 0);
    assert_int_equal(tlb_eval(*state, T0 + 2 * H, "rescue-dose-missing", NULL), 0);
}

static void rescue_5mg_low(void **state)
{
    struct pw_findings f = {0};
    rescue_vector(*state, 5);
    assert_int_equal(tlb_eval(*state, T0 + 2 * H, "rescue-dose-out-of-range", &f), 1);
    assert_int_equal(f.v[0].severity, PW_SEV_LOW);
    assert_non_null(strstr(f.v[0].text, "5 mg oral morphine = 4.2% of 24-h baseline 120 MME"));
    assert_non_null(strstr(f.v[0].text, "12-24 mg"));
    assert_int_equal(strlen(f.v[0].key), 64);
    assert_string_equal(f.v[0].patient, "Patient/p1");
    assert_string_equal(f.v[0].category, "drug");
    pw_findings_cleanup(&f);
}

static void rescue_30mg_medium(void **state)
{
    struct pw_findings f = {0};
    rescue_vector(*state, 30);
    assert_int_equal(tlb_eval(*state, T0 + 2 * H, "rescue-dose-out-of-range", &f), 1);
    assert_int_equal(f.v[0].severity, PW_SEV_MEDIUM);
    assert_non_null(strstr(f.v[0].text, "25%"));
    pw_findings_cleanup(&f);
}

static void rescue_band_edges(void **state)
{
    struct pw_timeline *tl = *state;
    tlb_baseline(tl, "er", MORPHINE, 0, T0, PW_TIME_FOREVER, 120);
    tlb_rescue(tl, "ir12", T0, 12);    /* exactly 10 % */
    tlb_rescue(tl, "ir24", T0, 24);    /* exactly 20 % */
    tlb_rescue(tl, "ir241", T0, 24.2); /* 20.2 % */
    struct pw_findings f = {0};
    assert_int_equal(tlb_eval(tl, T0 + H, "rescue-dose-out-of-range", &f), 1);
    assert_string_equal(f.v[0].evidence[0].id, "ir241");
    pw_findings_cleanup(&f);
}

static void rescue_dose_range_judged_as_a_whole(void **state)
{
    struct pw_timeline *tl = *state;
    tlb_baseline(tl, "er", MORPHINE, 0, T0, PW_TIME_FOREVER, 120);
    struct pw_med_order o = tlb_order("range", PW_MED_OPIOID, T0, PW_TIME_FOREVER);
    o.role = PW_ROLE_RESCUE;
    o.prn = true;
    (void)snprintf(o.ingredient, sizeof(o.ingredient), "Oxycodone");
    (void)snprintf(o.drug_name, sizeof(o.drug_name), "oxycodone hydrochloride 5 MG Oral Tablet");
    o.mme_factor = 1.5;
    o.mg_per_dose = 5;
    o.mg_per_dose_high = 10; /* 7.5-15 MME = 6.25-12.5 %: in range by its top */
    o.mme_per_dose = 7.5;
    assert_int_equal(pw_timeline_add_order(tl, &o), 0);
    assert_int_equal(tlb_eval(tl, T0 + H, "rescue-dose-out-of-range", NULL), 0);
    tl->orders.v[1].mg_per_dose_high = 20; /* 7.5-30 MME: still partly in range (issue 16) */
    assert_int_equal(tlb_eval(tl, T0 + H, "rescue-dose-out-of-range", NULL), 0);
    tl->orders.v[1].mg_per_dose = 20; /* the whole range 30 MME = 25 % */
    struct pw_findings f = {0};
    assert_int_equal(tlb_eval(tl, T0 + H, "rescue-dose-out-of-range", &f), 1);
    assert_int_equal(f.v[0].severity, PW_SEV_MEDIUM);
    assert_non_null(strstr(f.v[0].text, "8-16 mg oral oxycodone")); /* 12-24 MME / 1.5 */
    pw_findings_cleanup(&f);
}

static void rescue_missing(void **state)
{
    struct pw_timeline *tl = *state;
    tlb_baseline(tl, "er", MORPHINE, 0, T0, PW_TIME_FOREVER, 120);
    struct pw_findings f = {0};
    assert_int_equal(tlb_eval(tl, T0 + H, "rescue-dose-missing", &f), 1);
    assert_non_null(strstr(f.v[0].text, "12-24 MME"));
    pw_findings_cleanup(&f);
    /* A rapid-onset fentanyl PRN covers breakthrough pain even outside the 10-20 % rule. */
    tlb_other(tl, "roo", PW_MED_OPIOID | PW_MED_RAPID_ONSET_FENTANYL, true, T0, PW_TIME_FOREVER,
              "fentanyl 0.2 MG Buccal Tablet");
    assert_int_equal(tlb_eval(tl, T0 + H, "rescue-dose-missing", NULL), 0);
}

/* Baseline 60 -> @p next MME/day after @p gap_h hours, with a pain score before the step. */
static void step_vector(struct pw_timeline *tl, double next, int64_t gap_h, double pain)
{
    tlb_baseline(tl, "a", MORPHINE, 0, T0, T0 + gap_h * H, 60);
    tlb_baseline(tl, "b", MORPHINE, 0, T0 + gap_h * H, PW_TIME_FOREVER, next);
    tlb_score(tl, "s1", T0 + gap_h * H - H, pain);
}

static void step_60_120_pain5_too_large(void **state)
{
    step_vector(*state, 120, 24, 5);
    int64_t now = T0 + 26 * H;
    assert_int_equal(tlb_eval(*state, now, "titration-step-too-large", NULL), 1);
    assert_int_equal(tlb_eval(*state, now, "titration-too-soon", NULL), 0);
    assert_int_equal(tlb_eval(*state, now, "titration-step-too-small", NULL), 0);
}

static void step_exactly_50_pct_not_too_large(void **state)
{
    step_vector(*state, 90, 24, 5);
    assert_int_equal(tlb_eval(*state, T0 + 26 * H, "titration-step-too-large", NULL), 0);
}

static void step_50_1_pct_too_large(void **state)
{
    step_vector(*state, 90.06, 24, 5);
    assert_int_equal(tlb_eval(*state, T0 + 26 * H, "titration-step-too-large", NULL), 1);
}

static void step_severe_pain_allows_doubling(void **state)
{
    step_vector(*state, 120, 24, 8); /* +100 %, pain 8: allowed */
    assert_int_equal(tlb_eval(*state, T0 + 26 * H, "titration-step-too-large", NULL), 0);
}

static void step_over_doubling_always_too_large(void **state)
{
    step_vector(*state, 121, 24, 9);
    assert_int_equal(tlb_eval(*state, T0 + 26 * H, "titration-step-too-large", NULL), 1);
}

static void step_60_90_after_12h_too_soon(void **state)
{
    struct pw_timeline *tl = *state;
    tlb_baseline(tl, "a", MORPHINE, 0, T0, T0 + 12 * H, 60);
    tlb_baseline(tl, "b", MORPHINE, 0, T0 + 12 * H, PW_TIME_FOREVER, 90);
    struct pw_findings f = {0};
    assert_int_equal(tlb_eval(tl, T0 + 13 * H, "titration-too-soon", &f), 1);
    assert_non_null(strstr(f.v[0].text, "only 12 h after"));
    pw_findings_cleanup(&f);
}

static void step_exactly_24h_not_too_soon(void **state)
{
    struct pw_timeline *tl = *state;
    tlb_baseline(tl, "a", MORPHINE, 0, T0, T0 + 24 * H, 60);
    tlb_baseline(tl, "b", MORPHINE, 0, T0 + 24 * H, PW_TIME_FOREVER, 90);
    assert_int_equal(tlb_eval(tl, T0 + 25 * H, "titration-too-soon", NULL), 0);
}

static void step_fentanyl_needs_72h(void **state)
{
    struct pw_timeline *tl = *state;
    tlb_baseline(tl, "p1", "Fentanyl", "4337", PW_MED_TRANSDERMAL, T0, T0 + 48 * H, 60);
    tlb_baseline(tl, "p2", "Fentanyl", "4337", PW_MED_TRANSDERMAL, T0 + 48 * H, PW_TIME_FOREVER,
                 90);
    struct pw_findings f = {0};
    assert_int_equal(tlb_eval(tl, T0 + 49 * H, "titration-too-soon", &f), 1);
    assert_non_null(strstr(f.v[0].text, "72 h"));
    pw_findings_cleanup(&f);
}

static void step_methadone_needs_5_days(void **state)
{
    struct pw_timeline *tl = *state;
    tlb_baseline(tl, "m1", "Methadone", "6813", PW_MED_METHADONE, T0, T0 + 96 * H, 60);
    tlb_baseline(tl, "m2", "Methadone", "6813", PW_MED_METHADONE, T0 + 96 * H, PW_TIME_FOREVER, 80);
    struct pw_findings f = {0};
    assert_int_equal(tlb_eval(tl, T0 + 97 * H, "titration-too-soon", &f), 1);
    assert_non_null(strstr(f.v[0].text, "5 days"));
    pw_findings_cleanup(&f);
    tl->orders.v[0].end = T0 + 120 * H;
    tl->orders.v[1].start = T0 + 120 * H;
    assert_int_equal(tlb_eval(tl, T0 + 121 * H, "titration-too-soon", NULL), 0);
}

static void step_60_67_5_after_48h_pain8_too_small(void **state)
{
    step_vector(*state, 67.5, 48, 8);
    struct pw_findings f = {0};
    assert_int_equal(tlb_eval(*state, T0 + 50 * H, "titration-step-too-small", &f), 1);
    assert_int_equal(f.v[0].severity, PW_SEV_LOW);
    assert_non_null(strstr(f.v[0].text, "12.5%"));
    pw_findings_cleanup(&f);
    assert_int_equal(tlb_eval(*state, T0 + 50 * H, "titration-too-soon", NULL), 0);
}

static void step_exactly_25_pct_not_too_small(void **state)
{
    step_vector(*state, 75, 48, 8);
    assert_int_equal(tlb_eval(*state, T0 + 50 * H, "titration-step-too-small", NULL), 0);
}

static void step_small_with_mild_pain_not_flagged(void **state)
{
    step_vector(*state, 67.5, 48, 3);
    assert_int_equal(tlb_eval(*state, T0 + 50 * H, "titration-step-too-small", NULL), 0);
}

static void replacement_minutes_apart_is_one_step(void **state)
{
    struct pw_timeline *tl = *state;
    /* Old order stopped 10 min after the new one started: one step 60 -> 90, not 60 -> 150. */
    tlb_baseline(tl, "a", MORPHINE, 0, T0, T0 + 24 * H + 600, 60);
    tlb_baseline(tl, "b", MORPHINE, 0, T0 + 24 * H, PW_TIME_FOREVER, 90);
    tlb_score(tl, "s", T0 + 23 * H, 5);
    assert_int_equal(tlb_eval(tl, T0 + 26 * H, "titration-step-too-large", NULL), 0);
    assert_int_equal(tlb_eval(tl, T0 + 26 * H, "titration-too-soon", NULL), 0);
}

static void keys_stable_and_situation_sensitive(void **state)
{
    struct pw_timeline *tl = *state;
    step_vector(tl, 120, 24, 5);
    struct pw_findings a = {0}, b = {0}, c = {0};
    assert_int_equal(tlb_eval(tl, T0 + 25 * H, "titration-step-too-large", &a), 1);
    assert_int_equal(tlb_eval(tl, T0 + 30 * H, "titration-step-too-large", &b), 1);
    assert_string_equal(a.v[0].key, b.v[0].key);
    /* A new version of the order is a new regimen: a new episode. */
    (void)snprintf(tl->orders.v[1].src.version, sizeof(tl->orders.v[1].src.version), "2");
    assert_int_equal(tlb_eval(tl, T0 + 30 * H, "titration-step-too-large", &c), 1);
    assert_string_not_equal(a.v[0].key, c.v[0].key);
    pw_findings_cleanup(&a);
    pw_findings_cleanup(&b);
    pw_findings_cleanup(&c);
}

static void uncontrolled_pain(void **state)
{
    struct pw_timeline *tl = *state;
    tlb_baseline(tl, "er", MORPHINE, 0, T0 - 100 * H, PW_TIME_FOREVER, 60);
    tlb_score(tl, "s1", T0 + 10 * H, 8);
    tlb_score(tl, "s2", T0 + 34 * H, 7);
    struct pw_findings f = {0};
    assert_int_equal(tlb_eval(tl, T0 + 35 * H, "pain-uncontrolled-no-titration", &f), 1);
    assert_int_equal(f.v[0].severity, PW_SEV_HIGH);
    assert_non_null(strstr(f.v[0].text, "75-90 MME/day"));
    pw_findings_cleanup(&f);
    /* 23 h span only: not yet. */
    tl->scores.v[1].at = T0 + 33 * H;
    assert_int_equal(tlb_eval(tl, T0 + 35 * H, "pain-uncontrolled-no-titration", NULL), 0);
}

static void uncontrolled_pain_no_baseline_suggests_start(void **state)
{
    struct pw_timeline *tl = *state;
    tlb_score(tl, "s1", T0, 9);
    tlb_score(tl, "s2", T0 + 30 * H, 8);
    struct pw_findings f = {0};
    assert_int_equal(tlb_eval(tl, T0 + 31 * H, "pain-uncontrolled-no-titration", &f), 1);
    assert_non_null(strstr(f.v[0].text, "consider starting"));
    pw_findings_cleanup(&f);
}

static void uncontrolled_pain_recent_increase(void **state)
{
    struct pw_timeline *tl = *state;
    tlb_baseline(tl, "a", MORPHINE, 0, T0 - 100 * H, T0 + 20 * H, 60);
    tlb_baseline(tl, "b", MORPHINE, 0, T0 + 20 * H, PW_TIME_FOREVER, 90);
    tlb_score(tl, "s1", T0 + 10 * H, 8);
    tlb_score(tl, "s2", T0 + 40 * H, 8);
    assert_int_equal(tlb_eval(tl, T0 + 41 * H, "pain-uncontrolled-no-titration", NULL), 0);
    /* 48 h after the increase the pain is still severe: fires. */
    tlb_score(tl, "s3", T0 + 69 * H, 8);
    assert_int_equal(tlb_eval(tl, T0 + 69 * H, "pain-uncontrolled-no-titration", NULL), 1);
}

static void bowel_regimen(void **state)
{
    struct pw_timeline *tl = *state;
    tlb_baseline(tl, "er", MORPHINE, 0, T0, PW_TIME_FOREVER, 60);
    assert_int_equal(tlb_eval(tl, T0 + 23 * H, "bowel-regimen-missing", NULL), 0);
    struct pw_findings f = {0};
    assert_int_equal(tlb_eval(tl, T0 + 24 * H, "bowel-regimen-missing", &f), 1);
    assert_int_equal(f.v[0].severity, PW_SEV_MEDIUM);
    pw_findings_cleanup(&f);
    tlb_other(tl, "lax", PW_MED_LAXATIVE_OSMOTIC, true, T0, PW_TIME_FOREVER, "PEG 3350");
    assert_int_equal(tlb_eval(tl, T0 + 30 * H, "bowel-regimen-missing", &f), 1);
    assert_int_equal(f.v[0].severity, PW_SEV_LOW);
    assert_non_null(strstr(f.v[0].text, "not scheduled"));
    pw_findings_cleanup(&f);
    tlb_other(tl, "senna", PW_MED_LAXATIVE_STIMULANT, false, T0, PW_TIME_FOREVER, "sennosides");
    assert_int_equal(tlb_eval(tl, T0 + 30 * H, "bowel-regimen-missing", NULL), 0);
}

static void neuropathic_and_pain_type(void **state)
{
    struct pw_timeline *tl = *state;
    tlb_score(tl, "s1", T0, 5);
    assert_int_equal(tlb_eval(tl, T0 + H, "pain-type-undocumented", NULL), 1);
    tlb_pain_type(tl, "pt", T0 + 2 * H, PW_PAIN_NEUROPATHIC);
    assert_int_equal(tlb_eval(tl, T0 + H, "pain-type-undocumented", NULL), 1);
    assert_int_equal(tlb_eval(tl, T0 + 3 * H, "pain-type-undocumented", NULL), 0);
    assert_int_equal(tlb_eval(tl, T0 + 3 * H, "neuropathic-pain-no-adjuvant", NULL), 1);
    tlb_other(tl, "gaba", PW_MED_ADJUVANT_GABAPENTINOID, false, T0 + 3 * H, PW_TIME_FOREVER,
              "gabapentin 300 MG Oral Capsule");
    assert_int_equal(tlb_eval(tl, T0 + 4 * H, "neuropathic-pain-no-adjuvant", NULL), 0);
}

static void reassessment(void **state)
{
    struct pw_timeline *tl = *state;
    step_vector(tl, 90, 24, 8); /* score at 23 h (8/10), step at 24 h */
    /* high score at 23 h: overdue strictly after 24 h */
    assert_int_equal(tlb_eval(tl, T0 + 47 * H, "reassessment-overdue-after-high-score", NULL), 0);
    assert_int_equal(tlb_eval(tl, T0 + 47 * H + 1, "reassessment-overdue-after-high-score", NULL),
                     1);
    assert_int_equal(tlb_eval(tl, T0 + 48 * H, "reassessment-overdue-after-dose-change", NULL), 0);
    assert_int_equal(tlb_eval(tl, T0 + 49 * H, "reassessment-overdue-after-dose-change", NULL), 1);
    tlb_score(tl, "s2", T0 + 30 * H, 4);
    assert_int_equal(tlb_eval(tl, T0 + 49 * H, "reassessment-overdue-after-dose-change", NULL), 0);
    assert_int_equal(tlb_eval(tl, T0 + 49 * H, "reassessment-overdue-after-high-score", NULL), 0);
    /* A new rescue order is a change too. */
    tlb_rescue(tl, "ir", T0 + 40 * H, 10);
    assert_int_equal(tlb_eval(tl, T0 + 65 * H, "reassessment-overdue-after-dose-change", NULL), 1);
}

static void palliative(void **state)
{
    struct pw_timeline *tl = *state;
    int64_t day0 = (T0 / 86400 + 1) * 86400; /* a UTC midnight */
    tlb_score(tl, "d1", day0 + 10 * H, 7);
    tlb_score(tl, "d1b", day0 + 20 * H, 9);
    tlb_score(tl, "d2", day0 + 34 * H, 8);
    assert_int_equal(tlb_eval(tl, day0 + 80 * H, "palliative-referral-suggested", NULL), 0);
    tlb_score(tl, "d4", day0 + 79 * H, 8);
    struct pw_findings a = {0}, b = {0};
    assert_int_equal(tlb_eval(tl, day0 + 80 * H, "palliative-referral-suggested", &a), 1);
    assert_int_equal(tlb_eval(tl, day0 + 90 * H, "palliative-referral-suggested", &b), 1);
    assert_string_equal(a.v[0].key, b.v[0].key);
    pw_findings_cleanup(&a);
    pw_findings_cleanup(&b);
    tlb_referral(tl, "ref", day0 + 85 * H);
    assert_int_equal(tlb_eval(tl, day0 + 90 * H, "palliative-referral-suggested", NULL), 0);
}

static void rotation(void **state)
{
    struct pw_timeline *tl = *state;
    tlb_baseline(tl, "mor", MORPHINE, 0, T0, T0 + 48 * H, 120);
    tlb_baseline(tl, "oxy", "Oxycodone", "7804", 0, T0 + 50 * H, PW_TIME_FOREVER, 90);
    /* exactly 75 %: the lower edge of the guide's 25-50 % reduction band is not flagged */
    assert_int_equal(tlb_eval(tl, T0 + 51 * H, "opioid-rotation-without-reduction", NULL), 0);
    tl->orders.v[1].mme_per_day = 120;
    struct pw_findings f = {0};
    assert_int_equal(tlb_eval(tl, T0 + 51 * H, "opioid-rotation-without-reduction", &f), 1);
    assert_non_null(strstr(f.v[0].text, "morphine -> oxycodone"));
    assert_non_null(strstr(f.v[0].text, "100%"));
    pw_findings_cleanup(&f);
    /* started 25 h after the stop: not a rotation by this rule */
    tl->orders.v[1].start = T0 + 73 * H;
    assert_int_equal(tlb_eval(tl, T0 + 74 * H, "opioid-rotation-without-reduction", NULL), 0);
}

static void benzodiazepine(void **state)
{
    struct pw_timeline *tl = *state;
    tlb_baseline(tl, "er", MORPHINE, 0, T0, PW_TIME_FOREVER, 60);
    tlb_other(tl, "lz", PW_MED_BENZODIAZEPINE, false, T0 + 5 * H, T0 + 10 * H,
              "lorazepam 1 MG Oral Tablet");
    assert_int_equal(tlb_eval(tl, T0 + 6 * H, "opioid-benzodiazepine-concurrent", NULL), 1);
    assert_int_equal(tlb_eval(tl, T0 + 10 * H, "opioid-benzodiazepine-concurrent", NULL), 0);
}

/* Findings of @p rule alone at @p now (the other rules are not run). */
static size_t eval_only(struct pw_timeline *tl, int64_t now, const char *rule)
{
    struct pw_engine *e = NULL;
    struct pw_findings f = {0};
    size_t n_rules = 0;
    const struct pw_rule *const *all = pw_rules_all(&n_rules);
    assert_int_equal(pw_engine_new(&e, "cdc2022"), 0);
    for (size_t i = 0; i < n_rules; i++) {
        assert_int_equal(pw_engine_enable(e, all[i]->id, strcmp(all[i]->id, rule) == 0), 0);
    }
    pw_timeline_sort(tl);
    assert_int_equal(pw_engine_eval(e, tl, now, &f), 0);
    size_t n = f.n;
    pw_findings_cleanup(&f);
    pw_engine_free(e);
    return n;
}

/* Issue 18 finding 11: times at the ends of int64 (a damaged store) are no overflow in the rule. */
static void rotation_extreme_times(void **state)
{
    struct pw_timeline *tl = *state;
    const char *rule = "opioid-rotation-without-reduction";
    tlb_baseline(tl, "mor", MORPHINE, 0, INT64_MIN + 2, INT64_MIN + 1, 120);
    tlb_baseline(tl, "oxy", "Oxycodone", "7804", 0, INT64_MIN + 3, INT64_MAX - 1, 120);
    assert_int_equal(eval_only(tl, T0, rule), 0);
    /* a stop near the top and a start just after it: no wrap past INT64_MAX */
    tl->orders.v[0].start = INT64_MAX - 4;
    tl->orders.v[0].end = INT64_MAX - 3;
    tl->orders.v[1].start = INT64_MAX - 2;
    tl->orders.v[1].end = PW_TIME_FOREVER;
    assert_int_equal(eval_only(tl, INT64_MAX - 1, rule), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(rescue_15mg_in_range),
        T(rescue_5mg_low),
        T(rescue_30mg_medium),
        T(rescue_band_edges),
        T(rescue_dose_range_judged_as_a_whole),
        T(rescue_missing),
        T(step_60_120_pain5_too_large),
        T(step_exactly_50_pct_not_too_large),
        T(step_50_1_pct_too_large),
        T(step_severe_pain_allows_doubling),
        T(step_over_doubling_always_too_large),
        T(step_60_90_after_12h_too_soon),
        T(step_exactly_24h_not_too_soon),
        T(step_fentanyl_needs_72h),
        T(step_methadone_needs_5_days),
        T(step_60_67_5_after_48h_pain8_too_small),
        T(step_exactly_25_pct_not_too_small),
        T(step_small_with_mild_pain_not_flagged),
        T(replacement_minutes_apart_is_one_step),
        T(keys_stable_and_situation_sensitive),
        T(uncontrolled_pain),
        T(uncontrolled_pain_no_baseline_suggests_start),
        T(uncontrolled_pain_recent_increase),
        T(bowel_regimen),
        T(neuropathic_and_pain_type),
        T(reassessment),
        T(palliative),
        T(rotation),
        T(benzodiazepine),
        T(rotation_extreme_times),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
