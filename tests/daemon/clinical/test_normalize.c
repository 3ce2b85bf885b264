/* SPDX-License-Identifier: Apache-2.0 */
/* normalize: pain scores, pain types, referrals, order semantics, references, data quality. */
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "clinical_support.h"
#include "painwatch/err.h"
#include "painwatch/fhir.h"
#include "painwatch/normalize.h"

/* Normalize JSON text into a fresh timeline for Patient/p1 with the default context. */
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

#define OBS(status, code, value_and_time)                                                        \
    "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"meta\":{\"versionId\":\"3\"},"            \
    "\"status\":\"" status "\",\"subject\":{\"reference\":\"Patient/p1\"},\"code\":{\"coding\":" \
    "[{\"system\":\"http://loinc.org\",\"code\":\"" code "\"}]}," value_and_time "}"

/* pw_fhir_join writes what snprintf("%s%s%s") writes, cut the same way. */
static void test_fhir_join_is_snprintf(void **state)
{
    (void)state;
    const char *parts[] = {NULL, "", "a", "Observation", "o-123456789"};
    for (size_t n = 1; n < 24; n++) {
        for (size_t a = 0; a < 5; a++) {
            for (size_t b = 0; b < 5; b++) {
                char got[32];
                char want[32];
                pw_fhir_join(got, n, parts[a], "/", parts[b]);
                snprintf(want, n, "%s/%s", parts[a] ? parts[a] : "", parts[b] ? parts[b] : "");
                assert_string_equal(got, want);
            }
        }
    }
}

/* The sync path's variants, given what it read, give what the plain functions give. */
static void test_normalize_of_matches_plain(void **state)
{
    (void)state;
    struct pw_norm_ctx ctx;
    struct pw_timeline a;
    struct pw_timeline b;
    struct pw_ref ref;
    char pa[64];
    char pb[64];
    json_t *j = clin_json(OBS("final", "72514-3",
                              "\"effectiveDateTime\":\"2026-01-02T10:00:00Z\",\"valueInteger\":6"));

    assert_int_equal(pw_norm_ctx_init(&ctx, clin_term(), NULL), 0);
    pw_timeline_init(&a, "Patient/p1");
    pw_timeline_init(&b, "Patient/p1");
    pw_fhir_ref_of(j, &ref);
    assert_int_equal(pw_normalize_resource(&ctx, j, NULL, &a), 0);
    assert_int_equal(pw_normalize_resource_of(&ctx, j, "Observation", &ref, NULL, &b), 0);
    assert_int_equal(a.scores.n, 1);
    assert_int_equal(b.scores.n, 1);
    assert_near(a.scores.v[0].value, b.scores.v[0].value);
    assert_int_equal(a.scores.v[0].at, b.scores.v[0].at);
    assert_string_equal(a.scores.v[0].src.type, b.scores.v[0].src.type);
    assert_string_equal(a.scores.v[0].src.id, b.scores.v[0].src.id);
    assert_string_equal(a.scores.v[0].src.version, b.scores.v[0].src.version);
    assert_int_equal(pw_normalize_patient(j, NULL, pa, sizeof(pa)), 0);
    assert_int_equal(pw_normalize_patient_of(j, "Observation", "o1", NULL, pb, sizeof(pb)), 0);
    assert_string_equal(pa, pb);
    assert_int_equal(pw_normalize_resource_of(&ctx, j, NULL, &ref, NULL, &b), 0); /* no type */
    assert_int_equal(b.scores.n, 1);
    pw_timeline_cleanup(&a);
    pw_timeline_cleanup(&b);
    json_decref(j);
    pw_norm_ctx_cleanup(&ctx);
}

static void test_pain_score_forms(void **state)
{
    (void)state;
    struct pw_timeline tl;
    norm(OBS("final", "72514-3",
             "\"effectiveDateTime\":\"2026-01-02T10:00:00+01:00\",\"valueQuantity\":{\"value\":8.7,"
             "\"unit\":\"{score}\"}"),
         &tl);
    assert_int_equal(tl.scores.n, 1);
    assert_near(tl.scores.v[0].value, 8.7);
    int64_t t;
    assert_int_equal(pw_fhir_parse_time("2026-01-02T09:00:00Z", &t), 0);
    assert_int_equal(tl.scores.v[0].at, t);
    assert_string_equal(tl.scores.v[0].src.type, "Observation");
    assert_string_equal(tl.scores.v[0].src.id, "o1");
    assert_string_equal(tl.scores.v[0].src.version, "3");
    pw_timeline_cleanup(&tl);

    const char *codes[] = {"38208-5", "38221-8", "38214-3"};
    for (size_t i = 0; i < 3; i++) {
        char buf[1024];
        snprintf(buf, sizeof(buf),
                 "{\"resourceType\":\"Observation\",\"id\":\"o\",\"status\":\"amended\","
                 "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"%s\"}]},"
                 "\"effectivePeriod\":{\"start\":\"2026-01-02\"},\"valueInteger\":4}",
                 codes[i]);
        norm(buf, &tl);
        assert_int_equal(tl.scores.n, 1);
        assert_near(tl.scores.v[0].value, 4);
        pw_timeline_cleanup(&tl);
    }
    /* issued when there is no effective time; effectiveInstant. */
    norm(OBS("corrected", "72514-3", "\"issued\":\"2026-01-03T00:00:00Z\",\"valueInteger\":0"),
         &tl);
    assert_int_equal(tl.scores.n, 1);
    pw_timeline_cleanup(&tl);
    norm(OBS("final", "72514-3",
             "\"effectiveInstant\":\"2026-01-03T00:00:00.123Z\",\"valueQuantity\":{\"value\":10}"),
         &tl);
    assert_int_equal(tl.scores.n, 1);
    pw_timeline_cleanup(&tl);
}

static void test_pain_score_rejects(void **state)
{
    (void)state;
    struct pw_timeline tl;
    /* Not final: ignored silently. Other LOINC code: not a pain score. */
    norm(OBS("preliminary", "72514-3", "\"issued\":\"2026-01-03\",\"valueInteger\":5"), &tl);
    assert_int_equal(tl.scores.n + tl.dq.n, 0);
    pw_timeline_cleanup(&tl);
    norm(OBS("final", "8867-4", "\"issued\":\"2026-01-03\",\"valueInteger\":5"), &tl);
    assert_int_equal(tl.scores.n + tl.dq.n, 0);
    pw_timeline_cleanup(&tl);
    /* Out of range, missing value, missing time: data-quality events, no score. */
    norm(OBS("final", "72514-3", "\"issued\":\"2026-01-03\",\"valueInteger\":11"), &tl);
    assert_int_equal(tl.scores.n, 0);
    assert_true(clin_has_dq(&tl, "value-out-of-range"));
    pw_timeline_cleanup(&tl);
    norm(OBS("final", "72514-3", "\"issued\":\"2026-01-03\",\"valueQuantity\":{\"value\":-1}"),
         &tl);
    assert_true(clin_has_dq(&tl, "value-out-of-range"));
    pw_timeline_cleanup(&tl);
    norm(OBS("final", "72514-3", "\"issued\":\"2026-01-03\",\"valueString\":\"severe\""), &tl);
    assert_true(clin_has_dq(&tl, "missing-value"));
    pw_timeline_cleanup(&tl);
    norm(OBS("final", "72514-3", "\"valueInteger\":3"), &tl);
    assert_true(clin_has_dq(&tl, "no-time"));
    assert_int_equal(tl.scores.n, 0);
    pw_timeline_cleanup(&tl);
}

static void test_pain_score_in_component_or_string(void **state)
{
    (void)state;
    struct pw_timeline tl;
    /* A vital-signs panel with the pain score as a component. */
    norm("{\"resourceType\":\"Observation\",\"id\":\"vs\",\"status\":\"final\",\"code\":"
         "{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"85353-1\"}]},"
         "\"effectiveDateTime\":\"2026-01-02T10:00:00Z\",\"component\":["
         "{\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8867-4\"}]},"
         "\"valueQuantity\":{\"value\":80}},"
         "{\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"72514-3\"}]},"
         "\"valueQuantity\":{\"value\":6.5}}]}",
         &tl);
    assert_int_equal(tl.scores.n, 1);
    assert_near(tl.scores.v[0].value, 6.5);
    pw_timeline_cleanup(&tl);
    norm(OBS("final", "72514-3", "\"issued\":\"2026-01-03\",\"valueString\":\"7\""), &tl);
    assert_int_equal(tl.scores.n, 1);
    assert_near(tl.scores.v[0].value, 7);
    pw_timeline_cleanup(&tl);
}

static void test_site_pain_codes(void **state)
{
    (void)state;
    struct pw_norm_ctx ctx;
    struct pw_timeline tl;
    assert_int_equal(pw_norm_ctx_init(&ctx, clin_term(), "cdc2016"), 0);
    assert_int_equal(pw_code_set_add(&ctx.pain_intensity, "urn:oid:1.2.3", "PAIN-NRS"), 0);
    pw_timeline_init(&tl, "Patient/p1");
    json_t *j = clin_json("{\"resourceType\":\"Observation\",\"id\":\"x\",\"status\":\"final\","
                          "\"code\":{\"coding\":[{\"system\":\"urn:oid:1.2.3\",\"code\":"
                          "\"PAIN-NRS\"}]},\"effectiveDateTime\":\"2026-01-01\","
                          "\"valueInteger\":6}");
    assert_int_equal(pw_normalize_resource(&ctx, j, NULL, &tl), 0);
    assert_int_equal(tl.scores.n, 1);
    json_decref(j);
    pw_timeline_cleanup(&tl);
    pw_norm_ctx_cleanup(&ctx);
    /* An unknown factor set is refused. */
    assert_int_equal(pw_norm_ctx_init(&ctx, clin_term(), "cdc-analytic"), PW_EINVAL);
    assert_int_equal(pw_norm_ctx_init(&ctx, clin_term(), "nope"), PW_EINVAL);
}

static void test_pain_types(void **state)
{
    (void)state;
    struct pw_timeline tl;
    norm("{\"resourceType\":\"Condition\",\"id\":\"c1\",\"subject\":{\"reference\":"
         "\"Patient/p1\"},\"code\":{\"coding\":[{\"system\":\"http://snomed.info/sct\","
         "\"code\":\"247398009\",\"display\":\"Neuropathic pain\"}]},"
         "\"onsetDateTime\":\"2026-01-01\"}",
         &tl);
    assert_int_equal(tl.pain_types.n, 1);
    assert_int_equal(tl.pain_types.v[0].kind, PW_PAIN_NEUROPATHIC);
    pw_timeline_cleanup(&tl);
    /* A descriptor in an Observation about pain. */
    norm("{\"resourceType\":\"Observation\",\"id\":\"d1\",\"status\":\"final\",\"code\":"
         "{\"text\":\"Pain character\"},\"valueString\":\"Burning, worse at night\","
         "\"effectiveDateTime\":\"2026-01-01\"}",
         &tl);
    assert_int_equal(tl.pain_types.n, 1);
    assert_int_equal(tl.pain_types.v[0].kind, PW_PAIN_NEUROPATHIC);
    pw_timeline_cleanup(&tl);
    norm("{\"resourceType\":\"Condition\",\"id\":\"c2\",\"code\":{\"text\":\"Visceral pain "
         "(liver capsule)\"},\"recordedDate\":\"2026-01-01\"}",
         &tl);
    assert_int_equal(tl.pain_types.n, 1);
    assert_int_equal(tl.pain_types.v[0].kind, PW_PAIN_VISCERAL);
    pw_timeline_cleanup(&tl);
    /* A descriptor word outside a pain context is not a pain type. */
    norm("{\"resourceType\":\"Condition\",\"id\":\"c3\",\"code\":{\"text\":\"Burning "
         "sensation of eye\"},\"recordedDate\":\"2026-01-01\"}",
         &tl);
    assert_int_equal(tl.pain_types.n, 0);
    pw_timeline_cleanup(&tl);
    /* A refuted condition is not documentation. */
    norm("{\"resourceType\":\"Condition\",\"id\":\"c4\",\"verificationStatus\":{\"coding\":"
         "[{\"code\":\"refuted\"}]},\"code\":{\"coding\":[{\"system\":\"http://snomed.info/sct\","
         "\"code\":\"247398009\"}]}}",
         &tl);
    assert_int_equal(tl.pain_types.n, 0);
    pw_timeline_cleanup(&tl);
}

static void test_palliative_referrals(void **state)
{
    (void)state;
    struct pw_timeline tl;
    norm("{\"resourceType\":\"ServiceRequest\",\"id\":\"s1\",\"status\":\"active\","
         "\"intent\":\"order\",\"code\":{\"coding\":[{\"system\":\"http://snomed.info/sct\","
         "\"code\":\"103735009\"}]},\"subject\":{\"reference\":\"Patient/p1\"},"
         "\"authoredOn\":\"2026-01-05\"}",
         &tl);
    assert_int_equal(tl.referrals.n, 1);
    int64_t t;
    pw_fhir_parse_time("2026-01-05", &t);
    assert_int_equal(tl.referrals.v[0].at, t);
    pw_timeline_cleanup(&tl);
    norm("{\"resourceType\":\"Encounter\",\"id\":\"e1\",\"status\":\"finished\",\"serviceType\":"
         "{\"text\":\"Palliative medicine clinic\"},\"period\":{\"start\":\"2026-01-06\"}}",
         &tl);
    assert_int_equal(tl.referrals.n, 1);
    pw_timeline_cleanup(&tl);
    norm("{\"resourceType\":\"ServiceRequest\",\"id\":\"s2\",\"status\":\"entered-in-error\","
         "\"code\":{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"103735009\"}]}}",
         &tl);
    assert_int_equal(tl.referrals.n, 0);
    pw_timeline_cleanup(&tl);
    norm("{\"resourceType\":\"ServiceRequest\",\"id\":\"s3\",\"status\":\"active\",\"code\":"
         "{\"text\":\"Physiotherapy\"}}",
         &tl);
    assert_int_equal(tl.referrals.n, 0);
    pw_timeline_cleanup(&tl);
}

#define MR(fields)                                                                            \
    "{\"resourceType\":\"MedicationRequest\",\"id\":\"m1\",\"intent\":\"order\",\"subject\":" \
    "{\"reference\":\"Patient/p1\"},\"authoredOn\":\"2026-01-01T00:00:00Z\"," fields "}"
#define MORPHINE_IR                                                                             \
    "\"medicationCodeableConcept\":{\"coding\":[{\"system\":\"http://www.nlm.nih.gov/research/" \
    "umls/rxnorm\",\"code\":\"892582\"}]}"
#define SIG_Q4H_15MG                                                                               \
    "\"dosageInstruction\":[{\"timing\":{\"repeat\":{\"frequency\":1,\"period\":4,\"periodUnit\":" \
    "\"h\"}},\"doseAndRate\":[{\"doseQuantity\":{\"value\":15,\"code\":\"mg\"}}]}]"

static void test_order_status_semantics(void **state)
{
    (void)state;
    struct pw_timeline tl;
    int64_t t0, tend, tupd;
    pw_fhir_parse_time("2026-01-01T00:00:00Z", &t0);
    pw_fhir_parse_time("2026-01-10", &tend);
    pw_fhir_parse_time("2026-01-05T12:00:00Z", &tupd);
    norm(MR("\"status\":\"on-hold\"," MORPHINE_IR "," SIG_Q4H_15MG), &tl);
    assert_int_equal(tl.orders.n, 1);
    assert_int_equal(tl.orders.v[0].start, t0);
    assert_true(tl.orders.v[0].end == PW_TIME_FOREVER);
    pw_timeline_cleanup(&tl);
    norm(MR("\"status\":\"completed\",\"dispenseRequest\":{\"validityPeriod\":{\"end\":"
            "\"2026-01-10\"}}," MORPHINE_IR "," SIG_Q4H_15MG),
         &tl);
    assert_int_equal(tl.orders.v[0].end, tend);
    pw_timeline_cleanup(&tl);
    /* Stopped before the validity end: the status change (meta.lastUpdated) counts. */
    norm(MR("\"status\":\"stopped\",\"meta\":{\"lastUpdated\":\"2026-01-05T12:00:00Z\"},"
            "\"dispenseRequest\":{\"validityPeriod\":{\"end\":\"2026-01-10\"}}," MORPHINE_IR
            "," SIG_Q4H_15MG),
         &tl);
    assert_int_equal(tl.orders.v[0].end, tupd);
    assert_false(pw_order_active_at(&tl.orders.v[0], tupd));
    assert_true(pw_order_active_at(&tl.orders.v[0], tupd - 1));
    pw_timeline_cleanup(&tl);
    /* Cancelled with nothing known: never active. */
    norm(MR("\"status\":\"cancelled\"," MORPHINE_IR "," SIG_Q4H_15MG), &tl);
    assert_false(pw_order_active_at(&tl.orders.v[0], t0));
    pw_timeline_cleanup(&tl);
    /* Draft and entered-in-error are ignored; unknown is a data-quality event. */
    norm(MR("\"status\":\"draft\"," MORPHINE_IR "," SIG_Q4H_15MG), &tl);
    assert_int_equal(tl.orders.n + tl.dq.n, 0);
    pw_timeline_cleanup(&tl);
    norm(MR("\"status\":\"entered-in-error\"," MORPHINE_IR "," SIG_Q4H_15MG), &tl);
    assert_int_equal(tl.orders.n + tl.dq.n, 0);
    pw_timeline_cleanup(&tl);
    norm(MR("\"status\":\"unknown\"," MORPHINE_IR "," SIG_Q4H_15MG), &tl);
    assert_int_equal(tl.orders.n, 0);
    assert_true(clin_has_dq(&tl, "unknown-status"));
    pw_timeline_cleanup(&tl);
    /* Not prescriptions: doNotPerform, proposals. */
    norm(MR("\"status\":\"active\",\"doNotPerform\":true," MORPHINE_IR "," SIG_Q4H_15MG), &tl);
    assert_int_equal(tl.orders.n + tl.dq.n, 0);
    pw_timeline_cleanup(&tl);
    norm("{\"resourceType\":\"MedicationRequest\",\"id\":\"p\",\"status\":\"active\","
         "\"intent\":\"proposal\"," MORPHINE_IR "," SIG_Q4H_15MG "}",
         &tl);
    assert_int_equal(tl.orders.n + tl.dq.n, 0);
    pw_timeline_cleanup(&tl);
    /* No time at all: kept, and said. */
    norm("{\"resourceType\":\"MedicationRequest\",\"id\":\"nt\",\"status\":\"active\","
         "\"intent\":\"order\"," MORPHINE_IR "," SIG_Q4H_15MG "}",
         &tl);
    assert_int_equal(tl.orders.n, 1);
    assert_true(tl.orders.v[0].start == PW_TIME_NONE);
    assert_true(clin_has_dq(&tl, "no-start-time"));
    pw_timeline_cleanup(&tl);
    /* priorPrescription is kept as Type/id. */
    norm(MR("\"status\":\"active\",\"priorPrescription\":{\"reference\":"
            "\"https://ehr.example/fhir/MedicationRequest/old/_history/2\"}," MORPHINE_IR
            "," SIG_Q4H_15MG),
         &tl);
    assert_string_equal(tl.orders.v[0].prior, "MedicationRequest/old");
    pw_timeline_cleanup(&tl);
}

static void test_prn_cap_and_roles(void **state)
{
    (void)state;
    struct pw_timeline tl;
    /* Morphine IR 15 mg q4h PRN, at most 60 mg a day: the cap wins over 90 mg. */
    norm(MR("\"status\":\"active\"," MORPHINE_IR
            ",\"dosageInstruction\":[{\"asNeededBoolean\":true,\"timing\":{\"repeat\":"
            "{\"frequency\":1,\"period\":4,\"periodUnit\":\"h\"}},\"doseAndRate\":[{"
            "\"doseQuantity\":{\"value\":15,\"code\":\"mg\"}}],\"maxDosePerPeriod\":"
            "{\"numerator\":{\"value\":60,\"code\":\"mg\"},\"denominator\":{\"value\":1,"
            "\"code\":\"d\"}}}]"),
         &tl);
    const struct pw_med_order *o = &tl.orders.v[0];
    assert_true(o->prn);
    assert_int_equal(o->role, PW_ROLE_RESCUE);
    assert_near(o->mg_per_day, 60);
    assert_near(o->mme_per_dose, 15);
    pw_timeline_cleanup(&tl);
    /* PRN without a frequency: the daily maximum (in tablets) is the most allowed. */
    norm(MR("\"status\":\"active\"," MORPHINE_IR
            ",\"dosageInstruction\":[{\"asNeededBoolean\":true,\"doseAndRate\":[{"
            "\"doseQuantity\":{\"value\":1,\"code\":\"TAB\"}}],\"maxDosePerPeriod\":"
            "{\"numerator\":{\"value\":4,\"code\":\"TAB\"},\"denominator\":{\"value\":24,"
            "\"code\":\"h\"}}}]"),
         &tl);
    assert_near(tl.orders.v[0].mg_per_day, 60);
    pw_timeline_cleanup(&tl);
    /* PRN long-acting opioid: neither baseline nor rescue. */
    norm(MR("\"status\":\"active\",\"medicationCodeableConcept\":{\"coding\":[{\"system\":"
            "\"http://www.nlm.nih.gov/research/umls/rxnorm\",\"code\":\"891890\"}]},"
            "\"dosageInstruction\":[{\"asNeededBoolean\":true,\"timing\":{\"code\":{\"text\":"
            "\"BID\"}},\"doseAndRate\":[{\"doseQuantity\":{\"value\":60,\"code\":\"mg\"}}]}]"),
         &tl);
    assert_int_equal(tl.orders.v[0].role, PW_ROLE_OTHER);
    pw_timeline_cleanup(&tl);
}

static void test_several_dosage_instructions(void **state)
{
    (void)state;
    struct pw_timeline tl;
    /* Same sequence: 20 mg morning + 10 mg evening run together = 30 mg/day. */
    norm(MR("\"status\":\"active\"," MORPHINE_IR ",\"dosageInstruction\":["
            "{\"sequence\":1,\"timing\":{\"repeat\":{\"when\":[\"MORN\"]}},\"doseAndRate\":"
            "[{\"doseQuantity\":{\"value\":20,\"code\":\"mg\"}}]},"
            "{\"sequence\":1,\"timing\":{\"repeat\":{\"when\":[\"EVE\"]}},\"doseAndRate\":"
            "[{\"doseQuantity\":{\"value\":10,\"code\":\"mg\"}}]}]"),
         &tl);
    /* Issue 16: each instruction is a part of the order; both are in force together. */
    assert_int_equal(tl.orders.n, 2);
    assert_near(tl.orders.v[0].mg_per_day + tl.orders.v[1].mg_per_day, 30);
    assert_near(tl.orders.v[0].mg_per_dose_high, 20);
    assert_int_equal(tl.orders.v[1].part, 1);
    assert_near(pw_timeline_baseline_mme_at(&tl, tl.orders.v[0].start), 30);
    pw_timeline_cleanup(&tl);
    /* Different sequences follow each other (a taper): without bounds the second step's start
     * is unknown, so only the first is on the timeline and a data-quality event says why. */
    norm(MR("\"status\":\"active\"," MORPHINE_IR ",\"dosageInstruction\":["
            "{\"sequence\":1,\"timing\":{\"code\":{\"text\":\"TID\"}},\"doseAndRate\":"
            "[{\"doseQuantity\":{\"value\":10,\"code\":\"mg\"}}]},"
            "{\"sequence\":2,\"timing\":{\"code\":{\"text\":\"BID\"}},\"doseAndRate\":"
            "[{\"doseQuantity\":{\"value\":10,\"code\":\"mg\"}}]}]"),
         &tl);
    assert_near(tl.orders.v[0].mg_per_day, 30);
    assert_near(pw_timeline_baseline_mme_at(&tl, tl.orders.v[0].start), 30);
    assert_true(clin_has_dq(&tl, "taper-step-untimed"));
    pw_timeline_cleanup(&tl);
    /* One computable, one free text: the baseline is unknown, with the reason. */
    norm(MR("\"status\":\"active\"," MORPHINE_IR ",\"dosageInstruction\":["
            "{\"sequence\":1,\"timing\":{\"code\":{\"text\":\"TID\"}},\"doseAndRate\":"
            "[{\"doseQuantity\":{\"value\":10,\"code\":\"mg\"}}]},"
            "{\"sequence\":1,\"text\":\"extra dose if needed\"}]"),
         &tl);
    assert_int_equal(tl.orders.n, 2);
    assert_true(isnan(tl.orders.v[1].mg_per_day));
    assert_int_equal(tl.orders.v[1].role, PW_ROLE_BASELINE);
    assert_true(clin_has_dq(&tl, "unstructured-sig"));
    pw_timeline_cleanup(&tl);
}

static void test_data_quality_for_unusable_orders(void **state)
{
    (void)state;
    struct pw_timeline tl;
    norm(MR("\"status\":\"active\"," MORPHINE_IR ",\"dosageInstruction\":[{\"text\":\"as "
            "directed\"}]"),
         &tl);
    assert_int_equal(tl.orders.n, 1); /* still an opioid order for the other rules */
    assert_true(isnan(tl.orders.v[0].mme_per_day));
    assert_true(clin_has_dq(&tl, "unstructured-sig"));
    pw_timeline_cleanup(&tl);
    norm(MR("\"status\":\"active\"," MORPHINE_IR
            ",\"dosageInstruction\":[{\"timing\":{\"code\":{\"text\":\"BID\"}},\"doseAndRate\":"
            "[{\"doseQuantity\":{\"value\":1,\"code\":\"[drp]\"}}]}]"),
         &tl);
    assert_true(clin_has_dq(&tl, "unit-not-convertible"));
    pw_timeline_cleanup(&tl);
    norm(MR("\"status\":\"active\",\"medicationCodeableConcept\":{\"coding\":[{\"system\":"
            "\"http://www.nlm.nih.gov/research/umls/rxnorm\",\"code\":\"999999999\"}],"
            "\"text\":\"Unobtainium 5 mg\"}," SIG_Q4H_15MG),
         &tl);
    /* Issue 16: an unknown drug that does not look like an opioid is not a problem (noise). */
    assert_int_equal(tl.orders.n, 0);
    assert_int_equal(tl.dq.n, 0);
    pw_timeline_cleanup(&tl);
    norm(MR("\"status\":\"active\",\"medicationCodeableConcept\":{\"coding\":[{\"system\":"
            "\"http://www.nlm.nih.gov/research/umls/rxnorm\",\"code\":\"999999999\"}],"
            "\"text\":\"Unobtainium opioid 5 mg\"}," SIG_Q4H_15MG),
         &tl);
    assert_int_equal(tl.orders.n, 0);
    assert_true(clin_has_dq(&tl, "unknown-drug"));
    pw_timeline_cleanup(&tl);
    norm(MR("\"status\":\"active\",\"medicationReference\":{\"reference\":\"Medication/"
            "gone\"}," SIG_Q4H_15MG),
         &tl);
    assert_true(clin_has_dq(&tl, "unresolved-medication"));
    pw_timeline_cleanup(&tl);
}

static void test_contained_medication_and_name_fallback(void **state)
{
    (void)state;
    struct pw_timeline tl;
    /* A contained Medication with a SNOMED code only: identified by its display, with the
     * strength from Medication.ingredient. */
    norm(MR("\"status\":\"active\",\"contained\":[{\"resourceType\":\"Medication\",\"id\":"
            "\"med\",\"code\":{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":"
            "\"430127000\",\"display\":\"Oral Form Oxycodone (product)\"}]},\"ingredient\":[{"
            "\"itemCodeableConcept\":{\"text\":\"oxycodone\"},\"strength\":{\"numerator\":{"
            "\"value\":5,\"code\":\"mg\"},\"denominator\":{\"value\":1,\"code\":\"TAB\"}}}]}],"
            "\"medicationReference\":{\"reference\":\"#med\"},\"dosageInstruction\":[{\"timing\":"
            "{\"code\":{\"text\":\"QID\"}},\"doseAndRate\":[{\"doseQuantity\":{\"value\":2,"
            "\"code\":\"TAB\"}}]}]"),
         &tl);
    assert_int_equal(tl.orders.n, 1);
    assert_string_equal(tl.orders.v[0].ingredient, "Oxycodone");
    assert_near(tl.orders.v[0].mg_per_day, 40);
    assert_near(tl.orders.v[0].mme_per_day, 60);
    assert_true(clin_has_dq(&tl, "drug-identified-by-text"));
    pw_timeline_cleanup(&tl);
}

static void test_non_opioid_classes(void **state)
{
    (void)state;
    struct pw_timeline tl;
    /* Laxative by name, PRN only. */
    norm(MR("\"status\":\"active\",\"medicationCodeableConcept\":{\"text\":\"Senna 8.6 mg "
            "tablet\"},\"dosageInstruction\":[{\"asNeededBoolean\":true}]"),
         &tl);
    assert_int_equal(tl.orders.n, 1);
    assert_true(tl.orders.v[0].classes & PW_MED_LAXATIVE_STIMULANT);
    assert_true(tl.orders.v[0].prn);
    assert_int_equal(tl.orders.v[0].role, PW_ROLE_OTHER);
    assert_int_equal(tl.dq.n, 0);
    pw_timeline_cleanup(&tl);
    /* Laxative by a drug-level code of the AHRQ laxative value set. */
    norm(MR("\"status\":\"active\",\"medicationCodeableConcept\":{\"coding\":[{\"system\":"
            "\"http://www.nlm.nih.gov/research/umls/rxnorm\",\"code\":\"876193\"}]}"),
         &tl);
    assert_true(tl.orders.v[0].classes & PW_MED_LAXATIVE);
    pw_timeline_cleanup(&tl);
    /* Gabapentin by ingredient code, duloxetine by the shipped classes. */
    norm(MR("\"status\":\"active\",\"medicationCodeableConcept\":{\"coding\":[{\"system\":"
            "\"http://www.nlm.nih.gov/research/umls/rxnorm\",\"code\":\"25480\"}]}"),
         &tl);
    assert_true(tl.orders.v[0].classes & PW_MED_ADJUVANT_GABAPENTINOID);
    pw_timeline_cleanup(&tl);
    norm(MR("\"status\":\"active\",\"medicationCodeableConcept\":{\"coding\":[{\"system\":"
            "\"http://www.nlm.nih.gov/research/umls/rxnorm\",\"code\":\"72625\"}]}"),
         &tl);
    assert_true(tl.orders.v[0].classes & PW_MED_ADJUVANT_SNRI);
    pw_timeline_cleanup(&tl);
    /* Benzodiazepine by a drug-level value set code (lorazepam-free: alprazolam 0.5 mg). */
    norm(MR("\"status\":\"active\",\"medicationCodeableConcept\":{\"coding\":[{\"system\":"
            "\"http://www.nlm.nih.gov/research/umls/rxnorm\",\"code\":\"308048\"}]}"),
         &tl);
    assert_true(tl.orders.v[0].classes & PW_MED_BENZODIAZEPINE);
    assert_false(tl.orders.v[0].classes & PW_MED_OPIOID);
    pw_timeline_cleanup(&tl);
    norm(MR("\"status\":\"active\",\"medicationCodeableConcept\":{\"text\":\"Dexamethasone 4 mg "
            "tablet\"}"),
         &tl);
    assert_true(tl.orders.v[0].classes & PW_MED_ADJUVANT_CORTICOSTEROID);
    pw_timeline_cleanup(&tl);
}

static void test_many_codings_prefer_the_product(void **state)
{
    (void)state;
    struct pw_timeline tl;
    /* Ingredient first, then an unknown code, then the SCD: the SCD's strength is used. */
    norm(MR("\"status\":\"active\",\"medicationCodeableConcept\":{\"coding\":["
            "{\"system\":\"http://www.nlm.nih.gov/research/umls/rxnorm\",\"code\":\"7052\"},"
            "{\"system\":\"http://www.nlm.nih.gov/research/umls/rxnorm\",\"code\":\"1\"},"
            "{\"system\":\"urn:oid:2.16.840.1.113883.6.88\",\"code\":\"891890\"}]},"
            "\"dosageInstruction\":[{\"timing\":{\"code\":{\"text\":\"Q12H\"}},\"doseAndRate\":"
            "[{\"doseQuantity\":{\"value\":1,\"code\":\"TAB\"}}]}]"),
         &tl);
    assert_string_equal(tl.orders.v[0].drug_rxcui, "891890");
    pw_timeline_cleanup(&tl);
    /* The RxNorm URI written with a trailing slash or https still counts. */
    norm(MR("\"status\":\"active\",\"medicationCodeableConcept\":{\"coding\":["
            "{\"system\":\"https://www.nlm.nih.gov/research/umls/rxnorm/\",\"code\":\"891890\"}]},"
            "\"dosageInstruction\":[{\"timing\":{\"code\":{\"text\":\"Q12H\"}},\"doseAndRate\":"
            "[{\"doseQuantity\":{\"value\":1,\"code\":\"TAB\"}}]}]"),
         &tl);
    assert_near(tl.orders.v[0].mme_per_day, 120);
    assert_true(tl.orders.v[0].classes & PW_MED_LONG_ACTING);
    pw_timeline_cleanup(&tl);
}

static void test_patient_reference(void **state)
{
    (void)state;
    struct pw_fhir_index *idx;
    struct pw_resolver refs;
    assert_int_equal(pw_fhir_index_new(&idx), 0);
    pw_fhir_index_resolver(idx, &refs);
    json_t *pat = clin_json("{\"resourceType\":\"Patient\",\"id\":\"abc\"}");
    assert_int_equal(pw_fhir_index_add(idx, "urn:uuid:1111", pat), 0);
    char out[PW_REF_MAX];
    json_t *obs = clin_json("{\"resourceType\":\"Observation\",\"subject\":{\"reference\":"
                            "\"urn:uuid:1111\"}}");
    assert_int_equal(pw_normalize_patient(obs, &refs, out, sizeof(out)), 0);
    assert_string_equal(out, "Patient/abc");
    json_decref(obs);
    obs = clin_json("{\"resourceType\":\"Condition\",\"subject\":{\"reference\":"
                    "\"https://ehr.example/fhir/Patient/42/_history/7\"}}");
    assert_int_equal(pw_normalize_patient(obs, NULL, out, sizeof(out)), 0);
    assert_string_equal(out, "Patient/42");
    json_decref(obs);
    obs = clin_json("{\"resourceType\":\"Encounter\",\"patient\":{\"reference\":\"Patient/7\"}}");
    assert_int_equal(pw_normalize_patient(obs, NULL, out, sizeof(out)), 0);
    assert_string_equal(out, "Patient/7");
    json_decref(obs);
    obs = clin_json("{\"resourceType\":\"Observation\",\"subject\":{\"reference\":\"Group/1\"}}");
    assert_int_equal(pw_normalize_patient(obs, NULL, out, sizeof(out)), PW_ENOENT);
    json_decref(obs);
    obs = clin_json("{\"resourceType\":\"Observation\"}");
    assert_int_equal(pw_normalize_patient(obs, NULL, out, sizeof(out)), PW_ENOENT);
    json_decref(obs);
    assert_int_equal(pw_normalize_patient(pat, NULL, out, sizeof(out)), 0);
    assert_string_equal(out, "Patient/abc");
    json_decref(pat);
    pw_fhir_index_free(idx);
}

static void test_bundled_medication_by_urn(void **state)
{
    (void)state;
    struct pw_fhir_index *idx;
    struct pw_resolver refs;
    struct pw_norm_ctx ctx;
    struct pw_timeline tl;
    assert_int_equal(pw_fhir_index_new(&idx), 0);
    pw_fhir_index_resolver(idx, &refs);
    json_t *med = clin_json("{\"resourceType\":\"Medication\",\"id\":\"m\",\"code\":{\"coding\":"
                            "[{\"system\":\"http://www.nlm.nih.gov/research/umls/rxnorm\","
                            "\"code\":\"1049683\"}]}}");
    assert_int_equal(pw_fhir_index_add(idx, "urn:uuid:2222", med), 0);
    json_t *mr = clin_json(MR("\"status\":\"active\",\"medicationReference\":{\"reference\":"
                              "\"urn:uuid:2222\"}," SIG_Q4H_15MG));
    assert_int_equal(pw_norm_ctx_init(&ctx, clin_term(), NULL), 0);
    pw_timeline_init(&tl, "Patient/p1");
    assert_int_equal(pw_normalize_resource(&ctx, mr, &refs, &tl), 0);
    assert_int_equal(tl.orders.n, 1);
    assert_string_equal(tl.orders.v[0].ingredient, "Oxycodone");
    assert_near(tl.orders.v[0].mme_per_day, 135);
    /* Medication/m resolves too. */
    assert_ptr_equal(pw_resolve(&refs, "Medication/m"), med);
    pw_timeline_cleanup(&tl);
    pw_norm_ctx_cleanup(&ctx);
    json_decref(mr);
    json_decref(med);
    pw_fhir_index_free(idx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fhir_join_is_snprintf),
        cmocka_unit_test(test_normalize_of_matches_plain),
        cmocka_unit_test(test_pain_score_forms),
        cmocka_unit_test(test_pain_score_rejects),
        cmocka_unit_test(test_pain_score_in_component_or_string),
        cmocka_unit_test(test_site_pain_codes),
        cmocka_unit_test(test_pain_types),
        cmocka_unit_test(test_palliative_referrals),
        cmocka_unit_test(test_order_status_semantics),
        cmocka_unit_test(test_prn_cap_and_roles),
        cmocka_unit_test(test_several_dosage_instructions),
        cmocka_unit_test(test_data_quality_for_unusable_orders),
        cmocka_unit_test(test_contained_medication_and_name_fallback),
        cmocka_unit_test(test_non_opioid_classes),
        cmocka_unit_test(test_many_codings_prefer_the_product),
        cmocka_unit_test(test_patient_reference),
        cmocka_unit_test(test_bundled_medication_by_urn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
