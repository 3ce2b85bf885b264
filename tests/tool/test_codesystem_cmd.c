/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue 21: `painwatch codesystem` through the real binary ($PAINWATCH): the rule CodeSystem is
 * generated from the rule registry (every rule, display = title, a definition), the shipped
 * config/codesystem-rules.json is exactly what it prints, and the canonical URL is configurable
 * (--url, or rule_code_system of a configuration).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <jansson.h>

#include "painwatch/engine.h"
#include "support/pwtest.h"

static char *tmpdir;

/* Run `painwatch codesystem ARGS`; returns the exit status, *out its stdout (caller frees). */
static int run(const char *args, char **out)
{
    const char *bin = getenv("PAINWATCH");
    char cmd[4096];
    char path[1024];

    assert_non_null(bin);
    snprintf(cmd, sizeof(cmd), "cd '%s' && '%s' codesystem %s >'%s/out' 2>'%s/err'",
             pwt_src_path("."), bin, args, tmpdir, tmpdir);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    snprintf(path, sizeof(path), "%s/out", tmpdir);
    *out = pwt_read_file(path, NULL);
    assert_non_null(*out);
    return WEXITSTATUS(st);
}

static void test_shipped_file_is_the_printed_one(void **state)
{
    char *out = NULL;
    char *shipped = pwt_read_file(pwt_src_path("config/codesystem-rules.json"), NULL);

    (void)state;
    assert_int_equal(run("", &out), 0);
    assert_non_null(shipped);
    if (strcmp(out, shipped) != 0) {
        fail_msg("config/codesystem-rules.json differs from `painwatch codesystem`: regenerate it "
                 "with `painwatch codesystem > config/codesystem-rules.json`");
    }
    free(out);
    free(shipped);
}

static void test_every_rule_is_a_concept(void **state)
{
    char *out = NULL;
    json_error_t jerr;
    size_t n = 0;
    const struct pw_rule *const *rules = pw_rules_all(&n);

    (void)state;
    assert_int_equal(run("", &out), 0);
    json_t *cs = json_loads(out, 0, &jerr);
    assert_non_null(cs);
    assert_string_equal(json_string_value(json_object_get(cs, "resourceType")), "CodeSystem");
    assert_string_equal(json_string_value(json_object_get(cs, "content")), "complete");
    json_t *concepts = json_object_get(cs, "concept");
    assert_int_equal(json_array_size(concepts), n);
    assert_int_equal(json_integer_value(json_object_get(cs, "count")), n);
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(concepts, i);
        assert_string_equal(json_string_value(json_object_get(c, "code")), rules[i]->id);
        assert_string_equal(json_string_value(json_object_get(c, "display")), rules[i]->title);
        const char *def = json_string_value(json_object_get(c, "definition"));
        assert_non_null(def);
        assert_true(strlen(def) > strlen(rules[i]->title) / 2);
    }
    json_decref(cs);
    free(out);
}

static void test_url_configurable(void **state)
{
    char *out = NULL;
    char cfg[1024];
    json_error_t jerr;

    (void)state;
    assert_int_equal(run("--url https://ehr.example.org/cs/painwatch", &out), 0);
    json_t *cs = json_loads(out, 0, &jerr);
    assert_string_equal(json_string_value(json_object_get(cs, "url")),
                        "https://ehr.example.org/cs/painwatch");
    json_decref(cs);
    free(out);

    snprintf(cfg, sizeof(cfg), "%s/pw.yaml", tmpdir);
    pwt_write_file(cfg, "servers:\n"
                        "  - name: ehr\n"
                        "    base_url: https://ehr.example.org/fhir\n"
                        "    cohort:\n"
                        "      type: server-wide\n"
                        "rule_code_system: https://site.example.org/fhir/CodeSystem/pw\n");
    char args[1200];
    snprintf(args, sizeof(args), "--config '%s'", cfg);
    int st = run(args, &out);
    if (st != 0) {
        char path[1100];
        snprintf(path, sizeof(path), "%s/err", tmpdir);
        char *err = pwt_read_file(path, NULL);
        fail_msg("codesystem --config: exit %d: %s", st, err ? err : "");
    }
    cs = json_loads(out, 0, &jerr);
    assert_string_equal(json_string_value(json_object_get(cs, "url")),
                        "https://site.example.org/fhir/CodeSystem/pw");
    json_decref(cs);
    free(out);

    assert_int_equal(run("--bogus", &out), 2);
    free(out);
}

static int setup(void **state)
{
    (void)state;
    tmpdir = pwt_mkdtemp();
    return tmpdir ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pwt_rmtree(tmpdir);
    free(tmpdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_file_is_the_printed_one),
        cmocka_unit_test(test_every_rule_is_a_concept),
        cmocka_unit_test(test_url_configurable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
