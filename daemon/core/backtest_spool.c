/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The backtest's spool (backtest.h): resources by patient in a temporary SQLite file, filled from
 * the input (pw_bt_spool_read, pw_bt_spool_add) or a --jobs run's part files (backtest_parts.c),
 * and a patient read back at a time (pw_bt_spool_each). The input reader: backtest_input.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/backtest.h"
#include "core/backtest_spool_int.h"
#include "painwatch/err.h"
#include "painwatch/jarena.h"
#include "painwatch/limits.h"

enum {
    S_PUT,    /* a patient's resource (with an id): the later version wins */
    S_PUT_NO, /* a resource without id: always kept */
    S_SHARED, /* a resource no patient owns, by "Type/id" or fullUrl: the later input wins */
    S_EACH,   /* the patients' resources, patient by patient */
    S_GET,    /* a shared resource */
    S_COUNT_P,
    S_N
};

static const char *const sql[S_N] = {
    [S_PUT] =
        "INSERT INTO res(key, patient, seq, full_url, vnum, upd, json) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(key) DO UPDATE SET "
        "patient = excluded.patient, seq = excluded.seq, full_url = excluded.full_url, "
        "vnum = excluded.vnum, upd = excluded.upd, json = excluded.json WHERE CASE "
        "WHEN excluded.vnum IS NOT NULL AND res.vnum IS NOT NULL THEN excluded.vnum > res.vnum "
        "WHEN excluded.upd IS NOT NULL AND res.upd IS NOT NULL THEN excluded.upd > res.upd "
        "ELSE 1 END",
    [S_PUT_NO] = "INSERT INTO res(key, patient, seq, full_url, vnum, upd, json) "
                 "VALUES('#' || ?3, ?2, ?3, ?4, NULL, NULL, ?7)",
    [S_SHARED] = "INSERT INTO shared(ref, seq, json) VALUES(?1, ?2, ?3) ON CONFLICT(ref) DO UPDATE "
                 "SET seq = excluded.seq, json = excluded.json WHERE excluded.seq > shared.seq",
    [S_EACH] = "SELECT patient, full_url, json FROM res ORDER BY patient, seq",
    [S_GET] = "SELECT json FROM shared WHERE ref = ?1",
    [S_COUNT_P] = "SELECT count(DISTINCT patient) FROM res",
};

struct pw_bt_spool {
    sqlite3 *db;
    sqlite3_stmt *st[S_N];
    size_t n_files; /* files read by pw_bt_spool_add (their input order continues) */
    unsigned types;
    int64_t first, last;
    bool in_tx;
    bool indexed; /* res_patient exists (built once, after the last insert: faster than kept) */
};

static int db_exec(struct pw_bt_spool *sp, const char *q)
{
    return sqlite3_exec(sp->db, q, NULL, NULL, NULL) == SQLITE_OK ? 0 : PW_EIO;
}

int pw_bt_spool_new(struct pw_bt_spool **out)
{
    struct pw_bt_spool *sp = calloc(1, sizeof(*sp));
    int rc;

    *out = NULL;
    if (!sp) {
        return PW_ENOMEM;
    }
    sp->first = sp->last = PW_TIME_NONE;
    /* "": a private on-disk database in the temporary directory, deleted on close. */
    rc = sqlite3_open_v2("", &sp->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) == SQLITE_OK
             ? 0
             : PW_EIO;
    if (rc == 0) {
        rc = db_exec(sp, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; "
                         "PRAGMA cache_size=-16384; PRAGMA temp_store=FILE; "
                         "CREATE TABLE res(key TEXT PRIMARY KEY, patient TEXT NOT NULL, "
                         "seq INTEGER NOT NULL, full_url TEXT, vnum INTEGER, upd INTEGER, "
                         "json TEXT NOT NULL); "
                         "CREATE TABLE shared(ref TEXT PRIMARY KEY, seq INTEGER NOT NULL, "
                         "json TEXT NOT NULL);");
    }
    for (int i = 0; i < S_N && rc == 0; i++) {
        rc = sqlite3_prepare_v2(sp->db, sql[i], -1, &sp->st[i], NULL) == SQLITE_OK ? 0 : PW_EIO;
    }
    if (rc == 0) {
        rc = db_exec(sp, "BEGIN");
        sp->in_tx = rc == 0;
    }
    if (rc) {
        pw_bt_spool_free(sp);
        return rc;
    }
    *out = sp;
    return 0;
}

void pw_bt_spool_free(struct pw_bt_spool *sp)
{
    if (!sp) {
        return;
    }
    for (int i = 0; i < S_N; i++) {
        sqlite3_finalize(sp->st[i]);
    }
    sqlite3_close(sp->db);
    free(sp);
}

unsigned pw_bt_spool_types(const struct pw_bt_spool *sp)
{
    return sp->types;
}

void pw_bt_spool_span(const struct pw_bt_spool *sp, int64_t *first, int64_t *last)
{
    *first = sp->first;
    *last = sp->last;
}

void pw_bt_span_add(int64_t *first, int64_t *last, int64_t t)
{
    if (t == PW_TIME_NONE) {
        return;
    }
    if (*first == PW_TIME_NONE || t < *first) {
        *first = t;
    }
    if (*last == PW_TIME_NONE || t > *last) {
        *last = t;
    }
}

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : rc == SQLITE_FULL ? PW_ENOSPC : PW_EIO;
}

int pw_bt_db_put_shared(struct pw_bt_spool *sp, int64_t seq, const char *ref, const char *text,
                        size_t len)
{
    sqlite3_stmt *st = sp->st[S_SHARED];

    sqlite3_bind_text(st, 1, ref, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_text(st, 3, text, (int)len, SQLITE_STATIC);
    return step_done(st);
}

int pw_bt_db_put(struct pw_bt_spool *sp, const struct rec *r)
{
    sqlite3_stmt *st = sp->st[r->key ? S_PUT : S_PUT_NO];

    if (r->key) {
        sqlite3_bind_text(st, 1, r->key, -1, SQLITE_STATIC);
        if (r->has_vnum) {
            sqlite3_bind_int64(st, 5, r->vnum);
        }
        if (r->has_upd) {
            sqlite3_bind_int64(st, 6, r->upd);
        }
    }
    sqlite3_bind_text(st, 2, r->patient, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, r->seq);
    if (r->full_url) {
        sqlite3_bind_text(st, 4, r->full_url, -1, SQLITE_STATIC);
    }
    sqlite3_bind_text(st, 7, r->text, (int)r->len, SQLITE_STATIC);
    return step_done(st);
}

/* ---- the input into the spool (read by backtest_input.c) ---------------------------------- */

/* The types and period read by @p rd, into @p sp. */
void pw_bt_merge_sum(struct pw_bt_spool *sp, const struct part_sum *s)
{
    sp->types |= s->types;
    pw_bt_span_add(&sp->first, &sp->last, s->first);
    pw_bt_span_add(&sp->first, &sp->last, s->last);
}

int pw_bt_spool_read(struct pw_bt_spool *sp, const struct pw_bt_input *in, char *err, size_t errlen)
{
    struct reader rd = {.sp = sp, .first = PW_TIME_NONE, .last = PW_TIME_NONE};
    int rc = pw_bt_read_part(&rd, in, 0, 1, sp->n_files, err, errlen);

    sp->n_files += in->n;
    free(rd.dump);
    pw_bt_merge_sum(sp, &(struct part_sum){.types = rd.types, .first = rd.first, .last = rd.last});
    return rc;
}

int pw_bt_spool_add(struct pw_bt_spool *sp, const char *path, char *err, size_t errlen)
{
    struct pw_bt_input *in = NULL;
    int rc = pw_bt_input_new(&in, &path, 1);

    if (rc < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rc = pw_bt_spool_read(sp, in, err, errlen);
    pw_bt_input_free(in);
    return rc;
}

size_t pw_bt_spool_patients(struct pw_bt_spool *sp)
{
    sqlite3_stmt *st = sp->st[S_COUNT_P];
    size_t n = 0;

    if (sqlite3_step(st) == SQLITE_ROW) {
        n = (size_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_reset(st);
    return n;
}

/* ---- reading a patient back ------------------------------------------------------------- */

struct patient_refs {
    struct pw_bt_spool *sp;
    struct pw_fhir_index *idx; /* the patient's own resources */
    json_t *cache;             /* shared resources looked up for this patient (owned) */
};

static const json_t *spool_resolve(const struct pw_resolver *self, const char *reference)
{
    struct patient_refs *pr = self->arg;
    const json_t *hit = pw_fhir_index_get(pr->idx, reference);
    char rel[PW_REF_MAX];
    const char *ref = reference;
    sqlite3_stmt *st = pr->sp->st[S_GET];
    json_t *res = NULL;

    if (hit || !reference) {
        return hit;
    }
    if ((hit = json_object_get(pr->cache, reference)) != NULL) {
        return json_is_null(hit) ? NULL : hit;
    }
    if (strncmp(reference, "urn:", 4) != 0 &&
        pw_fhir_ref_relative(reference, rel, sizeof(rel)) == 0) {
        ref = rel;
    }
    sqlite3_bind_text(st, 1, ref, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
        res = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    /* Remembered either way: a Medication read once serves every order of the patient. */
    json_object_set_new(pr->cache, reference, res ? res : json_null());
    return res;
}

/* A patient's rows as read from the spool: texts and fullUrls, NUL-terminated, in one buffer. */
struct row {
    size_t text, text_len, url; /* offsets into buf; url SIZE_MAX: none */
};

struct rows {
    char *buf;
    size_t len, cap;
    struct row *v;
    size_t n, cap_v;
};

static int rows_copy(struct rows *r, const char *s, size_t n, size_t *at)
{
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1) {
            cap *= 2;
        }
        char *grown = realloc(r->buf, cap);
        if (!grown) {
            return PW_ENOMEM;
        }
        r->buf = grown;
        r->cap = cap;
    }
    *at = r->len;
    memcpy(r->buf + r->len, s, n);
    r->buf[r->len + n] = '\0';
    r->len += n + 1;
    return 0;
}

static int rows_push(struct rows *r, const char *text, size_t len, const char *url)
{
    struct row row = {.text_len = len, .url = SIZE_MAX};

    if (r->n == r->cap_v) {
        size_t cap = r->cap_v ? r->cap_v * 2 : 64;
        struct row *grown = realloc(r->v, cap * sizeof(*grown));
        if (!grown) {
            return PW_ENOMEM;
        }
        r->v = grown;
        r->cap_v = cap;
    }
    if (rows_copy(r, text, len, &row.text) < 0 ||
        (url && rows_copy(r, url, strlen(url), &row.url) < 0)) {
        return PW_ENOMEM;
    }
    r->v[r->n++] = row;
    return 0;
}

/*
 * The patient's resources parsed (into one page of jansson's arena when installed: dropped whole
 * afterwards, nothing of them outlives the call), indexed, and handed to @p fn.
 */
static int flush_patient(const char *patient, struct rows *rows, struct patient_refs *pr,
                         pw_bt_patient_fn *fn, void *arg)
{
    struct pw_resolver refs = {.resolve = spool_resolve, .arg = pr};
    struct pw_jarena_page pg;
    json_t *list;
    int rc = pw_fhir_index_new(&pr->idx) < 0 ? PW_ENOMEM : 0;
    bool arena = pw_jarena_page_begin(&pg) == 0;

    list = json_array();
    for (size_t i = 0; i < rows->n && rc == 0 && list; i++) {
        json_t *res = json_loadb(rows->buf + rows->v[i].text, rows->v[i].text_len, 0, NULL);
        /* the spool only holds what jansson read or wrote */
        rc = res && json_array_append_new(list, res) == 0 ? 0 : PW_ENOMEM;
    }
    if (arena) {
        pw_jarena_end();
    }
    rc = rc ? rc : list ? 0 : PW_ENOMEM;
    for (size_t i = 0; i < rows->n && rc == 0; i++) {
        const struct row *r = &rows->v[i];
        rc = pw_fhir_index_add(pr->idx, r->url == SIZE_MAX ? NULL : rows->buf + r->url,
                               json_array_get(list, i)) < 0
                 ? PW_ENOMEM
                 : 0;
    }
    rc = rc ? rc : fn(arg, patient, list, &refs);
    json_object_clear(pr->cache);
    pw_fhir_index_free(pr->idx);
    pr->idx = NULL;
    pw_jarena_page_drop(&pg, list);
    rows->n = rows->len = 0;
    return rc;
}

int pw_bt_spool_each(struct pw_bt_spool *sp, pw_bt_patient_fn *fn, void *arg)
{
    sqlite3_stmt *st = sp->st[S_EACH];
    struct patient_refs pr = {.sp = sp, .cache = json_object()};
    struct rows rows = {0};
    char current[PW_REF_MAX] = "";
    int rc = 0, step = SQLITE_DONE;

    if (sp->in_tx) {
        sp->in_tx = false;
        if (db_exec(sp, "COMMIT") < 0) {
            rc = PW_EIO;
        }
    }
    if (rc == 0 && !sp->indexed) {
        /* The sort that builds the index takes its own memory, as much as the page cache:
         * kept small (more runs to merge, read in order) so the spool's memory stays one cache. */
        rc = db_exec(sp, "PRAGMA cache_size=-2048; CREATE INDEX res_patient ON res(patient, seq); "
                         "PRAGMA cache_size=-16384");
        sp->indexed = rc == 0;
    }
    if (!pr.cache) {
        rc = PW_ENOMEM;
    }
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *patient = (const char *)sqlite3_column_text(st, 0);
        const char *url = (const char *)sqlite3_column_text(st, 1);
        const char *text = (const char *)sqlite3_column_text(st, 2);

        if (!patient || !text) {
            rc = PW_ENOMEM;
            break;
        }
        if (current[0] && strcmp(current, patient) != 0) {
            rc = flush_patient(current, &rows, &pr, fn, arg);
        }
        pw_fhir_copy(current, sizeof(current), patient);
        rc = rc ? rc : rows_push(&rows, text, (size_t)sqlite3_column_bytes(st, 2), url);
    }
    if (rc == 0 && step != SQLITE_DONE) {
        rc = PW_EIO;
    }
    if (rc == 0 && current[0]) {
        rc = flush_patient(current, &rows, &pr, fn, arg);
    }
    sqlite3_reset(st);
    json_decref(pr.cache);
    free(rows.buf);
    free(rows.v);
    return rc;
}
