/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit chain head kept in the store (issue 18): written with every transaction, checked at
 * start and by `painwatch audit verify --state-dir`; a trail cut back, deleted or forked is a
 * chain discontinuity until an operator acknowledges it. See include/painwatch/audit.h.
 *
 * PHI: the reasons name trail files, record numbers and digests, nothing from a record.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/audit_int.h"
#include "painwatch/array.h"
#include "painwatch/audit.h"
#include "painwatch/datetime.h"
#include "painwatch/err.h"
#include "painwatch/log.h"
#include "painwatch/store.h"

int pw_audit_head_format(const struct pw_audit_head *h, char *buf, size_t cap)
{
    int w = snprintf(buf, cap, "%" PRIu64 " %" PRIu64 " %s", h->seq, h->n, h->digest);
    return w < 0 || (size_t)w >= cap ? PW_E2BIG : 0;
}

int pw_audit_head_parse(const char *s, struct pw_audit_head *h)
{
    unsigned long long seq = 0;
    unsigned long long n = 0;
    char d[PW_AUDIT_DIGEST_HEX + 2];
    int used = 0;

    if (!s || s[0] < '0' || s[0] > '9' || sscanf(s, "%llu %llu %65s%n", &seq, &n, d, &used) != 3 ||
        s[used] != '\0' || !pw_audit_is_digest(d)) {
        return PW_EINVAL;
    }
    h->seq = seq;
    h->n = n;
    memcpy(h->digest, d, sizeof(h->digest));
    return 0;
}

/* ---- the trail's files ------------------------------------------------------------------- */

void pw_audit_files_free(char **files, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(files[i]);
    }
    free(files);
}

bool pw_audit_file_compressed(const char *name)
{
    static const char *const ext[] = {".gz", ".xz", ".bz2", ".zst", ".lz4"};
    size_t len = strlen(name);

    for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
        size_t el = strlen(ext[i]);
        if (len > el && strcmp(name + len - el, ext[i]) == 0) {
            return true;
        }
    }
    return false;
}

int pw_audit_trail_files(const char *path, char ***files, size_t *n)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t blen = strlen(base);
    char dir[4096];
    struct dirent *de;
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    DIR *d;

    *files = NULL;
    *n = 0;
    snprintf(dir, sizeof(dir), "%.*s",
             slash == path ? 1
             : slash       ? (int)(slash - path)
                           : 1,
             slash ? path : ".");
    d = opendir(dir);
    if (!d) {
        return PW_ENOENT;
    }
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        char sep = name[blen];
        size_t len = strlen(dir) + strlen(name) + 2;
        if (strncmp(name, base, blen) != 0 || (sep && sep != '.' && sep != '-' && sep != '_') ||
            pw_audit_file_compressed(name)) {
            continue;
        }
        if (pw_array_reserve(&v, &cap, cnt + 1, sizeof(*v)) < 0 || !(v[cnt] = malloc(len))) {
            closedir(d);
            pw_audit_files_free(v, cnt);
            return PW_ENOMEM;
        }
        snprintf(v[cnt++], len, "%s/%s", dir, name);
    }
    closedir(d);
    *files = v;
    *n = cnt;
    return 0;
}

/* ---- the check ---------------------------------------------------------------------------- */

/* A file's authenticated header. */
struct hfile {
    const char *path;
    bool ok;
    uint64_t seq;
    uint64_t first_n;
    char prev[PW_AUDIT_DIGEST_HEX + 1];
    char digest[PW_AUDIT_DIGEST_HEX + 1];
};

static void read_header(const unsigned char *key, size_t key_len, struct hfile *hf)
{
    struct pw_audit_lines r;
    json_t *rec = NULL;
    char why[256];

    if (pw_audit_lines_open(&r, hf->path) != 0) {
        return;
    }
    if (pw_audit_lines_next(&r) == 1 && !r.torn && !r.too_long &&
        pw_audit_check_line(key, key_len, r.buf, r.len, &rec, why, sizeof(why)) == 0) {
        const char *type = json_string_value(json_object_get(rec, "type"));
        json_t *seq = json_object_get(rec, "seq");
        if (type && strcmp(type, "header") == 0 && json_is_integer(seq) &&
            json_integer_value(seq) >= 0) {
            hf->ok = true;
            hf->seq = (uint64_t)json_integer_value(seq);
            hf->first_n = (uint64_t)json_integer_value(json_object_get(rec, "n"));
            snprintf(hf->prev, sizeof(hf->prev), "%s",
                     json_string_value(json_object_get(rec, "prev")));
            snprintf(hf->digest, sizeof(hf->digest), "%s",
                     json_string_value(json_object_get(rec, "hmac")));
        }
    }
    json_decref(rec);
    pw_audit_lines_close(&r);
}

struct walk {
    const unsigned char *key;
    size_t key_len;
    struct hfile *hf;
    size_t n;
    uint64_t last_n;
    char last[PW_AUDIT_DIGEST_HEX + 1];
    char *why;
    size_t why_len;
};

/*
 * Follow the chain through @p hf from the line after the current one (@p r positioned there) to
 * the end of the file. A torn or unverifiable line ends the file (the writer sets such a file
 * aside and links the next one to the last good record); @p bad then says where.
 * @return 0, PW_EVERIFY (a record that verifies but does not continue the chain) or PW_ENOMEM.
 */
static int follow_file(struct walk *w, struct pw_audit_lines *r, const struct hfile *hf, char *bad,
                       size_t bad_len)
{
    int got;

    bad[0] = '\0';
    while ((got = pw_audit_lines_next(r)) == 1) {
        json_t *rec = NULL;
        char why[256];
        int rc;
        if (r->torn || r->too_long) {
            snprintf(bad, bad_len, "%s:%ld: %s", hf->path, r->line,
                     r->torn ? "torn last line" : "line over the record cap");
            return 0;
        }
        rc = pw_audit_check_line(w->key, w->key_len, r->buf, r->len, &rec, why, sizeof(why));
        if (rc == PW_ENOMEM) {
            return rc;
        }
        if (rc) {
            snprintf(bad, bad_len, "%s:%ld: %s", hf->path, r->line, why);
            return 0;
        }
        uint64_t n = (uint64_t)json_integer_value(json_object_get(rec, "n"));
        const char *prev = json_string_value(json_object_get(rec, "prev"));
        if (n != w->last_n + 1 || strcmp(prev, w->last) != 0) {
            snprintf(w->why, w->why_len,
                     "%s:%ld: record %" PRIu64 " does not continue the chain from record %" PRIu64
                     " (a forked trail)",
                     hf->path, r->line, n, w->last_n);
            json_decref(rec);
            return PW_EVERIFY;
        }
        w->last_n = n;
        snprintf(w->last, sizeof(w->last), "%s", json_string_value(json_object_get(rec, "hmac")));
        json_decref(rec);
    }
    if (got < 0) {
        snprintf(bad, bad_len, "%s: read error", hf->path);
    }
    return 0;
}

/* The file after @p cur in the chain: sequence + 1, its header linking to the walk's last. */
static const struct hfile *next_file(struct walk *w, const struct hfile *cur, bool *later)
{
    *later = false;
    for (size_t i = 0; i < w->n; i++) {
        const struct hfile *hf = &w->hf[i];
        if (!hf->ok || hf->seq <= cur->seq) {
            continue;
        }
        *later = true;
        if (hf->seq == cur->seq + 1 && hf->first_n == w->last_n + 1 &&
            strcmp(hf->prev, w->last) == 0) {
            return hf;
        }
    }
    return NULL;
}

/*
 * Move @p r past @p k complete lines without parsing them (the head is usually near the end of
 * a large live file: a block scan, not the line reader's byte by byte). @return lines skipped.
 */
static uint64_t skip_lines(struct pw_audit_lines *r, uint64_t k)
{
    char buf[65536];
    uint64_t done = 0;
    long off = ftell(r->f);

    while (done < k && off >= 0) {
        size_t got = fread(buf, 1, sizeof(buf), r->f);
        const char *p = buf;
        const char *nl;
        if (got == 0) {
            break;
        }
        while (done < k && (nl = memchr(p, '\n', got - (size_t)(p - buf))) != NULL) {
            done++;
            p = nl + 1;
        }
        off += (long)(done < k ? got : (size_t)(p - buf));
    }
    if (off < 0 || fseek(r->f, off, SEEK_SET) != 0) {
        return 0;
    }
    r->line += (long)done;
    return done;
}

/* From @p start, which holds the head (or should), to the end of the trail. */
static int walk_from(struct walk *w, const struct hfile *start, const struct pw_audit_head *head,
                     const char *end_digest)
{
    const struct hfile *cur = start;
    struct pw_audit_lines r;
    uint64_t k = head->n - start->first_n; /* lines after the header */
    char bad[600];
    json_t *rec = NULL;
    char why[256];
    int rc = pw_audit_lines_open(&r, start->path);

    if (rc) {
        snprintf(w->why, w->why_len, "%s: cannot read it", start->path);
        return rc == PW_ENOMEM ? rc : PW_EVERIFY;
    }
    uint64_t skipped = skip_lines(&r, k);
    if (skipped < k || pw_audit_lines_next(&r) != 1 || r.torn) {
        /* skipped complete lines: the header (record first_n) and the records after it */
        snprintf(w->why, w->why_len,
                 "%s ends at record %" PRIu64 ", the store records record %" PRIu64
                 " (%.12s...) there: the trail was cut back, or deleted and started again "
                 "(records are missing)",
                 start->path, start->first_n + (skipped > 0 ? skipped - 1 : 0), head->n,
                 head->digest);
        pw_audit_lines_close(&r);
        return PW_EVERIFY;
    }
    rc = pw_audit_check_line(w->key, w->key_len, r.buf, r.len, &rec, why, sizeof(why));
    if (rc == 0 && ((uint64_t)json_integer_value(json_object_get(rec, "n")) != head->n ||
                    strcmp(json_string_value(json_object_get(rec, "hmac")), head->digest) != 0)) {
        rc = PW_EVERIFY;
        snprintf(why, sizeof(why), "not the record the store holds (%.12s...)", head->digest);
    }
    json_decref(rec);
    if (rc) {
        snprintf(w->why, w->why_len,
                 "%s:%ld: record %" PRIu64 ": %s: the trail was rewritten or forked", start->path,
                 r.line, head->n, why);
        pw_audit_lines_close(&r);
        return rc == PW_ENOMEM ? rc : PW_EVERIFY;
    }
    w->last_n = head->n;
    memcpy(w->last, head->digest, sizeof(w->last));
    for (;;) {
        bool later;
        rc = follow_file(w, &r, cur, bad, sizeof(bad));
        pw_audit_lines_close(&r);
        if (rc) {
            return rc;
        }
        const struct hfile *next = next_file(w, cur, &later);
        if (!next) {
            if (later) {
                snprintf(w->why, w->why_len,
                         "no file of sequence %" PRIu64 " links to record %" PRIu64
                         " at the end of %s: a trail file is missing or the chain was started "
                         "again (forked)",
                         cur->seq + 1, w->last_n, cur->path);
                return PW_EVERIFY;
            }
            if (bad[0]) {
                snprintf(w->why, w->why_len, "%s (after record %" PRIu64 ")", bad, w->last_n);
                return PW_EVERIFY;
            }
            break;
        }
        cur = next;
        w->last_n = next->first_n;
        memcpy(w->last, next->digest, sizeof(w->last));
        rc = pw_audit_lines_open(&r, cur->path);
        if (rc || pw_audit_lines_next(&r) != 1) {
            pw_audit_lines_close(&r);
            snprintf(w->why, w->why_len, "%s: cannot read it", cur->path);
            return rc == PW_ENOMEM ? rc : PW_EVERIFY;
        }
    }
    if (end_digest && strcmp(w->last, end_digest) != 0) {
        snprintf(w->why, w->why_len,
                 "the chain from record %" PRIu64 " ends at record %" PRIu64
                 " in %s, not at the trail's last record: the trail was started again or forked",
                 head->n, w->last_n, cur->path);
        return PW_EVERIFY;
    }
    return 0;
}

int pw_audit_head_check(const unsigned char *key, size_t key_len, const char *const *files,
                        size_t n_files, const struct pw_audit_head *head, const char *end_digest,
                        char *why, size_t why_len)
{
    struct walk w = {.key = key, .key_len = key_len, .n = n_files, .why = why, .why_len = why_len};
    bool tried = false;
    char scratch[1024];
    int rc = PW_EVERIFY;

    why[0] = '\0';
    w.hf = calloc(n_files ? n_files : 1, sizeof(*w.hf));
    if (!w.hf) {
        return PW_ENOMEM;
    }
    for (size_t i = 0; i < n_files; i++) {
        w.hf[i].path = files[i];
        read_header(key, key_len, &w.hf[i]);
    }
    for (size_t i = 0; i < n_files && rc == PW_EVERIFY; i++) {
        if (!w.hf[i].ok || w.hf[i].seq != head->seq || w.hf[i].first_n > head->n) {
            continue;
        }
        if (tried) {
            w.why = scratch; /* the first candidate's reason is the one reported */
            w.why_len = sizeof(scratch);
        }
        rc = walk_from(&w, &w.hf[i], head, end_digest);
        tried = true;
    }
    if (!tried) {
        snprintf(why, why_len,
                 "no trail file of sequence %" PRIu64 " holds record %" PRIu64
                 " (%.12s...), the chain head the store recorded: the trail was deleted, "
                 "cut back or replaced",
                 head->seq, head->n, head->digest);
    }
    free(w.hf);
    return rc;
}

/* ---- the daemon's side -------------------------------------------------------------------- */

int pw_audit_store_head(void *audit, struct pw_store *st)
{
    struct pw_audit_head h;
    char v[128];

    if (!audit || pw_audit_durable_head(audit, &h) != 0 || pw_audit_head_format(&h, v, sizeof(v))) {
        return 0;
    }
    return pw_store_meta_set(st, PW_AUDIT_META_HEAD, v);
}

static void now_rfc3339(char *buf, size_t len)
{
    pw_time_format((int64_t)time(NULL) * 1000, 0, buf, len);
}

/* Record a discontinuity found at start: the trail, the log and the store. */
static int discontinuity(struct pw_audit *a, struct pw_store *st, const char *stored,
                         const char *why)
{
    char since[40];
    char cur[4096] = "";
    char *text;
    json_t *j;
    int rc;

    pw_log_err(AUDIT, "audit trail %s: chain discontinuity: %s", pw_audit_path(a), why);
    rc = pw_audit_event(a, "chain-discontinuity", 'E', PW_AUDIT_SERIOUS, why,
                        json_pack("{s:{s:s}}", "painwatch", "store_head", stored));
    if (rc) {
        return rc;
    }
    now_rfc3339(since, sizeof(since));
    rc = pw_store_meta_get(st, PW_AUDIT_META_DISCONTINUITY, cur, sizeof(cur));
    if (rc == 0 && cur[0] != '\0') {
        return pw_audit_store_head(a, st); /* the first one stays until acknowledged */
    }
    j = json_pack("{s:s,s:s,s:s}", "detected", since, "problem", why, "store_head", stored);
    text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    if (!text) {
        return PW_ENOMEM;
    }
    rc = pw_store_begin(st);
    if (rc == 0) {
        rc = pw_store_meta_set(st, PW_AUDIT_META_DISCONTINUITY, text);
    }
    if (rc == 0) {
        rc = pw_audit_store_head(a, st);
    }
    rc = rc == 0 ? pw_store_commit(st) : (pw_store_rollback(st), rc);
    free(text);
    return rc;
}

int pw_audit_chain_check(struct pw_audit *a, struct pw_store *st)
{
    char stored[256] = "";
    char why[1024] = "";
    struct pw_audit_head h;
    char **files = NULL;
    size_t n = 0;
    size_t key_len = 0;
    const unsigned char *key = pw_audit_key(a, &key_len);
    int rc = pw_store_meta_get(st, PW_AUDIT_META_HEAD, stored, sizeof(stored));

    if (rc == PW_ENOENT || (rc == 0 && stored[0] == '\0')) {
        return pw_audit_store_head(a, st); /* nothing anchored yet: from now on */
    }
    if (rc) {
        return rc;
    }
    if (pw_audit_head_parse(stored, &h) != 0) {
        snprintf(why, sizeof(why), "the chain head the store holds is not readable");
    } else {
        rc = pw_audit_trail_files(pw_audit_path(a), &files, &n);
        if (rc == 0) {
            rc = pw_audit_head_check(key, key_len, (const char *const *)files, n, &h,
                                     pw_audit_last_digest(a), why, sizeof(why));
        }
        pw_audit_files_free(files, n);
        if (rc == PW_ENOMEM) {
            return rc;
        }
        if (rc == PW_ENOENT) {
            snprintf(why, sizeof(why), "the trail directory cannot be read");
        }
        if (rc == 0) {
            why[0] = '\0';
        }
    }
    if (why[0] == '\0') {
        return pw_audit_store_head(a, st);
    }
    return discontinuity(a, st, stored, why);
}

bool pw_audit_chain_ready(struct pw_store *st, char *detail, size_t size)
{
    char v[4096];
    json_t *j;
    int rc = pw_store_meta_get(st, PW_AUDIT_META_DISCONTINUITY, v, sizeof(v));

    if (rc == PW_ENOENT || (rc == 0 && v[0] == '\0')) {
        snprintf(detail, size, "continuous");
        return true;
    }
    if (rc) {
        snprintf(detail, size, "cannot read the store: %s", pw_strerror(rc));
        return false;
    }
    j = json_loads(v, 0, NULL);
    const char *since = json_string_value(json_object_get(j, "detected"));
    const char *problem = json_string_value(json_object_get(j, "problem"));
    snprintf(detail, size,
             "chain discontinuity since %s: review, then painwatch audit acknowledge (%s)",
             since ? since : "?", problem ? problem : "?");
    json_decref(j);
    return false;
}
