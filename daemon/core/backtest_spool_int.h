/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to the backtest's input files (backtest.h): what the input reader (backtest_input.c),
 * the files between the two phases of a --jobs run (backtest_parts.c) and the SQLite spool
 * (backtest_spool.c) share: a resource as read, where the reader puts it, and the put functions.
 */
#ifndef PAINWATCH_CORE_BACKTEST_SPOOL_INT_H
#define PAINWATCH_CORE_BACKTEST_SPOOL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/backtest.h"

/*
 * Input order, the tie-break of "the later version wins" and the order of a patient's resources:
 * (file index << SEQ_POS_BITS) | position, the position being a count of the resources read in a
 * JSON document, or in NDJSON the byte offset of the line plus the resource's index within it (a
 * line of n bytes holds fewer than n resources). It does not depend on which worker read what.
 */
#define SEQ_POS_BITS 40

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

/* The summary a worker of the first phase leaves for every worker of the second. */
struct part_sum {
    unsigned types;
    int64_t first, last;
};

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

/* ---- backtest_spool.c: the SQLite spool ---- */

/** Spool one resource of a patient (the later version wins). @return 0 or PW_EIO / PW_ENOSPC. */
int pw_bt_db_put(struct pw_bt_spool *sp, const struct rec *r);

/** Spool one resource no patient owns, by @p ref (the later input wins). @return as above. */
int pw_bt_db_put_shared(struct pw_bt_spool *sp, int64_t seq, const char *ref, const char *text,
                        size_t len);

/** Widen the period [*@p first, *@p last] to @p t (PW_TIME_NONE: unchanged). */
void pw_bt_span_add(int64_t *first, int64_t *last, int64_t t);

/** The types and period read by a part, into @p sp. */
void pw_bt_merge_sum(struct pw_bt_spool *sp, const struct part_sum *s);

/* ---- backtest_parts.c: the files between the two phases of a --jobs run ---- */

/** One resource of a patient into a shard's file. @return 0 or PW_EIO. */
int pw_bt_file_put(FILE *f, const struct rec *r);

/** One resource no patient owns into a part's file of shared resources. @return 0 or PW_EIO. */
int pw_bt_file_put_shared(FILE *f, int64_t seq, const char *ref, const char *text, size_t len);

/* ---- backtest_input.c: reading the input ---- */

/**
 * Read part @p part of @p n_parts of @p in into @p rd (@p file0: the first file's index).
 * @return 0, or -1 with the place and reason in @p err.
 */
int pw_bt_read_part(struct reader *rd, const struct pw_bt_input *in, unsigned part,
                    unsigned n_parts, size_t file0, char *err, size_t errlen);

#endif
