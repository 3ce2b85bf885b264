/* SPDX-License-Identifier: Apache-2.0 */
/* Audit trail verification: every line authentic (HMAC), canonical, in place (prev and n), and
 * every file linked to the one before it; the first failure is reported with file:line. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/audit_int.h"
#include "painwatch/audit.h"
#include "painwatch/err.h"
#include "painwatch/limits.h"

int pw_audit_lines_open(struct pw_audit_lines *r, const char *path)
{
    memset(r, 0, sizeof(*r));
    r->f = fopen(path, "rb");
    if (!r->f) {
        return errno == ENOENT ? PW_ENOENT : PW_EIO;
    }
    r->buf = malloc(PW_AUDIT_RECORD_MAX + 1);
    if (!r->buf) {
        fclose(r->f);
        r->f = NULL;
        return PW_ENOMEM;
    }
    return 0;
}

void pw_audit_lines_close(struct pw_audit_lines *r)
{
    if (r->f) {
        fclose(r->f);
    }
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

int pw_audit_lines_next(struct pw_audit_lines *r)
{
    int c = EOF;

    r->len = 0;
    r->too_long = false;
    r->torn = false;
    for (;;) {
        c = getc(r->f);
        if (c == EOF || c == '\n') {
            break;
        }
        if (r->len < PW_AUDIT_RECORD_MAX) {
            r->buf[r->len++] = (char)c;
        } else {
            r->too_long = true;
        }
    }
    if (ferror(r->f)) {
        return PW_EIO;
    }
    if (c == EOF && r->len == 0 && !r->too_long) {
        return 0;
    }
    r->line++;
    r->torn = c == EOF;
    r->buf[r->len] = '\0';
    return 1;
}

static void verdict(struct pw_audit_verdict *v, const char *file, long line, const char *why)
{
    snprintf(v->file, sizeof(v->file), "%s", file);
    v->line = line;
    snprintf(v->why, sizeof(v->why), "%s", why);
}

/* One file's header, read ahead to order the files. */
struct vfile {
    const char *path;
    size_t given; /* position on the command line (stable order for equal sequences) */
    bool header;  /* first line parses as a header (not yet authenticated) */
    uint64_t seq;
};

static int peek_header(struct vfile *vf)
{
    struct pw_audit_lines r;
    json_t *rec = NULL;
    int rc = pw_audit_lines_open(&r, vf->path);

    if (rc) {
        return rc;
    }
    rc = pw_audit_lines_next(&r);
    if (rc == 1 && !r.too_long) {
        rec = json_loadb(r.buf, r.len, 0, NULL);
    }
    if (json_is_integer(json_object_get(rec, "seq")) &&
        json_is_string(json_object_get(rec, "type")) &&
        strcmp(json_string_value(json_object_get(rec, "type")), "header") == 0) {
        vf->header = true;
        vf->seq = (uint64_t)json_integer_value(json_object_get(rec, "seq"));
    }
    json_decref(rec);
    pw_audit_lines_close(&r);
    return rc < 0 ? rc : 0;
}

static int cmp_vfile(const void *pa, const void *pb)
{
    const struct vfile *a = pa;
    const struct vfile *b = pb;

    if (a->header != b->header) {
        return a->header ? 1 : -1; /* headerless files first: they fail at once, clearly */
    }
    if (a->seq != b->seq) {
        return a->seq < b->seq ? -1 : 1;
    }
    return a->given < b->given ? -1 : a->given > b->given;
}

/* The state carried along the chain. */
struct chain {
    bool started;
    uint64_t seq;
    uint64_t n;
    char last[PW_AUDIT_DIGEST_HEX + 1];
    /* A torn last line waits for the next file's header to acknowledge it. */
    size_t torn_bytes;
    long torn_line;
    const char *torn_file;
};

#define TORN_WHY "torn record: the file ends in the middle of a line (truncated)"

/*
 * A torn last line is an interrupted write (power loss): the writer never reported it done. It
 * is accepted only when the next file's authenticated header records exactly that many torn
 * bytes, links to the last good record and follows in sequence; anything else is truncation.
 */
static int check_torn_ack(struct chain *c, const json_t *hdr, const char *path,
                          struct pw_audit_verdict *v)
{
    json_t *bytes = json_object_get(json_object_get(hdr, "anomaly"), "torn_bytes");
    char note[sizeof(v->note)];

    if (c->torn_bytes == 0) {
        return 0;
    }
    if (!json_is_integer(bytes) || (size_t)json_integer_value(bytes) != c->torn_bytes) {
        verdict(v, c->torn_file, c->torn_line, TORN_WHY);
        return PW_EVERIFY;
    }
    snprintf(note, sizeof(note),
             "%s:%ld: torn record (%zu bytes, an interrupted write) acknowledged by the header "
             "of %s",
             c->torn_file, c->torn_line, c->torn_bytes, path);
    if (v->torn_acknowledged == 0) {
        memcpy(v->note, note, sizeof(note));
    }
    v->torn_acknowledged++;
    c->torn_bytes = 0;
    return 0;
}

static const char *short_digest(const char *d, char *buf)
{
    memcpy(buf, d, 12);
    buf[12] = '\0';
    return buf;
}

/* Checks of a header line against the chain (first line of each file). */
static int check_header(struct chain *c, const json_t *rec, const char *path,
                        struct pw_audit_verdict *v)
{
    const char *type = json_string_value(json_object_get(rec, "type"));
    const char *prev = json_string_value(json_object_get(rec, "prev"));
    json_t *seq = json_object_get(rec, "seq");
    char msg[300];
    char b1[16];
    char b2[16];

    if (strcmp(type, "header") != 0 || !json_is_integer(seq)) {
        verdict(v, path, 1, "first line is not a file header (the file was cut at the front)");
        return PW_EVERIFY;
    }
    if (c->started && check_torn_ack(c, rec, path, v) != 0) {
        return PW_EVERIFY;
    }
    if (!c->started) {
        c->started = true;
        c->seq = (uint64_t)json_integer_value(seq);
        c->n = (uint64_t)json_integer_value(json_object_get(rec, "n"));
        v->first_seq = c->seq;
        snprintf(v->first_prev, sizeof(v->first_prev), "%s", prev);
        return 0;
    }
    if ((uint64_t)json_integer_value(seq) != c->seq + 1) {
        snprintf(msg, sizeof(msg),
                 "file sequence %" PRIu64 " follows file %" PRIu64
                 ": a file of the trail is missing or duplicated",
                 (uint64_t)json_integer_value(seq), c->seq);
        verdict(v, path, 1, msg);
        return PW_EVERIFY;
    }
    if (strcmp(prev, c->last) != 0) {
        snprintf(msg, sizeof(msg),
                 "header links to %s... but the previous file ends with %s... (records missing "
                 "at the end of the previous file, or a file was replaced)",
                 short_digest(prev, b1), short_digest(c->last, b2));
        verdict(v, path, 1, msg);
        return PW_EVERIFY;
    }
    c->seq++;
    return 0;
}

/* Checks of any line against the chain: its place (prev) and its number (n). */
static int check_place(struct chain *c, const json_t *rec, const char *path, long line,
                       struct pw_audit_verdict *v)
{
    const char *prev = json_string_value(json_object_get(rec, "prev"));
    uint64_t n = (uint64_t)json_integer_value(json_object_get(rec, "n"));
    const char *type = json_string_value(json_object_get(rec, "type"));
    char msg[300];

    if (line > 1 && strcmp(type, "header") == 0) {
        verdict(v, path, line, "a file header inside a file (lines were inserted)");
        return PW_EVERIFY;
    }
    if (line > 1 && strcmp(prev, c->last) != 0) {
        verdict(v, path, line,
                "authentic record out of place: it does not follow the previous line (a record "
                "was deleted, inserted or reordered before this line)");
        return PW_EVERIFY;
    }
    if (n != c->n) {
        snprintf(msg, sizeof(msg),
                 "record number %" PRIu64 " where %" PRIu64 " was expected (records deleted, "
                 "inserted or reordered)",
                 n, c->n);
        verdict(v, path, line, msg);
        return PW_EVERIFY;
    }
    return 0;
}

static int verify_file(const unsigned char *key, size_t key_len, const char *path, struct chain *c,
                       struct pw_audit_verdict *v)
{
    struct pw_audit_lines r;
    char why[256];
    int rc = pw_audit_lines_open(&r, path);

    if (rc) {
        snprintf(why, sizeof(why), "cannot read: %s", pw_strerror(rc));
        verdict(v, path, 0, why);
        return rc;
    }
    while ((rc = pw_audit_lines_next(&r)) == 1) {
        json_t *rec = NULL;
        if (r.torn && !r.too_long && r.line > 1) {
            c->torn_bytes = r.len;
            c->torn_line = r.line;
            c->torn_file = path;
            rc = 0;
            break;
        }
        if (r.torn) {
            verdict(v, path, r.line, TORN_WHY);
            rc = PW_EVERIFY;
            break;
        }
        if (r.too_long) {
            verdict(v, path, r.line, "line longer than the record cap");
            rc = PW_EVERIFY;
            break;
        }
        rc = pw_audit_check_line(key, key_len, r.buf, r.len, &rec, why, sizeof(why));
        if (rc == 0 && r.line == 1) {
            rc = check_header(c, rec, path, v);
        }
        if (rc == 0) {
            rc = check_place(c, rec, path, r.line, v);
        } else if (rc == PW_EVERIFY && v->why[0] == '\0') {
            verdict(v, path, r.line, why);
        }
        if (rc == 0) {
            snprintf(c->last, sizeof(c->last), "%s",
                     json_string_value(json_object_get(rec, "hmac")));
            c->n++;
            v->records++;
        }
        json_decref(rec);
        if (rc) {
            break;
        }
    }
    if (rc == PW_EIO) {
        verdict(v, path, r.line, "read error");
    } else if (rc == 0 && r.line == 0) {
        verdict(v, path, 0, "empty file (no header)");
        rc = PW_EVERIFY;
    }
    pw_audit_lines_close(&r);
    return rc;
}

int pw_audit_verify_files(const unsigned char *key, size_t key_len, const char *const *files,
                          size_t n_files, struct pw_audit_verdict *v)
{
    struct chain c;
    struct vfile *vf;
    int rc = 0;

    memset(v, 0, sizeof(*v));
    memset(&c, 0, sizeof(c));
    if (n_files == 0) {
        return PW_EINVAL;
    }
    vf = calloc(n_files, sizeof(*vf));
    if (!vf) {
        return PW_ENOMEM;
    }
    for (size_t i = 0; i < n_files; i++) {
        vf[i].path = files[i];
        vf[i].given = i;
        rc = peek_header(&vf[i]);
        if (rc) {
            char why[128];
            snprintf(why, sizeof(why), "cannot read: %s", pw_strerror(rc));
            verdict(v, files[i], 0, why);
            goto out;
        }
    }
    qsort(vf, n_files, sizeof(*vf), cmp_vfile);
    for (size_t i = 0; i < n_files; i++) {
        rc = verify_file(key, key_len, vf[i].path, &c, v);
        if (rc) {
            goto out;
        }
        v->files++;
    }
    if (c.torn_bytes) {
        verdict(v, c.torn_file, c.torn_line, TORN_WHY);
        rc = PW_EVERIFY;
        goto out;
    }
    snprintf(v->last, sizeof(v->last), "%s", c.last);
out:
    free(vf);
    return rc;
}
