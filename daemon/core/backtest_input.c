/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The backtest's input reader (backtest.h): the files and directories given, in order (a Bulk Data
 * export directory's *.ndjson in name order); NDJSON lines and JSON documents, Bundles unpacked;
 * a worker's byte-range part of them in a --jobs run; errors named by file:line (and Bundle entry).
 * What is read goes to the spool (backtest_spool.c) or a worker's part files (backtest_parts.c).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/backtest.h"
#include "core/backtest_spool_int.h"
#include "painwatch/err.h"
#include "painwatch/jarena.h"
#include "painwatch/limits.h"
#include "painwatch/normalize.h"

/* Bundles nested in bundles are unpacked this deep. */
#define SPOOL_BUNDLE_DEPTH_MAX 4

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

/* ---- reading the input ------------------------------------------------------------------ */

static int emit(struct reader *rd, const struct rec *r)
{
    if (rd->sp) {
        return pw_bt_db_put(rd->sp, r);
    }
    return pw_bt_file_put(rd->out[shard_of(r->patient, rd->n_out)], r);
}

static int emit_shared(struct reader *rd, int64_t seq, const char *ref, const char *text,
                       size_t len)
{
    if (rd->sp) {
        return pw_bt_db_put_shared(rd->sp, seq, ref, text, len);
    }
    return pw_bt_file_put_shared(rd->shared, seq, ref, text, len);
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
    bool mine = pw_normalize_reads_type(type) &&
                pw_normalize_patient(res, refs, patient, sizeof(patient)) == 0;
    if (!mine && ((!id && !full_url) || !pw_normalize_resolves_type(type))) {
        return 0; /* neither a patient's nor ever looked up (a Claim, a Provenance) */
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
        pw_bt_span_add(&rd->first, &rd->last, clinical_time(res));
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
int pw_bt_read_part(struct reader *rd, const struct pw_bt_input *in, unsigned part,
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
