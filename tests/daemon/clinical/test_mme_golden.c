/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MME golden values of issue 3, each from a real MedicationRequest through normalize: RxNorm code
 * -> strength -> dose per day -> factor of the set.
 */
#include <stdlib.h>

#include "clinical_support.h"
#include "painwatch/timeline.h"

/* Dose and timing fragments (dosageInstruction arrays). */
#define Q(n, unit, code)                 \
    "{\"value\":" #n ",\"unit\":\"" unit \
    "\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"" code "\"}"
#define DOSE(q) "\"doseAndRate\":[{\"doseQuantity\":" q "}]"
#define EVERY(n, unit) \
    "\"timing\":{\"repeat\":{\"frequency\":1,\"period\":" #n ",\"periodUnit\":\"" unit "\"}}"
#define CODE(c)                                                                              \
    "\"timing\":{\"code\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/" \
    "v3-GTSAbbreviation\",\"code\":\"" c "\"}]}}"

/* assert_non_null() is not noreturn for gcc's -O2 flow analysis: abort() makes it so. */
#define ASSERT_ORDER(o)                      \
    do {                                     \
        if ((o) == NULL) {                   \
            fail_msg("no medication order"); \
            abort();                         \
        }                                    \
    } while (0)

static void test_oxycodone_10mg_q12h_is_30(void **state)
{
    (void)state;
    struct pw_timeline tl;
    const struct pw_med_order *o = clin_order(
        "cdc2022",
        clin_medreq("ox", "1049683", "[{" EVERY(12, "h") "," DOSE(Q(10, "mg", "mg")) "}]"), &tl);
    ASSERT_ORDER(o);
    assert_near(o->mg_per_day, 20);
    assert_near(o->mme_factor, 1.5);
    assert_near(o->mme_per_day, 30);
    assert_near(o->mme_per_dose, 15);
    assert_int_equal(o->role, PW_ROLE_BASELINE);
    assert_string_equal(o->ingredient, "Oxycodone");
    assert_string_equal(o->ingredient_rxcui, "7804");
    pw_timeline_cleanup(&tl);
}

static void test_oxycodone_ir_10mg_qid_tablets_is_60(void **state)
{
    (void)state;
    struct pw_timeline tl;
    /* One 10 mg tablet, dose in v3-orderableDrugForm TAB: the strength comes from the table. */
    const struct pw_med_order *o = clin_order(
        "cdc2022",
        clin_medreq(
            "ox", "1049683",
            "[{" CODE("QID") ",\"doseAndRate\":[{\"doseQuantity\":{\"value\":1,\"unit\":"
                             "\"tablet\",\"system\":\"http://terminology.hl7.org/CodeSystem/"
                             "v3-orderableDrugForm\",\"code\":\"TAB\"}}]}]"),
        &tl);
    ASSERT_ORDER(o);
    assert_near(o->mg_per_day, 40);
    assert_near(o->mme_per_day, 60);
    assert_false(o->classes & PW_MED_LONG_ACTING);
    pw_timeline_cleanup(&tl);
}

static void test_oxycodone_er_30mg_bid_is_90(void **state)
{
    (void)state;
    struct pw_timeline tl;
    const struct pw_med_order *o = clin_order(
        "cdc2022",
        clin_medreq("oxer", "1049574",
                    "[{\"timing\":{\"repeat\":{\"frequency\":2,\"period\":1,\"periodUnit\":\"d\"}},"
                    "\"asNeededBoolean\":false," DOSE(Q(30, "mg", "mg")) "}]"),
        &tl);
    ASSERT_ORDER(o);
    assert_near(o->mme_per_day, 90);
    assert_true(o->classes & PW_MED_LONG_ACTING);
    assert_true(o->classes & PW_MED_OPIOID);
    assert_int_equal(o->role, PW_ROLE_BASELINE);
    pw_timeline_cleanup(&tl);
}

static void test_hydromorphone_2mg_q4h_is_60_or_48(void **state)
{
    (void)state;
    const char *dosage = "[{" EVERY(4, "h") "," DOSE(Q(2, "mg", "mg")) "}]";
    struct pw_timeline tl;
    const struct pw_med_order *o = clin_order("cdc2022", clin_medreq("hm", "897696", dosage), &tl);
    ASSERT_ORDER(o);
    assert_near(o->mg_per_day, 12);
    assert_near(o->mme_per_day, 60);
    pw_timeline_cleanup(&tl);
    o = clin_order("cdc2016", clin_medreq("hm", "897696", dosage), &tl);
    ASSERT_ORDER(o);
    assert_near(o->mme_factor, 4);
    assert_near(o->mme_per_day, 48);
    pw_timeline_cleanup(&tl);
}

static void test_tramadol_50mg_q6h_is_40_and_no_factor_in_2016(void **state)
{
    (void)state;
    const char *dosage = "[{" EVERY(6, "h") "," DOSE(Q(50, "mg", "mg")) "}]";
    struct pw_timeline tl;
    const struct pw_med_order *o = clin_order("cdc2022", clin_medreq("tr", "835603", dosage), &tl);
    ASSERT_ORDER(o);
    assert_near(o->mme_per_day, 40);
    assert_false(clin_has_dq(&tl, "no-factor"));
    pw_timeline_cleanup(&tl);
    o = clin_order("cdc2016", clin_medreq("tr", "835603", dosage), &tl);
    ASSERT_ORDER(o);
    assert_near(o->mg_per_day, 200);
    assert_true(isnan(o->mme_per_day));
    assert_true(isnan(o->mme_factor));
    assert_true(clin_has_dq(&tl, "no-factor"));
    pw_timeline_cleanup(&tl);
}

static void test_codeine_30mg_q4h_is_27(void **state)
{
    (void)state;
    struct pw_timeline tl;
    const struct pw_med_order *o = clin_order(
        "cdc2022", clin_medreq("co", "997287", "[{" CODE("Q4H") "," DOSE(Q(30, "mg", "mg")) "}]"),
        &tl);
    ASSERT_ORDER(o);
    assert_near(o->mme_per_day, 27);
    pw_timeline_cleanup(&tl);
}

static void test_fentanyl_12mcg_patch_is_28_8_whatever_the_interval(void **state)
{
    (void)state;
    const char *every[] = {EVERY(3, "d"), EVERY(72, "h"), EVERY(2, "d")};
    for (size_t i = 0; i < 3; i++) {
        char dosage[512];
        snprintf(dosage, sizeof(dosage), "[{%s,%s}]", every[i],
                 DOSE("{\"value\":1,\"unit\":\"patch\",\"system\":\"http://unitsofmeasure.org\","
                      "\"code\":\"{patch}\"}"));
        struct pw_timeline tl;
        const struct pw_med_order *o =
            clin_order("cdc2022", clin_medreq("fp", "577057", dosage), &tl);
        ASSERT_ORDER(o);
        assert_near(o->mcg_per_hour, 12);
        assert_near(o->mme_factor, 2.4);
        assert_near(o->mme_per_day, 28.8);
        assert_true(o->classes & PW_MED_TRANSDERMAL);
        assert_false(o->classes & PW_MED_RAPID_ONSET_FENTANYL);
        assert_int_equal(o->role, PW_ROLE_BASELINE);
        pw_timeline_cleanup(&tl);
    }
    /* Dose written as the patch strength: "12 mcg" or "12 ug/h". */
    const char *doses[] = {"{\"value\":12,\"code\":\"ug\"}", "{\"value\":12,\"code\":\"ug/h\"}",
                           "{\"value\":12,\"unit\":\"mcg/hr\"}"};
    for (size_t i = 0; i < 3; i++) {
        char dosage[512];
        snprintf(dosage, sizeof(dosage), "[{%s,\"doseAndRate\":[{\"doseQuantity\":%s}]}]", every[0],
                 doses[i]);
        struct pw_timeline t2;
        const struct pw_med_order *o2 =
            clin_order("cdc2022", clin_medreq("fp", "577057", dosage), &t2);
        ASSERT_ORDER(o2);
        assert_near(o2->mme_per_day, 28.8);
        pw_timeline_cleanup(&t2);
    }
    /* Two patches worn: the mcg/h add up. */
    struct pw_timeline tl;
    const struct pw_med_order *o = clin_order(
        "cdc2022",
        clin_medreq("fp2", "577057",
                    "[{" EVERY(3, "d") "," DOSE("{\"value\":2,\"code\":\"{patch}\"}") "}]"),
        &tl);
    ASSERT_ORDER(o);
    assert_near(o->mme_per_day, 57.6);
    pw_timeline_cleanup(&tl);
}

static void test_methadone_tiers_in_2016_single_factor_in_2022(void **state)
{
    (void)state;
    struct {
        double mg;    /* per dose, three times a day */
        double f2016; /* 1-20:4, 21-40:8, 41-60:10, >=61:12 */
    } tiers[] = {{5, 4}, {20.0 / 3, 4}, {10, 8}, {40.0 / 3, 8}, {15, 10}, {20, 10}, {21, 12}};
    for (size_t i = 0; i < sizeof(tiers) / sizeof(tiers[0]); i++) {
        char dosage[512];
        snprintf(dosage, sizeof(dosage),
                 "[{" CODE("TID") ",\"doseAndRate\":[{\"doseQuantity\":{\"value\":%.17g,"
                                  "\"code\":\"mg\"}}]}]",
                 tiers[i].mg);
        struct pw_timeline tl;
        const struct pw_med_order *o =
            clin_order("cdc2016", clin_medreq("me", "864706", dosage), &tl);
        ASSERT_ORDER(o);
        assert_true(o->classes & PW_MED_METHADONE);
        assert_near(o->mme_factor, tiers[i].f2016);
        assert_near(o->mme_per_day, tiers[i].mg * 3 * tiers[i].f2016);
        pw_timeline_cleanup(&tl);
        o = clin_order("cdc2022", clin_medreq("me", "864706", dosage), &tl);
        ASSERT_ORDER(o);
        assert_near(o->mme_factor, 4.7);
        pw_timeline_cleanup(&tl);
    }
}

static void test_no_factor_for_buprenorphine_and_non_patch_fentanyl(void **state)
{
    (void)state;
    struct pw_timeline tl;
    const struct pw_med_order *o = clin_order(
        "cdc2022",
        clin_medreq("bu", "904870",
                    "[{" EVERY(7, "d") "," DOSE("{\"value\":1,\"code\":\"{patch}\"}") "}]"),
        &tl);
    ASSERT_ORDER(o);
    assert_near(o->mcg_per_hour, 10);
    assert_true(isnan(o->mme_per_day));
    assert_true(clin_has_dq(&tl, "no-factor"));
    pw_timeline_cleanup(&tl);
    /* Buccal fentanyl PRN: rapid-onset, no factor, not a rescue for the 10-20% rule. */
    o = clin_order(
        "cdc2022",
        clin_medreq("fb", "668363",
                    "[{\"asNeededBoolean\":true," EVERY(
                        4, "h") ",\"doseAndRate\":"
                                "[{\"doseQuantity\":{\"value\":100,\"code\":\"ug\"}}]}]"),
        &tl);
    ASSERT_ORDER(o);
    assert_near(o->mg_per_dose, 0.1);
    assert_true(o->classes & PW_MED_RAPID_ONSET_FENTANYL);
    assert_true(isnan(o->mme_per_day));
    assert_string_equal(o->route, "transmucosal");
    assert_true(clin_has_dq(&tl, "no-factor-for-route"));
    assert_int_equal(o->role, PW_ROLE_OTHER);
    pw_timeline_cleanup(&tl);
}

static void test_combination_counts_only_the_opioid(void **state)
{
    (void)state;
    struct pw_timeline tl;
    /* Acetaminophen 325 / oxycodone 5: 2 tablets q6h PRN -> 40 mg oxycodone, 60 MME. */
    const struct pw_med_order *o = clin_order(
        "cdc2022",
        clin_medreq(
            "perc", "1049221",
            "[{\"asNeededBoolean\":true," EVERY(
                6,
                "h") ",\"doseAndRate\":"
                     "[{\"doseQuantity\":{\"value\":2,\"unit\":\"tablet\",\"code\":\"{tbl}\"}}]}]"),
        &tl);
    ASSERT_ORDER(o);
    assert_near(o->mg_per_dose, 10);
    assert_near(o->mg_per_day, 40);
    assert_near(o->mme_per_day, 60);
    assert_near(o->mme_per_dose, 15);
    assert_true(o->prn);
    assert_int_equal(o->role, PW_ROLE_RESCUE);
    pw_timeline_cleanup(&tl);
}

static void test_solution_ml_through_concentration(void **state)
{
    (void)state;
    struct pw_timeline tl;
    /* Morphine 2 mg/mL, 5 mL every 4 h: 10 mg per dose, 60 mg/day. */
    const struct pw_med_order *o = clin_order(
        "cdc2022", clin_medreq("ms", "892589", "[{" EVERY(4, "h") "," DOSE(Q(5, "mL", "mL")) "}]"),
        &tl);
    ASSERT_ORDER(o);
    assert_near(o->mg_per_dose, 10);
    assert_near(o->mme_per_day, 60);
    pw_timeline_cleanup(&tl);
}

static void test_infusion_rates(void **state)
{
    (void)state;
    struct pw_timeline tl;
    /* Morphine 1 mg/mL at 2 mL/h: 48 mg/day whatever the timing says; parenteral morphine is
     * 3 MME per mg (issue 16: 1:3 IV:oral, mme-route-factors.csv), never the oral factor. */
    const struct pw_med_order *o = clin_order(
        "cdc2022",
        clin_medreq("inf", "892489",
                    "[{\"doseAndRate\":[{\"rateQuantity\":{\"value\":2,\"code\":\"mL/h\"}}]}]"),
        &tl);
    ASSERT_ORDER(o);
    assert_near(o->mg_per_day, 48);
    assert_near(o->mme_per_day, 144);
    assert_string_equal(o->route, "parenteral");
    assert_string_equal(o->factor_row, "*:7052:parenteral");
    assert_true(isnan(o->mme_per_dose));
    pw_timeline_cleanup(&tl);
    o = clin_order("cdc2022",
                   clin_medreq("inf", "892531",
                               "[{\"doseAndRate\":[{\"rateQuantity\":{\"value\":1.5,\"unit\":"
                               "\"mg/hr\"}}]}]"),
                   &tl);
    ASSERT_ORDER(o);
    assert_near(o->mg_per_day, 36);
    pw_timeline_cleanup(&tl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oxycodone_10mg_q12h_is_30),
        cmocka_unit_test(test_oxycodone_ir_10mg_qid_tablets_is_60),
        cmocka_unit_test(test_oxycodone_er_30mg_bid_is_90),
        cmocka_unit_test(test_hydromorphone_2mg_q4h_is_60_or_48),
        cmocka_unit_test(test_tramadol_50mg_q6h_is_40_and_no_factor_in_2016),
        cmocka_unit_test(test_codeine_30mg_q4h_is_27),
        cmocka_unit_test(test_fentanyl_12mcg_patch_is_28_8_whatever_the_interval),
        cmocka_unit_test(test_methadone_tiers_in_2016_single_factor_in_2022),
        cmocka_unit_test(test_no_factor_for_buprenorphine_and_non_patch_fentanyl),
        cmocka_unit_test(test_combination_counts_only_the_opioid),
        cmocka_unit_test(test_solution_ml_through_concentration),
        cmocka_unit_test(test_infusion_rates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
