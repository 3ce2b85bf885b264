/* SPDX-License-Identifier: Apache-2.0 */
/* Clinical context (issue 17): negation scope, the cancer value set, problem list, encounters,
 * scores in other forms, vital signs, administrations, and their stored encoding. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "clinical/normalize_impl.h"
#include "clinical_support.h"
#include "painwatch/engine.h"
#include "painwatch/err.h"
#include "painwatch/fhir.h"
#include "painwatch/normalize.h"

static void norm(const char *text, struct pw_timeline *tl)
{
    struct pw_norm_ctx ctx;
    assert_int_equal(pw_norm_ctx_init(&ctx, clin_term(), NULL), 0);
    pw_timeline_init(tl, "Patient/p1");
    json_t *j = clin_json(text);
    assert_int_equal(pw_normalize_resource(&ctx, j, NULL, tl), 0);
    json_decref(j);
    pw_norm_ctx_cleanup(&ctx);
}

static size_t count_kind(const struct pw_timeline *tl, enum pw_ctx_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < tl->context.n; i++) {
        n += tl->context.v[i].kind == kind;
    }
    return n;
}

static void test_negation_scope(void **state)
{
    (void)state;
    assert_true(pw_norm_word_affirmed("burning", "burning pain in both feet"));
    assert_false(pw_norm_word_affirmed("burning", "aching bone pain, no burning, no shooting"));
    assert_false(pw_norm_word_affirmed("shooting", "aching bone pain, no burning, no shooting"));
    assert_false(pw_norm_word_affirmed("shooting", "Patient denies shooting pain"));
    assert_false(pw_norm_word_affirmed("tingling", "without numbness or tingling"));
    assert_false(pw_norm_word_affirmed("burning", "negative for burning"));
    /* The scope ends at a clause boundary or "but". */
    assert_true(pw_norm_word_affirmed("burning", "no fever. Burning pain at night"));
    assert_true(pw_norm_word_affirmed("burning", "no swelling but burning along the scar"));
    assert_true(pw_norm_word_affirmed("burning", "no swelling; burning pain"));
    /* Beyond five words the trigger no longer reaches. */
    assert_true(
        pw_norm_word_affirmed("burning", "no relief from the usual evening dose and burning"));
    /* Whole words only. */
    assert_false(pw_norm_word_affirmed("burn", "burning"));
    assert_false(pw_norm_word_affirmed("burning", NULL));
}

/* Every code of the CDC expansion (tests/fixtures/fhir/opioid-cds) is recognised by the
 * compose; neighbours outside it are not. */
static void test_cdc_malignant_value_set(void **state)
{
    (void)state;
    FILE *f = fopen(
        pwt_src_path("tests/fixtures/fhir/opioid-cds/cdc-malignant-cancer-conditions.csv"), "r");
    assert_non_null(f);
    char line[128];
    size_t n = 0;
    assert_non_null(fgets(line, sizeof(line), f)); /* header */
    while (fgets(line, sizeof(line), f)) {
        char *comma = strchr(line, ',');
        assert_non_null(comma);
        *comma = '\0';
        if (!pw_norm_icd10_malignant(line)) {
            fail_msg("%s is in cdc-malignant-cancer-conditions but not recognised", line);
        }
        n++;
    }
    fclose(f);
    assert_int_equal(n, 1668);
    assert_false(pw_norm_icd10_malignant("D3A.010"));
    assert_false(pw_norm_icd10_malignant("D10.0"));
    assert_false(pw_norm_icd10_malignant("G89.2"));
    assert_false(pw_norm_icd10_malignant("D36.9"));
    assert_false(pw_norm_icd10_malignant("R52"));
}

#define COND(status, coding)                                                                    \
    "{\"resourceType\":\"Condition\",\"id\":\"c1\",\"subject\":{\"reference\":\"Patient/p1\"}," \
    "\"clinicalStatus\":{\"coding\":[{\"code\":\"" status "\"}]},\"code\":{\"coding\":[" coding \
    "]},\"recordedDate\":\"2019-04-01\"}"
#define ICD(code) "{\"system\":\"http://hl7.org/fhir/sid/icd-10-cm\",\"code\":\"" code "\"}"

static void test_problem_list(void **state)
{
    (void)state;
    struct pw_timeline tl;
    static const char *const counting[] = {"active", "recurrence", "relapse"};
    static const char *const not_counting[] = {"resolved", "inactive", "remission"};
    for (size_t i = 0; i < 3; i++) {
        char buf[512];
        snprintf(buf, sizeof(buf), COND("%s", ICD("C50.911")), counting[i]);
        norm(buf, &tl);
        assert_int_equal(count_kind(&tl, PW_CTX_CANCER), 1);
        pw_timeline_cleanup(&tl);
        snprintf(buf, sizeof(buf), COND("%s", ICD("C50.911")), not_counting[i]);
        norm(buf, &tl);
        assert_int_equal(count_kind(&tl, PW_CTX_CANCER), 0);
        pw_timeline_cleanup(&tl);
    }
    /* A refuted diagnosis does not count, whatever its clinical status. */
    norm("{\"resourceType\":\"Condition\",\"id\":\"c1\",\"subject\":{\"reference\":\"Patient/p1\"},"
         "\"verificationStatus\":{\"coding\":[{\"code\":\"refuted\"}]},\"clinicalStatus\":{"
         "\"coding\":[{\"code\":\"active\"}]},\"code\":{\"text\":\"Metastatic lung cancer\"}}",
         &tl);
    assert_int_equal(count_kind(&tl, PW_CTX_CANCER), 0);
    pw_timeline_cleanup(&tl);
    /* Text: "no evidence of malignancy" is not a cancer. */
    norm("{\"resourceType\":\"Condition\",\"id\":\"c1\",\"subject\":{\"reference\":\"Patient/p1\"},"
         "\"code\":{\"text\":\"Lung nodule, no evidence of malignancy\"}}",
         &tl);
    assert_int_equal(count_kind(&tl, PW_CTX_CANCER), 0);
    pw_timeline_cleanup(&tl);
    /* A resolved neuropathic pain Condition is no pain type. */
    norm(COND("resolved", "{\"system\":\"http://snomed.info/sct\",\"code\":\"247398009\"}"), &tl);
    assert_int_equal(tl.pain_types.n, 0);
    pw_timeline_cleanup(&tl);
    norm(COND("active", ICD("G62.0")), &tl);
    assert_int_equal(tl.pain_types.n, 1);
    assert_int_equal(tl.pain_types.v[0].kind, PW_PAIN_NEUROPATHIC);
    pw_timeline_cleanup(&tl);
}

#define SCORE(value)                                                                        \
    "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"status\":\"final\",\"subject\":{"    \
    "\"reference\":\"Patient/p1\"},\"code\":{\"coding\":[{\"system\":\"http://loinc.org\"," \
    "\"code\":\"38214-3\"}]},\"effectiveDateTime\":\"2026-03-02T08:00:00Z\"," value "}"

static double one_score(const char *text)
{
    struct pw_timeline tl;
    norm(text, &tl);
    double v = tl.scores.n == 1 ? tl.scores.v[0].value : NAN;
    pw_timeline_cleanup(&tl);
    return v;
}

static void test_score_forms(void **state)
{
    (void)state;
    assert_true(one_score(SCORE("\"valueQuantity\":{\"value\":60,\"unit\":\"mm\"}")) == 6);
    assert_true(one_score(SCORE("\"valueQuantity\":{\"value\":60,\"code\":\"mm\"}")) == 6);
    assert_true(one_score(SCORE("\"valueString\":\"6/10\"")) == 6);
    assert_true(one_score(SCORE("\"valueString\":\" 6 / 10 \"")) == 6);
    assert_true(one_score(SCORE("\"valueString\":\"6\"")) == 6);
    assert_true(isnan(one_score(SCORE("\"valueString\":\"6/100\""))));
    assert_true(isnan(one_score(SCORE("\"valueString\":\"severe\""))));
    assert_true(one_score(SCORE("\"valueCodeableConcept\":{\"coding\":[{\"system\":"
                                "\"http://loinc.org\",\"code\":\"LA10138-8\"}]}")) == 6);
    assert_true(one_score(SCORE("\"valueCodeableConcept\":{\"text\":\"7\"}")) == 7);
    assert_true(one_score(SCORE("\"valueCodeableConcept\":{\"coding\":[{\"display\":\"3\"}]}")) ==
                3);
}

static void test_encounter_and_vitals(void **state)
{
    (void)state;
    struct pw_timeline tl;
    norm("{\"resourceType\":\"Encounter\",\"id\":\"e1\",\"status\":\"finished\",\"class\":{"
         "\"code\":\"AMB\"},\"subject\":{\"reference\":\"Patient/p1\"},\"period\":{\"start\":"
         "\"2026-03-02T08:00:00Z\",\"end\":\"2026-03-02T08:30:00Z\"}}",
         &tl);
    assert_int_equal(tl.context.n, 1);
    assert_int_equal(tl.context.v[0].kind, PW_CTX_ENCOUNTER);
    assert_int_equal((int)tl.context.v[0].value, PW_SETTING_AMBULATORY);
    assert_true(tl.context.v[0].finished);
    pw_timeline_cleanup(&tl);
    norm("{\"resourceType\":\"Encounter\",\"id\":\"e1\",\"status\":\"in-progress\",\"class\":{"
         "\"code\":\"HH\"},\"type\":[{\"text\":\"Hospice home visit\"}],\"subject\":{"
         "\"reference\":\"Patient/p1\"},\"period\":{\"start\":\"2026-03-02T08:00:00Z\"}}",
         &tl);
    assert_int_equal(count_kind(&tl, PW_CTX_END_OF_LIFE), 1);
    assert_true(tl.context.v[0].end == PW_TIME_FOREVER);
    pw_timeline_cleanup(&tl);
    norm("{\"resourceType\":\"Observation\",\"id\":\"v1\",\"status\":\"final\",\"subject\":{"
         "\"reference\":\"Patient/p1\"},\"code\":{\"coding\":[{\"system\":\"http://loinc.org\","
         "\"code\":\"85353-1\"}]},\"effectiveDateTime\":\"2026-03-02T08:00:00Z\",\"component\":["
         "{\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"9279-1\"}]},"
         "\"valueQuantity\":{\"value\":8}},{\"code\":{\"coding\":[{\"system\":"
         "\"http://loinc.org\",\"code\":\"2708-6\"}]},\"valueQuantity\":{\"value\":87}}]}",
         &tl);
    assert_int_equal(count_kind(&tl, PW_CTX_RESP_RATE), 1);
    assert_int_equal(count_kind(&tl, PW_CTX_SPO2), 1);
    pw_timeline_cleanup(&tl);
    norm("{\"resourceType\":\"Observation\",\"id\":\"s1\",\"status\":\"final\",\"subject\":{"
         "\"reference\":\"Patient/p1\"},\"code\":{\"text\":\"RASS\"},\"effectiveDateTime\":"
         "\"2026-03-02T08:00:00Z\",\"valueString\":\"-3\"}",
         &tl);
    assert_int_equal(count_kind(&tl, PW_CTX_SEDATION), 1);
    assert_true(tl.context.v[0].value == -3);
    pw_timeline_cleanup(&tl);
}

/* A site pain scale with its own maximum ("code|max") is read as 0-10. */
static void test_site_scale_maximum(void **state)
{
    (void)state;
    struct pw_norm_ctx ctx;
    struct pw_timeline tl;
    assert_int_equal(pw_norm_ctx_init(&ctx, clin_term(), NULL), 0);
    assert_int_equal(pw_code_set_add(&ctx.pain_intensity, "http://site", "faces|5"), 0);
    pw_timeline_init(&tl, "Patient/p1");
    json_t *j = clin_json(
        "{\"resourceType\":\"Observation\",\"id\":\"f1\",\"status\":\"final\",\"subject\":{"
        "\"reference\":\"Patient/p1\"},\"code\":{\"coding\":[{\"system\":\"http://site\",\"code\":"
        "\"faces\"}]},\"effectiveDateTime\":\"2026-03-02T08:00:00Z\",\"valueInteger\":4}");
    assert_int_equal(pw_normalize_resource(&ctx, j, NULL, &tl), 0);
    json_decref(j);
    assert_int_equal(tl.scores.n, 1);
    assert_true(tl.scores.v[0].value == 8);
    /* 6 on a 0-5 scale is out of range: a data-quality event, no score */
    j = clin_json(
        "{\"resourceType\":\"Observation\",\"id\":\"f2\",\"status\":\"final\",\"subject\":{"
        "\"reference\":\"Patient/p1\"},\"code\":{\"coding\":[{\"system\":\"http://site\",\"code\":"
        "\"faces\"}]},\"effectiveDateTime\":\"2026-03-02T09:00:00Z\",\"valueInteger\":6}");
    assert_int_equal(pw_normalize_resource(&ctx, j, NULL, &tl), 0);
    json_decref(j);
    assert_int_equal(tl.scores.n, 1);
    assert_int_equal(tl.dq.n, 1);
    pw_timeline_cleanup(&tl);
    pw_norm_ctx_cleanup(&ctx);
}

/* Context events survive the stored encoding; a timeline without context encodes as before. */
static void test_context_codec(void **state)
{
    (void)state;
    struct pw_timeline tl, back;
    struct pw_bytes b = {0};
    norm("{\"resourceType\":\"MedicationAdministration\",\"id\":\"a1\",\"status\":\"completed\","
         "\"medicationCodeableConcept\":{\"coding\":[{\"system\":"
         "\"http://www.nlm.nih.gov/research/umls/rxnorm\",\"code\":\"892582\"}]},\"subject\":{"
         "\"reference\":\"Patient/p1\"},\"effectiveDateTime\":\"2026-03-02T08:00:00Z\","
         "\"request\":{\"reference\":\"MedicationRequest/mr-prn\"}}",
         &tl);
    assert_int_equal(count_kind(&tl, PW_CTX_ADMINISTRATION), 1);
    assert_int_equal(pw_timeline_encode(&tl, &b), 0);
    pw_timeline_init(&back, "Patient/p1");
    assert_int_equal(pw_timeline_decode(&back, b.v, b.n), 0);
    assert_int_equal(back.context.n, 1);
    assert_string_equal(back.context.v[0].link, "MedicationRequest/mr-prn");
    assert_true(back.context.v[0].at == tl.context.v[0].at);
    /* Truncated inside the context section: rejected whole. */
    assert_int_equal(pw_timeline_decode(&back, b.v, b.n - 3), PW_EJSON);
    pw_timeline_cleanup(&back);
    pw_timeline_cleanup(&tl);
    pw_bytes_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_negation_scope),       cmocka_unit_test(test_cdc_malignant_value_set),
        cmocka_unit_test(test_problem_list),         cmocka_unit_test(test_score_forms),
        cmocka_unit_test(test_encounter_and_vitals), cmocka_unit_test(test_context_codec),
        cmocka_unit_test(test_site_scale_maximum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
