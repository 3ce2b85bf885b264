/* SPDX-License-Identifier: Apache-2.0 */
/* adapters/cohort_list.c, cohort_server.c and the shared cohort plumbing. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "painwatch/cohort.h"
#include "painwatch/err.h"
#include "painwatch/limits.h"
#include "support/pwtest.h"

static void test_patient_ref_id(void **state)
{
    (void)state;
    char id[PW_ID_MAX];

    assert_int_equal(pw_patient_ref_id("p1", id, sizeof(id)), 0);
    assert_string_equal(id, "p1");
    assert_int_equal(pw_patient_ref_id("Patient/abc-1.2", id, sizeof(id)), 0);
    assert_string_equal(id, "abc-1.2");
    assert_int_equal(pw_patient_ref_id("https://x.test/fhir/Patient/9/_history/3", id, sizeof(id)),
                     0);
    assert_string_equal(id, "9");
    assert_int_equal(pw_patient_ref_id("Observation/o1", id, sizeof(id)), PW_EINVAL);
    assert_int_equal(pw_patient_ref_id("MyPatient/1", id, sizeof(id)), PW_EINVAL);
    assert_int_equal(pw_patient_ref_id("Patient/", id, sizeof(id)), PW_EINVAL);
    assert_int_equal(pw_patient_ref_id("Patient/a b", id, sizeof(id)), PW_EINVAL);
    assert_int_equal(pw_patient_ref_id("Patient/1/extra", id, sizeof(id)), PW_EINVAL);
    assert_int_equal(pw_patient_ref_id("", id, sizeof(id)), PW_EINVAL);
    char longid[100];
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    assert_int_equal(pw_patient_ref_id(longid, id, sizeof(id)), PW_EINVAL);
}

static void test_list_parse(void **state)
{
    (void)state;
    char **ids = NULL;
    size_t n = 0;
    char err[256] = "";

    assert_int_equal(pw_cohort_list_parse(pwt_src_path("tests/fixtures/sync/patients_ok.txt"), &ids,
                                          &n, err, sizeof(err)),
                     0);
    assert_int_equal(n, 4); /* the duplicate is removed later, by set_members */
    assert_string_equal(ids[0], "p1");
    assert_string_equal(ids[1], "p2");
    assert_string_equal(ids[2], "p3");
    for (size_t i = 0; i < n; i++) {
        free(ids[i]);
    }
    free(ids);

    /* The error names file:line. */
    assert_int_equal(pw_cohort_list_parse(pwt_src_path("tests/fixtures/sync/patients_bad_type.txt"),
                                          &ids, &n, err, sizeof(err)),
                     PW_ECONFIG);
    assert_non_null(strstr(err, "patients_bad_type.txt:3:"));
    assert_int_equal(pw_cohort_list_parse("/nonexistent/patients.txt", &ids, &n, err, sizeof(err)),
                     PW_ENOENT);
}

/* Give @p path a distinct modification time without sleeping. */
static void set_mtime(const char *path, time_t sec)
{
    struct timespec ts[2] = {{.tv_sec = sec, .tv_nsec = 0}, {.tv_sec = sec, .tv_nsec = 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void test_list_cohort_reloads_on_change(void **state)
{
    (void)state;
    char *dir = pwt_mkdtemp();
    char path[512];
    char err[256] = "";
    struct pw_cohort *c = NULL;

    snprintf(path, sizeof(path), "%s/patients.txt", dir);
    pwt_write_file(path, "b\na\nb\n");
    set_mtime(path, 1000000);
    json_t *conf = json_pack("{s:s, s:s}", "type", "list", "file", path);
    assert_int_equal(pw_cohort_new(&c, conf, err, sizeof(err)), 0);
    assert_false(c->server_wide);
    assert_int_equal(c->nmembers, 2);
    assert_string_equal(c->members[0], "a");
    assert_string_equal(c->members[1], "b");
    uint64_t gen = c->generation;

    /* Unchanged file: refresh is synchronous and changes nothing. */
    assert_int_equal(c->ops->refresh(c, NULL, 0, NULL, NULL), 1);
    assert_int_equal(c->generation, gen);

    /* An edit is picked up; a broken edit keeps the previous members. */
    pwt_write_file(path, "a\nc\n");
    set_mtime(path, 1000001);
    assert_int_equal(c->ops->refresh(c, NULL, 0, NULL, NULL), 1);
    assert_int_equal(c->nmembers, 2);
    assert_string_equal(c->members[1], "c");
    assert_true(c->generation > gen);
    gen = c->generation;
    pwt_write_file(path, "a\nEncounter/e1\n");
    set_mtime(path, 1000002);
    assert_int_equal(c->ops->refresh(c, NULL, 0, NULL, NULL), 1);
    assert_int_equal(c->generation, gen);
    assert_string_equal(c->members[1], "c");

    pw_cohort_free(c);
    json_decref(conf);
    pwt_rmtree(dir);
    free(dir);
}

static void test_cohort_config_errors(void **state)
{
    (void)state;
    struct pw_cohort *c = NULL;
    char err[256] = "";
    json_t *conf;

    conf = json_pack("{s:s}", "type", "everyone");
    assert_int_equal(pw_cohort_new(&c, conf, err, sizeof(err)), PW_ECONFIG);
    assert_non_null(strstr(err, "cohort.type"));
    json_decref(conf);

    conf = json_pack("{s:s}", "type", "list");
    assert_int_equal(pw_cohort_new(&c, conf, err, sizeof(err)), PW_ECONFIG);
    assert_non_null(strstr(err, "cohort.file"));
    json_decref(conf);

    conf = json_pack("{s:s, s:s}", "type", "server", "file", "x");
    assert_int_equal(pw_cohort_new(&c, conf, err, sizeof(err)), PW_ECONFIG);
    assert_non_null(strstr(err, "cohort.file"));
    json_decref(conf);

    conf = json_pack("{s:s}", "type", "server");
    assert_int_equal(pw_cohort_new(&c, conf, err, sizeof(err)), 0);
    assert_true(c->server_wide);
    assert_int_equal(c->nmembers, 0);
    assert_int_equal(c->ops->refresh(c, NULL, 0, NULL, NULL), 1);
    pw_cohort_free(c);
    json_decref(conf);
    pw_cohort_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patient_ref_id),
        cmocka_unit_test(test_list_parse),
        cmocka_unit_test(test_list_cohort_reloads_on_change),
        cmocka_unit_test(test_cohort_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
