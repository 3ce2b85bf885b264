/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The files between the two phases of a --jobs run (backtest.h): each worker of the first phase
 * reads its part of the input (backtest_input.c) into one file per shard plus one of the shared
 * resources and a summary (pw_bt_scatter); each worker of the second gathers its shard from every
 * part into its own spool (pw_bt_spool_gather, backtest_spool.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/backtest.h"
#include "core/backtest_spool_int.h"
#include "painwatch/err.h"

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

int pw_bt_file_put(FILE *f, const struct rec *r)
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

int pw_bt_file_put_shared(FILE *f, int64_t seq, const char *ref, const char *text, size_t len)
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
    rc = rc ? rc : pw_bt_read_part(&rd, in, part, n_parts, 0, err, errlen);
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
        rc = pw_bt_db_put(sp, &r);
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
            pw_bt_merge_sum(sp, &sum);
        }
        in.f = rc == 0 ? part_open(dir, k, "shared", 0, "rb") : NULL;
        rc = in.f ? 0 : PW_EIO;
        while (rc == 0 && (rc = rec_next(&in)) > 0) {
            const char *s[4];
            rec_strings(&in, s);
            rc = s[0] && s[1] ? pw_bt_db_put_shared(sp, in.h.seq, s[0], s[1], in.h.len[1] - 1)
                              : PW_EIO;
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
