/* SPDX-License-Identifier: Apache-2.0 */
/* The backtest's input spool: resources by patient in a temporary SQLite file (backtest.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "core/backtest.h"
#include "painwatch/err.h"
#include "painwatch/limits.h"
#include "painwatch/normalize.h"

/* Bundles nested in bundles are unpacked this deep. */
#define SPOOL_BUNDLE_DEPTH_MAX 4

enum {
    S_PUT,    /* a patient's resource (with an id): the later version wins */
    S_PUT_NO, /* a resource without id: always kept */
    S_SHARED, /* a resource no patient owns, by "Type/id" or fullUrl */
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
    [S_SHARED] = "INSERT OR REPLACE INTO shared(ref, json) VALUES(?1, ?2)",
    [S_EACH] = "SELECT patient, full_url, json FROM res ORDER BY patient, seq",
    [S_GET] = "SELECT json FROM shared WHERE ref = ?1",
    [S_COUNT_P] = "SELECT count(DISTINCT patient) FROM res",
};

struct pw_bt_spool {
    sqlite3 *db;
    sqlite3_stmt *st[S_N];
    int64_t seq;
    unsigned types;
    int64_t first, last;
    bool in_tx;
    unsigned shard, n_shards; /* keep only the patients of this shard (n_shards 0 or 1: all) */
};

/* Whether @p patient belongs to @p sp's shard: FNV-1a of the reference, modulo the shards. */
static bool in_shard(const struct pw_bt_spool *sp, const char *patient)
{
    uint32_t h = 2166136261u;

    if (sp->n_shards <= 1) {
        return true;
    }
    for (const unsigned char *p = (const unsigned char *)patient; *p; p++) {
        h = (h ^ *p) * 16777619u;
    }
    return h % sp->n_shards == sp->shard;
}

void pw_bt_spool_shard(struct pw_bt_spool *sp, unsigned shard, unsigned n_shards)
{
    sp->shard = shard;
    sp->n_shards = n_shards;
}

/* The resources normalize reads are the ones a patient is made of (not Claims, Provenance). */
static bool patient_type(const char *type)
{
    static const char *const types[] = {"Patient",
                                        "Observation",
                                        "Condition",
                                        "MedicationRequest",
                                        "ServiceRequest",
                                        "Encounter",
                                        "MedicationAdministration",
                                        "Goal",
                                        "CarePlan"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(type, types[i]) == 0) {
            return true;
        }
    }
    return false;
}

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
                         "CREATE INDEX res_patient ON res(patient, seq); "
                         "CREATE TABLE shared(ref TEXT PRIMARY KEY, json TEXT NOT NULL);");
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

/* The clinical times a resource carries (for the default period): the first one found. */
static int64_t clinical_time(const json_t *r)
{
    static const char *const direct[] = {"effectiveDateTime", "effectiveInstant", "issued",
                                         "authoredOn",        "onsetDateTime",    "recordedDate",
                                         "occurrenceDateTime"};
    static const char *const periods[] = {"effectivePeriod", "period", "occurrencePeriod"};
    int64_t t;

    for (size_t i = 0; i < sizeof(direct) / sizeof(direct[0]); i++) {
        if (pw_fhir_parse_time(pw_fhir_str(r, direct[i]), &t) == 0) {
            return t;
        }
    }
    for (size_t i = 0; i < sizeof(periods) / sizeof(periods[0]); i++) {
        if (pw_fhir_parse_time(pw_fhir_str(json_object_get(r, periods[i]), "start"), &t) == 0) {
            return t;
        }
    }
    return PW_TIME_NONE;
}

static void note_time(struct pw_bt_spool *sp, const json_t *r)
{
    int64_t t = clinical_time(r);

    if (t == PW_TIME_NONE) {
        return;
    }
    if (sp->first == PW_TIME_NONE || t < sp->first) {
        sp->first = t;
    }
    if (sp->last == PW_TIME_NONE || t > sp->last) {
        sp->last = t;
    }
}

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : rc == SQLITE_FULL ? PW_ENOSPC : PW_EIO;
}

static int put_shared(struct pw_bt_spool *sp, const char *ref, const char *text)
{
    sqlite3_stmt *st = sp->st[S_SHARED];

    sqlite3_bind_text(st, 1, ref, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
    return step_done(st);
}

/* A version number (versionId that is a whole number) or, bound NULL, none. */
static void bind_version(sqlite3_stmt *st, const json_t *res)
{
    const json_t *meta = json_object_get(res, "meta");
    const char *v = pw_fhir_str(meta, "versionId");
    int64_t upd;
    char *end;

    if (v && *v) {
        long long n = strtoll(v, &end, 10);
        if (!*end) {
            sqlite3_bind_int64(st, 5, n);
        }
    }
    if (pw_fhir_parse_time(pw_fhir_str(meta, "lastUpdated"), &upd) == 0) {
        sqlite3_bind_int64(st, 6, upd);
    }
}

/*
 * Spool one resource (not a Bundle). @p refs resolves urn:uuid subjects within its Bundle.
 * @return 0 or an error code.
 */
static int put_resource(struct pw_bt_spool *sp, const json_t *res, const char *full_url,
                        const struct pw_resolver *refs)
{
    const char *type = pw_fhir_str(res, "resourceType");
    const char *id = pw_fhir_str(res, "id");
    char patient[PW_REF_MAX], key[PW_REF_MAX];
    char *text;
    int rc = 0;

    sp->types |= pw_res_type_bit(type);
    if (!patient_type(type) || pw_normalize_patient(res, refs, patient, sizeof(patient)) < 0) {
        /* Not a patient's: kept for references (Medication) by Type/id and fullUrl. */
        if (!id && !full_url) {
            return 0;
        }
        text = json_dumps(res, JSON_COMPACT);
        if (!text) {
            return PW_ENOMEM;
        }
        if (id) {
            snprintf(key, sizeof(key), "%s/%s", type, id);
            rc = put_shared(sp, key, text);
        }
        if (rc == 0 && full_url) {
            rc = put_shared(sp, full_url, text);
        }
        free(text);
        return rc;
    }
    note_time(sp, res);
    if (!in_shard(sp, patient)) {
        return 0; /* another worker's patient (types and period are noted for all) */
    }
    text = json_dumps(res, JSON_COMPACT);
    if (!text) {
        return PW_ENOMEM;
    }
    sqlite3_stmt *st = sp->st[id ? S_PUT : S_PUT_NO];
    if (id) {
        snprintf(key, sizeof(key), "%s/%s", type, id);
        sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
        bind_version(st, res);
    }
    sqlite3_bind_text(st, 2, patient, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, ++sp->seq);
    if (full_url) {
        sqlite3_bind_text(st, 4, full_url, -1, SQLITE_TRANSIENT);
    }
    sqlite3_bind_text(st, 7, text, -1, SQLITE_TRANSIENT);
    rc = step_done(st);
    free(text);
    return rc;
}

/* One resource or Bundle read from @p file at @p where ("line 3", "top level"). */
static int add_json(struct pw_bt_spool *sp, json_t *res, const char *full_url,
                    const struct pw_resolver *refs, const char *file, const char *where, int depth,
                    char *err, size_t errlen)
{
    const char *type = pw_fhir_str(res, "resourceType");
    const char *id = pw_fhir_str(res, "id");
    int rc;

    if (!json_is_object(res) || !type) {
        char what[PW_ID_MAX + 8] = "";
        if (id) {
            snprintf(what, sizeof(what), " (id %s)", id);
        }
        snprintf(err, errlen, "%s: %s%s: not a FHIR resource (no resourceType)", file, where, what);
        return -1;
    }
    if (strcmp(type, "Bundle") != 0) {
        rc = put_resource(sp, res, full_url, refs);
        if (rc < 0) {
            snprintf(err, errlen, "%s: %s: %s", file, where, pw_strerror(rc));
            return -1;
        }
        return 0;
    }
    if (depth >= SPOOL_BUNDLE_DEPTH_MAX) {
        snprintf(err, errlen, "%s: %s: Bundle/%s nested too deep", file, where,
                 id ? id : "(no id)");
        return -1;
    }
    /* The Bundle's own fullUrls resolve its urn:uuid subjects. */
    struct pw_fhir_index *idx = NULL;
    struct pw_resolver bundle_refs;
    const json_t *entries = json_object_get(res, "entry");
    size_t i;
    json_t *e;

    if (pw_fhir_index_new(&idx) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    json_array_foreach(entries, i, e)
    {
        json_t *r = json_object_get(e, "resource");
        if (json_is_object(r) && pw_fhir_index_add(idx, pw_fhir_str(e, "fullUrl"), r) < 0) {
            pw_fhir_index_free(idx);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    pw_fhir_index_resolver(idx, &bundle_refs);
    rc = 0;
    json_array_foreach(entries, i, e)
    {
        json_t *r = json_object_get(e, "resource");
        char here[PW_REF_MAX + 96];

        if (!r) {
            continue; /* request-only or response-only entries carry no resource */
        }
        snprintf(here, sizeof(here), "%s, Bundle/%s entry %zu", where, id ? id : "(no id)", i);
        rc = add_json(sp, r, pw_fhir_str(e, "fullUrl"), &bundle_refs, file, here, depth + 1, err,
                      errlen);
        if (rc < 0) {
            break;
        }
    }
    pw_fhir_index_free(idx);
    return rc;
}

static bool blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!strchr(" \t\r\n", p[i])) {
            return false;
        }
    }
    return true;
}

/* One line of NDJSON (@p line_no counts from 1). */
static int add_line(struct pw_bt_spool *sp, const char *file, size_t line_no, const char *p,
                    size_t n, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *r;
    char where[48];
    int rc;

    if (line_no == 1 && n >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
        p += 3; /* a UTF-8 byte order mark (some exports write one) */
        n -= 3;
    }
    if (blank(p, n)) {
        return 0;
    }
    r = json_loadb(p, n, 0, &jerr);
    if (!r) {
        snprintf(err, errlen, "%s:%zu:%d: %s", file, line_no, jerr.column, jerr.text);
        return -1;
    }
    snprintf(where, sizeof(where), "line %zu", line_no);
    rc = add_json(sp, r, NULL, NULL, file, where, 0, err, errlen);
    json_decref(r);
    return rc;
}

/* NDJSON, streamed: one line in memory at a time. */
static int add_ndjson(struct pw_bt_spool *sp, const char *file, FILE *f, char *err, size_t errlen)
{
    char *line = NULL;
    size_t cap = 0, line_no = 0;
    ssize_t n;
    int rc = 0;

    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        line_no++;
        if ((size_t)n > PW_INPUT_FILE_MAX) {
            snprintf(err, errlen, "%s:%zu: a line longer than %u bytes", file, line_no,
                     PW_INPUT_FILE_MAX);
            rc = -1;
            break;
        }
        rc = add_line(sp, file, line_no, line, (size_t)n, err, errlen);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "%s: read error", file);
        rc = -1;
    }
    free(line);
    return rc;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Documents up to this size are read whole and parsed from memory. */
#define SPOOL_DOCUMENT_IN_MEMORY_MAX (64u << 20)

/* @p f (at its start) whole into *@p buf when it is at most SPOOL_DOCUMENT_IN_MEMORY_MAX bytes,
 * else (or on a read error) -1 with @p f back at its start. */
static int read_small(FILE *f, char **buf, size_t *len)
{
    struct stat st;

    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
        (uint64_t)st.st_size > SPOOL_DOCUMENT_IN_MEMORY_MAX) {
        return -1;
    }
    *buf = malloc((size_t)st.st_size + 1);
    if (!*buf) {
        return -1;
    }
    *len = fread(*buf, 1, (size_t)st.st_size, f);
    if (ferror(f) || fgetc(f) != EOF) {
        free(*buf);
        *buf = NULL;
        rewind(f);
        return -1;
    }
    return 0;
}

/*
 * A .json file: one document (a Bundle, read whole: the size of the file bounds it) or, when more
 * follows the first value, NDJSON after all.
 */
static int add_document(struct pw_bt_spool *sp, const char *file, FILE *f, char *err, size_t errlen)
{
    json_error_t jerr;
    char *buf = NULL;
    size_t len = 0;
    json_t *root;
    int rc, c = EOF;

    /* Parsed from memory when small enough (jansson's file reader takes a byte at a time). */
    if (read_small(f, &buf, &len) == 0) {
        root = json_loadb(buf, len, JSON_DISABLE_EOF_CHECK, &jerr);
        if (root && jerr.position >= 0) {
            for (size_t i = (size_t)jerr.position; i < len && c == EOF; i++) {
                c = strchr(" \t\r\n", buf[i]) ? EOF : (unsigned char)buf[i];
            }
        }
        free(buf);
    } else {
        root = json_loadf(f, JSON_DISABLE_EOF_CHECK, &jerr);
        while (root && (c = fgetc(f)) != EOF && strchr(" \t\r\n", c)) {
        }
    }
    if (!root) {
        snprintf(err, errlen, "%s:%d:%d: %s", file, jerr.line, jerr.column, jerr.text);
        return -1;
    }
    if (c != EOF) {
        json_decref(root);
        rewind(f);
        return add_ndjson(sp, file, f, err, errlen);
    }
    rc = add_json(sp, root, NULL, NULL, file, "top level", 0, err, errlen);
    json_decref(root);
    return rc;
}

static int add_file(struct pw_bt_spool *sp, const char *file, bool ndjson, char *err, size_t errlen)
{
    FILE *f = fopen(file, "rb");
    int rc;

    if (!f) {
        snprintf(err, errlen, "%s: %s", file, strerror(errno));
        return -1;
    }
    rc = ndjson ? add_ndjson(sp, file, f, err, errlen) : add_document(sp, file, f, err, errlen);
    fclose(f);
    return rc;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A Bulk Data export: every *.ndjson in the directory, in name order (deterministic). */
static int add_dir(struct pw_bt_spool *sp, const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    if (!d) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL && rc == 0) {
        if (!ends_with(de->d_name, ".ndjson")) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, cap * sizeof(*names));
            if (!grown) {
                rc = -1;
                break;
            }
            names = grown;
        }
        names[n] = malloc(strlen(dir) + strlen(de->d_name) + 2);
        if (!names[n]) {
            rc = -1;
            break;
        }
        sprintf(names[n], "%s/%s", dir, de->d_name);
        n++;
    }
    closedir(d);
    if (rc < 0) {
        snprintf(err, errlen, "out of memory");
    } else if (n == 0) {
        snprintf(err, errlen, "%s: no *.ndjson files (not a Bulk Data export directory)", dir);
        rc = -1;
    }
    if (n > 1) {
        qsort(names, n, sizeof(*names), cmp_name);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = add_file(sp, names[i], true, err, errlen);
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    return rc;
}

int pw_bt_spool_add(struct pw_bt_spool *sp, const char *path, char *err, size_t errlen)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        return add_dir(sp, path, err, errlen);
    }
    return add_file(sp, path, ends_with(path, ".ndjson"), err, errlen);
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

static int flush_patient(const char *patient, json_t *list, struct patient_refs *pr,
                         pw_bt_patient_fn *fn, void *arg)
{
    struct pw_resolver refs = {.resolve = spool_resolve, .arg = pr};
    int rc = fn(arg, patient, list, &refs);

    json_array_clear(list);
    json_object_clear(pr->cache);
    pw_fhir_index_free(pr->idx);
    pr->idx = NULL;
    return rc;
}

int pw_bt_spool_each(struct pw_bt_spool *sp, pw_bt_patient_fn *fn, void *arg)
{
    sqlite3_stmt *st = sp->st[S_EACH];
    struct patient_refs pr = {.sp = sp, .cache = json_object()};
    json_t *list = json_array();
    char current[PW_REF_MAX] = "";
    int rc = 0, step = SQLITE_DONE;

    if (sp->in_tx) {
        sp->in_tx = false;
        if (db_exec(sp, "COMMIT") < 0) {
            rc = PW_EIO;
        }
    }
    if (!list || !pr.cache) {
        rc = PW_ENOMEM;
    }
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *patient = (const char *)sqlite3_column_text(st, 0);
        const char *url = (const char *)sqlite3_column_text(st, 1);
        json_t *res = json_loads((const char *)sqlite3_column_text(st, 2), 0, NULL);

        if (!res) {
            rc = PW_ENOMEM; /* the spool only holds what jansson wrote */
            break;
        }
        if (current[0] && strcmp(current, patient) != 0) {
            rc = flush_patient(current, list, &pr, fn, arg);
        }
        pw_fhir_copy(current, sizeof(current), patient);
        if (rc == 0 && !pr.idx && pw_fhir_index_new(&pr.idx) < 0) {
            rc = PW_ENOMEM;
        }
        if (rc == 0 &&
            (json_array_append(list, res) < 0 || pw_fhir_index_add(pr.idx, url, res) < 0)) {
            rc = PW_ENOMEM;
        }
        json_decref(res);
    }
    if (rc == 0 && step != SQLITE_DONE) {
        rc = PW_EIO;
    }
    if (rc == 0 && current[0]) {
        rc = flush_patient(current, list, &pr, fn, arg);
    }
    sqlite3_reset(st);
    pw_fhir_index_free(pr.idx);
    json_decref(pr.cache);
    json_decref(list);
    return rc;
}
