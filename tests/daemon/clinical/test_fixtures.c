/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Real-world inputs: the CDC MME calculator test patients give their expected TotalMME; every
 * official FHIR R4 example and the Synthea patients normalize and evaluate without a crash or a
 * leak, and whatever they cannot use becomes a data-quality event.
 */
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "clinical_support.h"
#include "painwatch/engine.h"
#include "painwatch/fhir.h"
#include "painwatch/normalize.h"

/* Every resource of a directory's *.json files (bundles unpacked), with an index. */
struct corpus {
    json_t *all;
    struct pw_fhir_index *idx;
    struct pw_resolver refs;
    size_t files;
};

static void add(struct corpus *c, json_t *res, const char *full_url)
{
    const char *type = pw_fhir_str(res, "resourceType");
    assert_non_null(type);
    if (strcmp(type, "Bundle") == 0) {
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(res, "entry"), i, e)
        {
            json_t *r = json_object_get(e, "resource");
            if (r != NULL) {
                add(c, r, pw_fhir_str(e, "fullUrl"));
            }
        }
        return;
    }
    assert_int_equal(json_array_append(c->all, res), 0);
    assert_int_equal(pw_fhir_index_add(c->idx, full_url, res), 0);
}

static void corpus_load(struct corpus *c, const char *rel)
{
    memset(c, 0, sizeof(*c));
    c->all = json_array();
    assert_int_equal(pw_fhir_index_new(&c->idx), 0);
    pw_fhir_index_resolver(c->idx, &c->refs);
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s", pwt_src_path(rel));
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 5, ".json") != 0) {
            continue;
        }
        char path[2048];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        json_error_t err;
        json_t *j = json_load_file(path, 0, &err);
        if (j == NULL) {
            fprintf(stderr, "%s:%d: %s\n", path, err.line, err.text);
        }
        assert_non_null(j);
        add(c, j, NULL);
        json_decref(j);
        c->files++;
    }
    closedir(d);
}

static void corpus_free(struct corpus *c)
{
    json_decref(c->all);
    pw_fhir_index_free(c->idx);
}

/* Normalize every resource of @p patient into @p tl. */
static void timeline_of(struct corpus *c, const struct pw_norm_ctx *ctx, const char *patient,
                        struct pw_timeline *tl)
{
    pw_timeline_init(tl, patient);
    size_t i;
    json_t *r;
    json_array_foreach(c->all, i, r)
    {
        char p[PW_REF_MAX];
        if (pw_normalize_patient(r, &c->refs, p, sizeof(p)) == 0 && strcmp(p, patient) == 0) {
            assert_int_equal(pw_normalize_resource(ctx, r, &c->refs, tl), 0);
        }
    }
    pw_timeline_sort(tl);
}

static void test_cdc_mme_calculator_patients(void **state)
{
    (void)state;
    static const char *const cases[] = {"mmecalc", "patient-mme-less-than-fifty",
                                        "patient-mme-with-timeofday",
                                        "patient-mme-greater-than-fifty", "patient-no-meds"};
    struct pw_norm_ctx ctx;
    assert_int_equal(pw_norm_ctx_init(&ctx, clin_term(), "cdc2022"), 0);
    int64_t at;
    assert_int_equal(pw_fhir_parse_time("2020-12-01T00:00:00Z", &at), 0);
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        char rel[256], patient[128];
        snprintf(rel, sizeof(rel), "tests/fixtures/fhir/opioid-mme-r4/MMECalculatorTests/%s",
                 cases[k]);
        snprintf(patient, sizeof(patient), "Patient/%s", cases[k]);
        struct corpus c;
        corpus_load(&c, rel);
        /* The expected total comes from the case's own GuidanceResponse (0 without one). */
        double expected = 0;
        size_t i;
        json_t *r;
        json_array_foreach(c.all, i, r)
        {
            if (strcmp(pw_fhir_str(r, "resourceType"), "GuidanceResponse") != 0) {
                continue;
            }
            json_t *param = json_array_get(
                json_object_get(json_array_get(json_object_get(r, "contained"), 0), "parameter"),
                0);
            assert_string_equal(pw_fhir_str(param, "name"), "TotalMME");
            assert_true(pw_fhir_num(json_object_get(param, "valueQuantity"), "value", &expected));
        }
        struct pw_timeline tl;
        timeline_of(&c, &ctx, patient, &tl);
        double total = pw_timeline_baseline_mme_at(&tl, at);
        if (fabs(total - expected) > 1e-6) {
            fprintf(stderr, "%s: MME %g, expected %g\n", cases[k], total, expected);
        }
        assert_near(total, expected);
        assert_int_equal(tl.dq.n, 0);
        pw_timeline_cleanup(&tl);
        corpus_free(&c);
    }
    pw_norm_ctx_cleanup(&ctx);
}

static bool has_dq_for(const struct pw_timeline *tl, const char *id)
{
    for (size_t i = 0; i < tl->dq.n; i++) {
        if (strcmp(tl->dq.v[i].src.id, id) == 0) {
            return true;
        }
    }
    return false;
}

/* Issue 16: an unknown drug is reported only when it looks like an opioid (by name). */
static bool looks_opioid(const json_t *res)
{
    static const char *const words[] = {"morphine", "codone",  "fentanyl", "methadone",    "opioid",
                                        "morphone", "codeine", "tramadol", "buprenorphine"};
    char *dump = json_dumps(res, JSON_COMPACT);
    bool hit = false;
    for (size_t i = 0; dump && i < sizeof(words) / sizeof(words[0]); i++) {
        for (char *p = dump; *p; p++) {
            *p = (char)tolower((unsigned char)*p);
        }
        hit = hit || strstr(dump, words[i]) != NULL;
    }
    free(dump);
    return hit;
}

static bool has_order(const struct pw_timeline *tl, const char *id)
{
    for (size_t i = 0; i < tl->orders.n; i++) {
        if (strcmp(tl->orders.v[i].src.id, id) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * Normalize and evaluate every patient of a corpus. Invariants: each usable MedicationRequest
 * yields an order or a data-quality event; each opioid order has an MME or says why not; each
 * final pain-intensity Observation yields a score or a data-quality event.
 */
static void check_corpus(const char *rel, size_t min_files, size_t *n_orders, size_t *n_scores)
{
    struct corpus c;
    corpus_load(&c, rel);
    assert_true(c.files >= min_files);
    struct pw_norm_ctx ctx;
    struct pw_engine *engine;
    assert_int_equal(pw_norm_ctx_init(&ctx, clin_term(), NULL), 0);
    assert_int_equal(pw_engine_new(&engine, "cdc2022"), 0);
    int64_t at;
    assert_int_equal(pw_fhir_parse_time("2021-06-01T00:00:00Z", &at), 0);
    json_t *seen = json_object();
    size_t i;
    json_t *r;
    json_array_foreach(c.all, i, r)
    {
        char patient[PW_REF_MAX];
        if (pw_normalize_patient(r, &c.refs, patient, sizeof(patient)) < 0 ||
            json_object_get(seen, patient) != NULL) {
            continue;
        }
        json_object_set_new(seen, patient, json_true());
        struct pw_timeline tl;
        timeline_of(&c, &ctx, patient, &tl);
        struct pw_findings fs = {0};
        assert_int_equal(pw_engine_eval(engine, &tl, at, &fs), 0);
        size_t k;
        json_t *x;
        json_array_foreach(c.all, k, x)
        {
            char p[PW_REF_MAX];
            const char *type = pw_fhir_str(x, "resourceType");
            const char *id = pw_fhir_str(x, "id");
            const char *status = pw_fhir_str(x, "status");
            if (id == NULL || pw_normalize_patient(x, &c.refs, p, sizeof(p)) < 0 ||
                strcmp(p, patient) != 0) {
                continue;
            }
            if (strcmp(type, "MedicationRequest") == 0 && status != NULL &&
                strcmp(status, "draft") != 0 && strcmp(status, "entered-in-error") != 0) {
                assert_true(has_order(&tl, id) || has_dq_for(&tl, id) || !looks_opioid(x));
            }
            if (strcmp(type, "Observation") == 0 && status != NULL &&
                strcmp(status, "final") == 0 &&
                pw_fhir_cc_has(json_object_get(x, "code"), "http://loinc.org", "72514-3")) {
                bool scored = false;
                for (size_t s = 0; s < tl.scores.n; s++) {
                    scored = scored || strcmp(tl.scores.v[s].src.id, id) == 0;
                }
                assert_true(scored || has_dq_for(&tl, id));
            }
        }
        for (size_t o = 0; o < tl.orders.n; o++) {
            const struct pw_med_order *mo = &tl.orders.v[o];
            if (mo->classes & PW_MED_OPIOID) {
                assert_true(isfinite(mo->mme_per_day) || has_dq_for(&tl, mo->src.id));
            }
        }
        *n_orders += tl.orders.n;
        *n_scores += tl.scores.n;
        pw_findings_cleanup(&fs);
        pw_timeline_cleanup(&tl);
    }
    json_decref(seen);
    pw_engine_free(engine);
    pw_norm_ctx_cleanup(&ctx);
    corpus_free(&c);
}

static void test_every_official_r4_example(void **state)
{
    (void)state;
    size_t orders = 0, scores = 0;
    check_corpus("tests/fixtures/fhir/r4-examples", 140, &orders, &scores);
    assert_true(orders > 0);
}

static void test_synthea_patients(void **state)
{
    (void)state;
    size_t orders = 0, scores = 0;
    check_corpus("tests/fixtures/fhir/synthea", 9, &orders, &scores);
    assert_int_equal(scores, 94); /* every 72514-3 score with a usable status and value */
    assert_true(orders > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cdc_mme_calculator_patients),
        cmocka_unit_test(test_every_official_r4_example),
        cmocka_unit_test(test_synthea_patients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
