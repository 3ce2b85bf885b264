/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The backtest's pieces (issue 22): the burden statistics (episodes, per 100 patient-days,
 * patients affected, median and p90 of closed episodes, open ones, per severity, per day), the
 * input spool (a Bulk directory in name order, the later version of a resource wins, a
 * Medication resolved for its patient, bad lines named) and the HTML page (escaped, one chart per
 * top patient plus the per-day chart).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/backtest.h"
#include "painwatch/err.h"
#include "support/pwtest.h"

#define H  3600
#define T0 1764547200 /* 2025-12-01T00:00:00Z */

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;

    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

static void add(struct pw_bt_result *r, const char *patient, const char *rule, const char *key,
                enum pw_severity sev, int64_t start, int64_t end)
{
    struct pw_bt_episode e = {.severity = sev, .start = start, .end = end};

    snprintf(e.patient, sizeof(e.patient), "%s", patient);
    snprintf(e.rule, sizeof(e.rule), "%s", rule);
    snprintf(e.key, sizeof(e.key), "%s", key);
    assert_int_equal(pw_bt_result_add_episode(r, &e), 0);
}

static const json_t *rule_row(const json_t *doc, const char *rule)
{
    size_t i;
    const json_t *row;

    json_array_foreach(json_object_get(doc, "rules"), i, row)
    {
        if (strcmp(json_string_value(json_object_get(row, "rule")), rule) == 0) {
            return row;
        }
    }
    fail_msg("no row for %s", rule);
    return NULL;
}

static double num(const json_t *obj, const char *key)
{
    return json_number_value(json_object_get(obj, key));
}

static void test_statistics(void **state)
{
    struct pw_bt_result r = {
        .source = "backtest", .from = T0, .to = T0 + 72 * H, .patient_days = 200, .n_patients = 3};
    (void)state;
    /* rescue-dose-missing: closed after 1 h, 2 h, 10 h (patients b, a, a) and one still open. */
    add(&r, "Patient/b", "rescue-dose-missing", "k1", PW_SEV_MEDIUM, T0 + H, T0 + 2 * H);
    add(&r, "Patient/a", "rescue-dose-missing", "k2", PW_SEV_MEDIUM, T0 + 30 * H, T0 + 32 * H);
    add(&r, "Patient/a", "rescue-dose-missing", "k3", PW_SEV_HIGH, T0 + 50 * H, T0 + 60 * H);
    add(&r, "Patient/c", "rescue-dose-missing", "k4", PW_SEV_MEDIUM, T0 + 51 * H, PW_TIME_NONE);
    add(&r, "Patient/c", "a-site-rule", "k5", PW_SEV_INFO, T0 + 2 * H, PW_TIME_NONE);
    pw_bt_result_sort(&r);
    assert_string_equal(r.ep[0].patient, "Patient/a"); /* patient, then start */
    json_t *doc = pw_bt_result_json(&r);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(doc, "episodes")), 5);
    assert_int_equal(json_integer_value(json_object_get(doc, "open_at_end")), 2);

    const json_t *row = rule_row(doc, "rescue-dose-missing");
    assert_int_equal(json_integer_value(json_object_get(row, "episodes")), 4);
    assert_int_equal(json_integer_value(json_object_get(row, "patients_affected")), 3);
    assert_int_equal(json_integer_value(json_object_get(row, "open_at_end")), 1);
    assert_true(num(row, "per_100_patient_days") == 2.0); /* 4 / 200 patient-days * 100 */
    assert_true(num(row, "median_duration_h") == 2.0);    /* of 1, 2, 10: the open one left out */
    assert_true(num(row, "p90_duration_h") == 10.0);
    const json_t *sev = json_object_get(row, "by_severity");
    assert_int_equal(json_integer_value(json_object_get(sev, "medium")), 3);
    assert_int_equal(json_integer_value(json_object_get(sev, "high")), 1);
    /* The busiest rule first; a quiet registered rule still has its row (0, no durations). */
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(doc, "rules"), 0), "rule")),
                        "rescue-dose-missing");
    row = rule_row(doc, "titration-too-soon");
    assert_int_equal(json_integer_value(json_object_get(row, "episodes")), 0);
    assert_true(json_is_null(json_object_get(row, "median_duration_h")));
    /* A rule the registry does not know (a site's) is listed too. */
    assert_int_equal(json_integer_value(json_object_get(rule_row(doc, "a-site-rule"), "episodes")),
                     1);

    /* Episodes opened per day: 4 days listed (Dec 1-4), 2 + 1 + 2 + 0. */
    const json_t *days = json_object_get(doc, "episodes_per_day");
    assert_int_equal(json_array_size(days), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(days, 0), "day")),
                        "2025-12-01");
    int want[] = {2, 1, 2, 0};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(json_integer_value(json_object_get(json_array_get(days, i), "episodes")),
                         want[i]);
    }
    /* Per patient: the episode list, patient order. */
    const json_t *pats = json_object_get(doc, "patient_episodes");
    assert_int_equal(json_array_size(pats), 3);
    const json_t *a = json_array_get(pats, 0);
    assert_string_equal(json_string_value(json_object_get(a, "patient")), "Patient/a");
    assert_int_equal(json_array_size(json_object_get(a, "episodes")), 2);
    json_decref(doc);
    pw_bt_result_cleanup(&r);
}

static void test_top_patients(void **state)
{
    struct pw_bt_result r = {0};
    (void)state;
    for (size_t i = 0; i < PW_BT_TOP + 5; i++) {
        struct pw_bt_chart c = {.n_episodes = i % 7 + 1};
        snprintf(c.patient, sizeof(c.patient), "Patient/p%02zu", i);
        c.scores = calloc(1, sizeof(*c.scores));
        c.n_scores = 1;
        assert_int_equal(pw_bt_result_offer_chart(&r, &c), 0);
        assert_null(c.scores); /* taken */
    }
    assert_int_equal(r.n_charts, PW_BT_TOP);
    assert_int_equal(r.charts[0].n_episodes, 7); /* most episodes first */
    for (size_t i = 1; i < r.n_charts; i++) {
        assert_true(r.charts[i - 1].n_episodes >= r.charts[i].n_episodes);
    }
    pw_bt_result_cleanup(&r);
}

/* Workers' parts (--jobs): merged in any order, the same result as one process. */
static void make_part(struct pw_bt_result *r, size_t lo, size_t hi)
{
    for (size_t i = lo; i < hi; i++) {
        char patient[32];
        struct pw_bt_chart c = {.n_episodes = i % 4 + 1};

        snprintf(patient, sizeof(patient), "Patient/p%02zu", i);
        add(r, patient, "rule-b", "k2", PW_SEV_HIGH, T0 + (int64_t)i * H, T0 + 50 * H);
        add(r, patient, "rule-a", "k1", PW_SEV_LOW, T0 + (int64_t)i * H, PW_TIME_NONE);
        snprintf(c.patient, sizeof(c.patient), "%s", patient);
        c.scores = calloc(2, sizeof(*c.scores));
        c.scores[1] = (struct pw_bt_point){.at = T0 + (int64_t)i, .value = (double)i};
        c.n_scores = 2;
        c.rescue = calloc(1, sizeof(*c.rescue));
        c.rescue[0] = T0 + (int64_t)i;
        c.n_rescue = 1;
        assert_int_equal(pw_bt_result_offer_chart(r, &c), 0);
    }
    r->n_patients += hi - lo;
    r->n_evaluations += 10 * (hi - lo);
    r->n_dq += hi - lo;
    r->live_s += (int64_t)(hi - lo) * 7 * 86400 + 1;
    r->from = T0;
    r->to = T0 + 100 * H;
    r->step = H;
}

static char *doc_of(struct pw_bt_result *r)
{
    json_t *doc;
    char *text;

    r->source = "backtest";
    r->patient_days = (double)r->live_s / 86400.0;
    pw_bt_result_sort(r);
    doc = pw_bt_result_json(r);
    assert_non_null(doc);
    text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return text;
}

static void test_parts_merge(void **state)
{
    struct pw_bt_result whole = {0}, merged = {0}, a = {0}, b = {0};
    FILE *fa = tmpfile(), *fb = tmpfile(), *bad = tmpfile();
    char err[256] = "";
    (void)state;

    assert_true(fa && fb && bad);
    make_part(&whole, 0, 30);
    make_part(&a, 0, 13);
    make_part(&b, 13, 30);
    assert_int_equal(pw_bt_result_save(&a, 0, "", fa), 0);
    assert_int_equal(pw_bt_result_save(&b, 0, "", fb), 0);
    /* b first: the order parts arrive in does not matter */
    assert_int_equal(pw_bt_result_merge(&merged, fb, err, sizeof(err)), 0);
    assert_int_equal(pw_bt_result_merge(&merged, fa, err, sizeof(err)), 0);
    assert_int_equal(merged.n_ep, 60);
    assert_int_equal(merged.n_patients, 30);
    assert_int_equal(merged.n_charts, PW_BT_TOP);
    assert_true(merged.charts[0].n_scores == 2 && merged.charts[0].n_rescue == 1);
    char *x = doc_of(&whole), *y = doc_of(&merged);
    assert_string_equal(x, y);
    free(x);
    free(y);

    /* A worker's error comes back with its message. */
    assert_int_equal(pw_bt_result_save(&a, PW_EINVAL, "in.ndjson:3: bad", bad), 0);
    assert_int_equal(pw_bt_result_merge(&merged, bad, err, sizeof(err)), PW_EINVAL);
    assert_string_equal(err, "in.ndjson:3: bad");
    fclose(fa);
    fclose(fb);
    fclose(bad);
    pw_bt_result_cleanup(&whole);
    pw_bt_result_cleanup(&merged);
    pw_bt_result_cleanup(&a);
    pw_bt_result_cleanup(&b);
}

struct walk {
    size_t patients;
    char obs_version[8];
    bool medication_resolved;
};

static int on_patient(void *arg, const char *patient, const json_t *resources,
                      const struct pw_resolver *refs)
{
    struct walk *w = arg;
    size_t i;
    const json_t *r;

    w->patients++;
    assert_string_equal(patient, "Patient/p1");
    json_array_foreach(resources, i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "resourceType")), "Observation") == 0) {
            snprintf(w->obs_version, sizeof(w->obs_version), "%s",
                     json_string_value(json_object_get(json_object_get(r, "meta"), "versionId")));
        }
    }
    const json_t *med = pw_resolve(refs, "Medication/m1");
    w->medication_resolved = med && json_object_get(med, "code") != NULL;
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_spool(void **state)
{
    char dir[] = "/tmp/pw-test-spool-XXXXXX", path[256], err[512] = "";
    struct pw_bt_spool *sp = NULL;
    struct walk w = {0};
    int64_t first, last;
    (void)state;

    assert_non_null(mkdtemp(dir));
    /* Name order: Medication < MedicationRequest < Observation; the newer version comes first. */
    snprintf(path, sizeof(path), "%s/Observation.ndjson", dir);
    write_file(path,
               "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"meta\":{\"versionId\":\"2\"},"
               "\"subject\":{\"reference\":\"Patient/p1\"},"
               "\"effectiveDateTime\":\"2025-12-02T00:00:00Z\"}\n\n"
               "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"meta\":{\"versionId\":\"1\"},"
               "\"subject\":{\"reference\":\"Patient/p1\"},"
               "\"effectiveDateTime\":\"2025-12-01T00:00:00Z\"}\n");
    snprintf(path, sizeof(path), "%s/Medication.ndjson", dir);
    write_file(path, "{\"resourceType\":\"Medication\",\"id\":\"m1\",\"code\":{\"text\":\"x\"}}\n");
    snprintf(path, sizeof(path), "%s/MedicationRequest.ndjson", dir);
    write_file(path, "{\"resourceType\":\"MedicationRequest\",\"id\":\"r1\",\"status\":\"active\","
                     "\"subject\":{\"reference\":\"Patient/p1\"},"
                     "\"medicationReference\":{\"reference\":\"Medication/m1\"},"
                     "\"authoredOn\":\"2025-12-03T00:00:00Z\"}\n");
    snprintf(path, sizeof(path), "%s/notes.txt", dir);
    write_file(path, "not an export file: ignored\n");
    assert_int_equal(pw_bt_spool_new(&sp), 0);
    assert_int_equal(pw_bt_spool_add(sp, dir, err, sizeof(err)), 0);
    assert_int_equal(pw_bt_spool_patients(sp), 1);
    pw_bt_spool_span(sp, &first, &last);
    assert_true(first == T0 && last == T0 + 48 * H);
    assert_true(pw_bt_spool_types(sp) & PW_RES_OBSERVATION);
    assert_int_equal(pw_bt_spool_each(sp, on_patient, &w), 0);
    assert_int_equal(w.patients, 1);
    assert_string_equal(w.obs_version, "2");
    assert_true(w.medication_resolved);

    /* A bad line: named by file and line; the spool stays usable. */
    snprintf(path, sizeof(path), "%s/bad.ndjson", dir);
    write_file(path, "{\"resourceType\":\"Patient\",\"id\":\"p2\"}\n{\"id\":\"x9\"}\n");
    assert_int_equal(pw_bt_spool_add(sp, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "bad.ndjson: line 2 (id x9): not a FHIR resource"));
    pw_bt_spool_free(sp);
    pwt_rmtree(dir);
}

/* Shards: every patient in exactly one; types and period from every resource read. */
static void test_spool_shards(void **state)
{
    char dir[] = "/tmp/pw-bt-shard-XXXXXX", path[512], err[256] = "";
    const char *paths[1] = {path};
    struct pw_bt_input *in = NULL;
    size_t total = 0;
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/in.ndjson", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 40; i++) {
        fprintf(
            f,
            "{\"resourceType\":\"%s\",\"id\":\"x%d\",\"subject\":"
            "{\"reference\":\"Patient/p%d\"},\"effectiveDateTime\":\"2025-12-%02dT00:00:00Z\"}\n",
            i == 7 ? "Condition" : "Observation", i, i, i % 28 + 1);
    }
    fclose(f);
    assert_int_equal(pw_bt_input_new(&in, paths, 1), 0);
    for (unsigned k = 0; k < 3; k++) {
        assert_int_equal(pw_bt_scatter(in, k, 3, dir, err, sizeof(err)), 0);
    }
    for (unsigned k = 0; k < 3; k++) {
        struct pw_bt_spool *sp = NULL;
        int64_t first, last;

        assert_int_equal(pw_bt_spool_new(&sp), 0);
        assert_int_equal(pw_bt_spool_gather(sp, dir, k, 3, err, sizeof(err)), 0);
        size_t n = pw_bt_spool_patients(sp);
        assert_true(n > 0 && n < 40);
        total += n;
        pw_bt_spool_span(sp, &first, &last);
        assert_true(first == T0 && last == T0 + 27 * 24 * H);
        assert_true(pw_bt_spool_types(sp) & PW_RES_CONDITION);
        pw_bt_spool_free(sp);
    }
    assert_int_equal(total, 40);
    pw_bt_input_free(in);
    remove(path);
    pw_bt_scatter_remove(dir, 3);
    assert_int_equal(access(dir, F_OK), -1);
}

static void test_html_page(void **state)
{
    struct pw_bt_result r = {
        .source = "backtest", .from = T0, .to = T0 + 48 * H, .patient_days = 4, .n_patients = 2};
    struct pw_bt_chart c = {.n_episodes = 1};
    size_t len = 0;
    (void)state;

    add(&r, "Patient/<b>&x", "rescue-dose-missing", "k1", PW_SEV_HIGH, T0 + H, T0 + 5 * H);
    snprintf(c.patient, sizeof(c.patient), "Patient/<b>&x");
    c.mme = calloc(2, sizeof(*c.mme));
    c.mme[0] = (struct pw_bt_point){.at = T0, .value = 60};
    c.mme[1] = (struct pw_bt_point){.at = T0 + 10 * H, .value = 90};
    c.n_mme = 2;
    assert_int_equal(pw_bt_result_offer_chart(&r, &c), 0);
    json_t *doc = pw_bt_result_json(&r);
    char *page = pw_bt_doc_html(doc, &len);
    assert_non_null(page);
    assert_int_equal(strlen(page), len);
    assert_null(strstr(page, "<b>&x"));
    assert_non_null(strstr(page, "Patient/&lt;b&gt;&amp;x"));
    assert_int_equal(count(page, "<svg "), 2);                  /* per day + one top patient */
    assert_int_equal(count(page, "titration step</title>"), 1); /* 60 -> 90 MME/day */
    assert_int_equal(count(page, "<script"), 0);
    assert_non_null(strstr(page, "A4 landscape"));
    free(page);
    json_decref(doc);
    pw_bt_result_cleanup(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statistics),  cmocka_unit_test(test_top_patients),
        cmocka_unit_test(test_spool),       cmocka_unit_test(test_html_page),
        cmocka_unit_test(test_parts_merge), cmocka_unit_test(test_spool_shards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
