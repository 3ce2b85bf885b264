/* SPDX-License-Identifier: Apache-2.0 */
/* The backtest's input spool: resources by patient in a temporary SQLite file (backtest.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/backtest.h"
#include "painwatch/err.h"
#include "painwatch/jarena.h"
#include "painwatch/limits.h"
#include "painwatch/normalize.h"

/* Bundles nested in bundles are unpacked this deep. */
#define SPOOL_BUNDLE_DEPTH_MAX 4

/*
 * Input order, the tie-break of "the later version wins" and the order of a patient's resources:
 * (file index << SEQ_POS_BITS) | position, the position being a count of the resources read in a
 * JSON document, or in NDJSON the byte offset of the line plus the resource's index within it (a
 * line of n bytes holds fewer than n resources). It does not depend on which worker read what.
 */
#define SEQ_POS_BITS 40

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

/* One resource of a patient, as read (the text is its JSON). */
struct rec {
    int64_t seq;
    const char *key; /* "Type/id"; NULL: no id */
    const char *patient;
    const char *full_url; /* or NULL */
    bool has_vnum, has_upd;
    int64_t vnum, upd;
    const char *text;
    size_t len;
};

/*
 * Where the resources read go: straight into a spool (one process), or (a worker of a --jobs
 * run) into one file per shard, the shard of the patient, plus one file of the shared resources.
 */
struct reader {
    struct pw_bt_spool *sp;
    FILE **out;
    unsigned n_out;
    FILE *shared;
    unsigned types;
    int64_t first, last;
    int64_t file_seq; /* the file's index << SEQ_POS_BITS */
    int64_t pos;      /* the next resource's position in the file */
    char *dump;       /* a resource re-serialized (a Bundle entry), reused */
    size_t dump_cap;
};

/* The shard of @p patient among @p n: FNV-1a of the reference, modulo the shards. */
static unsigned shard_of(const char *patient, unsigned n)
{
    uint32_t h = 2166136261u;

    if (n <= 1) {
        return 0;
    }
    for (const unsigned char *p = (const unsigned char *)patient; *p; p++) {
        h = (h ^ *p) * 16777619u;
    }
    return h % n;
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

static void span_add(int64_t *first, int64_t *last, int64_t t)
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

static int db_put_shared(struct pw_bt_spool *sp, int64_t seq, const char *ref, const char *text,
                         size_t len)
{
    sqlite3_stmt *st = sp->st[S_SHARED];

    sqlite3_bind_text(st, 1, ref, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_text(st, 3, text, (int)len, SQLITE_STATIC);
    return step_done(st);
}

static int db_put(struct pw_bt_spool *sp, const struct rec *r)
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

/* ---- the files between the two phases of a --jobs run ----------------------------------- */

/*
 * A record: its head, then the key, patient, fullUrl and text, each with its NUL (lengths count
 * it; 0: absent). A shared record: seq, ref and text. Same binary, same machine: raw structs.
 */
struct rec_head {
    int64_t seq, vnum, upd;
    uint32_t flags; /* REC_VNUM, REC_UPD */
    uint32_t len[4];
};
#define REC_VNUM 1u
#define REC_UPD  2u

/* The summary a worker of the first phase leaves for every worker of the second. */
struct part_sum {
    unsigned types;
    int64_t first, last;
};

static void part_name(char *buf, size_t n, const char *dir, unsigned part, const char *what,
                      unsigned shard)
{
    snprintf(buf, n, "%s/p%u.%s%u", dir, part, what, shard);
}

static int write_strings(FILE *f, const char *const *s, const uint32_t *len, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (len[i] && fwrite(s[i], 1, len[i], f) != len[i]) {
            return PW_EIO;
        }
    }
    return 0;
}

static int file_put(FILE *f, const struct rec *r)
{
    struct rec_head h = {.seq = r->seq,
                         .vnum = r->vnum,
                         .upd = r->upd,
                         .flags = (r->has_vnum ? REC_VNUM : 0) | (r->has_upd ? REC_UPD : 0)};
    const char *s[4] = {r->key, r->patient, r->full_url, r->text};

    for (int i = 0; i < 3; i++) {
        h.len[i] = s[i] ? (uint32_t)strlen(s[i]) + 1 : 0;
    }
    h.len[3] = (uint32_t)r->len + 1;
    if (fwrite(&h, sizeof(h), 1, f) != 1 || write_strings(f, s, h.len, 3) < 0 ||
        fwrite(r->text, 1, r->len, f) != r->len || fputc('\0', f) == EOF) {
        return PW_EIO;
    }
    return 0;
}

static int file_put_shared(FILE *f, int64_t seq, const char *ref, const char *text, size_t len)
{
    struct rec_head h = {.seq = seq, .len = {(uint32_t)strlen(ref) + 1, (uint32_t)len + 1}};

    if (fwrite(&h, sizeof(h), 1, f) != 1 || fwrite(ref, 1, h.len[0], f) != h.len[0] ||
        fwrite(text, 1, len, f) != len || fputc('\0', f) == EOF) {
        return PW_EIO;
    }
    return 0;
}

/* A record read back: its head and its strings in @p buf (grown as needed). */
struct rec_in {
    FILE *f;
    struct rec_head h;
    char *buf;
    size_t cap;
    bool live; /* h and buf hold the next record */
};

/* The next record of @p in. @return 1 read, 0 end of file, or PW_EIO / PW_ENOMEM. */
static int rec_next(struct rec_in *in)
{
    size_t n = 0;

    in->live = false;
    if (fread(&in->h, sizeof(in->h), 1, in->f) != 1) {
        return ferror(in->f) ? PW_EIO : 0;
    }
    for (int i = 0; i < 4; i++) {
        n += in->h.len[i];
    }
    if (n > in->cap) {
        char *grown = realloc(in->buf, n);
        if (!grown) {
            return PW_ENOMEM;
        }
        in->buf = grown;
        in->cap = n;
    }
    if (n && fread(in->buf, 1, n, in->f) != n) {
        return PW_EIO;
    }
    in->live = true;
    return 1;
}

/* The strings of @p in's record: NULL where absent. */
static void rec_strings(const struct rec_in *in, const char *s[4])
{
    size_t off = 0;

    for (int i = 0; i < 4; i++) {
        s[i] = in->h.len[i] ? in->buf + off : NULL;
        off += in->h.len[i];
    }
}

/* ---- reading the input ------------------------------------------------------------------ */

static int emit(struct reader *rd, const struct rec *r)
{
    if (rd->sp) {
        return db_put(rd->sp, r);
    }
    return file_put(rd->out[shard_of(r->patient, rd->n_out)], r);
}

static int emit_shared(struct reader *rd, int64_t seq, const char *ref, const char *text,
                       size_t len)
{
    if (rd->sp) {
        return db_put_shared(rd->sp, seq, ref, text, len);
    }
    return file_put_shared(rd->shared, seq, ref, text, len);
}

/* A version number (versionId that is a whole number) and lastUpdated, where present. */
static void rec_version(struct rec *r, const json_t *res)
{
    const json_t *meta = json_object_get(res, "meta");
    const char *v = pw_fhir_str(meta, "versionId");
    char *end;

    if (v && *v) {
        long long n = strtoll(v, &end, 10);
        if (!*end) {
            r->vnum = n;
            r->has_vnum = true;
        }
    }
    r->has_upd = pw_fhir_parse_time(pw_fhir_str(meta, "lastUpdated"), &r->upd) == 0;
}

/*
 * Spool one resource (not a Bundle). @p refs resolves urn:uuid subjects within its Bundle;
 * @p raw (NULL: none) is the resource's own JSON text as read (an NDJSON line), stored as is.
 * @return 0 or an error code.
 */
static int put_resource(struct reader *rd, const json_t *res, const char *full_url,
                        const struct pw_resolver *refs, const char *raw, size_t raw_len)
{
    const char *type = pw_fhir_str(res, "resourceType");
    const char *id = pw_fhir_str(res, "id");
    char patient[PW_REF_MAX], key[PW_REF_MAX];
    struct rec r = {.seq = rd->file_seq | rd->pos++, .full_url = full_url};
    int rc = 0;

    rd->types |= pw_res_type_bit(type);
    bool mine =
        patient_type(type) && pw_normalize_patient(res, refs, patient, sizeof(patient)) == 0;
    if (!mine && !id && !full_url) {
        return 0;
    }
    if (raw) {
        r.text = raw;
        r.len = raw_len;
    } else {
        size_t n = json_dumpb(res, rd->dump, rd->dump_cap, JSON_COMPACT);
        if (n > rd->dump_cap) {
            char *grown = realloc(rd->dump, n + 4096);
            if (!grown) {
                return PW_ENOMEM;
            }
            rd->dump = grown;
            rd->dump_cap = n + 4096;
            n = json_dumpb(res, rd->dump, rd->dump_cap, JSON_COMPACT);
        }
        if (n == 0) {
            return PW_ENOMEM;
        }
        r.text = rd->dump;
        r.len = n;
    }
    if (id) {
        snprintf(key, sizeof(key), "%s/%s", type, id);
        r.key = key;
    }
    if (!mine) {
        /* Not a patient's: kept for references (Medication) by Type/id and fullUrl. */
        if (id) {
            rc = emit_shared(rd, r.seq, key, r.text, r.len);
        }
        if (rc == 0 && full_url) {
            rc = emit_shared(rd, r.seq, full_url, r.text, r.len);
        }
    } else {
        span_add(&rd->first, &rd->last, clinical_time(res));
        r.patient = patient;
        if (id) {
            rec_version(&r, res);
        }
        rc = emit(rd, &r);
    }
    return rc;
}

/*
 * Where a resource was read, formatted only for a message: "line 3" or "top level", and within
 * a Bundle ", Bundle/b1 entry 2". In a part of a split NDJSON file the line number is counted
 * only then (the lines before the part are not read otherwise).
 */
struct lines {
    const char *file;
    int64_t start; /* the offset of the part's first line */
    size_t base;   /* lines before it (known when start is 0 or counted) */
    bool known;
    size_t rel; /* the line's number within the part, from 1 */
};

struct place {
    const struct place *up; /* NULL: the top */
    struct lines *lines;    /* the top: NDJSON line (else "top level") */
    const char *bundle;     /* the Bundle's id */
    size_t entry;
};

/* Count the lines of @p ln's file before its part (once). */
static size_t line_number(struct lines *ln)
{
    if (!ln->known) {
        FILE *f = fopen(ln->file, "rb");
        char buf[65536];
        int64_t left = ln->start;
        size_t got;

        ln->base = 0;
        while (f && left > 0 &&
               (got = fread(buf, 1, left < (int64_t)sizeof(buf) ? (size_t)left : sizeof(buf), f)) >
                   0) {
            for (const char *p = buf, *end = buf + got; (p = memchr(p, '\n', (size_t)(end - p)));
                 p++) {
                ln->base++;
            }
            left -= (int64_t)got;
        }
        if (f) {
            fclose(f);
        }
        ln->known = true;
    }
    return ln->base + ln->rel;
}

static void place_format(const struct place *pl, char *buf, size_t n)
{
    if (pl->up) {
        char up[PW_REF_MAX + 96];
        place_format(pl->up, up, sizeof(up));
        snprintf(buf, n, "%s, Bundle/%s entry %zu", up, pl->bundle ? pl->bundle : "(no id)",
                 pl->entry);
    } else if (pl->lines) {
        snprintf(buf, n, "line %zu", line_number(pl->lines));
    } else {
        snprintf(buf, n, "top level");
    }
}

/* One resource or Bundle read from @p file at @p pl. @p raw: as put_resource. */
static int add_json(struct reader *rd, json_t *res, const char *full_url,
                    const struct pw_resolver *refs, const char *file, const struct place *pl,
                    int depth, const char *raw, size_t raw_len, char *err, size_t errlen)
{
    const char *type = pw_fhir_str(res, "resourceType");
    const char *id = pw_fhir_str(res, "id");
    char where[PW_REF_MAX * 4];
    int rc;

    if (!json_is_object(res) || !type) {
        char what[PW_ID_MAX + 8] = "";
        if (id) {
            snprintf(what, sizeof(what), " (id %s)", id);
        }
        place_format(pl, where, sizeof(where));
        snprintf(err, errlen, "%s: %s%s: not a FHIR resource (no resourceType)", file, where, what);
        return -1;
    }
    if (strcmp(type, "Bundle") != 0) {
        rc = put_resource(rd, res, full_url, refs, raw, raw_len);
        if (rc < 0) {
            place_format(pl, where, sizeof(where));
            snprintf(err, errlen, "%s: %s: %s", file, where, pw_strerror(rc));
            return -1;
        }
        return 0;
    }
    if (depth >= SPOOL_BUNDLE_DEPTH_MAX) {
        place_format(pl, where, sizeof(where));
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
        struct place here = {.up = pl, .bundle = id, .entry = i};

        if (!r) {
            continue; /* request-only or response-only entries carry no resource */
        }
        rc = add_json(rd, r, pw_fhir_str(e, "fullUrl"), &bundle_refs, file, &here, depth + 1, NULL,
                      0, err, errlen);
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

/*
 * @p p parsed in a page of jansson's arena when the process installed it (pw_jarena_install):
 * the tree is freed whole by pw_jarena_page_drop(@p pg, tree), without a walk, once nothing
 * holds on to it (else jansson's malloc and free are a third of the parse). NULL: not JSON
 * (@p jerr says why; nothing to drop).
 */
static json_t *parse_page(const char *p, size_t n, size_t flags, json_error_t *jerr,
                          struct pw_jarena_page *pg)
{
    bool arena = pw_jarena_page_begin(pg) == 0;
    json_t *r = json_loadb(p, n, flags, jerr);

    if (arena) {
        pw_jarena_end();
    }
    if (!r) {
        pw_jarena_page_drop(pg, NULL);
    }
    return r;
}

/* One line of NDJSON, at offset @p off of the file. */
static int add_line(struct reader *rd, struct lines *ln, int64_t off, const char *p, size_t n,
                    char *err, size_t errlen)
{
    struct pw_jarena_page pg;
    json_error_t jerr;
    json_t *r;
    int rc;

    if (off == 0 && n >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
        p += 3; /* a UTF-8 byte order mark (some exports write one) */
        n -= 3;
    }
    if (blank(p, n)) {
        return 0;
    }
    r = parse_page(p, n, 0, &jerr, &pg);
    if (!r) {
        snprintf(err, errlen, "%s:%zu:%d: %s", ln->file, line_number(ln), jerr.column, jerr.text);
        return -1;
    }
    while (n > 0 && strchr(" \t\r\n", p[n - 1])) {
        n--; /* the text stored is the resource's own bytes (when the line is one resource) */
    }
    struct place pl = {.lines = ln};
    rd->pos = off;
    rc = add_json(rd, r, NULL, NULL, ln->file, &pl, 0, p, n, err, errlen);
    pw_jarena_page_drop(&pg, r);
    return rc;
}

/*
 * NDJSON, streamed: one line in memory at a time. Only the lines that start in [@p from, @p to)
 * (file offsets; @p to INT64_MAX: to the end) are read: a part of a file split across workers.
 */
static int add_ndjson(struct reader *rd, const char *file, FILE *f, int64_t from, int64_t to,
                      char *err, size_t errlen)
{
    struct lines ln = {.file = file, .start = from, .known = from == 0};
    char *line = NULL;
    size_t cap = 0;
    int64_t off = 0;
    ssize_t n;
    int rc = 0;

    if (from > 0) {
        /* The line that holds byte from - 1 is the previous part's (its end, when a newline). */
        if (fseeko(f, from - 1, SEEK_SET) != 0) {
            snprintf(err, errlen, "%s: read error", file);
            return -1;
        }
        n = getline(&line, &cap, f);
        off = n < 0 ? to : from - 1 + n;
        ln.start = off;
    }
    while (rc == 0 && off < to && (n = getline(&line, &cap, f)) >= 0) {
        ln.rel++;
        if ((size_t)n > PW_INPUT_FILE_MAX) {
            snprintf(err, errlen, "%s:%zu: a line longer than %u bytes", file, line_number(&ln),
                     PW_INPUT_FILE_MAX);
            rc = -1;
            break;
        }
        rc = add_line(rd, &ln, off, line, (size_t)n, err, errlen);
        off += n;
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
static int add_document(struct reader *rd, const char *file, FILE *f, char *err, size_t errlen)
{
    struct pw_jarena_page pg;
    json_error_t jerr;
    char *buf = NULL;
    size_t len = 0;
    json_t *root;
    int rc, c = EOF;

    /* Parsed from memory when small enough (jansson's file reader takes a byte at a time). */
    if (read_small(f, &buf, &len) == 0) {
        root = parse_page(buf, len, JSON_DISABLE_EOF_CHECK, &jerr, &pg);
        if (root && jerr.position >= 0) {
            for (size_t i = (size_t)jerr.position; i < len && c == EOF; i++) {
                c = strchr(" \t\r\n", buf[i]) ? EOF : (unsigned char)buf[i];
            }
        }
        free(buf);
    } else {
        bool arena = pw_jarena_page_begin(&pg) == 0;
        root = json_loadf(f, JSON_DISABLE_EOF_CHECK, &jerr);
        if (arena) {
            pw_jarena_end();
        }
        if (!root) {
            pw_jarena_page_drop(&pg, NULL);
        }
        while (root && (c = fgetc(f)) != EOF && strchr(" \t\r\n", c)) {
        }
    }
    if (!root) {
        snprintf(err, errlen, "%s:%d:%d: %s", file, jerr.line, jerr.column, jerr.text);
        return -1;
    }
    if (c != EOF) {
        pw_jarena_page_drop(&pg, root);
        rewind(f);
        return add_ndjson(rd, file, f, 0, INT64_MAX, err, errlen);
    }
    struct place pl = {0};
    rd->pos = 0;
    rc = add_json(rd, root, NULL, NULL, file, &pl, 0, NULL, 0, err, errlen);
    pw_jarena_page_drop(&pg, root);
    return rc;
}

/* ---- the input: files in order, and a worker's part of them ------------------------------- */

/* A file to read, or a message to give at its place in the input (a path that cannot be read). */
struct item {
    char *path;
    char *err;
    int64_t start, size; /* its bytes in the input as a whole (size 0 when not a regular file) */
    bool ndjson;
    bool split; /* a regular NDJSON file: its lines may be read by several workers */
};

struct pw_bt_input {
    struct item *v;
    size_t n, cap;
    int64_t total;
};

static int input_push(struct pw_bt_input *in, char *path, char *msg, bool ndjson)
{
    struct stat st;

    if (in->n == in->cap) {
        size_t cap = in->cap ? in->cap * 2 : 16;
        struct item *grown = realloc(in->v, cap * sizeof(*grown));
        if (!grown) {
            free(path);
            free(msg);
            return PW_ENOMEM;
        }
        in->v = grown;
        in->cap = cap;
    }
    struct item *it = &in->v[in->n++];
    *it = (struct item){.path = path, .err = msg, .start = in->total, .ndjson = ndjson};
    if (path && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        it->size = st.st_size;
        it->split = ndjson;
    }
    in->total += it->size;
    return 0;
}

static int input_error(struct pw_bt_input *in, const char *path, const char *what)
{
    char *msg = malloc(strlen(path) + strlen(what) + 3);

    if (!msg) {
        return PW_ENOMEM;
    }
    sprintf(msg, "%s: %s", path, what);
    return input_push(in, NULL, msg, false);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A Bulk Data export: every *.ndjson in the directory, in name order (deterministic). */
static int input_dir(struct pw_bt_input *in, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    if (!d) {
        return input_error(in, dir, strerror(errno));
    }
    while ((de = readdir(d)) != NULL && rc == 0) {
        if (!ends_with(de->d_name, ".ndjson")) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, cap * sizeof(*names));
            if (!grown) {
                rc = PW_ENOMEM;
                break;
            }
            names = grown;
        }
        names[n] = malloc(strlen(dir) + strlen(de->d_name) + 2);
        if (!names[n]) {
            rc = PW_ENOMEM;
            break;
        }
        sprintf(names[n], "%s/%s", dir, de->d_name);
        n++;
    }
    closedir(d);
    if (rc == 0 && n == 0) {
        rc = input_error(in, dir, "no *.ndjson files (not a Bulk Data export directory)");
    }
    if (n > 1) {
        qsort(names, n, sizeof(*names), cmp_name);
    }
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            rc = input_push(in, names[i], NULL, true); /* takes the name */
        } else {
            free(names[i]);
        }
    }
    free(names);
    return rc;
}

static int input_path(struct pw_bt_input *in, const char *path)
{
    struct stat st;
    char *copy;

    if (stat(path, &st) != 0) {
        return input_error(in, path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        return input_dir(in, path);
    }
    copy = strdup(path);
    return copy ? input_push(in, copy, NULL, ends_with(path, ".ndjson")) : PW_ENOMEM;
}

int pw_bt_input_new(struct pw_bt_input **out, const char *const *paths, size_t n)
{
    struct pw_bt_input *in = calloc(1, sizeof(*in));
    int rc = in ? 0 : PW_ENOMEM;

    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = input_path(in, paths[i]);
    }
    if (rc) {
        pw_bt_input_free(in);
        in = NULL;
    }
    *out = in;
    return rc;
}

void pw_bt_input_free(struct pw_bt_input *in)
{
    if (!in) {
        return;
    }
    for (size_t i = 0; i < in->n; i++) {
        free(in->v[i].path);
        free(in->v[i].err);
    }
    free(in->v);
    free(in);
}

/* Part @p k of @p n splits the input's bytes at floor(total * k / n). */
static int64_t part_bound(int64_t total, unsigned k, unsigned n)
{
    return total / n * k + total % n * k / n;
}

/* The part that reads what starts at byte @p at of the input (at the end: the last part). */
static unsigned part_owner(int64_t total, int64_t at, unsigned n)
{
    for (unsigned k = 0; k + 1 < n; k++) {
        if (at < part_bound(total, k + 1, n)) {
            return k;
        }
    }
    return n - 1;
}

static int read_item(struct reader *rd, const struct item *it, int64_t from, int64_t to, char *err,
                     size_t errlen)
{
    FILE *f;
    int rc;

    if (it->err) {
        snprintf(err, errlen, "%s", it->err);
        return -1;
    }
    f = fopen(it->path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", it->path, strerror(errno));
        return -1;
    }
    rc = it->ndjson ? add_ndjson(rd, it->path, f, from, to, err, errlen)
                    : add_document(rd, it->path, f, err, errlen);
    fclose(f);
    return rc;
}

/*
 * Read part @p part of @p n_parts of @p in: the documents that start in the part's bytes, and of
 * split NDJSON files the lines that start there. @p file0: the first file's index (input order).
 */
static int read_part(struct reader *rd, const struct pw_bt_input *in, unsigned part,
                     unsigned n_parts, size_t file0, char *err, size_t errlen)
{
    int64_t lo = part_bound(in->total, part, n_parts);
    int64_t hi = part_bound(in->total, part + 1, n_parts);
    int rc = 0;

    for (size_t i = 0; i < in->n && rc == 0; i++) {
        const struct item *it = &in->v[i];
        int64_t a = it->start, b = it->start + it->size;

        rd->file_seq = (int64_t)(file0 + i) << SEQ_POS_BITS;
        if (it->split && it->size > 0) {
            if (b <= lo || a >= hi) {
                continue;
            }
            /* The part that holds the file's end reads to the end (were it to grow). */
            rc = read_item(rd, it, lo > a ? lo - a : 0, hi >= b ? INT64_MAX : hi - a, err, errlen);
        } else if (part_owner(in->total, a, n_parts) == part) {
            rc = read_item(rd, it, 0, INT64_MAX, err, errlen);
        }
    }
    return rc;
}

/* The types and period read by @p rd, into @p sp. */
static void merge_sum(struct pw_bt_spool *sp, const struct part_sum *s)
{
    sp->types |= s->types;
    span_add(&sp->first, &sp->last, s->first);
    span_add(&sp->first, &sp->last, s->last);
}

int pw_bt_spool_read(struct pw_bt_spool *sp, const struct pw_bt_input *in, char *err, size_t errlen)
{
    struct reader rd = {.sp = sp, .first = PW_TIME_NONE, .last = PW_TIME_NONE};
    int rc = read_part(&rd, in, 0, 1, sp->n_files, err, errlen);

    sp->n_files += in->n;
    free(rd.dump);
    merge_sum(sp, &(struct part_sum){.types = rd.types, .first = rd.first, .last = rd.last});
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

/* ---- a --jobs run: each worker reads its part, then replays its shard from every part ------ */

/* Files with a large buffer (records are written and read in order). */
#define PART_BUFFER (256u << 10)

static FILE *part_open(const char *dir, unsigned part, const char *what, unsigned shard,
                       const char *mode)
{
    char name[4096];
    FILE *f;

    part_name(name, sizeof(name), dir, part, what, shard);
    f = fopen(name, mode);
    if (f) {
        setvbuf(f, NULL, _IOFBF, PART_BUFFER);
    }
    return f;
}

int pw_bt_scatter(const struct pw_bt_input *in, unsigned part, unsigned n_parts, const char *dir,
                  char *err, size_t errlen)
{
    struct reader rd = {.n_out = n_parts, .first = PW_TIME_NONE, .last = PW_TIME_NONE};
    int rc = 0;

    rd.out = calloc(n_parts, sizeof(*rd.out));
    if (!rd.out) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (unsigned k = 0; k < n_parts && rc == 0; k++) {
        rd.out[k] = part_open(dir, part, "s", k, "wb");
        rc = rd.out[k] ? 0 : -1;
    }
    rd.shared = rc == 0 ? part_open(dir, part, "shared", 0, "wb") : NULL;
    if (!rd.shared) {
        snprintf(err, errlen, "%s: cannot create the worker's files: %s", dir, strerror(errno));
        rc = -1;
    }
    rc = rc ? rc : read_part(&rd, in, part, n_parts, 0, err, errlen);
    if (rc == 0) {
        struct part_sum sum = {.types = rd.types, .first = rd.first, .last = rd.last};
        FILE *f = part_open(dir, part, "sum", 0, "wb");
        if (!f || fwrite(&sum, sizeof(sum), 1, f) != 1) {
            rc = -1;
        }
        if (f && fclose(f) != 0) {
            rc = -1;
        }
    }
    for (unsigned k = 0; k < n_parts; k++) {
        if (rd.out[k] && fclose(rd.out[k]) != 0) {
            rc = rc ? rc : -2;
        }
    }
    if (rd.shared && fclose(rd.shared) != 0) {
        rc = rc ? rc : -2;
    }
    if (rc == -2 || (rc < 0 && !err[0])) {
        snprintf(err, errlen, "%s: writing the worker's files: %s", dir, strerror(errno));
    }
    free(rd.out);
    free(rd.dump);
    return rc < 0 ? -1 : 0;
}

/* The records of shard @p shard from every part, inserted in input order (merged by seq). */
static int gather_shard(struct pw_bt_spool *sp, const char *dir, unsigned shard, unsigned n_parts)
{
    struct rec_in *ins = calloc(n_parts, sizeof(*ins));
    int rc = ins ? 0 : PW_ENOMEM;

    for (unsigned k = 0; k < n_parts && rc == 0; k++) {
        char name[4096];
        part_name(name, sizeof(name), dir, k, "s", shard);
        ins[k].f = part_open(dir, k, "s", shard, "rb");
        rc = ins[k].f ? 0 : PW_EIO;
        unlink(name); /* read once: its space is freed when closed */
        rc = rc ? rc : rec_next(&ins[k]);
        rc = rc > 0 ? 0 : rc;
    }
    while (rc == 0) {
        struct rec_in *min = NULL;
        const char *s[4];

        for (unsigned k = 0; k < n_parts; k++) {
            if (ins[k].live && (!min || ins[k].h.seq < min->h.seq)) {
                min = &ins[k];
            }
        }
        if (!min) {
            break;
        }
        rec_strings(min, s);
        struct rec r = {.seq = min->h.seq,
                        .key = s[0],
                        .patient = s[1],
                        .full_url = s[2],
                        .has_vnum = min->h.flags & REC_VNUM,
                        .has_upd = min->h.flags & REC_UPD,
                        .vnum = min->h.vnum,
                        .upd = min->h.upd,
                        .text = s[3],
                        .len = min->h.len[3] ? min->h.len[3] - 1 : 0};
        if (!r.patient || !r.text) {
            rc = PW_EIO;
            break;
        }
        rc = db_put(sp, &r);
        rc = rc ? rc : rec_next(min);
        rc = rc > 0 ? 0 : rc;
    }
    for (unsigned k = 0; ins && k < n_parts; k++) {
        if (ins[k].f) {
            fclose(ins[k].f);
        }
        free(ins[k].buf);
    }
    free(ins);
    return rc;
}

/* The shared resources and summaries of every part. */
static int gather_shared(struct pw_bt_spool *sp, const char *dir, unsigned n_parts)
{
    struct rec_in in = {0};
    int rc = 0;

    for (unsigned k = 0; k < n_parts && rc == 0; k++) {
        struct part_sum sum;
        FILE *f = part_open(dir, k, "sum", 0, "rb");

        rc = f && fread(&sum, sizeof(sum), 1, f) == 1 ? 0 : PW_EIO;
        if (f) {
            fclose(f);
        }
        if (rc == 0) {
            merge_sum(sp, &sum);
        }
        in.f = rc == 0 ? part_open(dir, k, "shared", 0, "rb") : NULL;
        rc = in.f ? 0 : PW_EIO;
        while (rc == 0 && (rc = rec_next(&in)) > 0) {
            const char *s[4];
            rec_strings(&in, s);
            rc = s[0] && s[1] ? db_put_shared(sp, in.h.seq, s[0], s[1], in.h.len[1] - 1) : PW_EIO;
        }
        if (in.f) {
            fclose(in.f);
            in.f = NULL;
        }
    }
    free(in.buf);
    return rc;
}

int pw_bt_spool_gather(struct pw_bt_spool *sp, const char *dir, unsigned shard, unsigned n_parts,
                       char *err, size_t errlen)
{
    int rc = gather_shared(sp, dir, n_parts);

    rc = rc ? rc : gather_shard(sp, dir, shard, n_parts);
    if (rc < 0) {
        snprintf(err, errlen, "%s: reading the workers' files: %s", dir, pw_strerror(rc));
        return -1;
    }
    return 0;
}

void pw_bt_scatter_remove(const char *dir, unsigned n_parts)
{
    char name[4096];

    for (unsigned k = 0; k < n_parts; k++) {
        for (unsigned s = 0; s < n_parts; s++) {
            part_name(name, sizeof(name), dir, k, "s", s);
            unlink(name);
        }
        part_name(name, sizeof(name), dir, k, "shared", 0);
        unlink(name);
        part_name(name, sizeof(name), dir, k, "sum", 0);
        unlink(name);
    }
    rmdir(dir);
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
