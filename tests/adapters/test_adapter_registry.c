/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue 20: adding an adapter is one file and one registry line. sink_memo.c, a sink declared in
 * the tests, is registered with one line below and is then configured, checked (errors name
 * file:line), documented by `config describe` and built by core like the shipped sinks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "painwatch/conf.h"
#include "painwatch/conf_map.h"
#include "painwatch/err.h"
#include "painwatch/sink.h"
#include "support/pwtest.h"

extern const struct pw_sink_ops pw_sink_memo; /* tests/adapters/sink_memo.c */

static char *dir;
static char file[4096];
static struct pw_conf_errors errs;

#define HEAD                                  \
    "servers:\n"                              \
    "  - name: ehr\n"                         \
    "    base_url: http://127.0.0.1:1/fhir\n" \
    "    cohort: {type: server-wide}\n"       \
    "sink:\n"                                 \
    "  type: memo\n"

static int setup(void **state)
{
    (void)state;
    dir = pwt_mkdtemp();
    snprintf(file, sizeof(file), "%s/painwatch.yaml", dir);
    unsetenv("STATE_DIRECTORY");
    /* The registry line. */
    assert_int_equal(pw_adapter_register(&pw_sink_kind, &pw_sink_memo.adapter), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pw_conf_errors_cleanup(&errs);
    pwt_rmtree(dir);
    free(dir);
    return 0;
}

static int load(const char *body, struct pw_conf **conf)
{
    char text[2048];

    snprintf(text, sizeof(text), "state_dir: %s/state\n" HEAD "%s", dir, body);
    pw_conf_errors_cleanup(&errs);
    pwt_write_file(file, text);
    return pw_conf_load_file(conf, file, &errs);
}

/* @p want must end one of the error lines, after "<file>:". */
static void expect_error(const char *body, const char *want)
{
    struct pw_conf *conf = NULL;
    bool found = false;

    assert_int_equal(load(body, &conf), PW_ECONFIG);
    assert_null(conf);
    for (size_t i = 0; i < errs.n; i++) {
        const char *rest = errs.lines[i] + strlen(file);
        if (strncmp(errs.lines[i], file, strlen(file)) == 0 &&
            strncmp(rest, want, strlen(want)) == 0) {
            found = true;
        }
    }
    if (!found) {
        for (size_t i = 0; i < errs.n; i++) {
            fprintf(stderr, "got: %s\n", errs.lines[i]);
        }
    }
    assert_true(found);
}

static void test_registered_once(void **state)
{
    (void)state;
    assert_int_equal(pw_adapter_register(&pw_sink_kind, &pw_sink_memo.adapter), PW_EEXIST);
    assert_ptr_equal(pw_adapter_find(&pw_sink_kind, "memo"), &pw_sink_memo.adapter);
}

/* Its keys are checked and defaulted by the configuration engine, errors at file:line:col. */
static void test_configured_and_checked(void **state)
{
    struct pw_conf *conf = NULL;
    char want[4200];

    (void)state;
    assert_int_equal(load("  label: ward-4\n", &conf), 0);
    assert_string_equal(json_string_value(pw_conf_get(conf, "sink.label")), "ward-4");
    snprintf(want, sizeof(want), "%s/state/memo.txt", dir);
    assert_string_equal(json_string_value(pw_conf_get(conf, "sink.out")), want);
    assert_int_equal(json_integer_value(pw_conf_get(conf, "sink.max_lines")), 100);
    assert_string_equal(pw_conf_daemon(conf)->sink.type, "memo");
    pw_conf_free(conf);

    expect_error("", ":7:3: sink.label: required with type memo");
    expect_error("  label: x\n  max_lines: 0\n", ":9:14: sink.max_lines: 0 is out of range");
    expect_error("  label: x\n  max_lines: many\n", ":9:14: sink.max_lines: expected an integer");
    expect_error("  lable: x\n", ":8:3: sink.lable: unknown key (did you mean 'label'?)");
}

/* `painwatch config describe` lists its keys with its own help texts. */
static void test_described(void **state)
{
    char *text = pw_conf_describe();

    (void)state;
    assert_non_null(text);
    assert_non_null(strstr(text, "sink.label\tstring\t\tmemo: written at the start of each line"));
    assert_non_null(strstr(text, "sink.max_lines\tint\t100\tmemo: lines written at most"));
    assert_non_null(strstr(text, "memo: test sink: one line per write"));
    free(text);
}

/* Core builds it from the config object, as the daemon does (pw_sink_from_conf). */
static void test_built_by_core(void **state)
{
    struct pw_conf *conf = NULL;
    struct pw_sink *sink = NULL;
    struct pw_outbox_row row = {.op = PW_OUTBOX_CREATE};
    struct pw_sink_written w = {0};
    char path[4200];
    char *out;

    (void)state;
    snprintf(path, sizeof(path), "%s/state", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(load("  label: ward-4\n  max_lines: 1\n", &conf), 0);
    assert_int_equal(pw_sink_from_conf(&sink, pw_conf_daemon(conf)->sink.section, NULL, NULL), 0);
    pw_conf_free(conf); /* the sink keeps what it borrows */
    assert_ptr_equal(sink->ops, &pw_sink_memo);
    assert_string_equal(sink->author, "Device/painwatch"); /* the kind's keys still apply */
    snprintf(row.key, sizeof(row.key), "k1");
    assert_int_equal(sink->ops->write(sink, &row, 0, &w), 0);
    assert_string_equal(w.id, "memo-1");
    assert_int_equal(sink->ops->write(sink, &row, 0, &w), PW_ENOSPC); /* max_lines: 1 */
    assert_int_equal(sink->ops->classify(sink, PW_ENOSPC, 0), PW_REJECTED);
    snprintf(path, sizeof(path), "%s/state/memo.txt", dir);
    assert_string_equal(sink->path, path);
    pw_sink_free(sink);
    out = pwt_read_file(path, NULL);
    assert_string_equal(out, "ward-4 create k1\n");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registered_once),
        cmocka_unit_test(test_configured_and_checked),
        cmocka_unit_test(test_described),
        cmocka_unit_test(test_built_by_core),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
