/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Upgrade safety of the SQLite store (issue 19): before it migrates an existing store to a new
 * schema, the store copies it with SQLite's backup API to <store>.pre-schema-<old version>, a
 * self-contained database the previous release can open (the rollback the operator's guide
 * describes). A new store, or one already at the latest version, is not copied; when the copy
 * cannot be made the store is not migrated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "painwatch/err.h"
#include "painwatch/store.h"
#include "support/pwtest.h"

static char *dir;

static int setup(void **state)
{
    (void)state;
    dir = pwt_mkdtemp();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pwt_rmtree(dir);
    free(dir);
    return 0;
}

static int open_at(int schema_max, struct pw_store **out)
{
    struct pw_store_opts opts = {.dir = dir, .schema_max = schema_max};

    *out = NULL;
    return pw_store_open(out, &opts);
}

/* user_version of a database file, opened read-only with SQLite itself; -1 if unreadable. */
static int version_of(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int v = -1;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static int count_rows(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int n = -1;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        n = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static bool integrity_ok(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    bool ok = false;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        ok = strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_copy_before_migration(void **state)
{
    const int old = PW_STORE_SCHEMA_VERSION - 1;
    struct pw_store *st;
    char db[4200];
    char copy[4300];

    (void)state;
    snprintf(db, sizeof(db), "%s/painwatch.db", dir);
    snprintf(copy, sizeof(copy), "%s.pre-schema-%d", db, old);

    /* A new store at the previous release's schema: created, nothing to copy. */
    assert_int_equal(open_at(old, &st), 0);
    pw_store_close(st);
    assert_false(exists(copy));
    /* Something in it the copy must hold: a row in a table every schema has. */
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(db, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw,
                                  "CREATE TABLE upgrade_probe(x); INSERT INTO upgrade_probe "
                                  "VALUES (1), (2), (3)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(raw);

    /* The new release opens it: copy first, then migrate. */
    assert_int_equal(open_at(0, &st), 0);
    pw_store_close(st);
    assert_int_equal(version_of(db), PW_STORE_SCHEMA_VERSION);
    assert_true(exists(copy));
    assert_int_equal(version_of(copy), old);
    assert_int_equal(count_rows(copy, "SELECT count(*) FROM upgrade_probe"), 3);
    assert_true(integrity_ok(copy));
    /* Self-contained: no WAL beside it, not in WAL mode (a plain copy restores it). */
    char wal[4400];
    snprintf(wal, sizeof(wal), "%s-wal", copy);
    assert_false(exists(wal));
    char tmp[4400];
    snprintf(tmp, sizeof(tmp), "%s.tmp", copy);
    assert_false(exists(tmp));

    /* Already at the latest version: opened again, no new copy, the old one untouched. */
    struct stat before;
    struct stat after;
    assert_int_equal(stat(copy, &before), 0);
    assert_int_equal(open_at(0, &st), 0);
    pw_store_close(st);
    assert_int_equal(stat(copy, &after), 0);
    assert_int_equal(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
    assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
}

static void test_no_copy_no_migration(void **state)
{
    const int old = PW_STORE_SCHEMA_VERSION - 1;
    struct pw_store *st;
    char db[4200];
    char tmp[4400];

    (void)state;
    snprintf(db, sizeof(db), "%s/painwatch.db", dir);
    assert_int_equal(open_at(old, &st), 0);
    pw_store_close(st);
    /* The copy's temporary name is taken by a directory: the copy fails. */
    snprintf(tmp, sizeof(tmp), "%s.pre-schema-%d.tmp", db, old);
    assert_int_equal(mkdir(tmp, 0700), 0);
    char inner[4500];
    snprintf(inner, sizeof(inner), "%s/keep", tmp);
    pwt_write_file(inner, "x");
    int err = open_at(0, &st);
    assert_true(err < 0);
    assert_null(st);
    assert_int_equal(version_of(db), old); /* not migrated */
    pwt_rmtree(tmp);
    assert_int_equal(open_at(0, &st), 0);
    pw_store_close(st);
    assert_int_equal(version_of(db), PW_STORE_SCHEMA_VERSION);
}

static void test_new_store_not_copied(void **state)
{
    struct pw_store *st;
    char copy[4300];

    (void)state;
    assert_int_equal(open_at(0, &st), 0);
    pw_store_close(st);
    for (int v = 0; v <= PW_STORE_SCHEMA_VERSION; v++) {
        snprintf(copy, sizeof(copy), "%s/painwatch.db.pre-schema-%d", dir, v);
        assert_false(exists(copy));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copy_before_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_copy_no_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_store_not_copied, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
