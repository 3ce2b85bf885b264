/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SQLite store: one WAL database under the state directory, schema versioned with
 * PRAGMA user_version and migrated forward at open. Statements are prepared once and reused.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "painwatch/array.h"
#include "painwatch/check.h"
#include "painwatch/err.h"
#include "painwatch/log.h"
#include "painwatch/store.h"
#include "painwatch/timeline.h"

/*
 * SQLite's knobs (issue 20: they were in include/painwatch/limits.h; figures behind each value in
 * tests/bench/README.md, "Figures that were in code comments").
 *   STORE_PAGE_BYTES       page size of a new store file (SQLite's default is 4096). A merge and
 *                          a page's staged rows write long runs of pages, each a pwrite, and a
 *                          checkpoint reads and writes them again: 8192 halves those calls.
 *   STORE_CACHE_KIB        page cache per connection, KiB (SQLite's default; the daemon opens
 *                          one). It also bounds each in-memory sort of a staged merge; merges are
 *                          sorted, so a larger cache buys little and costs resident memory.
 *                          Handed back when the daemon is idle (B3).
 *   STORE_STMT_JOURNAL_KIB a statement's undo journal (kept for every upsert inside a
 *                          transaction) stays in memory up to this size. SQLite's default
 *                          (64 KiB) sends the rest of a transaction's statements to a temporary
 *                          file once one statement passed it: a merge then wrote about two pages
 *                          per resource there.
 *   STORE_WAL_PAGES        the WAL is checkpointed into the database once it holds this many
 *                          pages (SQLite's default is 1000, 4 MB). A checkpoint copies each page
 *                          the WAL holds once, so a page rewritten by many commits in between
 *                          is copied once.
 *   STORE_WAL_KEEP_BYTES   after a checkpoint the WAL file is cut back to this size, so a large
 *                          merge does not leave a WAL of its size on disk.
 */
#define STORE_PAGE_BYTES       8192
#define STORE_CACHE_KIB        2000
#define STORE_STMT_JOURNAL_KIB 4096
#define STORE_WAL_PAGES        4000
#define STORE_WAL_KEEP_BYTES   (16 * 1024 * 1024)

/*
 * Bulk ingestion (pw_store_ingest_resource, issue 20: the pipeline decided this).
 * STAGE_FROM_BYTES: below this file size the random index writes of a server-wide page hit the
 * page cache and staging would only add work; above it each resource costs a random leaf read
 * and write, which a sorted merge turns into sequential ones (four times STORE_CACHE_KIB).
 * MERGE_MIN/MAX: a merge starts once pages staged as many resources as the store holds (at
 * least MERGE_MIN), one transaction per MERGE_MAX. A merge rewrites every index leaf its sorted
 * rows land in, and a server-wide page spreads over every patient, so a merge costs about the
 * store's size: merging at a fixed count made a catch-up quadratic, merging at the store's size
 * keeps the rewrites to a constant factor of what is stored. MERGE_MAX bounds how long one
 * merge transaction holds the loop. SQLite's sorter spills past its cache, so memory does not
 * grow with a merge; the WAL holds it until its checkpoint.
 */
#define STAGE_FROM_BYTES (UINT64_C(8) << 20)
#define MERGE_MIN        131072
#define MERGE_MAX        524288

/*
 * Forward migrations: entry i takes the schema from version i to i + 1. Never edit an entry that
 * shipped; append a new one and bump PW_STORE_SCHEMA_VERSION.
 */
static const char *const migrations[] = {
    /* 0 -> 1: cursors, resources, flag map, outbox. */
    "CREATE TABLE cursor(source TEXT PRIMARY KEY, value TEXT NOT NULL, updated INTEGER NOT NULL);"
    "CREATE TABLE resource(type TEXT NOT NULL, id TEXT NOT NULL, version TEXT NOT NULL,"
    " last_updated INTEGER, patient TEXT NOT NULL, json BLOB NOT NULL, PRIMARY KEY(type, id));"
    "CREATE INDEX resource_patient ON resource(patient);"
    "CREATE TABLE flag(key TEXT PRIMARY KEY, patient TEXT NOT NULL, rule TEXT NOT NULL,"
    " state TEXT NOT NULL, server_id TEXT NOT NULL DEFAULT '', version TEXT NOT NULL DEFAULT '',"
    " since INTEGER, updated INTEGER NOT NULL, resource TEXT);"
    "CREATE INDEX flag_patient ON flag(patient);"
    "CREATE TABLE outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL,"
    " patient TEXT NOT NULL, rule TEXT NOT NULL, op TEXT NOT NULL, state TEXT NOT NULL,"
    " payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_try INTEGER NOT NULL,"
    " created INTEGER NOT NULL, updated INTEGER NOT NULL, unknown INTEGER NOT NULL DEFAULT 0,"
    " last_status INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '', outcome TEXT);"
    "CREATE INDEX outbox_due ON outbox(state, next_try);"
    "CREATE INDEX outbox_key ON outbox(key, id);",
    /* 1 -> 2: time-driven re-evaluation (patients whose findings can change as time passes). */
    "CREATE TABLE patient(patient TEXT PRIMARY KEY, next_eval INTEGER NOT NULL);"
    "CREATE INDEX patient_due ON patient(next_eval);",
    /* 2 -> 3: operator actions journaled for the daemon to audit. */
    "CREATE TABLE operator_action(id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL,"
    " who TEXT NOT NULL, action TEXT NOT NULL, outbox_id INTEGER NOT NULL, detail TEXT NOT NULL,"
    " audited INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX operator_unaudited ON operator_action(audited, id);",
    /* 3 -> 4: resources kept as normalized events (and under which normalization), settings. */
    "ALTER TABLE resource RENAME COLUMN json TO events;"
    "ALTER TABLE resource ADD COLUMN norm TEXT NOT NULL DEFAULT '';"
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    /* A patient's rows come out in (type, id) order straight from the index, no sort. */
    "DROP INDEX resource_patient;"
    "CREATE INDEX resource_patient ON resource(patient, type, id);",
    /* 4 -> 5: resources staged in arrival order for a sorted merge (pw_store_stage_resource). */
    "CREATE TABLE staged(seq INTEGER PRIMARY KEY, type TEXT NOT NULL, id TEXT NOT NULL,"
    " version TEXT NOT NULL, last_updated INTEGER, patient TEXT NOT NULL, events BLOB NOT NULL,"
    " norm TEXT NOT NULL);",
    /* 5 -> 6: a resource filed under another patient (a chart correction) makes the patient it
     * left due at once, so that patient's Flags built on it are reconciled too (put and merge
     * alike: both update the row). */
    "CREATE TRIGGER resource_moved AFTER UPDATE OF patient ON resource"
    " WHEN old.patient IS NOT new.patient BEGIN"
    " DELETE FROM patient WHERE patient = old.patient;"
    " INSERT INTO patient(patient, next_eval) VALUES(old.patient, 0);"
    " END;",
    /* 6 -> 7: due patients come out of the index in (next_eval, patient) order. Before, every
     * read of a batch sorted all patients due (100,000 patients: 390 batches x 100,000 rows). */
    "DROP INDEX patient_due;"
    "CREATE INDEX patient_due ON patient(next_eval, patient);",
    /* 7 -> 8: the data-quality events recorded in the audit trail, per patient: an event
     * recorded is not recorded again while it stands (pw_store_dq_set). */
    "CREATE TABLE dq_seen(patient TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY(patient, key))"
    " WITHOUT ROWID;",
    /* 8 -> 9: the resource type a row writes, so that delivery need not parse its payload for
     * it (NULL in older rows: read from the payload then). */
    "ALTER TABLE outbox ADD COLUMN type TEXT;",
};
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == PW_STORE_SCHEMA_VERSION,
               "one migration per schema version");

#define FLAG_COLS     "key, patient, rule, state, server_id, version, since, updated, resource"
#define RESOURCE_COLS "type, id, version, last_updated, patient, events, norm"
#define OUTBOX_COLS                                                                      \
    "id, key, patient, rule, op, state, payload, attempts, next_try, created, updated, " \
    "unknown, last_status, last_error, outcome, type"

/* Every statement the store runs, prepared on first use and kept. */
enum stmt {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_CURSOR_GET,
    S_CURSOR_SET,
    S_CURSOR_RESET,
    S_META_GET,
    S_META_SET,
    S_RES_PUT,
    S_RES_OF_PATIENT,
    S_STAGE_INS,
    S_STAGE_FIRST,
    S_STAGE_CHUNK,
    S_STAGE_CHUNK_FAST,
    S_STAGE_DEL,
    S_SIZE,
    S_RES_COUNT,
    S_PATIENT_SET,
    S_PATIENT_DEL,
    S_PATIENT_DUE_BY,
    S_PATIENT_DUE,
    S_FLAG_GET,
    S_FLAG_PUT,
    S_FLAG_OF_PATIENT,
    S_OUTBOX_INS,
    S_OUTBOX_INS_V8, /* a store stopped before schema 9 (migration tests): no type column */
    S_OUTBOX_GET,
    S_OUTBOX_UPD,
    S_OUTBOX_ALL,
    S_OUTBOX_BY_STATE,
    S_OUTBOX_DUE,
    S_OUTBOX_NEXT,
    S_OP_INS,
    S_OP_PENDING,
    S_OP_DONE,
    S_DQ_OF_PATIENT,
    S_DQ_PUT,
    S_DQ_DEL,
    S_RES_UPD,
    S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    /* IMMEDIATE takes the write lock now, so contention shows up at begin (after the busy
     * timeout) instead of as a deadlock halfway through a page. */
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_CURSOR_GET] = "SELECT value FROM cursor WHERE source = ?1",
    [S_CURSOR_SET] = "INSERT INTO cursor(source, value, updated) VALUES(?1, ?2, unixepoch())"
                     " ON CONFLICT(source) DO UPDATE SET value = ?2, updated = unixepoch()",
    [S_CURSOR_RESET] = "DELETE FROM cursor",
    [S_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [S_META_SET] = "INSERT INTO meta(key, value) VALUES(?1, ?2)"
                   " ON CONFLICT(key) DO UPDATE SET value = ?2",
    /*
     * One statement per resource: insert, or update in place unless the stored copy stands
     * (the same version, patient and normalization again; or a late copy older than it).
     * sqlite3_changes() then says whether anything changed.
     */
    /*
     * A put is this insert, then, when the row was there, S_RES_UPD: what one upsert (ON
     * CONFLICT DO UPDATE) did. The upsert could fire the resource_moved trigger, so SQLite kept
     * a statement journal for every one of them, new rows included (a copy of each B-tree page
     * it touched: ~6k instructions a resource); an insert of a new row needs none.
     */
    [S_RES_PUT] = "INSERT INTO resource(type, id, version, last_updated, patient, events, norm)"
                  " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(type, id) DO NOTHING",
    /* The stored row replaced unless it is the same version under the same patient and
     * normalization, or newer (lastUpdated) than this copy. */
    [S_RES_UPD] = "UPDATE resource SET version = ?3, last_updated = ?4, patient = ?5,"
                  " events = ?6, norm = ?7 WHERE type = ?1 AND id = ?2"
                  " AND NOT (version = ?3 AND patient = ?5 AND norm = ?7)"
                  " AND NOT (last_updated IS NOT NULL AND ?4 IS NOT NULL AND ?4 < last_updated)",
    [S_RES_OF_PATIENT] = "SELECT " RESOURCE_COLS " FROM resource WHERE patient = ?1"
                         " ORDER BY type, id",
    [S_STAGE_INS] = "INSERT INTO staged(type, id, version, last_updated, patient, events, norm)"
                    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_STAGE_FIRST] = "SELECT min(seq) FROM staged",
    /*
     * One chunk in patient order, which makes its upserts sequential in the patient index and
     * in the rows themselves (appended in this order, a patient's rows share pages for its next
     * evaluation); (type, id) stays random, one index of two. The copies of one resource must
     * stay together and in staging order even when they name different patients (a chart
     * correction): they sort under one patient of theirs. That takes a second sort of the
     * chunk; S_STAGE_CHUNK_FAST sorts once, in the same order whenever no copy names another
     * patient than the one stored (sq_merge_staged).
     */
    [S_STAGE_CHUNK] = "SELECT " RESOURCE_COLS " FROM"
                      " (SELECT *, min(patient) OVER (PARTITION BY type, id) AS grp"
                      " FROM staged WHERE seq < ?1) ORDER BY grp, type, id, seq",
    [S_STAGE_CHUNK_FAST] = "SELECT " RESOURCE_COLS " FROM staged WHERE seq < ?1"
                           " ORDER BY patient, type, id, seq",
    [S_STAGE_DEL] = "DELETE FROM staged WHERE seq < ?1",
    [S_SIZE] = "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
    /* Resources are never deleted, so the last rowid is their number (one b-tree descent). */
    [S_RES_COUNT] = "SELECT max(rowid) FROM resource",
    [S_PATIENT_SET] = "INSERT INTO patient(patient, next_eval) VALUES(?1, ?2)"
                      " ON CONFLICT(patient) DO UPDATE SET next_eval = ?2",
    [S_PATIENT_DEL] = "DELETE FROM patient WHERE patient = ?1",
    [S_PATIENT_DUE_BY] = "INSERT INTO patient(patient, next_eval) VALUES(?1, ?2)"
                         " ON CONFLICT(patient) DO UPDATE SET next_eval = ?2 WHERE next_eval > ?2",
    [S_PATIENT_DUE] = "SELECT patient FROM patient WHERE next_eval <= ?1"
                      " ORDER BY next_eval, patient LIMIT ?2",
    [S_FLAG_GET] = "SELECT " FLAG_COLS " FROM flag WHERE key = ?1",
    [S_FLAG_PUT] = "INSERT OR REPLACE INTO flag(" FLAG_COLS ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7,"
                   " ?8, ?9)",
    [S_FLAG_OF_PATIENT] = "SELECT " FLAG_COLS " FROM flag WHERE patient = ?1 ORDER BY key",
    [S_OUTBOX_INS] = "INSERT INTO outbox(key, patient, rule, op, state, payload, attempts,"
                     " next_try, created, updated, unknown, last_status, last_error, outcome,"
                     " type) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
                     " ?15)",
    [S_OUTBOX_INS_V8] = "INSERT INTO outbox(key, patient, rule, op, state, payload, attempts,"
                        " next_try, created, updated, unknown, last_status, last_error, outcome)"
                        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    [S_OUTBOX_GET] = "SELECT " OUTBOX_COLS " FROM outbox WHERE id = ?1",
    [S_OUTBOX_UPD] = "UPDATE outbox SET state = ?2, attempts = ?3, next_try = ?4, updated = ?5,"
                     " unknown = ?6, last_status = ?7, last_error = ?8, outcome = ?9 WHERE id = ?1",
    [S_OUTBOX_ALL] = "SELECT " OUTBOX_COLS " FROM outbox ORDER BY id",
    [S_OUTBOX_BY_STATE] = "SELECT " OUTBOX_COLS " FROM outbox WHERE state = ?1 ORDER BY id",
    /*
     * Only the oldest pending row of each key: an episode's writes go out in order. Rows come
     * in outbox_due's own order (next_try, then id: the index ends with the rowid), so the walk
     * stops after ?2 rows; "ORDER BY id" made SQLite sort every due row on each call, which is
     * quadratic while a catch-up's thousands of Flags drain.
     */
    [S_OUTBOX_DUE] = "SELECT o.id FROM outbox o WHERE o.state = 'pending' AND o.next_try <= ?1"
                     " AND NOT EXISTS(SELECT 1 FROM outbox p WHERE p.key = o.key"
                     " AND p.state = 'pending' AND p.id < o.id) ORDER BY o.next_try, o.id"
                     " LIMIT ?2",
    [S_OUTBOX_NEXT] = "SELECT min(next_try) FROM outbox WHERE state = 'pending'",
    [S_OP_INS] = "INSERT INTO operator_action(at, who, action, outbox_id, detail)"
                 " VALUES(?1, ?2, ?3, ?4, ?5)",
    [S_OP_PENDING] = "SELECT id, at, who, action, outbox_id, detail FROM operator_action"
                     " WHERE audited = 0 ORDER BY id",
    [S_OP_DONE] = "UPDATE operator_action SET audited = 1 WHERE id = ?1",
    [S_DQ_OF_PATIENT] = "SELECT key FROM dq_seen WHERE patient = ?1 ORDER BY key",
    [S_DQ_PUT] = "INSERT OR IGNORE INTO dq_seen(patient, key) VALUES(?1, ?2)",
    [S_DQ_DEL] = "DELETE FROM dq_seen WHERE patient = ?1 AND key = ?2",
};

struct sq {
    const char *conf_path; /* config: path (borrowed during sq_open only) */
    sqlite3 *db;
    char path[4096];
    sqlite3_stmt *stmt[S_COUNT];
    int64_t exact_from; /* first staged seq of a chunk to merge in staging order; 0: none */
    int schema;         /* the schema version the file is at once opened (tests stop early) */
};

static const struct pw_conf_field sq_map[] = {
    {.name = "path",
     .type = PW_CONF_PATH,
     .def = "painwatch.db",
     .flags = PW_CONF_F_STATE,
     .offset = offsetof(struct sq, conf_path),
     .help = "the database file, relative to state_dir"},
    {0},
};

static struct sq *sq_of(struct pw_store *st)
{
    return st->ctx;
}

/* Map a SQLite result to our codes, logging the detail (SQLite's messages carry no values). */
static int fail(struct sq *sq, int rc, const char *what)
{
    int code = rc & 0xff;
    /* An I/O error's cause is the OS's errno (SQLite reports a full disk while it opens or grows
     * the WAL as SQLITE_IOERR, not SQLITE_FULL): name it, so the operator reads "No space left
     * on device" and not only "disk I/O error". */
    int sys = sq->db && (code == SQLITE_IOERR || code == SQLITE_CANTOPEN || code == SQLITE_FULL)
                  ? sqlite3_system_errno(sq->db)
                  : 0;

    if (sys) {
        pw_log_err(STORE, "%s: %s (%s: %s)", what, sqlite3_errstr(rc), sqlite3_errmsg(sq->db),
                   strerror(sys));
    } else {
        pw_log_err(STORE, "%s: %s (%s)", what, sqlite3_errstr(rc),
                   sq->db ? sqlite3_errmsg(sq->db) : "");
    }
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
        return PW_EAGAIN;
    }
    if (code == SQLITE_FULL || sys == ENOSPC || sys == EDQUOT) {
        return PW_ENOSPC;
    }
    if (code == SQLITE_NOMEM) {
        return PW_ENOMEM;
    }
    return PW_ESTORE;
}

/* A prepared, reset statement with its bindings cleared, or NULL (logged). */
static sqlite3_stmt *stmt(struct sq *sq, enum stmt s, int *err)
{
    sqlite3_stmt *st = sq->stmt[s];

    if (!st) {
        int rc = sqlite3_prepare_v3(sq->db, stmt_sql[s], -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
        if (rc != SQLITE_OK) {
            *err = fail(sq, rc, "prepare");
            return NULL;
        }
        sq->stmt[s] = st;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(st, i, s ? s : "", -1, SQLITE_STATIC);
}

static void bind_time(sqlite3_stmt *st, int i, int64_t t)
{
    if (t == PW_TIME_NONE) {
        sqlite3_bind_null(st, i);
    } else {
        sqlite3_bind_int64(st, i, t);
    }
}

static int64_t col_time(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? PW_TIME_NONE : sqlite3_column_int64(st, i);
}

static void col_copy(sqlite3_stmt *st, int i, char *out, size_t cap)
{
    const unsigned char *s = sqlite3_column_text(st, i);

    snprintf(out, cap, "%s", s ? (const char *)s : "");
}

static int col_dup(sqlite3_stmt *st, int i, char **out)
{
    const unsigned char *s = sqlite3_column_text(st, i);

    *out = NULL;
    if (sqlite3_column_type(st, i) == SQLITE_NULL || !s) {
        return 0;
    }
    *out = strdup((const char *)s);
    return *out ? 0 : PW_ENOMEM;
}

/* Run a statement that returns no rows. */
static int run(struct sq *sq, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        return fail(sq, rc, what);
    }
    return 0;
}

/* A statement whose one row is one integer: PW_ENOENT when it is NULL (e.g. min() of nothing). */
static int one_int64(struct sq *sq, enum stmt s, int64_t *out, const char *what)
{
    int err = 0;
    sqlite3_stmt *q = stmt(sq, s, &err);
    int rc;

    if (!q) {
        return err;
    }
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL) {
        *out = sqlite3_column_int64(q, 0);
    } else {
        err = rc == SQLITE_ROW || rc == SQLITE_DONE ? PW_ENOENT : fail(sq, rc, what);
    }
    sqlite3_reset(q);
    return err;
}

static int exec(struct sq *sq, const char *sql, const char *what)
{
    int rc = sqlite3_exec(sq->db, sql, NULL, NULL, NULL);

    return rc == SQLITE_OK ? 0 : fail(sq, rc, what);
}

static int user_version(struct sq *sq, int *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(sq->db, "PRAGMA user_version", -1, &st, NULL);

    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return fail(sq, rc, "read schema version");
    }
    *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

/*
 * A consistent copy of the open database to the new file @p dst, with SQLite's online backup API
 * (other connections may write meanwhile): written to <dst>.tmp, switched out of WAL mode so the
 * copy is one self-contained file, closed, then renamed into place.
 */
static int backup_to(struct sq *sq, const char *dst)
{
    char tmp[PATH_MAX + 40];
    sqlite3 *db = NULL;
    sqlite3_backup *bk;
    struct stat st;
    int rc;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", dst) >= sizeof(tmp)) {
        return PW_E2BIG;
    }
    if (stat(dst, &st) == 0) {
        return PW_EEXIST;
    }
    unlink(tmp);
    rc = sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK) {
        bk = sqlite3_backup_init(db, "main", sq->db, "main");
        if (!bk) {
            rc = sqlite3_errcode(db);
        } else {
            rc = sqlite3_backup_step(bk, -1);
            int fin = sqlite3_backup_finish(bk);
            rc = rc == SQLITE_DONE ? fin : rc;
        }
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
    }
    if (sqlite3_close(db) != SQLITE_OK && rc == SQLITE_OK) {
        rc = SQLITE_IOERR;
    }
    if (rc != SQLITE_OK) {
        pw_log_err(STORE, "%s: cannot copy the store: %s", tmp, sqlite3_errstr(rc));
        unlink(tmp);
        return (rc & 0xff) == SQLITE_FULL ? PW_ENOSPC : PW_ESTORE;
    }
    if (rename(tmp, dst) != 0) {
        pw_log_err(STORE, "%s: %s", dst, strerror(errno));
        unlink(tmp);
        return PW_EIO;
    }
    return 0;
}

/*
 * Before the first migration of an existing store: a consistent copy of it as
 * <store>.pre-schema-<version>, what a rollback to the previous release restores (operator's
 * guide). A copy already there is kept: it holds the same version. No copy, no migration.
 */
static int copy_before_migration(struct sq *sq, int have)
{
    char dst[PATH_MAX + 32];
    int err;

    snprintf(dst, sizeof(dst), "%s.pre-schema-%d", sq->path, have);
    err = backup_to(sq, dst);
    if (err == PW_EEXIST) {
        return 0;
    }
    if (err) {
        pw_log_err(STORE, "%s: no copy of the store before the schema migration: not migrating",
                   sq->path);
        return err;
    }
    pw_log_notice(STORE, "%s: copied before migrating from schema version %d", dst, have);
    return 0;
}

/* Apply each missing migration in its own transaction, so a crash mid-way resumes cleanly. */
static int migrate(struct sq *sq, int target)
{
    int have = 0;
    int err = user_version(sq, &have);

    if (err) {
        return err;
    }
    if (have > PW_STORE_SCHEMA_VERSION) {
        pw_log_err(STORE, "%s: schema version %d is newer than this build (%d)", sq->path, have,
                   PW_STORE_SCHEMA_VERSION);
        return PW_ESTORE;
    }
    if (have > 0 && have < target) {
        err = copy_before_migration(sq, have);
        if (err) {
            return err;
        }
    }
    for (int v = have; v < target; v++) {
        char bump[64];

        snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
        err = exec(sq, "BEGIN IMMEDIATE", "migration begin");
        if (!err) {
            err = exec(sq, migrations[v], "migration");
        }
        if (!err) {
            err = exec(sq, bump, "migration version");
        }
        if (!err) {
            err = exec(sq, "COMMIT", "migration commit");
        }
        if (err) {
            sqlite3_exec(sq->db, "ROLLBACK", NULL, NULL, NULL);
            pw_log_err(STORE, "%s: migration to schema version %d failed", sq->path, v + 1);
            return err;
        }
        pw_log_notice(STORE, "%s: schema migrated to version %d", sq->path, v + 1);
    }
    sq->schema = have > target ? have : target;
    return 0;
}

/*
 * Pages of STORE_PAGE_BYTES; the page cache is bounded (STORE_CACHE_KIB) and
 * memory-mapped I/O is off whatever the SQLite build's default: a mapping would put the whole
 * database file into the daemon's RSS (issue 9, B3).
 * WAL lets `painwatch outbox list` read while the daemon writes. synchronous=FULL: every
 * commit is on disk when pw_store_commit() returns, also across a power loss. With NORMAL a
 * power loss may drop the last commits; for cursors that only repeats a page, but a lost
 * "delivered" mark or key -> id entry would re-send a Flag the EHR already has, and EHR writes
 * cannot be rolled back. One fsync per page commit is cheap at our write rate.
 * Checkpoints every STORE_WAL_PAGES pages, the WAL cut back to STORE_WAL_KEEP_BYTES.
 */
static int configure(struct sq *sq, bool read_only)
{
    int err = 0;

    sqlite3_busy_timeout(sq->db, PW_STORE_BUSY_MS);
    if (!read_only) {
        char sql[48];
        /* A new file only (before its first table and WAL); an existing one keeps its own. */
        snprintf(sql, sizeof(sql), "PRAGMA page_size = %d", STORE_PAGE_BYTES);
        err = exec(sq, sql, "page_size");
    }
    if (!err && !read_only) {
        err = exec(sq, "PRAGMA journal_mode = WAL", "journal_mode");
    }
    if (!err) {
        err = exec(sq, "PRAGMA synchronous = FULL", "synchronous");
    }
    if (!err) {
        char sql[48];
        snprintf(sql, sizeof(sql), "PRAGMA cache_size = -%d", STORE_CACHE_KIB);
        err = exec(sq, sql, "cache_size");
    }
    if (!err) {
        err = exec(sq, "PRAGMA mmap_size = 0", "mmap_size");
    }
    if (!err && !read_only) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA wal_autocheckpoint = %d", STORE_WAL_PAGES);
        err = exec(sq, sql, "wal_autocheckpoint");
        if (!err) {
            snprintf(sql, sizeof(sql), "PRAGMA journal_size_limit = %d", STORE_WAL_KEEP_BYTES);
            err = exec(sq, sql, "journal_size_limit");
        }
    }
    if (!err && read_only) {
        err = exec(sq, "PRAGMA query_only = 1", "query_only");
    }
    return err;
}

static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

/*
 * Before SQLite's first use in the process (the first store opened, before other threads use
 * SQLite): no memory statistics, nothing reads them, and keeping them takes a global mutex
 * around every SQLite malloc and free; statement journals in memory up to
 * STORE_STMT_JOURNAL_KIB. Already initialized (SQLITE_MISUSE): left as it is.
 */
static void sqlite_setup(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    (void)sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, STORE_STMT_JOURNAL_KIB * 1024);
}

static int sq_open(struct pw_store *st, const struct pw_store_opts *opts)
{
    struct sq *sq;
    int flags;
    int rc;
    int err;
    int target = opts->schema_max > 0 ? opts->schema_max : PW_STORE_SCHEMA_VERSION;

    const char *path = opts->path && opts->path[0] ? opts->path : sq_of(st)->conf_path;

    if ((!path || !path[0]) && (!opts->dir || !opts->dir[0])) {
        return PW_EINVAL;
    }
    if (target > PW_STORE_SCHEMA_VERSION) {
        return PW_EINVAL;
    }
    sq = sq_of(st);
    sq->conf_path = NULL; /* borrowed for open only */
    if ((size_t)(path && path[0] ? snprintf(sq->path, sizeof(sq->path), "%s", path)
                                 : snprintf(sq->path, sizeof(sq->path), "%s/painwatch.db",
                                            opts->dir)) >= sizeof(sq->path)) {
        err = PW_E2BIG;
        goto fail;
    }
    if (!opts->read_only && opts->dir && opts->dir[0] && mkdir(opts->dir, 0700) != 0 &&
        errno != EEXIST) {
        err = -errno;
        pw_log_err(STORE, "%s: cannot create state directory: %s", opts->dir, strerror(errno));
        goto fail;
    }
    pthread_once(&sqlite_once, sqlite_setup);
    /* A connection is only ever used by the thread holding its store: no per-call mutex. */
    flags =
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (opts->read_only ? 0 : SQLITE_OPEN_CREATE);
    rc = sqlite3_open_v2(sq->path, &sq->db, flags, NULL);
    if (rc != SQLITE_OK) {
        err = fail(sq, rc, sq->path);
        goto fail;
    }
    sqlite3_extended_result_codes(sq->db, 1);
    err = configure(sq, opts->read_only);
    if (!err && !opts->read_only) {
        err = migrate(sq, target);
    } else if (!err) {
        err = user_version(sq, &sq->schema); /* read only: as it is (backup) */
    }
    if (err) {
        goto fail;
    }
    return 0;
fail:
    sqlite3_close(sq->db);
    sq->db = NULL;
    return err;
}

static void sq_close(struct pw_store *st)
{
    struct sq *sq = sq_of(st);

    if (!sq) {
        return;
    }
    for (int i = 0; i < S_COUNT; i++) {
        sqlite3_finalize(sq->stmt[i]);
    }
    if (sqlite3_close(sq->db) != SQLITE_OK) {
        pw_log_err(STORE, "%s: close: %s", sq->path, sqlite3_errmsg(sq->db));
    }
}

/* Frees every cache page no statement holds: the daemon is idle, the next poll re-reads what
 * it needs (from the OS page cache, mostly). */
static void sq_release_memory(struct pw_store *st)
{
    sqlite3_db_release_memory(sq_of(st)->db);
}

static int sq_backup(struct pw_store *st, const char *path)
{
    return backup_to(sq_of(st), path);
}

static int sq_schema_version(struct pw_store *st, int *out)
{
    return user_version(sq_of(st), out);
}

static int simple(struct pw_store *st, enum stmt s, const char *what)
{
    int err = 0;
    sqlite3_stmt *q = stmt(sq_of(st), s, &err);

    return q ? run(sq_of(st), q, what) : err;
}

static int sq_begin(struct pw_store *st)
{
    return simple(st, S_BEGIN, "begin");
}

static void sq_rollback(struct pw_store *st)
{
    /* Reset every statement first: an active read would otherwise keep the rollback waiting. */
    for (int i = 0; i < S_COUNT; i++) {
        if (sq_of(st)->stmt[i]) {
            sqlite3_reset(sq_of(st)->stmt[i]);
        }
    }
    if (sqlite3_get_autocommit(sq_of(st)->db) == 0) {
        simple(st, S_ROLLBACK, "rollback");
    }
}

static int sq_commit(struct pw_store *st)
{
    int err = simple(st, S_COMMIT, "commit");

    if (err) {
        sq_rollback(st);
    }
    return err;
}

/* One text value by key (cursors, settings): copied into @p out. */
static int get_value(struct pw_store *st, enum stmt which, const char *key, char *out, size_t cap)
{
    struct sq *sq = sq_of(st);
    int err = 0;
    sqlite3_stmt *q = stmt(sq, which, &err);
    int rc;

    if (!q) {
        return err;
    }
    bind_text(q, 1, key);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(q, 0);
        err = (size_t)snprintf(out, cap, "%s", v ? v : "") >= cap ? PW_E2BIG : 0;
    } else {
        err = rc == SQLITE_DONE ? PW_ENOENT : fail(sq, rc, "value get");
    }
    sqlite3_reset(q);
    return err;
}

static int set_value(struct pw_store *st, enum stmt which, const char *key, const char *value)
{
    int err = 0;
    sqlite3_stmt *q = stmt(sq_of(st), which, &err);

    if (!q) {
        return err;
    }
    bind_text(q, 1, key);
    bind_text(q, 2, value);
    return run(sq_of(st), q, "value set");
}

static int sq_cursor_get(struct pw_store *st, const char *source, char *out, size_t cap)
{
    return get_value(st, S_CURSOR_GET, source, out, cap);
}

static int sq_cursor_set(struct pw_store *st, const char *source, const char *value)
{
    return set_value(st, S_CURSOR_SET, source, value);
}

static int sq_cursors_reset(struct pw_store *st)
{
    int err = 0;
    sqlite3_stmt *q = stmt(sq_of(st), S_CURSOR_RESET, &err);

    return q ? run(sq_of(st), q, "cursors reset") : err;
}

static int sq_meta_get(struct pw_store *st, const char *key, char *out, size_t cap)
{
    return get_value(st, S_META_GET, key, out, cap);
}

static int sq_meta_set(struct pw_store *st, const char *key, const char *value)
{
    return set_value(st, S_META_SET, key, value);
}

/* The current row of a statement selecting RESOURCE_COLS; borrowed until the next step. */
static struct pw_store_resource col_resource(sqlite3_stmt *q)
{
    struct pw_store_resource r = {
        .type = (const char *)sqlite3_column_text(q, 0),
        .id = (const char *)sqlite3_column_text(q, 1),
        .version = (const char *)sqlite3_column_text(q, 2),
        .last_updated = col_time(q, 3),
        .patient = (const char *)sqlite3_column_text(q, 4),
        .events = sqlite3_column_blob(q, 5),
        .events_len = (size_t)sqlite3_column_bytes(q, 5),
        .norm = (const char *)sqlite3_column_text(q, 6),
    };

    /* Schema <= 3 kept the resource's JSON; the 3 -> 4 migration gave those rows norm ''. */
    r.json =
        r.norm && !r.norm[0] && r.events && r.events_len > 0 && ((const char *)r.events)[0] == '{';
    return r;
}

/* @p s (S_RES_PUT, S_RES_UPD or S_STAGE_INS) with @p res bound as ?1-?7, or NULL and *err set. */
static sqlite3_stmt *bound_resource(struct sq *sq, enum stmt s, const struct pw_store_resource *res,
                                    int *err)
{
    sqlite3_stmt *q = stmt(sq, s, err);

    if (!q) {
        return NULL;
    }
    if (!res->type || !res->id || !res->patient || !res->events) {
        *err = PW_EINVAL;
        return NULL;
    }
    if (res->events_len > INT_MAX) {
        *err = PW_E2BIG;
        return NULL;
    }
    bind_text(q, 1, res->type);
    bind_text(q, 2, res->id);
    bind_text(q, 3, res->version ? res->version : "");
    bind_time(q, 4, res->last_updated);
    bind_text(q, 5, res->patient);
    sqlite3_bind_blob(q, 6, res->events, (int)res->events_len, SQLITE_STATIC);
    bind_text(q, 7, res->norm ? res->norm : "");
    return q;
}

static int sq_put_resource(struct pw_store *st, const struct pw_store_resource *res, bool *changed)
{
    struct sq *sq = sq_of(st);
    int err = 0;
    sqlite3_stmt *q = bound_resource(sq, S_RES_PUT, res, &err);

    *changed = false;
    if (!q) {
        return err;
    }
    err = run(sq, q, "resource put");
    if (err == 0 && sqlite3_changes(sq->db) == 0) {
        /* Stored already: replaced by this copy unless S_RES_UPD's WHERE keeps it. */
        q = bound_resource(sq, S_RES_UPD, res, &err);
        err = q ? run(sq, q, "resource put") : err;
    }
    *changed = err == 0 && sqlite3_changes(sq->db) > 0;
    return err;
}

static int sq_stage_resource(struct pw_store *st, const struct pw_store_resource *res)
{
    struct sq *sq = sq_of(st);
    int err = 0;
    sqlite3_stmt *q = bound_resource(sq, S_STAGE_INS, res, &err);

    return q ? run(sq, q, "resource stage") : err;
}

/* The first staged seq and the end (exclusive) of the oldest chunk of about @p max staged rows;
 * 0 when none. */
static int stage_bound(struct sq *sq, size_t max, int64_t *first, int64_t *bound)
{
    int err = one_int64(sq, S_STAGE_FIRST, first, "stage bound");

    *bound = 0;
    if (err == 0) {
        /* seq grows by one per row (rolled-back gaps only make a chunk smaller). */
        *bound = *first > INT64_MAX - (int64_t)max ? INT64_MAX : *first + (int64_t)max;
    }
    return err == PW_ENOENT ? 0 : err;
}

/*
 * Apply the staged rows below @p bound in the order of @p s. With @p moved, stop at a copy that
 * filed its resource under another patient (the resource_moved trigger ran: a statement's
 * changes exclude its trigger's, the connection's total does not) and set *moved.
 */
static int merge_pass(struct pw_store *st, enum stmt s, int64_t bound, pw_store_patient_fn *fn,
                      void *arg, size_t *n_out, bool *moved)
{
    struct sq *sq = sq_of(st);
    int err = 0;
    sqlite3_stmt *q = stmt(sq, s, &err);
    int rc = SQLITE_DONE;

    *n_out = 0;
    if (!q) {
        return err;
    }
    sqlite3_bind_int64(q, 1, bound);
    while (!err && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct pw_store_resource r = col_resource(q);
        sqlite3_int64 before = sqlite3_total_changes64(sq->db);
        bool changed = false;

        if (!r.events) {
            r.events = ""; /* an empty blob reads back as NULL */
        }
        err = sq_put_resource(st, &r, &changed);
        if (!err && moved && sqlite3_total_changes64(sq->db) - before > sqlite3_changes64(sq->db)) {
            *moved = true;
            break;
        }
        if (!err && changed && fn) {
            err = fn(arg, r.patient);
        }
        (*n_out)++;
    }
    if (!err && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        err = fail(sq, rc, "stage merge");
    }
    sqlite3_reset(q);
    return err;
}

/*
 * The copies of one resource come together in the order they were staged, so put_resource's
 * rules (the same version again changes nothing, an older copy never replaces a newer one)
 * decide as if each had been put when it arrived; copies of different resources are
 * independent, so their order is free. In patient order the copies of a resource stay together
 * unless they name different patients, and then one of them moves it between patients, which
 * stored resources do only on a chart correction. So a chunk is merged in that order (one
 * sort) until a copy moves its resource; then the merge is cancelled, and the caller's next
 * call merges the same chunk grouping each resource's copies (S_STAGE_CHUNK, two sorts).
 */
static int sq_merge_staged(struct pw_store *st, size_t max, pw_store_patient_fn *fn, void *arg,
                           size_t *n_out)
{
    struct sq *sq = sq_of(st);
    int64_t first = 0;
    int64_t bound = 0;
    int err = stage_bound(sq, max ? max : SIZE_MAX / 2, &first, &bound);
    bool exact;
    bool moved = false;
    sqlite3_stmt *q;

    *n_out = 0;
    if (err || bound == 0) {
        return err;
    }
    exact = first == sq->exact_from;
    err = merge_pass(st, exact ? S_STAGE_CHUNK : S_STAGE_CHUNK_FAST, bound, fn, arg, n_out,
                     exact ? NULL : &moved);
    if (!err && moved) {
        sq->exact_from = first;
        return PW_ECANCELED;
    }
    if (!err && exact) {
        sq->exact_from = 0; /* were this rolled back, the fast pass would cancel again */
    }
    if (!err) {
        q = stmt(sq, S_STAGE_DEL, &err);
        if (q) {
            sqlite3_bind_int64(q, 1, bound);
            err = run(sq, q, "stage forget");
        }
    }
    return err;
}

static int sq_size_bytes(struct pw_store *st, uint64_t *out)
{
    int64_t v = 0;
    int err = one_int64(sq_of(st), S_SIZE, &v, "size");

    *out = v > 0 ? (uint64_t)v : 0;
    return err == PW_ENOENT ? 0 : err;
}

static int sq_resource_count(struct pw_store *st, uint64_t *out)
{
    int64_t v = 0;
    int err = one_int64(sq_of(st), S_RES_COUNT, &v, "resource count");

    *out = v > 0 ? (uint64_t)v : 0;
    return err == PW_ENOENT ? 0 : err;
}

/* Stage once the file outgrew the page cache (STAGE_FROM_BYTES). */
static int sq_stage_wanted(struct pw_store *st, bool *out)
{
    uint64_t size = 0;
    int err = sq_size_bytes(st, &size);

    *out = err == 0 && size >= STAGE_FROM_BYTES;
    if (*out) {
        pw_log_info(STORE, "store at %" PRIu64 " MiB: pages are staged and merged in order",
                    size >> 20);
    }
    return err;
}

/* The next merge once pages staged as many resources as are stored (MERGE_MIN..MERGE_MAX). */
static void sq_merge_policy(struct pw_store *st, size_t *merge_at, size_t *chunk)
{
    uint64_t stored = 0;

    if (sq_resource_count(st, &stored) < 0) {
        stored = 0; /* logged; the smallest merges are always right, only slower */
    }
    *merge_at = stored < MERGE_MIN ? MERGE_MIN : stored > MERGE_MAX ? MERGE_MAX : (size_t)stored;
    *chunk = MERGE_MAX;
}

static int sq_load_patient(struct pw_store *st, const char *patient, pw_store_resource_fn *fn,
                           void *arg)
{
    struct sq *sq = sq_of(st);
    int err = 0;
    sqlite3_stmt *q = stmt(sq, S_RES_OF_PATIENT, &err);
    int rc;

    if (!q) {
        return err;
    }
    bind_text(q, 1, patient);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct pw_store_resource r = col_resource(q);
        err = fn(arg, &r);
        if (err) {
            break;
        }
    }
    if (!err && rc != SQLITE_DONE) {
        err = fail(sq, rc, "load patient");
    }
    sqlite3_reset(q);
    return err;
}

static int sq_patient_schedule(struct pw_store *st, const char *patient, int64_t at)
{
    int err = 0;
    sqlite3_stmt *q = stmt(sq_of(st), at == PW_TIME_NONE ? S_PATIENT_DEL : S_PATIENT_SET, &err);

    if (!q) {
        return err;
    }
    bind_text(q, 1, patient);
    if (at != PW_TIME_NONE) {
        sqlite3_bind_int64(q, 2, at);
    }
    return run(sq_of(st), q, "patient schedule");
}

static int sq_patient_due_by(struct pw_store *st, const char *patient, int64_t at)
{
    int err = 0;
    sqlite3_stmt *q = stmt(sq_of(st), S_PATIENT_DUE_BY, &err);

    if (!q) {
        return err;
    }
    bind_text(q, 1, patient);
    sqlite3_bind_int64(q, 2, at);
    return run(sq_of(st), q, "patient due");
}

static int sq_patients_due(struct pw_store *st, int64_t now, size_t max, pw_store_patient_fn *fn,
                           void *arg)
{
    struct sq *sq = sq_of(st);
    int err = 0;
    sqlite3_stmt *q = stmt(sq, S_PATIENT_DUE, &err);
    int rc;

    if (!q) {
        return err;
    }
    sqlite3_bind_int64(q, 1, now);
    sqlite3_bind_int64(q, 2, max == 0 || max > INT64_MAX ? -1 : (int64_t)max);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        err = fn(arg, (const char *)sqlite3_column_text(q, 0));
        if (err) {
            break;
        }
    }
    if (!err && rc != SQLITE_DONE) {
        err = fail(sq, rc, "patients due");
    }
    sqlite3_reset(q);
    return err;
}

static int read_flag(sqlite3_stmt *q, struct pw_flag_rec *out)
{
    const char *state = (const char *)sqlite3_column_text(q, 3);

    memset(out, 0, sizeof(*out));
    col_copy(q, 0, out->key, sizeof(out->key));
    col_copy(q, 1, out->patient, sizeof(out->patient));
    col_copy(q, 2, out->rule, sizeof(out->rule));
    if (pw_flag_state_parse(state, &out->state) != 0) {
        pw_log_err(STORE, "flag map: unknown state '%s' for key %s", state ? state : "", out->key);
        return PW_ESTORE;
    }
    col_copy(q, 4, out->server_id, sizeof(out->server_id));
    col_copy(q, 5, out->version, sizeof(out->version));
    out->since = col_time(q, 6);
    out->updated = sqlite3_column_int64(q, 7);
    return col_dup(q, 8, &out->resource);
}

static int sq_flag_get(struct pw_store *st, const char *key, struct pw_flag_rec *out)
{
    struct sq *sq = sq_of(st);
    int err = 0;
    sqlite3_stmt *q = stmt(sq, S_FLAG_GET, &err);
    int rc;

    if (!q) {
        return err;
    }
    bind_text(q, 1, key);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        err = read_flag(q, out);
    } else {
        err = rc == SQLITE_DONE ? PW_ENOENT : fail(sq, rc, "flag get");
    }
    sqlite3_reset(q);
    return err;
}

static int sq_flag_put(struct pw_store *st, const struct pw_flag_rec *rec)
{
    int err = 0;
    sqlite3_stmt *q = stmt(sq_of(st), S_FLAG_PUT, &err);

    if (!q) {
        return err;
    }
    bind_text(q, 1, rec->key);
    bind_text(q, 2, rec->patient);
    bind_text(q, 3, rec->rule);
    bind_text(q, 4, pw_flag_state_name(rec->state));
    bind_text(q, 5, rec->server_id);
    bind_text(q, 6, rec->version);
    bind_time(q, 7, rec->since);
    sqlite3_bind_int64(q, 8, rec->updated);
    if (rec->resource) {
        bind_text(q, 9, rec->resource);
    }
    return run(sq_of(st), q, "flag put");
}

static int sq_flags_of_patient(struct pw_store *st, const char *patient, struct pw_flag_list *out)
{
    struct sq *sq = sq_of(st);
    int err = 0;
    sqlite3_stmt *q = stmt(sq, S_FLAG_OF_PATIENT, &err);
    int rc;

    if (!q) {
        return err;
    }
    bind_text(q, 1, patient);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (PW_ARRAY_GROW(out) != 0) {
            err = PW_ENOMEM;
            break;
        }
        err = read_flag(q, &out->v[out->n]);
        if (err) {
            pw_flag_rec_cleanup(&out->v[out->n]);
            break;
        }
        out->n++;
    }
    if (!err && rc != SQLITE_DONE) {
        err = fail(sq, rc, "flags of patient");
    }
    sqlite3_reset(q);
    return err;
}

static int read_row(sqlite3_stmt *q, struct pw_outbox_row *out)
{
    const char *op = (const char *)sqlite3_column_text(q, 4);
    const char *state = (const char *)sqlite3_column_text(q, 5);
    int err;

    memset(out, 0, sizeof(*out));
    out->id = sqlite3_column_int64(q, 0);
    col_copy(q, 1, out->key, sizeof(out->key));
    col_copy(q, 2, out->patient, sizeof(out->patient));
    col_copy(q, 3, out->rule, sizeof(out->rule));
    if (pw_outbox_op_parse(op, &out->op) != 0 || pw_outbox_state_parse(state, &out->state) != 0) {
        pw_log_err(STORE, "outbox row %" PRId64 ": unknown op or state", out->id);
        return PW_ESTORE;
    }
    out->attempts = (unsigned)sqlite3_column_int64(q, 7);
    out->next_try = sqlite3_column_int64(q, 8);
    out->created = sqlite3_column_int64(q, 9);
    out->updated = sqlite3_column_int64(q, 10);
    out->unknown = sqlite3_column_int(q, 11) != 0;
    out->last_status = (long)sqlite3_column_int64(q, 12);
    col_copy(q, 13, out->last_error, sizeof(out->last_error));
    col_copy(q, 15, out->type, sizeof(out->type));
    err = col_dup(q, 6, &out->payload);
    if (!err) {
        err = col_dup(q, 14, &out->outcome);
    }
    return err;
}

static int sq_outbox_enqueue(struct pw_store *st, struct pw_outbox_row *row)
{
    struct sq *sq = sq_of(st);
    int err = 0;
    bool typed = sq->schema >= 9;
    sqlite3_stmt *q = stmt(sq, typed ? S_OUTBOX_INS : S_OUTBOX_INS_V8, &err);

    if (!q) {
        return err;
    }
    if (!row->payload) {
        return PW_EINVAL;
    }
    bind_text(q, 1, row->key);
    bind_text(q, 2, row->patient);
    bind_text(q, 3, row->rule);
    bind_text(q, 4, pw_outbox_op_name(row->op));
    bind_text(q, 5, pw_outbox_state_name(row->state));
    bind_text(q, 6, row->payload);
    sqlite3_bind_int64(q, 7, row->attempts);
    sqlite3_bind_int64(q, 8, row->next_try);
    sqlite3_bind_int64(q, 9, row->created);
    sqlite3_bind_int64(q, 10, row->updated);
    sqlite3_bind_int(q, 11, row->unknown);
    sqlite3_bind_int64(q, 12, row->last_status);
    bind_text(q, 13, row->last_error);
    if (row->outcome) {
        bind_text(q, 14, row->outcome);
    }
    if (typed && row->type[0]) {
        bind_text(q, 15, row->type);
    }
    err = run(sq, q, "outbox enqueue");
    if (!err) {
        row->id = sqlite3_last_insert_rowid(sq->db);
    }
    return err;
}

static int sq_outbox_get(struct pw_store *st, int64_t id, struct pw_outbox_row *out)
{
    struct sq *sq = sq_of(st);
    int err = 0;
    sqlite3_stmt *q = stmt(sq, S_OUTBOX_GET, &err);
    int rc;

    if (!q) {
        return err;
    }
    sqlite3_bind_int64(q, 1, id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        err = read_row(q, out);
        if (err) {
            pw_outbox_row_cleanup(out);
        }
    } else {
        err = rc == SQLITE_DONE ? PW_ENOENT : fail(sq, rc, "outbox get");
    }
    sqlite3_reset(q);
    return err;
}

static int sq_outbox_update(struct pw_store *st, const struct pw_outbox_row *row)
{
    struct sq *sq = sq_of(st);
    int err = 0;
    sqlite3_stmt *q = stmt(sq, S_OUTBOX_UPD, &err);

    if (!q) {
        return err;
    }
    sqlite3_bind_int64(q, 1, row->id);
    bind_text(q, 2, pw_outbox_state_name(row->state));
    sqlite3_bind_int64(q, 3, row->attempts);
    sqlite3_bind_int64(q, 4, row->next_try);
    sqlite3_bind_int64(q, 5, row->updated);
    sqlite3_bind_int(q, 6, row->unknown);
    sqlite3_bind_int64(q, 7, row->last_status);
    bind_text(q, 8, row->last_error);
    if (row->outcome) {
        bind_text(q, 9, row->outcome);
    }
    err = run(sq, q, "outbox update");
    if (!err && sqlite3_changes(sq->db) == 0) {
        err = PW_ENOENT;
    }
    return err;
}

static int sq_outbox_list(struct pw_store *st, int state, pw_store_outbox_fn *fn, void *arg)
{
    struct sq *sq = sq_of(st);
    int err = 0;
    sqlite3_stmt *q = stmt(sq, state < 0 ? S_OUTBOX_ALL : S_OUTBOX_BY_STATE, &err);
    int rc;

    if (!q) {
        return err;
    }
    if (state >= 0) {
        bind_text(q, 1, pw_outbox_state_name((enum pw_outbox_state)state));
    }
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct pw_outbox_row row;

        err = read_row(q, &row);
        if (!err) {
            err = fn(arg, &row);
        }
        pw_outbox_row_cleanup(&row);
        if (err) {
            break;
        }
    }
    if (!err && rc != SQLITE_DONE) {
        err = fail(sq, rc, "outbox list");
    }
    sqlite3_reset(q);
    return err;
}

static int sq_outbox_due(struct pw_store *st, int64_t now_ms, int64_t *ids, size_t max, size_t *n)
{
    struct sq *sq = sq_of(st);
    int err = 0;
    sqlite3_stmt *q = stmt(sq, S_OUTBOX_DUE, &err);
    int rc = SQLITE_DONE;

    *n = 0;
    if (!q) {
        return err;
    }
    sqlite3_bind_int64(q, 1, now_ms);
    sqlite3_bind_int64(q, 2, (int64_t)max);
    while (*n < max && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        ids[(*n)++] = sqlite3_column_int64(q, 0);
    }
    if (*n < max && rc != SQLITE_DONE) {
        err = fail(sq, rc, "outbox due");
    }
    sqlite3_reset(q);
    return err;
}

static int sq_outbox_next_due(struct pw_store *st, int64_t *at_ms)
{
    return one_int64(sq_of(st), S_OUTBOX_NEXT, at_ms, "outbox next");
}

static int sq_operator_log(struct pw_store *st, struct pw_operator_action *act)
{
    struct sq *sq = sq_of(st);
    int err = 0;
    sqlite3_stmt *q = stmt(sq, S_OP_INS, &err);

    if (!q) {
        return err;
    }
    sqlite3_bind_int64(q, 1, act->at);
    bind_text(q, 2, act->who);
    bind_text(q, 3, act->action);
    sqlite3_bind_int64(q, 4, act->outbox_id);
    bind_text(q, 5, act->detail);
    err = run(sq, q, "operator log");
    if (!err) {
        act->id = sqlite3_last_insert_rowid(sq->db);
    }
    return err;
}

static int sq_operator_unaudited(struct pw_store *st, pw_store_operator_fn *fn, void *arg)
{
    struct sq *sq = sq_of(st);
    int err = 0;
    sqlite3_stmt *q = stmt(sq, S_OP_PENDING, &err);
    int rc;

    if (!q) {
        return err;
    }
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct pw_operator_action act = {
            .id = sqlite3_column_int64(q, 0),
            .at = sqlite3_column_int64(q, 1),
            .outbox_id = sqlite3_column_int64(q, 4),
        };

        col_copy(q, 2, act.who, sizeof(act.who));
        col_copy(q, 3, act.action, sizeof(act.action));
        col_copy(q, 5, act.detail, sizeof(act.detail));
        err = fn(arg, &act);
        if (err) {
            break;
        }
    }
    if (!err && rc != SQLITE_DONE) {
        err = fail(sq, rc, "operator actions");
    }
    sqlite3_reset(q);
    return err;
}

static int sq_operator_audited(struct pw_store *st, int64_t id)
{
    int err = 0;
    sqlite3_stmt *q = stmt(sq_of(st), S_OP_DONE, &err);

    if (!q) {
        return err;
    }
    sqlite3_bind_int64(q, 1, id);
    return run(sq_of(st), q, "operator audited");
}

static int sq_dq_of_patient(struct pw_store *st, const char *patient, pw_store_dq_fn *fn, void *arg)
{
    struct sq *sq = sq_of(st);
    int err = 0;
    sqlite3_stmt *q = stmt(sq, S_DQ_OF_PATIENT, &err);
    int rc;

    if (!q) {
        return err;
    }
    bind_text(q, 1, patient);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        err = fn(arg, (const char *)sqlite3_column_text(q, 0));
        if (err) {
            break;
        }
    }
    if (!err && rc != SQLITE_DONE) {
        err = fail(sq, rc, "data-quality events of patient");
    }
    sqlite3_reset(q);
    return err;
}

static int sq_dq_set(struct pw_store *st, const char *patient, const char *key, bool present)
{
    int err = 0;
    sqlite3_stmt *q = stmt(sq_of(st), present ? S_DQ_PUT : S_DQ_DEL, &err);

    if (!q) {
        return err;
    }
    bind_text(q, 1, patient);
    bind_text(q, 2, key);
    return run(sq_of(st), q, "data-quality event");
}

const struct pw_store_ops pw_store_sqlite = {
    .adapter = {.name = "sqlite",
                .config_map = sq_map,
                .ctx_size = sizeof(struct sq),
                .help = "SQLite (WAL mode), one file"},
    .open = sq_open,
    .close = sq_close,
    .schema_version = sq_schema_version,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .cursor_get = sq_cursor_get,
    .cursor_set = sq_cursor_set,
    .cursors_reset = sq_cursors_reset,
    .meta_get = sq_meta_get,
    .meta_set = sq_meta_set,
    .put_resource = sq_put_resource,
    .stage_resource = sq_stage_resource,
    .merge_staged = sq_merge_staged,
    .size_bytes = sq_size_bytes,
    .resource_count = sq_resource_count,
    .load_patient = sq_load_patient,
    .patient_schedule = sq_patient_schedule,
    .patient_due_by = sq_patient_due_by,
    .patients_due = sq_patients_due,
    .flag_get = sq_flag_get,
    .flag_put = sq_flag_put,
    .flags_of_patient = sq_flags_of_patient,
    .outbox_enqueue = sq_outbox_enqueue,
    .outbox_get = sq_outbox_get,
    .outbox_update = sq_outbox_update,
    .outbox_list = sq_outbox_list,
    .outbox_due = sq_outbox_due,
    .outbox_next_due = sq_outbox_next_due,
    .operator_log = sq_operator_log,
    .operator_unaudited = sq_operator_unaudited,
    .operator_audited = sq_operator_audited,
    .release_memory = sq_release_memory,
    .backup = sq_backup,
    .stage_wanted = sq_stage_wanted,
    .merge_policy = sq_merge_policy,
    .dq_of_patient = sq_dq_of_patient,
    .dq_set = sq_dq_set,
};
