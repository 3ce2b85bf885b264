/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The backtest's input read by several workers (issue 22, --jobs): each worker reads its part of
 * the input (a document by the part its first byte is in, NDJSON files cut at line boundaries),
 * and each shard gathered from every part holds exactly what one process reading everything
 * holds for its patients: the later version of a resource wins whoever read it (input order),
 * the shared resources resolve, the period and types are the whole input's; an error in the
 * second half of a split file names its line. Trees are parsed in jansson's page arena, as in
 * the CLI.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/backtest.h"
#include "painwatch/err.h"
#include "painwatch/jarena.h"
#include "support/pwtest.h"

/* Every patient's resources (and the Medication each order resolves to), as one JSON text. */
static int collect(void *arg, const char *patient, const json_t *resources,
                   const struct pw_resolver *refs)
{
    json_t *all = arg, *list = json_array();
    size_t i;
    const json_t *r;

    assert_null(json_object_get(all, patient)); /* each patient once, in one shard */
    assert_null(pw_resolve(refs, "Claim/cl1"));
    json_array_foreach(resources, i, r)
    {
        const char *med = json_string_value(
            json_object_get(json_object_get(r, "medicationReference"), "reference"));
        json_array_append_new(list, json_deep_copy(r));
        if (med) {
            const json_t *m = pw_resolve(refs, med);
            json_array_append_new(list, m ? json_deep_copy(m) : json_string("unresolved"));
        }
    }
    json_object_set_new(all, patient, list);
    return 0;
}

static char *dump(json_t *all)
{
    char *s = json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(s);
    json_decref(all);
    return s;
}

struct summary {
    unsigned types;
    int64_t first, last;
};

/* One process reading @p paths. */
static char *one_process(const char *const *paths, size_t n, struct summary *sum)
{
    struct pw_bt_spool *sp = NULL;
    struct pw_bt_input *in = NULL;
    json_t *all = json_object();
    char err[512] = "";

    assert_int_equal(pw_bt_input_new(&in, paths, n), 0);
    assert_int_equal(pw_bt_spool_new(&sp), 0);
    assert_int_equal(pw_bt_spool_read(sp, in, err, sizeof(err)), 0);
    assert_int_equal(pw_bt_spool_each(sp, collect, all), 0);
    sum->types = pw_bt_spool_types(sp);
    pw_bt_spool_span(sp, &sum->first, &sum->last);
    pw_bt_spool_free(sp);
    pw_bt_input_free(in);
    return dump(all);
}

/* @p parts workers reading @p paths, then every shard gathered. */
static char *workers(const char *const *paths, size_t n, unsigned parts, struct summary *sum)
{
    struct pw_bt_input *in = NULL;
    json_t *all = json_object();
    char err[512] = "";
    char *dir = pwt_mkdtemp();

    assert_int_equal(pw_bt_input_new(&in, paths, n), 0);
    for (unsigned k = 0; k < parts; k++) {
        assert_int_equal(pw_bt_scatter(in, k, parts, dir, err, sizeof(err)), 0);
    }
    for (unsigned k = 0; k < parts; k++) {
        struct pw_bt_spool *sp = NULL;
        assert_int_equal(pw_bt_spool_new(&sp), 0);
        assert_int_equal(pw_bt_spool_gather(sp, dir, k, parts, err, sizeof(err)), 0);
        assert_int_equal(pw_bt_spool_each(sp, collect, all), 0);
        sum->types = pw_bt_spool_types(sp);
        pw_bt_spool_span(sp, &sum->first, &sum->last);
        pw_bt_spool_free(sp);
    }
    pw_bt_input_free(in);
    pw_bt_scatter_remove(dir, parts);
    assert_int_equal(access(dir, F_OK), -1); /* nothing left behind */
    free(dir);
    return dump(all);
}

static void obs(FILE *f, const char *id, int patient, const char *meta, int value, int day)
{
    fprintf(f,
            "{\"resourceType\":\"Observation\",\"id\":\"%s\",%s\"status\":\"final\","
            "\"subject\":{\"reference\":\"Patient/p%d\"},"
            "\"effectiveDateTime\":\"2025-12-%02dT08:00:00Z\",\"valueInteger\":%d}",
            id, meta, patient, day, value);
}

/*
 * Three inputs, the first large (so that the workers' cut falls inside it): versions of the same
 * resources across all three, with and without versionId / lastUpdated.
 */
static void write_inputs(const char *dir, char paths[3][512])
{
    FILE *f;

    snprintf(paths[0], 512, "%s/a.ndjson", dir);
    snprintf(paths[1], 512, "%s/b.json", dir);
    snprintf(paths[2], 512, "%s/c.ndjson", dir);
    f = fopen(paths[0], "w");
    assert_non_null(f);
    fputs("\xef\xbb\xbf", f); /* a byte order mark */
    obs(f, "o1", 1, "", 1, 2);
    fputs("\n{\"resourceType\":\"Medication\",\"id\":\"m1\",\"code\":{\"text\":\"first\"}}\n", f);
    /* a resource no patient owns and nothing looks up: not kept for references */
    fputs("{\"resourceType\":\"Claim\",\"id\":\"cl1\",\"status\":\"active\"}\n", f);
    obs(f, "o5", 5, "\"meta\":{\"versionId\":\"2\"},", 1, 3);
    fputs("\n\n", f);
    for (int i = 0; i < 300; i++) {
        char id[16];
        snprintf(id, sizeof(id), "x%d", i);
        obs(f, id, i % 37, i % 3 ? "" : "\"meta\":{\"versionId\":\"1\"},", i % 10, i % 27 + 1);
        fputc('\n', f);
    }
    /* A transaction Bundle on one line: a urn:uuid subject, resolved within it. */
    fputs(
        "{\"resourceType\":\"Bundle\",\"id\":\"t1\",\"type\":\"transaction\",\"entry\":["
        "{\"fullUrl\":\"urn:uuid:pp\",\"resource\":{\"resourceType\":\"Patient\",\"id\":\"p90\"}},"
        "{\"fullUrl\":\"urn:uuid:oo\",\"resource\":{\"resourceType\":\"Observation\","
        "\"id\":\"o90\",\"subject\":{\"reference\":\"urn:uuid:pp\"},"
        "\"effectiveDateTime\":\"2025-11-20T00:00:00Z\",\"valueInteger\":4}}]}\n",
        f);
    for (int i = 0; i < 200; i++) {
        char id[16];
        snprintf(id, sizeof(id), "x%d", i); /* second versions, later in the same file */
        obs(f, id, i % 37, i % 3 ? "" : "\"meta\":{\"versionId\":\"1\"},", 10 + i % 10, i % 27 + 1);
        fputc('\n', f);
    }
    fclose(f);
    f = fopen(paths[1], "w");
    assert_non_null(f);
    fputs("{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"entry\":[{\"resource\":", f);
    obs(f, "o5", 5, "", 2, 3); /* no version: later input wins over versionId 2 */
    fputs("},{\"resource\":{\"resourceType\":\"MedicationRequest\",\"id\":\"r1\","
          "\"status\":\"active\",\"intent\":\"order\",\"subject\":{\"reference\":\"Patient/p1\"},"
          "\"medicationReference\":{\"reference\":\"Medication/m1\"},"
          "\"authoredOn\":\"2025-12-28T00:00:00Z\"}}]}\n",
          f);
    fclose(f);
    f = fopen(paths[2], "w");
    assert_non_null(f);
    obs(f, "o1", 1, "", 2, 2); /* the later input wins */
    fputs("\n{\"resourceType\":\"Medication\",\"id\":\"m1\",\"code\":{\"text\":\"second\"}}\n", f);
    obs(f, "o5", 5, "\"meta\":{\"versionId\":\"1\"},", 3, 3); /* wins over the unversioned */
    fputc('\n', f);
    fclose(f);
}

static void test_parts_same_as_one_process(void **state)
{
    char *dir = pwt_mkdtemp(), paths[3][512];
    const char *p[3] = {paths[0], paths[1], paths[2]};
    struct summary one, many;
    (void)state;

    write_inputs(dir, paths);
    char *expected = one_process(p, 3, &one);
    json_t *doc = json_loads(expected, 0, NULL);
    /* What one process holds, asserted once: the later input of o1 and o5, the later m1. */
    const json_t *p1 = json_object_get(doc, "Patient/p1"), *p5 = json_object_get(doc, "Patient/p5");
    assert_non_null(p1);
    assert_non_null(p5);
    assert_non_null(json_object_get(doc, "Patient/p90"));
    size_t i;
    const json_t *r;
    int o1 = 0, o5 = 0, m1 = 0;
    json_array_foreach(p5, i, r)
    {
        const char *id = json_string_value(json_object_get(r, "id"));
        if (id && strcmp(id, "o5") == 0) {
            o5 = (int)json_integer_value(json_object_get(r, "valueInteger"));
        }
    }
    assert_int_equal(o5, 3);
    json_array_foreach(p1, i, r)
    {
        const char *id = json_string_value(json_object_get(r, "id"));
        if (id && strcmp(id, "o1") == 0) {
            o1 = (int)json_integer_value(json_object_get(r, "valueInteger"));
        }
        if (id && strcmp(id, "m1") == 0) {
            m1 = strcmp(json_string_value(json_object_get(json_object_get(r, "code"), "text")),
                        "second") == 0;
        }
    }
    assert_int_equal(o1, 2);
    assert_true(m1);
    json_decref(doc);

    for (unsigned parts = 2; parts <= 5; parts++) {
        char *got = workers(p, 3, parts, &many);
        assert_string_equal(got, expected);
        assert_int_equal(many.types, one.types);
        assert_true(many.first == one.first && many.last == one.last);
        free(got);
    }
    free(expected);
    pwt_rmtree(dir);
    free(dir);
}

/* The file is cut between two workers: both read lines of it, every line once. */
static void test_ndjson_split(void **state)
{
    char *dir = pwt_mkdtemp(), paths[3][512], name[1024], err[256] = "";
    const char *p[1] = {paths[0]};
    struct pw_bt_input *in = NULL;
    struct summary one, many;
    struct stat st;
    (void)state;

    write_inputs(dir, paths);
    char *expected = one_process(p, 1, &one);
    char *got = workers(p, 1, 2, &many);
    assert_string_equal(got, expected);
    free(got);
    free(expected);

    char *out = pwt_mkdtemp();
    assert_int_equal(pw_bt_input_new(&in, p, 1), 0);
    for (unsigned k = 0; k < 2; k++) {
        off_t bytes = 0;
        assert_int_equal(pw_bt_scatter(in, k, 2, out, err, sizeof(err)), 0);
        for (unsigned s = 0; s < 2; s++) {
            snprintf(name, sizeof(name), "%s/p%u.s%u", out, k, s);
            assert_int_equal(stat(name, &st), 0);
            bytes += st.st_size;
        }
        assert_true(bytes > 0);
    }
    pw_bt_input_free(in);
    pw_bt_scatter_remove(out, 2);
    free(out);
    pwt_rmtree(dir);
    free(dir);
}

/* An error in the second half of a split file names its line, as one process does. */
static void test_split_error_line(void **state)
{
    char *dir = pwt_mkdtemp(), path[512], err[512] = "", err1[512] = "";
    const char *p[1] = {path};
    struct pw_bt_input *in = NULL;
    struct pw_bt_spool *sp = NULL;
    (void)state;

    snprintf(path, sizeof(path), "%s/in.ndjson", dir);
    for (int bad = 0; bad < 2; bad++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        for (int i = 1; i <= 100; i++) {
            if (i == 83) {
                fputs(bad ? "{\"id\":\"x9\"}\n" : "{\"resourceType\":\"Observation\",\n", f);
                continue;
            }
            obs(f, i % 2 ? "a" : "b", i, "", 1, 1);
            fputs(i % 10 ? "\n" : "\n\n", f); /* blank lines count too */
        }
        fclose(f);
        /* line 83 of the file: 82 lines before it and the 8 blank ones after lines 10..80 */
        const char *want =
            bad ? "in.ndjson: line 91 (id x9): not a FHIR resource" : "in.ndjson:91:";
        assert_int_equal(pw_bt_input_new(&in, p, 1), 0);
        assert_int_equal(pw_bt_spool_new(&sp), 0);
        assert_int_equal(pw_bt_spool_read(sp, in, err1, sizeof(err1)), -1);
        assert_non_null(strstr(err1, want));
        pw_bt_spool_free(sp);
        for (unsigned parts = 2; parts <= 3; parts++) {
            char *out = pwt_mkdtemp();
            assert_int_equal(pw_bt_scatter(in, 0, parts, out, err, sizeof(err)), 0);
            assert_int_equal(pw_bt_scatter(in, parts - 1, parts, out, err, sizeof(err)), -1);
            assert_string_equal(err, err1);
            pw_bt_scatter_remove(out, parts);
            free(out);
        }
        pw_bt_input_free(in);
    }
    pwt_rmtree(dir);
    free(dir);
}

/* A path that cannot be read is reported where it stands: after the errors of the inputs before
 * it, by the worker whose part it falls in. */
static void test_missing_input_in_order(void **state)
{
    char *dir = pwt_mkdtemp(), path[512], missing[512], err[512] = "";
    const char *p[2] = {path, missing};
    struct pw_bt_input *in = NULL;
    (void)state;

    snprintf(path, sizeof(path), "%s/in.ndjson", dir);
    snprintf(missing, sizeof(missing), "%s/none.ndjson", dir);
    pwt_write_file(path, "{\"id\":\"x1\"}\n");
    assert_int_equal(pw_bt_input_new(&in, p, 2), 0);
    char *out = pwt_mkdtemp();
    assert_int_equal(pw_bt_scatter(in, 0, 2, out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "in.ndjson: line 1 (id x1)"));
    assert_int_equal(pw_bt_scatter(in, 1, 2, out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "none.ndjson: No such file"));
    pw_bt_scatter_remove(out, 2);
    free(out);
    pw_bt_input_free(in);
    pwt_rmtree(dir);
    free(dir);
}

int main(void)
{
    /* As the CLI does: the input's and the read-back trees in arena pages (use after the drop
     * is reported under ASan). */
    assert_int_equal(pw_jarena_install(), 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parts_same_as_one_process),
        cmocka_unit_test(test_ndjson_split),
        cmocka_unit_test(test_split_error_line),
        cmocka_unit_test(test_missing_input_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
