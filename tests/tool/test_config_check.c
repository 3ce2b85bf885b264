/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `painwatch config check|hash|default|describe` run as a process: exit codes, errors with
 * file:line:column on stderr, the effective configuration on stdout, and the shipped example
 * config/painwatch.yaml valid and documenting every key the program accepts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <jansson.h>

#include "support/pwtest.h"

static char *dir;
static char *out;
static char *err;

static int setup(void **state)
{
    (void)state;
    dir = pwt_mkdtemp();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pwt_tool_cleanup(&dir, &out, &err);
    return 0;
}

/* Run `painwatch ARGS` with a clean environment for the config; capture stdout and stderr. */
static int run(const char *args)
{
    char env[1024];

    snprintf(env, sizeof(env), "STATE_DIRECTORY=%s/state", dir);
    return pwt_tool_run(dir, env, args, &out, &err);
}

/* The JSON after the '#' header lines of `config check`. */
static json_t *effective(void)
{
    const char *p = out;
    json_error_t jerr;
    json_t *j;

    while (*p == '#') {
        p = strchr(p, '\n') + 1;
    }
    j = json_loads(p, 0, &jerr);
    if (!j) {
        fail_msg("effective config is not JSON: %s at %d:%d", jerr.text, jerr.line, jerr.column);
    }
    return j;
}

static void test_example_is_valid(void **state)
{
    char args[4096];
    json_t *eff;
    char hash[128];

    (void)state;
    /* The shipped file names the audit key as a systemd credential (the package creates it). */
    snprintf(args, sizeof(args), "config check '%s'", pwt_src_path("config/painwatch.yaml"));
    assert_int_equal(run(args), 2);
    assert_non_null(strstr(err, "'audit-key' names a systemd credential"));
    char creds[4200];
    snprintf(creds, sizeof(creds), "%s/creds", dir);
    assert_int_equal(mkdir(creds, 0700), 0);
    snprintf(args, sizeof(args), "%s/audit-key", creds);
    pwt_write_file(args, "0123456789abcdef0123456789abcdef\n");
    assert_int_equal(chmod(args, 0600), 0);
    /* --credentials-dir before or after the command, as two words or one. */
    snprintf(args, sizeof(args), "config check --credentials-dir=%s '%s'", creds,
             pwt_src_path("config/painwatch.yaml"));
    assert_int_equal(run(args), 0);
    snprintf(args, sizeof(args), "--credentials-dir %s config check '%s'", creds,
             pwt_src_path("config/painwatch.yaml"));
    assert_int_equal(run(args), 0);
    /* As shipped, nothing to warn about: key outside the state directory, shadow mode. */
    assert_string_equal(err, "");
    assert_non_null(strstr(out, ": valid\n"));
    const char *h = strstr(out, "# config-hash: sha256:");
    assert_non_null(h);
    snprintf(hash, sizeof(hash), "%.71s", h + 15);
    eff = effective();
    /* Defaults are filled in, and shipped settings are what the file says. */
    assert_true(json_is_true(json_object_get(eff, "shadow_mode")));
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(eff, "servers"), 0), "cohort"), "type")),
        "group");
    /* The shipped file names the state directory: the CLI sees what the service sees. */
    assert_string_equal(json_string_value(json_object_get(eff, "state_dir")), "/var/lib/painwatch");
    json_decref(eff);

    /* `config hash` prints the same hash as `config check`. */
    snprintf(args, sizeof(args), "--credentials-dir %s config hash '%s'", creds,
             pwt_src_path("config/painwatch.yaml"));
    assert_int_equal(run(args), 0);
    assert_int_equal(strncmp(out, hash, strlen(hash)), 0);
}

static void test_invalid_exits_2(void **state)
{
    char path[4200];
    char args[4400];

    (void)state;
    snprintf(path, sizeof(path), "%s/bad.yaml", dir);
    pwt_write_file(path, "servers:\n"
                         "  - name: ehr\n"
                         "    base_url: https://ehr.example.org/fhir\n"
                         "    cohort: {type: server-wide}\n"
                         "    dialect:\n"
                         "      max_count: lots\n"
                         "    pollinterval: 5m\n");
    snprintf(args, sizeof(args), "config check '%s'", path);
    assert_int_equal(run(args), 2);
    assert_string_equal(out, "");
    char want[8400];
    snprintf(want, sizeof(want), "%s:6:18: servers[0].dialect.max_count: expected an integer",
             path);
    assert_non_null(strstr(err, want));
    snprintf(want, sizeof(want),
             "%s:7:5: servers[0].pollinterval: unknown key (did you mean 'poll_interval'?)", path);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "invalid configuration (2 errors)"));

    assert_int_equal(run("config check /nonexistent/painwatch.yaml"), 2);
    assert_non_null(strstr(err, "/nonexistent/painwatch.yaml: cannot read"));
    assert_int_equal(run("config check"), 2);
    assert_int_equal(run("config frobnicate"), 2);
}

static void test_json_and_default(void **state)
{
    char path[4200];
    char args[4400];
    json_t *eff;

    (void)state;
    snprintf(path, sizeof(path), "%s/painwatch.json", dir);
    pwt_write_file(path, "{\"servers\": [{\"name\": \"local\", \"base_url\": "
                         "\"http://127.0.0.1:8080/fhir\", \"cohort\": {\"type\": "
                         "\"server-wide\"}}], \"log_level\": \"debug\", "
                         "\"audit\": {\"allow_local_key\": true}}\n");
    snprintf(args, sizeof(args), "config check '%s'", path);
    assert_int_equal(run(args), 0);
    eff = effective();
    assert_string_equal(json_string_value(json_object_get(eff, "log_level")), "debug");
    json_decref(eff);

    /* The embedded default is itself a valid file. */
    assert_int_equal(run("config default"), 0);
    snprintf(path, sizeof(path), "%s/default.yaml", dir);
    pwt_write_file(path, out);
    snprintf(args, sizeof(args), "config check --quiet '%s'", path);
    assert_int_equal(run(args), 0);
    assert_non_null(strstr(out, "valid"));
}

/* Every key `config describe` lists is documented in the shipped example. */
static void test_example_documents_every_key(void **state)
{
    char *example = pwt_read_file(pwt_src_path("config/painwatch.yaml"), NULL);
    char *line;
    char *save = NULL;
    int missing = 0;

    (void)state;
    assert_int_equal(run("config describe"), 0);
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char key[256];
        char want[300];
        const char *leaf;
        snprintf(key, sizeof(key), "%.*s", (int)strcspn(line, "\t"), line);
        leaf = strrchr(key, '.');
        leaf = leaf ? leaf + 1 : key;
        snprintf(want, sizeof(want), "%.*s:", (int)strcspn(leaf, "["), leaf);
        if (!strstr(example, want)) {
            fprintf(stderr, "config/painwatch.yaml does not document %s\n", key);
            missing++;
        }
        if (strncmp(key, "rules.", 6) == 0) {
            /* A rule's own id must appear too. */
            snprintf(want, sizeof(want), "%.*s:", (int)strcspn(key + 6, "."), key + 6);
            if (!strstr(example, want)) {
                fprintf(stderr, "config/painwatch.yaml does not document rule %s\n", want);
                missing++;
            }
        }
    }
    free(example);
    assert_int_equal(missing, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_example_is_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_exits_2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_and_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_example_documents_every_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
