/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `painwatch config check` rejects every configuration painwatchd refuses to start with (issue
 * 19): one table of cases, each run through both programs as processes. A case the daemon
 * rejects is started for real (`painwatchd --once --config FILE`) and must exit 2 before it
 * creates its state directory, and `config check` must exit 2 on it too; a case both accept
 * passes `config check` and `painwatchd --check-config`. The cases cover the schema, and the
 * checks only the adapters make (smart-backend key size and type, alg, kid; a bearer token
 * file; a cohort list's lines; the terminology tables; the audit key).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "support/pwtest.h"

static char *dir;

struct tcase {
    const char *name;
    const char *yaml;  /* "@D" stands for the case's directory */
    bool valid;        /* both programs accept it */
    const char *error; /* rejected: a piece of config check's stderr */
};

/* Common head: state in the case's directory, an audit key outside it, a refused server. */
#define HEAD                                  \
    "state_dir: @D/state\n"                   \
    "audit: {key_file: @D/keys/audit.key}\n"  \
    "shadow_mode: true\n"                     \
    "health: {enabled: false}\n"              \
    "servers:\n"                              \
    "  - name: ehr\n"                         \
    "    base_url: http://127.0.0.1:1/fhir\n" \
    "    cohort: {type: server-wide}\n"
#define SMART(extra)                    \
    HEAD "    auth:\n"                  \
         "      type: smart-backend\n"  \
         "      client_id: painwatch\n" \
         "      token_url: http://127.0.0.1:1/token\n" extra

static const struct tcase cases[] = {
    {"minimal", HEAD, true, NULL},
    {"smart-backend RSA 2048 with kid",
     SMART("      private_key_file: @D/keys/rsa2048.pem\n      kid: k1\n"), true, NULL},
    {"smart-backend EC P-384 ES384",
     SMART("      private_key_file: @D/keys/p384.pem\n      kid: k1\n      alg: ES384\n"), true,
     NULL},
    {"client-secret",
     HEAD "    auth:\n      type: client-secret\n      client_id: painwatch\n"
          "      token_url: http://127.0.0.1:1/token\n"
          "      client_secret_file: @D/keys/secret\n",
     true, NULL},
    {"bearer", HEAD "    auth: {type: bearer, token_file: @D/keys/token}\n", true, NULL},
    {"list cohort",
     "state_dir: @D/state\naudit: {key_file: @D/keys/audit.key}\nhealth: {enabled: false}\n"
     "servers:\n  - name: ehr\n    base_url: http://127.0.0.1:1/fhir\n"
     "    cohort: {type: list, file: @D/keys/cohort.txt}\n",
     true, NULL},

    /* Schema. */
    {"unknown key", HEAD "    pollinterval: 5m\n", false, "unknown key"},
    {"smart-backend without kid", SMART("      private_key_file: @D/keys/rsa2048.pem\n"), false,
     "servers[0].auth.kid: required"},
    {"world-readable secret", HEAD "    auth: {type: bearer, token_file: @D/keys/token-0644}\n",
     false, "world-readable"},
    /* Only the adapters know these. */
    {"smart-backend RSA 1024",
     SMART("      private_key_file: @D/keys/rsa1024.pem\n      kid: k1\n"), false,
     "servers[0].auth: error: server ehr: smart-backend authorization cannot start"},
    {"smart-backend EC P-256", SMART("      private_key_file: @D/keys/p256.pem\n      kid: k1\n"),
     false, "servers[0].auth: error"},
    {"smart-backend alg does not match the key",
     SMART("      private_key_file: @D/keys/rsa2048.pem\n      kid: k1\n      alg: ES384\n"), false,
     "servers[0].auth: error"},
    {"smart-backend key is not PEM",
     SMART("      private_key_file: @D/keys/secret\n      kid: k1\n"), false,
     "servers[0].auth: error"},
    {"bearer file with two tokens",
     HEAD "    auth: {type: bearer, token_file: @D/keys/two-tokens}\n", false,
     "servers[0].auth: error: server ehr: bearer authorization cannot start"},
    {"cohort list with a bad line",
     "state_dir: @D/state\naudit: {key_file: @D/keys/audit.key}\nhealth: {enabled: false}\n"
     "servers:\n  - name: ehr\n    base_url: http://127.0.0.1:1/fhir\n"
     "    cohort: {type: list, file: @D/keys/cohort-bad.txt}\n",
     false, "not a Patient id or reference"},
    {"terminology directory without tables", HEAD "terminology_dir: @D/keys\n", false,
     "terminology_dir: error"},
    {"audit key too short",
     "state_dir: @D/state\naudit: {key_file: @D/keys/short.key}\nhealth: {enabled: false}\n"
     "servers:\n  - name: ehr\n    base_url: http://127.0.0.1:1/fhir\n"
     "    cohort: {type: server-wide}\n",
     false, "audit.key_file: error"},
    {"audit key unset (no allow_local_key)",
     "state_dir: @D/state\nhealth: {enabled: false}\n"
     "servers:\n  - name: ehr\n    base_url: http://127.0.0.1:1/fhir\n"
     "    cohort: {type: server-wide}\n",
     false, "audit.key_file is not set"},
    {"audit key inside state_dir",
     "state_dir: @D/keys\naudit: {key_file: @D/keys/audit.key}\nhealth: {enabled: false}\n"
     "servers:\n  - name: ehr\n    base_url: http://127.0.0.1:1/fhir\n"
     "    cohort: {type: server-wide}\n",
     false, "is inside state_dir"},
    {"audit key inside state_dir, allowed for a demo",
     "state_dir: @D/keys\naudit: {key_file: @D/keys/audit.key, allow_local_key: true}\n"
     "health: {enabled: false}\nshadow_mode: true\n"
     "servers:\n  - name: ehr\n    base_url: http://127.0.0.1:1/fhir\n"
     "    cohort: {type: server-wide}\n",
     true, NULL},
};

/* Copy @p yaml with every "@D" replaced by the test directory. */
static void expand(char *out, size_t cap, const char *yaml)
{
    size_t n = 0;

    for (const char *p = yaml; *p; p++) {
        const char *add = p;
        size_t len = 1;
        if (p[0] == '@' && p[1] == 'D') {
            add = dir;
            len = strlen(dir);
            p++;
        }
        assert_true(n + len < cap);
        memcpy(out + n, add, len);
        n += len;
    }
    out[n] = '\0';
}

static int sh(const char *cmd)
{
    int status = system(cmd);

    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void put(const char *name, const char *text, mode_t mode)
{
    char path[4200];

    snprintf(path, sizeof(path), "%s/keys/%s", dir, name);
    pwt_write_file(path, text);
    assert_int_equal(chmod(path, mode), 0);
}

static void genkey(const char *name, const char *args)
{
    char cmd[8400];

    snprintf(cmd, sizeof(cmd),
             "openssl genpkey %s -out '%s/keys/%s' 2>/dev/null && chmod 600 '%s/keys/%s'", args,
             dir, name, dir, name);
    assert_int_equal(sh(cmd), 0);
}

static int setup(void **state)
{
    char path[4200];

    (void)state;
    dir = pwt_mkdtemp();
    snprintf(path, sizeof(path), "%s/keys", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    genkey("rsa2048.pem", "-algorithm RSA -pkeyopt rsa_keygen_bits:2048");
    genkey("rsa1024.pem", "-algorithm RSA -pkeyopt rsa_keygen_bits:1024");
    genkey("p384.pem", "-algorithm EC -pkeyopt ec_paramgen_curve:P-384");
    genkey("p256.pem", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256");
    put("audit.key", "0123456789abcdef0123456789abcdef\n", 0600);
    put("short.key", "0123\n", 0600);
    put("secret", "s3cret-value\n", 0600);
    put("token", "tok-123\n", 0600);
    put("token-0644", "tok-123\n", 0644);
    put("two-tokens", "tok-1 tok-2\n", 0600);
    put("cohort.txt", "Patient/p1\n# comment\np2\n", 0644);
    put("cohort-bad.txt", "Patient/p1\nPatient/has space\n", 0644);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pwt_rmtree(dir);
    free(dir);
    return 0;
}

static void test_parity(void **state)
{
    const char *tool = getenv("PAINWATCH");
    const char *daemon = getenv("PAINWATCHD");
    int failures = 0;

    (void)state;
    assert_non_null(tool);
    assert_non_null(daemon);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct tcase *c = &cases[i];
        char text[8192];
        char file[4200];
        char cmd[16384];
        char state_path[4300];
        struct stat st;
        int tool_rc;
        int daemon_rc;

        snprintf(file, sizeof(file), "%s/case-%zu.yaml", dir, i);
        expand(text, sizeof(text), c->yaml);
        pwt_write_file(file, text);
        snprintf(state_path, sizeof(state_path), "%s/state", dir);
        pwt_rmtree(state_path);

        snprintf(cmd, sizeof(cmd),
                 "env -u CREDENTIALS_DIRECTORY '%s' config check '%s' >'%s/out' 2>'%s/err'", tool,
                 file, dir, dir);
        tool_rc = sh(cmd);
        snprintf(cmd, sizeof(cmd), "%s/err", dir);
        char *err = pwt_read_file(cmd, NULL);
        if (c->valid) {
            snprintf(cmd, sizeof(cmd),
                     "env -u CREDENTIALS_DIRECTORY '%s' --check-config --config '%s' >/dev/null "
                     "2>&1",
                     daemon, file);
        } else {
            /* The real start: with the check missing it would open the store and try the
             * server (refused port), and exit 1, or be cut at 60 s (124). */
            snprintf(cmd, sizeof(cmd),
                     "env -u CREDENTIALS_DIRECTORY timeout 60 '%s' --once --config '%s' "
                     ">'%s/dout' 2>&1",
                     daemon, file, dir);
        }
        daemon_rc = sh(cmd);
        int want = c->valid ? 0 : 2;
        bool ok = tool_rc == want && daemon_rc == want;
        if (!c->valid) {
            ok = ok && stat(state_path, &st) != 0; /* refused before anything was created */
            ok = ok && strstr(err, c->error) != NULL;
        }
        if (!ok) {
            fprintf(stderr, "case '%s': config check %d, painwatchd %d (want %d); stderr:\n%s\n",
                    c->name, tool_rc, daemon_rc, want, err);
            failures++;
        }
        free(err);
    }
    assert_int_equal(failures, 0);
}

/* The production-risk warnings: printed, not failing; --quiet leaves them out. */
static void test_warnings(void **state)
{
    const char *tool = getenv("PAINWATCH");
    char file[4200];
    char text[4096];
    char cmd[12000];
    char *err;

    (void)state;
    snprintf(file, sizeof(file), "%s/risky.yaml", dir);
    snprintf(text, sizeof(text),
             "state_dir: %s/state\n"
             "audit: {allow_local_key: true}\n"
             "shadow_mode: false\n"
             "servers:\n"
             "  - name: ehr\n"
             "    base_url: http://127.0.0.1:1/fhir\n"
             "    cohort: {type: list, file: %s/keys/cohort.txt}\n",
             dir, dir);
    pwt_write_file(file, text);
    snprintf(cmd, sizeof(cmd),
             "env -u CREDENTIALS_DIRECTORY '%s' config check '%s' >/dev/null 2>'%s/err'", tool,
             file, dir);
    assert_int_equal(sh(cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s/err", dir);
    err = pwt_read_file(cmd, NULL);
    assert_non_null(strstr(err, "audit.key_file: warning: unset: the HMAC key is created as"));
    assert_non_null(strstr(err, "rules.pain-type-undocumented.enabled: warning:"));
    assert_non_null(strstr(err, "servers[0].cohort: warning: a list cohort is not refreshed"));
    free(err);

    /* A key inside the state directory is as weak as the default one: allowed for a demo
     * (audit.allow_local_key), still warned about. */
    snprintf(text, sizeof(text),
             "state_dir: %s/keys\n"
             "audit: {key_file: %s/keys/audit.key, allow_local_key: true}\n"
             "rules: {pain-type-undocumented: {enabled: false}}\n"
             "servers:\n"
             "  - name: ehr\n"
             "    base_url: http://127.0.0.1:1/fhir\n"
             "    cohort: {type: group, group: Group/g1}\n",
             dir, dir);
    pwt_write_file(file, text);
    snprintf(cmd, sizeof(cmd),
             "env -u CREDENTIALS_DIRECTORY '%s' config check '%s' >/dev/null 2>'%s/err'", tool,
             file, dir);
    assert_int_equal(sh(cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s/err", dir);
    err = pwt_read_file(cmd, NULL);
    assert_non_null(strstr(err, "audit.key_file: warning:"));
    assert_non_null(strstr(err, "is inside the state directory"));
    assert_null(strstr(err, "pain-type-undocumented"));
    assert_null(strstr(err, "cohort"));
    free(err);

    snprintf(cmd, sizeof(cmd),
             "env -u CREDENTIALS_DIRECTORY '%s' config check --quiet '%s' >/dev/null 2>'%s/err'",
             tool, file, dir);
    assert_int_equal(sh(cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s/err", dir);
    err = pwt_read_file(cmd, NULL);
    assert_string_equal(err, "");
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity),
        cmocka_unit_test(test_warnings),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
