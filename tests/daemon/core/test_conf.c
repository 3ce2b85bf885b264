/* SPDX-License-Identifier: Apache-2.0 */
/* conf.c, conf_yaml.c, conf_schema.c: every documented error with file:line:column, defaults. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "painwatch/conf.h"
#include "painwatch/err.h"
#include "painwatch/log.h"
#include "painwatch/metrics.h"
#include "painwatch/rule.h"
#include "support/pwtest.h"

static char *dir;
static char file[4096];
static struct pw_conf_errors errs;

/* A valid server block; tests append lines to it. Line numbers below count from here. */
#define BASE                                       \
    "servers:\n"                                   \
    "  - name: ehr\n"                              \
    "    base_url: https://ehr.example.org/fhir\n" \
    "    auth:\n"                                  \
    "      type: none\n"                           \
    "    cohort:\n"                                \
    "      type: server-wide\n"

static int setup(void **state)
{
    (void)state;
    dir = pwt_mkdtemp();
    snprintf(file, sizeof(file), "%s/painwatch.yaml", dir);
    unsetenv("CREDENTIALS_DIRECTORY");
    unsetenv("STATE_DIRECTORY");
    pw_conf_set_rule_catalog(NULL, 0);
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

static int load_text(const char *text, struct pw_conf **conf)
{
    pw_conf_errors_cleanup(&errs);
    pwt_write_file(file, text);
    return pw_conf_load_file(conf, file, &errs);
}

/* Load @p text, expect it to fail with an error line ending in @p expect after the file name. */
static void expect_error(const char *text, const char *expect)
{
    struct pw_conf *conf = NULL;
    char want[8192];

    assert_int_equal(load_text(text, &conf), PW_ECONFIG);
    assert_null(conf);
    assert_true(errs.count >= 1);
    snprintf(want, sizeof(want), "%s:%s", file, expect);
    for (size_t i = 0; i < errs.n; i++) {
        if (strncmp(errs.lines[i], want, strlen(want)) == 0) {
            return;
        }
    }
    for (size_t i = 0; i < errs.n; i++) {
        fprintf(stderr, "got: %s\n", errs.lines[i]);
    }
    fail_msg("no error starts with: %s", want);
}

static char *secret_file(const char *name, mode_t mode)
{
    static char path[4096];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    pwt_write_file(path,
                   "-----BEGIN PRIVATE KEY-----\nnot a real key\n-----END PRIVATE KEY-----\n");
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static void test_default_config(void **state)
{
    struct pw_conf *conf = NULL;
    const char *text = pw_conf_default_yaml();
    const struct pw_conf_daemon *d;

    (void)state;
    setenv("STATE_DIRECTORY", "/var/lib/painwatch:/var/lib/other", 1);
    assert_int_equal(pw_conf_load_string(&conf, "<default>", NULL, text, strlen(text), &errs), 0);
    d = pw_conf_daemon(conf);
    assert_string_equal(d->state_dir, "/var/lib/painwatch");
    assert_string_equal(json_string_value(pw_conf_get(conf, "store.path")),
                        "/var/lib/painwatch/painwatch.db");
    assert_string_equal(d->audit.path, "/var/lib/painwatch/audit/painwatch-audit.jsonl");
    assert_int_equal(d->n_servers, 1);
    assert_string_equal(d->servers[0].name, "local");
    assert_string_equal(d->servers[0].auth.type, "none");
    assert_string_equal(d->servers[0].cohort.type, "server-wide");
    assert_int_equal(d->servers[0].poll_interval_ms, 5 * 60 * 1000);
    /* The source's keys (its config_map): in the effective tree, read by the source itself. */
    assert_string_equal(json_string_value(pw_conf_get(conf, "servers[0].type")), "fhir-search");
    assert_string_equal(json_string_value(pw_conf_get(conf, "servers[0].lookback")), "14d");
    assert_string_equal(json_string_value(pw_conf_get(conf, "servers[0].overlap")), "5m");
    assert_int_equal(d->servers[0].n_resources, 6); /* every type the rules use (issue 17) */
    assert_string_equal(d->servers[0].resources[1], "MedicationRequest");
    assert_string_equal(d->servers[0].resources[2], "MedicationAdministration");
    assert_string_equal(d->servers[0].resources[5], "Encounter");
    assert_null(d->servers[0].resources[6]);
    assert_null(json_string_value(
        json_object_get(d->servers[0].auth.section, "scope"))); /* derived from resources */
    assert_string_equal(d->scope, "problem-list");
    assert_true(d->health.enabled);
    assert_string_equal(d->health.listen, "127.0.0.1:9187");
    assert_false(d->shadow_mode); /* the demo says false explicitly */
    assert_string_equal(d->factor_set, "cdc2022");
    assert_int_equal(d->audit.rotate_size, 64 * 1024 * 1024);
    assert_int_equal(d->pain_codes.n_score, 3); /* + 38214-3 VAS (issue 17) */
    assert_int_equal(strlen(pw_conf_hash(conf)), 64);
    assert_string_equal(json_string_value(pw_conf_get(conf, "servers[0].dialect.patient_param")),
                        "patient");
    assert_int_equal(json_integer_value(pw_conf_get(conf, "servers[0].dialect.max_count")), 100);
    assert_null(pw_conf_get(conf, "servers[1].name"));
    assert_null(pw_conf_get(conf, "nosuch.key"));
    pw_conf_free(conf);
}

static void test_unknown_key(void **state)
{
    (void)state;
    expect_error(BASE "    dialect:\n"
                      "      max_cout: 50\n",
                 "9:7: servers[0].dialect.max_cout: unknown key (did you mean 'max_count'?)");
    expect_error("logging: debug\n" BASE, "1:1: logging: unknown key");
}

static void test_wrong_type(void **state)
{
    (void)state;
    expect_error(BASE "    dialect:\n"
                      "      max_count: many\n",
                 "9:18: servers[0].dialect.max_count: expected an integer, got 'many'");
    /* A quoted number is a string: JSON and YAML agree, so the schema does too. */
    expect_error(BASE "    dialect:\n"
                      "      max_count: \"50\"\n",
                 "9:18: servers[0].dialect.max_count: expected an integer, got the quoted string");
    /* YAML 1.1's yes/no are not booleans here (the "Norway problem"). */
    expect_error(BASE "shadow_mode: no\n", "8:14: shadow_mode: expected true or false, got 'no'");
    expect_error("servers:\n"
                 "  - name: ehr\n"
                 "    base_url: https://ehr.example.org/fhir\n"
                 "    auth: bearer\n",
                 "4:11: servers[0].auth: expected a mapping, got a scalar");
    expect_error("servers: {name: x}\n",
                 "1:10: servers: expected a list of mappings, got a mapping");
    expect_error(BASE "factor_set: cdc2019\n",
                 "8:13: factor_set: 'cdc2019' is not one of: cdc2022, cdc2016");
    expect_error(BASE "    poll_interval: 300\n",
                 "8:20: servers[0].poll_interval: 300 needs a unit (ms, s, m, h, d), e.g. 300s");
    expect_error(BASE "    poll_interval: 5 minutes\n",
                 "8:20: servers[0].poll_interval: expected a duration like");
}

static void test_out_of_range(void **state)
{
    (void)state;
    expect_error(BASE "    dialect:\n"
                      "      max_count: 5000\n",
                 "9:18: servers[0].dialect.max_count: 5000 is out of range: must be between 1 "
                 "and 1000");
    expect_error(BASE "    poll_interval: 1s\n",
                 "8:20: servers[0].poll_interval: 1s is out of range: must be between 10s and 1d");
    expect_error(BASE "    resources: []\n",
                 "8:16: servers[0].resources: the number of items is out of range");
}

static void test_missing_required(void **state)
{
    (void)state;
    expect_error("servers:\n"
                 "  - name: ehr\n"
                 "    auth: {type: none}\n",
                 "2:5: servers[0].base_url: required key is missing");
    expect_error("log_level: info\n", " servers: at least 1 entry is required");
    expect_error("servers:\n"
                 "  - name: ehr\n"
                 "    base_url: https://ehr.example.org/fhir\n",
                 "2:5: servers[0].cohort.type: required key is missing");
    expect_error("servers:\n"
                 "  - name: ehr\n"
                 "    base_url: https://ehr.example.org/fhir\n"
                 "    auth:\n"
                 "      type: smart-backend\n"
                 "      client_id: painwatch\n",
                 "5:7: servers[0].auth.private_key_file: required with type smart-backend");
    /* Every key the type misses is named at once (issue 20: the adapter's own check too). */
    expect_error("servers:\n"
                 "  - name: ehr\n"
                 "    base_url: https://ehr.example.org/fhir\n"
                 "    auth:\n"
                 "      type: smart-backend\n"
                 "      client_id: painwatch\n",
                 "5:7: servers[0].auth.kid: required with type smart-backend (the key's id in the "
                 "registered JWKS)");
    expect_error("servers:\n"
                 "  - name: ehr\n"
                 "    base_url: https://ehr.example.org/fhir\n"
                 "    cohort:\n"
                 "      type: group\n",
                 "5:7: servers[0].cohort.group: required with type group");
}

static void test_secret_files(void **state)
{
    char text[8192];
    struct pw_conf *conf = NULL;

    (void)state;
    /* Missing file. */
    snprintf(text, sizeof(text),
             BASE "audit:\n"
                  "  key_file: %s/nope.key\n",
             dir);
    expect_error(text, "9:13: audit.key_file: secret file ");
    assert_non_null(strstr(errs.lines[0], "No such file or directory"));

    /* World-readable private key: refused with its mode. */
    snprintf(text, sizeof(text),
             "servers:\n"
             "  - name: ehr\n"
             "    base_url: https://ehr.example.org/fhir\n"
             "    auth:\n"
             "      type: smart-backend\n"
             "      client_id: painwatch\n"
             "      private_key_file: %s\n"
             "      kid: painwatch-1\n"
             "    cohort: {type: server-wide}\n",
             secret_file("key.pem", 0644));
    expect_error(text,
                 "7:25: servers[0].auth.private_key_file: file is world-readable (mode 0644)");

    /* The same file at 0600 is accepted and resolved to its absolute path. */
    secret_file("key.pem", 0600);
    assert_int_equal(load_text(text, &conf), 0);
    assert_string_equal(json_string_value(pw_conf_get(conf, "servers[0].auth.private_key_file")),
                        secret_file("key.pem", 0600));
    assert_string_equal(json_string_value(pw_conf_get(conf, "servers[0].auth.alg")), "RS384");
    pw_conf_free(conf);

    /* Relative paths resolve against the config file's directory. */
    assert_int_equal(load_text(BASE "audit:\n  key_file: ./key.pem\n", &conf), 0);
    assert_string_equal(pw_conf_daemon(conf)->audit.key_file, secret_file("key.pem", 0600));
    pw_conf_free(conf);
}

static void test_inline_secret(void **state)
{
    (void)state;
    expect_error("servers:\n"
                 "  - name: ehr\n"
                 "    base_url: https://ehr.example.org/fhir\n"
                 "    auth:\n"
                 "      type: client-secret\n"
                 "      client_id: painwatch\n"
                 "      client_secret: hunter2\n",
                 "7:7: servers[0].auth.client_secret: secrets are not accepted inline");
    expect_error(BASE "audit:\n"
                      "  key_file: \"-----BEGIN PRIVATE KEY-----\\nMIIE\"\n",
                 "9:13: audit.key_file: looks like an inline secret");
    expect_error("servers:\n"
                 "  - name: ehr\n"
                 "    base_url: https://user:pw@ehr.example.org/fhir\n"
                 "    cohort: {type: server-wide}\n",
                 "3:15: servers[0].base_url: credentials in the URL are not accepted");
}

static void test_credentials(void **state)
{
    struct pw_conf *conf = NULL;
    char creds[2048];
    char want[4096];

    (void)state;
    /* A bare name is a systemd credential: without $CREDENTIALS_DIRECTORY it cannot resolve. */
    expect_error(BASE "audit:\n  key_file: audit-key\n",
                 "9:13: audit.key_file: 'audit-key' names a systemd credential but "
                 "$CREDENTIALS_DIRECTORY is not set");
    snprintf(creds, sizeof(creds), "%s/creds", dir);
    assert_int_equal(mkdir(creds, 0700), 0);
    snprintf(want, sizeof(want), "%s/audit-key", creds);
    assert_int_equal(rename(secret_file("audit-key", 0400), want), 0);
    setenv("CREDENTIALS_DIRECTORY", creds, 1);
    assert_int_equal(load_text(BASE "audit:\n  key_file: audit-key\n", &conf), 0);
    assert_string_equal(pw_conf_daemon(conf)->audit.key_file, want);
    pw_conf_free(conf);
}

static void test_urls_and_listen(void **state)
{
    struct pw_conf *conf = NULL;

    (void)state;
    expect_error("servers:\n"
                 "  - name: ehr\n"
                 "    base_url: http://ehr.example.org/fhir\n"
                 "    cohort: {type: server-wide}\n",
                 "3:15: servers[0].base_url: plain http is only allowed to a loopback host");
    assert_int_equal(load_text("servers:\n"
                               "  - name: ehr\n"
                               "    base_url: http://127.0.0.1:8080/fhir\n"
                               "    cohort: {type: server-wide}\n"
                               "health:\n"
                               "  listen: \"[::1]:0\"\n",
                               &conf),
                     0);
    pw_conf_free(conf);
    expect_error(BASE "health:\n  listen: 0.0.0.0:9187\n",
                 "9:11: health.listen: not a loopback address");
    expect_error(BASE "health:\n  listen: localhost\n",
                 "9:11: health.listen: expected ADDRESS:PORT");
    expect_error(BASE "  - name: ehr\n    base_url: https://b.example/fhir\n"
                      "    cohort: {type: server-wide}\n",
                 "8:11: servers[1].name: duplicate server name 'ehr'");
}

static void test_yaml_errors(void **state)
{
    (void)state;
    expect_error(BASE "shadow_mode: true\nshadow_mode: false\n", "9:1: shadow_mode: duplicate key");
    expect_error("a: &x 1\n", "1:4: a: anchors (&name) are not supported");
    expect_error(BASE "---\nlog_level: info\n", "8:1: only one YAML document is allowed per file");
    expect_error("servers:\n  - name: [x\n", "3:1: YAML syntax: ");
    expect_error("- a\n- b\n", "1:1: the top level must be a mapping of keys");
    expect_error("log_level: !!str info\n", "1:12: log_level: tags (tag:yaml.org,2002:str) are");
}

/* JSON goes through the same path, with the same positions. */
static void test_json_config(void **state)
{
    struct pw_conf *conf = NULL;
    struct pw_conf *yconf = NULL;

    (void)state;
    assert_int_equal(
        load_text("{\n"
                  "  \"servers\": [\n"
                  "    {\"name\": \"ehr\", \"base_url\": \"https://ehr.example.org/fhir\",\n"
                  "     \"auth\": {\"type\": \"none\"}, \"cohort\": {\"type\": \"server-wide\"},\n"
                  "     \"dialect\": {\"max_count\": 50, \"sort\": false}}\n"
                  "  ],\n"
                  "  \"shadow_mode\": true\n"
                  "}\n",
                  &conf),
        0);
    assert_int_equal(json_integer_value(pw_conf_get(conf, "servers[0].dialect.max_count")), 50);
    assert_false(json_is_true(pw_conf_get(conf, "servers[0].dialect.sort")));
    assert_true(pw_conf_daemon(conf)->shadow_mode);
    /* The same settings in YAML give the same effective configuration, hence the same hash. */
    assert_int_equal(load_text("# comments do not change the hash\n" BASE "    dialect:\n"
                               "      sort: false\n"
                               "      max_count: 50\n"
                               "shadow_mode: true\n",
                               &yconf),
                     0);
    assert_string_equal(pw_conf_hash(conf), pw_conf_hash(yconf));
    pw_conf_free(yconf);
    assert_int_equal(load_text(BASE "shadow_mode: false\n", &yconf), 0);
    assert_string_not_equal(pw_conf_hash(conf), pw_conf_hash(yconf));
    pw_conf_free(yconf);
    /* Safe by default (issue 19): a file that does not say shadow_mode never writes to charts. */
    assert_int_equal(load_text(BASE, &yconf), 0);
    assert_true(pw_conf_daemon(yconf)->shadow_mode);
    pw_conf_free(yconf);
    pw_conf_free(conf);

    expect_error("{\"servers\": [{\"name\": \"ehr\", \"base_url\": \"https://e.example/fhir\",\n"
                 "  \"dialect\": {\"max_count\": \"50\"}}],\n"
                 "  \"colour\": 1}\n",
                 "2:28: servers[0].dialect.max_count: expected an integer, got the quoted");
    expect_error("{\"servers\": [{\"name\": \"ehr\", \"base_url\": \"https://e.example/fhir\"}],\n"
                 "  \"colour\": 1}\n",
                 "2:3: colour: unknown key");
}

static const struct pw_rule_param reassess_params[] = {
    {.name = "hours", .def = 24, .min = 1, .max = 168, .help = "guide"},
};
static const struct pw_rule reassess = {
    .id = "reassess-after-change",
    .title = "t",
    .category = "clinical",
    .params = reassess_params,
    .n_params = 1,
};
static const struct pw_rule other = {.id = "bowel-regimen", .title = "t", .category = "drug"};
static const struct pw_rule *const catalog[] = {&reassess, &other};

static void test_rules(void **state)
{
    struct pw_conf *conf = NULL;
    const json_t *rules;

    (void)state;
    /* Without a registry: shape only. */
    assert_int_equal(load_text(BASE "rules:\n  anything:\n    enabled: false\n    x: 3\n", &conf),
                     0);
    assert_true(json_is_false(pw_conf_get(conf, "rules.anything.enabled")));
    pw_conf_free(conf);
    expect_error(BASE "rules:\n  anything:\n    x: lots\n",
                 "10:8: rules.anything.x: expected a number, got 'lots'");

    pw_conf_set_rule_catalog(catalog, 2);
    assert_int_equal(load_text(BASE "rules:\n"
                                    "  reassess-after-change:\n"
                                    "    hours: 48\n"
                                    "  bowel-regimen:\n"
                                    "    enabled: false\n",
                               &conf),
                     0);
    rules = pw_conf_daemon(conf)->rules;
    assert_true(json_number_value(json_object_get(json_object_get(rules, "reassess-after-change"),
                                                  "hours")) == 48.0);
    assert_true(json_is_false(pw_conf_get(conf, "rules.bowel-regimen.enabled")));
    assert_true(json_is_true(pw_conf_get(conf, "rules.reassess-after-change.enabled")));
    pw_conf_free(conf);
    /* Defaults of every registered rule appear in the effective config. */
    assert_int_equal(load_text(BASE, &conf), 0);
    assert_true(json_number_value(pw_conf_get(conf, "rules.reassess-after-change.hours")) == 24.0);
    pw_conf_free(conf);
    expect_error(BASE "rules:\n  reasess-after-change: {hours: 2}\n",
                 "9:3: rules.reasess-after-change: no such rule");
    expect_error(BASE "rules:\n  reassess-after-change:\n    hours: 500\n",
                 "10:12: rules.reassess-after-change.hours: 500 is out of range: must be between 1 "
                 "and 168");
    expect_error(BASE "rules:\n  reassess-after-change:\n    days: 2\n",
                 "10:5: rules.reassess-after-change.days: rule reassess-after-change has no "
                 "parameter 'days'");
    pw_conf_set_rule_catalog(NULL, 0);
}

static void test_durations(void **state)
{
    int64_t ms;
    char buf[64];

    (void)state;
    assert_int_equal(pw_conf_parse_duration("1h30m", &ms), 0);
    assert_int_equal(ms, 90 * 60 * 1000);
    assert_int_equal(pw_conf_parse_duration("250ms", &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(pw_conf_parse_duration("2d", &ms), 0);
    assert_int_equal(ms, 2 * 86400000LL);
    assert_int_equal(pw_conf_parse_duration("5", &ms), PW_EINVAL);
    assert_int_equal(pw_conf_parse_duration("5x", &ms), PW_EINVAL);
    assert_int_equal(pw_conf_parse_duration("-5s", &ms), PW_EINVAL);
    assert_int_equal(pw_conf_parse_duration("", &ms), PW_EINVAL);
    pw_conf_format_duration(90 * 60 * 1000 + 500, buf, sizeof(buf));
    assert_string_equal(buf, "1h30m500ms");
    pw_conf_format_duration(0, buf, sizeof(buf));
    assert_string_equal(buf, "0");
}

static void test_error_cap_and_dump(void **state)
{
    struct pw_conf *conf = NULL;
    char text[16384] = BASE;
    char *dump;

    (void)state;
    for (int i = 0; i < 100; i++) {
        size_t used = strlen(text);
        snprintf(text + used, sizeof(text) - used, "bogus%d: 1\n", i);
    }
    assert_int_equal(load_text(text, &conf), PW_ECONFIG);
    assert_int_equal(errs.count, 100);
    assert_true(errs.n < errs.count);

    assert_int_equal(load_text(BASE, &conf), 0);
    dump = pw_conf_dump(conf, true);
    assert_non_null(dump);
    assert_non_null(strstr(dump, "\"poll_interval\": \"5m\""));
    free(dump);
    pw_conf_free(conf);
}

/* jansson's allocator fails the Nth allocation (jansson's own chaos test): never a crash, never
 * a "valid" configuration with a hole in it. */
static int chaos_countdown;
static bool chaos_failed;

static void *chaos_malloc(size_t size)
{
    if (chaos_countdown-- == 0) {
        chaos_failed = true;
        return NULL;
    }
    return malloc(size);
}

static void test_allocation_failures(void **state)
{
    const char *text = BASE "rules:\n  x:\n    y: 1\n";
    int n;

    (void)state;
    for (n = 0; n < 100000; n++) {
        struct pw_conf *conf = NULL;
        struct pw_conf_errors e = {0};
        chaos_countdown = n;
        chaos_failed = false;
        json_set_alloc_funcs(chaos_malloc, free);
        int rc = pw_conf_load_string(&conf, "chaos.yaml", dir, text, strlen(text), &e);
        json_set_alloc_funcs(malloc, free);
        pw_conf_errors_cleanup(&e);
        if (rc == 0) {
            assert_false(chaos_failed);
            assert_int_equal(pw_conf_daemon(conf)->n_servers, 1);
            pw_conf_free(conf);
            break;
        }
        assert_true(chaos_failed);
        assert_int_equal(rc, PW_ENOMEM);
        assert_null(conf);
    }
    assert_true(n > 50); /* the sweep went through the loader, not around it */
}

/* SIGHUP: a bad file keeps the running configuration; a good one replaces it. */
static void test_reload(void **state)
{
    struct pw_conf *conf = NULL;
    struct pw_conf *old = NULL;
    FILE *devnull = fopen("/dev/null", "w");
    char hash[65];

    (void)state;
    pw_metrics_reset();
    assert_int_equal(load_text(BASE, &conf), 0);
    snprintf(hash, sizeof(hash), "%s", pw_conf_hash(conf));
    pw_log_set_output(devnull, false);
    pwt_write_file(file, BASE "    poll_interval: soon\n");
    assert_int_equal(pw_conf_reload(&conf, file, &old), PW_ECONFIG);
    assert_null(old);
    assert_string_equal(pw_conf_hash(conf), hash);
    assert_int_equal(pw_conf_daemon(conf)->servers[0].poll_interval_ms, 300000);
    assert_true(pw_metric_get(PW_M_CONFIG_RELOADS, "error", NULL) == 1.0);

    pwt_write_file(file, BASE "    poll_interval: 1m\n");
    assert_int_equal(pw_conf_reload(&conf, file, &old), 0);
    pw_log_set_output(NULL, false);
    fclose(devnull);
    assert_non_null(old);
    assert_string_equal(pw_conf_hash(old), hash);
    assert_string_not_equal(pw_conf_hash(conf), hash);
    assert_int_equal(pw_conf_daemon(conf)->servers[0].poll_interval_ms, 60000);
    assert_true(pw_metric_get(PW_M_CONFIG_RELOADS, "ok", NULL) == 1.0);
    pw_conf_free(old);
    pw_conf_free(conf);
    pw_metrics_reset();
}

/* Issue 18, finding 9: the per-server proxy setting (the environment's is never used). */
static void test_proxy_setting(void **state)
{
    struct pw_conf *conf = NULL;

    (void)state;
    assert_int_equal(load_text(BASE "    proxy: http://proxy.example:3128\n", &conf), 0);
    assert_string_equal(pw_conf_daemon(conf)->servers[0].proxy, "http://proxy.example:3128");
    pw_conf_free(conf);
    assert_int_equal(load_text(BASE, &conf), 0);
    assert_null(pw_conf_daemon(conf)->servers[0].proxy);
    pw_conf_free(conf);
    expect_error(BASE "    proxy: ftp://proxy.example\n",
                 "8:12: servers[0].proxy: must be a proxy URL");
    expect_error(BASE "    proxy: http://user:pw@proxy.example:3128\n",
                 "8:12: servers[0].proxy: credentials in the proxy URL are not accepted");
    char *text = pw_conf_describe();
    assert_non_null(strstr(text, "servers[].proxy"));
    free(text);
}

/* Issue 18, finding 1: a configured token endpoint on another origin is the operator's choice
 * (accepted); one the secret would reach in the clear is refused by the config check. */
static void test_token_url(void **state)
{
    struct pw_conf *conf = NULL;
    char text[4096];
#define HEAD                                       \
    "servers:\n"                                   \
    "  - name: ehr\n"                              \
    "    base_url: https://ehr.example.org/fhir\n" \
    "    cohort: {type: server-wide}\n"            \
    "    auth:\n"                                  \
    "      type: client-secret\n"                  \
    "      client_id: pw\n"                        \
    "      client_secret_file: %s\n"               \
    "      token_url: %s\n"

    (void)state;
    snprintf(text, sizeof(text), HEAD, secret_file("cs", 0600), "https://auth.example.net/token");
    assert_int_equal(load_text(text, &conf), 0);
    assert_string_equal(json_string_value(pw_conf_get(conf, "servers[0].auth.token_url")),
                        "https://auth.example.net/token");
    pw_conf_free(conf);
    snprintf(text, sizeof(text), HEAD, secret_file("cs", 0600), "http://127.0.0.1:8080/token");
    assert_int_equal(load_text(text, &conf), 0);
    pw_conf_free(conf);
    snprintf(text, sizeof(text), HEAD, secret_file("cs", 0600), "http://auth.example.net/token");
    expect_error(text, "9:18: servers[0].auth.token_url: plain http is only allowed to a loopback");
    snprintf(text, sizeof(text), HEAD, secret_file("cs", 0600), "https://u:p@auth.example.net/t");
    expect_error(text, "9:18: servers[0].auth.token_url: credentials in the URL");
    snprintf(text, sizeof(text), HEAD, secret_file("cs", 0600), "auth.example.net/token");
    expect_error(text, "9:18: servers[0].auth.token_url: must start with https://");
#undef HEAD
}

/* Issue 19: the audit key lives outside state_dir unless audit.allow_local_key says otherwise. */
static void test_audit_key_location(void **state)
{
    struct pw_conf *conf = NULL;
    char text[8192];
    char key[4200];
    char sub[4200];
    char why[1024];

    (void)state;
    snprintf(sub, sizeof(sub), "%s/state", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    /* No key_file: refused (a demo says allow_local_key). */
    snprintf(text, sizeof(text), BASE "state_dir: %s\n", sub);
    assert_int_equal(load_text(text, &conf), 0);
    assert_int_equal(pw_conf_check_audit_key(pw_conf_daemon(conf), why, sizeof(why)), PW_ECONFIG);
    assert_non_null(strstr(why, "audit.key_file is not set"));
    pw_conf_free(conf);
    snprintf(text, sizeof(text), BASE "state_dir: %s\naudit:\n  allow_local_key: true\n", sub);
    assert_int_equal(load_text(text, &conf), 0);
    assert_int_equal(pw_conf_check_audit_key(pw_conf_daemon(conf), why, sizeof(why)), 0);
    pw_conf_free(conf);
    /* A key inside state_dir (through a ".." too): refused, naming both. */
    snprintf(key, sizeof(key), "%s/audit.key", sub);
    pwt_write_file(key, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    assert_int_equal(chmod(key, 0600), 0);
    snprintf(text, sizeof(text), BASE "state_dir: %s\naudit:\n  key_file: %s/../state/audit.key\n",
             sub, sub);
    assert_int_equal(load_text(text, &conf), 0);
    assert_int_equal(pw_conf_check_audit_key(pw_conf_daemon(conf), why, sizeof(why)), PW_ECONFIG);
    assert_non_null(strstr(why, "is inside state_dir"));
    pw_conf_free(conf);
    /* Beside state_dir, not in it: fine. */
    snprintf(key, sizeof(key), "%s/audit.key", dir);
    pwt_write_file(key, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    assert_int_equal(chmod(key, 0600), 0);
    snprintf(text, sizeof(text), BASE "state_dir: %s\naudit:\n  key_file: %s\n", sub, key);
    assert_int_equal(load_text(text, &conf), 0);
    assert_int_equal(pw_conf_check_audit_key(pw_conf_daemon(conf), why, sizeof(why)), 0);
    pw_conf_free(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_default_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_urls_and_listen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_cap_and_dump, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allocation_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_setting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_key_location, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
