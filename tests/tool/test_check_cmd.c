/* SPDX-License-Identifier: Apache-2.0 */
/* `painwatch check` through the real binary ($PAINWATCH): output shape, stability, exit codes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <jansson.h>

#include "painwatch/engine.h"
#include "painwatch/limits.h"
#include "support/pwtest.h"

struct run {
    int status;
    char *out;
    char *err;
};

static char *tmpdir;

/* Run `painwatch check ARGS` (ARGS is shell text, fixture paths relative to the source tree). */
static void run_check(const char *args, struct run *r)
{
    const char *bin = getenv("PAINWATCH");
    assert_non_null(bin);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "cd '%s' && '%s' check %s >'%s/out' 2>'%s/err'", pwt_src_path("."),
             bin, args, tmpdir, tmpdir);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    r->status = WEXITSTATUS(st);
    char path[1024];
    snprintf(path, sizeof(path), "%s/out", tmpdir);
    r->out = pwt_read_file(path, NULL);
    snprintf(path, sizeof(path), "%s/err", tmpdir);
    r->err = pwt_read_file(path, NULL);
}

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

/* The object has exactly these keys. */
static void assert_keys(const json_t *obj, const char *const *keys, size_t n)
{
    assert_true(json_is_object(obj));
    assert_int_equal(json_object_size(obj), n);
    for (size_t i = 0; i < n; i++) {
        if (json_object_get(obj, keys[i]) == NULL) {
            fprintf(stderr, "missing key %s\n", keys[i]);
        }
        assert_non_null(json_object_get(obj, keys[i]));
    }
}

static const json_t *find(const json_t *arr, const char *key, const char *value)
{
    size_t i;
    const json_t *e;
    json_array_foreach(arr, i, e)
    {
        const char *v = json_string_value(json_object_get(e, key));
        if (v && strcmp(v, value) == 0) {
            return e;
        }
    }
    return NULL;
}

#define BUNDLE "tests/fixtures/fhir/check/bundle-transaction.json"
#define AT     "--at 2026-01-03T09:00:00+01:00"

static void test_json_shape(void **state)
{
    (void)state;
    struct run r;
    run_check(AT " --format json " BUNDLE, &r);
    assert_int_equal(r.status, 0);
    json_error_t err;
    json_t *doc = json_loads(r.out, 0, &err); /* exactly one document */
    assert_non_null(doc);
    static const char *const top[] = {"evaluated_at", "factor_set", "ruleset", "patients"};
    assert_keys(doc, top, 4);
    assert_string_equal(json_string_value(json_object_get(doc, "evaluated_at")),
                        "2026-01-03T08:00:00Z");
    assert_string_equal(json_string_value(json_object_get(doc, "factor_set")), "cdc2022");
    assert_string_equal(json_string_value(json_object_get(doc, "ruleset")), PW_RULESET_VERSION);
    json_t *patients = json_object_get(doc, "patients");
    assert_int_equal(json_array_size(patients), 1);
    json_t *p = json_array_get(patients, 0);
    static const char *const pk[] = {"patient", "baseline_mme_per_day", "orders", "findings",
                                     "data_quality"};
    assert_keys(p, pk, 5);
    /* The urn:uuid subject resolved to the Patient's id. */
    assert_string_equal(json_string_value(json_object_get(p, "patient")), "Patient/pat-a");
    /* Morphine ER 60 mg q12h; the stopped oxycodone order no longer counts. */
    assert_true(json_real_value(json_object_get(p, "baseline_mme_per_day")) == 120);
    json_t *orders = json_object_get(p, "orders");
    assert_int_equal(json_array_size(orders), 3); /* opioids only: senna is not listed */
    static const char *const ok[] = {"resource",    "ingredient",   "role",      "mg_per_day",
                                     "mme_per_day", "mme_per_dose", "factor",    "route",
                                     "part",        "part_index",   "factor_row"};
    size_t i;
    json_t *o;
    json_array_foreach(orders, i, o)
    {
        assert_keys(o, ok, 11);
    }
    const json_t *base = find(orders, "resource", "MedicationRequest/baseline/_history/2");
    assert_non_null(base);
    assert_string_equal(json_string_value(json_object_get(base, "role")), "baseline");
    assert_string_equal(json_string_value(json_object_get(base, "ingredient")), "Morphine");
    assert_true(json_real_value(json_object_get(base, "mme_per_day")) == 120);
    assert_true(json_real_value(json_object_get(base, "factor")) == 1);
    /* issue 16: route, part and the factor row used */
    assert_string_equal(json_string_value(json_object_get(base, "route")), "oral");
    assert_string_equal(json_string_value(json_object_get(base, "part")), "scheduled");
    assert_string_equal(json_string_value(json_object_get(base, "factor_row")),
                        "cdc2022:7052:oral");
    const json_t *resc = find(orders, "resource", "MedicationRequest/rescue");
    assert_string_equal(json_string_value(json_object_get(resc, "role")), "rescue");
    assert_string_equal(json_string_value(json_object_get(resc, "part")), "prn");
    assert_true(json_real_value(json_object_get(resc, "mme_per_dose")) == 5);
    const json_t *ft = find(orders, "resource", "MedicationRequest/free-text");
    assert_true(json_is_null(json_object_get(ft, "mme_per_day")));
    json_t *dq = json_object_get(p, "data_quality");
    const json_t *d = find(dq, "resource", "MedicationRequest/free-text");
    assert_non_null(d);
    static const char *const dk[] = {"code", "resource", "detail"};
    assert_keys(d, dk, 3);
    assert_string_equal(json_string_value(json_object_get(d, "code")), "unstructured-sig");
    static const char *const fk[] = {"rule", "severity", "key", "text", "evidence"};
    json_array_foreach(json_object_get(p, "findings"), i, o)
    {
        assert_keys(o, fk, 5);
        assert_int_equal(strlen(json_string_value(json_object_get(o, "key"))), 64);
        assert_true(json_is_array(json_object_get(o, "evidence")));
    }
    json_decref(doc);
    run_free(&r);
}

static void test_findings_and_factor_set(void **state)
{
    (void)state;
    struct run r;
    /* Baseline 120 MME: the 5 mg morphine rescue is 4.2%, below the 10-20% guide. */
    run_check(AT " --factors cdc2016 tests/fixtures/fhir/check/resources.ndjson " BUNDLE, &r);
    assert_int_equal(r.status, 0);
    json_t *doc = json_loads(r.out, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "factor_set")), "cdc2016");
    json_t *patients = json_object_get(doc, "patients");
    assert_int_equal(json_array_size(patients), 2);
    /* Patients sorted; the NDJSON patient's Medication came from the same file. */
    const json_t *nd = find(patients, "patient", "Patient/nd-1");
    assert_non_null(nd);
    assert_true(json_real_value(json_object_get(nd, "baseline_mme_per_day")) == 48);
    const json_t *pa = find(patients, "patient", "Patient/pat-a");
    const json_t *f = find(json_object_get(pa, "findings"), "rule", "rescue-dose-out-of-range");
    assert_non_null(f);
    assert_string_equal(json_string_value(json_object_get(f, "severity")), "low");
    json_decref(doc);
    run_free(&r);
}

static void test_output_is_stable_given_at(void **state)
{
    (void)state;
    struct run a, b;
    run_check(AT " " BUNDLE " tests/fixtures/fhir/synthea/Chet_Thompson_eda17701-070d-4fae-9f7d-"
                 "c8cd6263b63a.json",
              &a);
    run_check(AT " " BUNDLE " tests/fixtures/fhir/synthea/Chet_Thompson_eda17701-070d-4fae-9f7d-"
                 "c8cd6263b63a.json",
              &b);
    assert_int_equal(a.status, 0);
    assert_string_equal(a.out, b.out);
    run_free(&a);
    run_free(&b);
}

static void test_text_format(void **state)
{
    (void)state;
    struct run r;
    run_check(AT " --format text " BUNDLE, &r);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "Patient/pat-a"));
    assert_non_null(strstr(r.out, "rescue-dose-out-of-range"));
    assert_non_null(strstr(r.out, "unstructured-sig"));
    assert_null(json_loads(r.out, 0, NULL));
    run_free(&r);
}

static void test_unreadable_input_exits_2_with_place(void **state)
{
    (void)state;
    struct run r;
    run_check("tests/fixtures/fhir/check/broken.json", &r);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "broken.json:5:"));
    assert_string_equal(r.out, "");
    run_free(&r);
    run_check("tests/fixtures/fhir/check/broken.ndjson", &r);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "broken.ndjson:3:"));
    run_free(&r);
    run_check("tests/fixtures/fhir/check/not-a-resource.json", &r);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "entry 0 (id no-type)"));
    run_free(&r);
    run_check("tests/fixtures/fhir/check/does-not-exist.json", &r);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "does-not-exist.json"));
    run_free(&r);
}

static void test_usage_errors(void **state)
{
    (void)state;
    struct run r;
    const char *bad[] = {"",
                         "--bogus " BUNDLE,
                         "--at yesterday " BUNDLE,
                         "--format xml " BUNDLE,
                         "--factors cdc1999 " BUNDLE,
                         "--at"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        run_check(bad[i], &r);
        assert_int_equal(r.status, 2);
        assert_true(strlen(r.err) > 0);
        run_free(&r);
    }
    run_check("--help", &r);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "--factors"));
    run_free(&r);
}

/* --config takes the daemon's file: factor set, rule switches and site pain codes apply. */
static void test_config_file(void **state)
{
    (void)state;
    char path[1024], args[2048];
    snprintf(path, sizeof(path), "%s/painwatch.yaml", tmpdir);
    pwt_write_file(path, "servers:\n"
                         "  - name: local\n"
                         "    base_url: http://127.0.0.1:8080/fhir\n"
                         "    auth:\n"
                         "      type: none\n"
                         "    cohort:\n"
                         "      type: server-wide\n"
                         "sink:\n"
                         "  type: fhir-flag\n"
                         "factor_set: cdc2016\n"
                         "rules:\n"
                         "  rescue-dose-out-of-range:\n"
                         "    enabled: false\n");
    struct run r;
    snprintf(args, sizeof(args), AT " --config '%s' " BUNDLE, path);
    run_check(args, &r);
    assert_int_equal(r.status, 0);
    json_t *doc = json_loads(r.out, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "factor_set")), "cdc2016");
    json_t *p = json_array_get(json_object_get(doc, "patients"), 0);
    assert_null(find(json_object_get(p, "findings"), "rule", "rescue-dose-out-of-range"));
    json_decref(doc);
    run_free(&r);
    /* The command line wins over the file. */
    snprintf(args, sizeof(args), AT " --factors cdc2022 --config '%s' " BUNDLE, path);
    run_check(args, &r);
    assert_non_null(strstr(r.out, "\"factor_set\": \"cdc2022\""));
    run_free(&r);
    /* An invalid file: exit 2 and the problem named with its place. */
    pwt_write_file(path, "factor_set: cdc1999\n");
    snprintf(args, sizeof(args), AT " --config '%s' " BUNDLE, path);
    run_check(args, &r);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "painwatch.yaml"));
    run_free(&r);
}

/* Issue 16: a site overrides the factor and plausibility tables by files named in the config. */
static void test_site_tables_by_file(void **state)
{
    (void)state;
    char path[1024], fpath[1024], lpath[1024], args[2048], conf[4096];
    snprintf(path, sizeof(path), "%s/site.yaml", tmpdir);
    snprintf(fpath, sizeof(fpath), "%s/factors.csv", tmpdir);
    snprintf(lpath, sizeof(lpath), "%s/limits.csv", tmpdir);
    pwt_write_file(fpath, "factor_set,ingredient_rxcui,ingredient,route,factor,unit_basis,source\n"
                          "*,7052,Morphine,parenteral,2,mg/day,site pharmacy\n");
    pwt_write_file(lpath, "ingredient_rxcui,ingredient,route,max_single_mg,max_day_mg,"
                          "max_mcg_per_hour,min_dose_mg,source\n"
                          "7052,Morphine,oral,50,100,,,site pharmacy\n");
    snprintf(conf, sizeof(conf),
             "servers:\n  - name: local\n    base_url: http://127.0.0.1:8080/fhir\n"
             "    auth:\n      type: none\n    cohort:\n      type: server-wide\n"
             "sink:\n  type: fhir-flag\nscope: cohort\n"
             "mme_route_factors_file: %s\ndose_limits_file: %s\n",
             fpath, lpath);
    pwt_write_file(path, conf);
    struct run r;
    snprintf(args, sizeof(args),
             "--at 2026-03-02T10:00:00Z --config '%s' tests/daemon/clinical/rules/cases/"
             "rescue-dose-out-of-range/iv-morphine-4mg-prn-on-120-oral/input.json",
             path);
    run_check(args, &r);
    assert_int_equal(r.status, 0);
    json_t *doc = json_loads(r.out, 0, NULL);
    assert_non_null(doc);
    json_t *p = json_array_get(json_object_get(doc, "patients"), 0);
    const json_t *iv =
        find(json_object_get(p, "orders"), "resource", "MedicationRequest/med-1/_history/1");
    assert_non_null(iv);
    assert_true(json_real_value(json_object_get(iv, "factor")) == 2); /* the site's factor */
    assert_string_equal(json_string_value(json_object_get(iv, "route")), "parenteral");
    /* The site's limit makes the 120 mg/day oral baseline implausible. */
    assert_non_null(find(json_object_get(p, "data_quality"), "code", "implausible-dose"));
    assert_non_null(find(json_object_get(p, "findings"), "rule", "order-dose-implausible"));
    json_decref(doc);
    run_free(&r);
    /* A bad site file: exit 2, the file and line named. */
    pwt_write_file(fpath, "factor_set,ingredient_rxcui,ingredient,route,factor,unit_basis,source\n"
                          "*,7052,Morphine,parenteral,-2,mg/day,site pharmacy\n");
    run_check(args, &r);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "factors.csv:2"));
    run_free(&r);
}

#define VERSIONED_ORDER                                                                 \
    "{\"resourceType\":\"MedicationRequest\",\"id\":\"mr\",\"meta\":{\"versionId\":"    \
    "\"%d\"},\"status\":\"active\",\"intent\":\"order\",\"subject\":{\"reference\":"    \
    "\"Patient/v\"},\"authoredOn\":\"2026-01-01\",\"medicationCodeableConcept\":{"      \
    "\"coding\":[{\"system\":\"http://www.nlm.nih.gov/research/umls/rxnorm\",\"code\":" \
    "\"1049683\"}]},\"dosageInstruction\":[{\"timing\":{\"code\":{\"text\":\"BID\"}},"  \
    "\"doseAndRate\":[{\"doseQuantity\":{\"value\":%d,\"code\":\"mg\"}}]}]}\n"

/* The same order in two files: the later version counts, whichever file comes first. */
static void test_latest_version_wins(void **state)
{
    (void)state;
    char path[1024], text[2048], args[4096];
    snprintf(path, sizeof(path), "%s/v2.json", tmpdir);
    snprintf(text, sizeof(text), VERSIONED_ORDER, 2, 20);
    pwt_write_file(path, text);
    snprintf(path, sizeof(path), "%s/v1.json", tmpdir);
    snprintf(text, sizeof(text), VERSIONED_ORDER, 1, 10);
    pwt_write_file(path, text);
    snprintf(args, sizeof(args), AT " '%s/v2.json' '%s/v1.json'", tmpdir, tmpdir);
    struct run r;
    run_check(args, &r);
    assert_int_equal(r.status, 0);
    json_t *doc = json_loads(r.out, 0, NULL);
    assert_non_null(doc);
    json_t *p = json_array_get(json_object_get(doc, "patients"), 0);
    json_t *orders = json_object_get(p, "orders");
    assert_int_equal(json_array_size(orders), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(orders, 0), "resource")),
                        "MedicationRequest/mr/_history/2");
    assert_true(json_real_value(json_object_get(p, "baseline_mme_per_day")) == 60);
    json_decref(doc);
    run_free(&r);
}

/* A patient over the per-patient cap is still evaluated, on the newest events, and told so. */
static void test_patient_over_the_cap(void **state)
{
    (void)state;
    char path[1024], args[2048];
    snprintf(path, sizeof(path), "%s/many.ndjson", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < PW_RESOURCES_PER_PATIENT_MAX + 50; i++) {
        fprintf(f,
                "{\"resourceType\":\"Observation\",\"id\":\"o%d\",\"status\":\"final\","
                "\"subject\":{\"reference\":\"Patient/many\"},\"code\":{\"coding\":[{"
                "\"system\":\"http://loinc.org\",\"code\":\"72514-3\"}]},"
                "\"effectiveDateTime\":\"2025-%02d-%02dT%02d:%02d:00Z\",\"valueInteger\":%d}\n",
                i, 1 + i / 600 % 12, 1 + i / 24 % 28, i % 24, i % 60, i % 11);
    }
    assert_int_equal(fclose(f), 0);
    snprintf(args, sizeof(args), AT " '%s'", path);
    struct run r;
    run_check(args, &r);
    assert_int_equal(r.status, 0);
    json_t *doc = json_loads(r.out, 0, NULL);
    assert_non_null(doc);
    json_t *p = json_array_get(json_object_get(doc, "patients"), 0);
    const json_t *d = find(json_object_get(p, "data_quality"), "code", "timeline-cap");
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(d, "resource")), "Patient/many");
    json_decref(doc);
    run_free(&r);
}

/* A byte order mark before the JSON (Windows exports) is accepted. */
static void test_byte_order_mark(void **state)
{
    (void)state;
    char path[1024], args[2048];
    snprintf(path, sizeof(path), "%s/bom.json", tmpdir);
    pwt_write_file(path, "\xef\xbb\xbf{\"resourceType\":\"Patient\",\"id\":\"bom\"}\n");
    snprintf(args, sizeof(args), AT " '%s'", path);
    struct run r;
    run_check(args, &r);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\"Patient/bom\""));
    run_free(&r);
}

static int setup(void **state)
{
    (void)state;
    tmpdir = pwt_mkdtemp();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pwt_rmtree(tmpdir);
    free(tmpdir);
    return 0;
}

/*
 * Issue 17: the data-quality events of scope and evidence. The NDJSON patient has no cancer on
 * record: out of scope by default, in scope with --scope cohort. With --synced naming only
 * Observation and MedicationRequest, the rules resting on Condition are off and say so.
 */
static void test_scope_and_synced_types(void **state)
{
    (void)state;
    struct run r;
    run_check(AT " tests/fixtures/fhir/check/resources.ndjson", &r);
    assert_int_equal(r.status, 0);
    json_t *doc = json_loads(r.out, 0, NULL);
    assert_non_null(doc);
    json_t *p = json_array_get(json_object_get(doc, "patients"), 0);
    assert_non_null(find(json_object_get(p, "data_quality"), "code", "out-of-scope"));
    assert_int_equal(json_array_size(json_object_get(p, "findings")), 0);
    json_decref(doc);
    run_free(&r);

    run_check(AT " --scope cohort tests/fixtures/fhir/check/resources.ndjson", &r);
    assert_int_equal(r.status, 0);
    doc = json_loads(r.out, 0, NULL);
    p = json_array_get(json_object_get(doc, "patients"), 0);
    assert_null(find(json_object_get(p, "data_quality"), "code", "out-of-scope"));
    json_decref(doc);
    run_free(&r);

    run_check(AT " --synced Observation,MedicationRequest " BUNDLE, &r);
    assert_int_equal(r.status, 0);
    doc = json_loads(r.out, 0, NULL);
    const json_t *pa = find(json_object_get(doc, "patients"), "patient", "Patient/pat-a");
    const json_t *d = find(json_object_get(pa, "data_quality"), "code", "rules-off-not-synced");
    assert_non_null(d);
    assert_non_null(
        strstr(json_string_value(json_object_get(d, "detail")), "pain-type-undocumented"));
    /* the missing types grouped by why: "(Condition, ServiceRequest not synced (...))" */
    assert_non_null(strstr(json_string_value(json_object_get(d, "detail")), "(Condition"));
    assert_non_null(
        strstr(json_string_value(json_object_get(d, "detail")), " not synced (not in resources))"));
    assert_null(find(json_object_get(pa, "findings"), "rule", "pain-type-undocumented"));
    json_decref(doc);
    run_free(&r);

    /* Many rules off: whole rule ids and a count, every type named whole (the detail was cut
     * mid-word at 120 characters: "reassessment-overdue-after-hig ... (not in re)"). */
    run_check(AT " --scope cohort "
                 "tests/daemon/clinical/rules/cases/pain-not-assessed-at-visit/"
                 "observations-not-synced/input.json",
              &r);
    assert_int_equal(r.status, 0);
    doc = json_loads(r.out, 0, NULL);
    pa = json_array_get(json_object_get(doc, "patients"), 0);
    d = find(json_object_get(pa, "data_quality"), "code", "rules-off-not-synced");
    assert_non_null(d);
    const char *detail = json_string_value(json_object_get(d, "detail"));
    assert_non_null(strstr(detail, " more ("));
    assert_non_null(strstr(detail, "ServiceRequest not synced (not in resources))"));
    assert_non_null(strstr(detail, "reassessment-overdue-after-dose-change, ") ||
                    strstr(detail, "reassessment-overdue-after-dose-change and "));
    json_decref(doc);
    run_free(&r);

    run_check(AT " --synced Observation,Nonsense " BUNDLE, &r);
    assert_int_equal(r.status, 2);
    run_free(&r);
    run_check(AT " --scope everyone " BUNDLE, &r);
    assert_int_equal(r.status, 2);
    run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_shape),
        cmocka_unit_test(test_findings_and_factor_set),
        cmocka_unit_test(test_output_is_stable_given_at),
        cmocka_unit_test(test_text_format),
        cmocka_unit_test(test_unreadable_input_exits_2_with_place),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_config_file),
        cmocka_unit_test(test_site_tables_by_file),
        cmocka_unit_test(test_latest_version_wins),
        cmocka_unit_test(test_patient_over_the_cap),
        cmocka_unit_test(test_byte_order_mark),
        cmocka_unit_test(test_scope_and_synced_types),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
