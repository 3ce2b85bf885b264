/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `painwatch backup` as a process, on a real store and a real HMAC-chained trail: the store copy
 * is a self-contained SQLite database holding what was written, the trail copies verify with
 * `painwatch audit verify` even when the live file ends in a half-written record, the key is
 * not copied, and a second backup into the same directory is refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <jansson.h>
#include <sqlite3.h>

#include "painwatch/audit.h"
#include "painwatch/store.h"
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

static int run(const char *args)
{
    return pwt_tool_run(dir, "", args, &out, &err);
}

static void test_backup(void **state)
{
    char path[4200];
    char text[8192];
    char args[8192];
    struct pw_store *st = NULL;
    struct pw_audit *a = NULL;

    (void)state;
    snprintf(path, sizeof(path), "%s/keys", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/keys/audit-key", dir);
    pwt_write_file(path, "0123456789abcdef0123456789abcdef\n");
    assert_int_equal(chmod(path, 0600), 0);
    snprintf(path, sizeof(path), "%s/painwatch.yaml", dir);
    snprintf(text, sizeof(text),
             "state_dir: %s/state\n"
             "audit: {key_file: audit-key}\n" /* a systemd credential, as shipped */
             "servers:\n"
             "  - name: ehr\n"
             "    base_url: http://127.0.0.1:1/fhir\n"
             "    cohort: {type: server-wide}\n",
             dir);
    pwt_write_file(path, text);

    /* What the daemon would have left: a store with state, a trail of several records. */
    snprintf(path, sizeof(path), "%s/state", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/state/audit", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/state/painwatch.db", dir);
    assert_int_equal(pw_store_open(&st, &(struct pw_store_opts){.path = path}), 0);
    assert_int_equal(pw_store_meta_set(st, "backup-probe", "kept"), 0);
    char trail[4200];
    char key[4200];
    snprintf(trail, sizeof(trail), "%s/state/audit/painwatch-audit.jsonl", dir);
    snprintf(key, sizeof(key), "%s/keys/audit-key", dir);
    assert_int_equal(pw_audit_open(&a, &(struct pw_audit_opts){.path = trail,
                                                               .key_path = key,
                                                               .device = "Device/painwatch"}),
                     0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(pw_audit_event(a, "start", 'E', PW_AUDIT_SUCCESS, "test record", NULL), 0);
    }
    pw_audit_free(a);
    /* From a shell, the credential needs --credentials-dir; with it, outbox and audit verify
     * see the service's store and trail (issue 19: one view). */
    snprintf(args, sizeof(args), "outbox list --config %s/painwatch.yaml", dir);
    assert_int_equal(run(args), 2);
    assert_non_null(strstr(err, "$CREDENTIALS_DIRECTORY is not set"));
    snprintf(args, sizeof(args), "--credentials-dir %s/keys outbox list --config %s/painwatch.yaml",
             dir, dir);
    assert_int_equal(run(args), 0);
    snprintf(args, sizeof(args),
             "audit verify --credentials-dir %s/keys --config %s/painwatch.yaml", dir, dir);
    assert_int_equal(run(args), 0);
    /* The daemon is half-way through its next record (the store stays open, as it would). */
    FILE *f = fopen(trail, "a");
    assert_non_null(f);
    fputs("{\"resourceType\":\"AuditEv", f);
    fclose(f);

    snprintf(args, sizeof(args),
             "--credentials-dir %s/keys backup --config %s/painwatch.yaml %s/bk", dir, dir, dir);
    int rc = run(args);
    if (rc != 0) {
        fprintf(stderr, "%s\n%s\n", out, err);
    }
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "a consistent copy"));
    assert_non_null(strstr(out, "is not copied"));
    pw_store_close(st);

    /* The store copy: its own file, the row written before, no WAL needed. */
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    snprintf(path, sizeof(path), "%s/bk/painwatch.db", dir);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'backup-probe'", -1, &q, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "kept");
    sqlite3_finalize(q);
    sqlite3_close(db);
    snprintf(path, sizeof(path), "%s/bk/painwatch.db-wal", dir);
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0);

    /* The trail copy verifies (the half record was left out); the key was not copied. */
    snprintf(args, sizeof(args), "audit verify --key %s %s/bk/audit/painwatch-audit.jsonl", key,
             dir);
    rc = run(args);
    if (rc != 0) {
        fprintf(stderr, "%s\n%s\n", out, err);
    }
    assert_int_equal(rc, 0);
    snprintf(path, sizeof(path), "%s/bk/audit-key", dir);
    assert_int_not_equal(stat(path, &sb), 0);

    /* A second backup into the same directory would mix two points in time: refused. */
    snprintf(args, sizeof(args),
             "--credentials-dir %s/keys backup --config %s/painwatch.yaml %s/bk", dir, dir, dir);
    assert_int_equal(run(args), 2);
    assert_non_null(strstr(err, "choose a new DIR"));
    assert_int_equal(run("backup"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_backup, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
