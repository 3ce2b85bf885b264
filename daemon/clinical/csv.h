/* SPDX-License-Identifier: Apache-2.0 */
/* A small RFC 4180 CSV reader for the terminology tables (fields are unquoted in place). */
#ifndef PAINWATCH_CLINICAL_CSV_H
#define PAINWATCH_CLINICAL_CSV_H

#include <stddef.h>

#define PW_CSV_FIELDS_MAX 16

struct pw_csv {
    char *buf; /* the whole file, owned, modified in place */
    char *pos;
    size_t line; /* 1-based line of the record last read */
    size_t next_line;
    char *field[PW_CSV_FIELDS_MAX];
    size_t n_fields;
    char *header[PW_CSV_FIELDS_MAX];
    size_t n_header;
};

/** Read @p path (at most @p max bytes) and its header row. @return 0 or a negative PW_E*. */
int pw_csv_open(struct pw_csv *csv, const char *path, size_t max);
void pw_csv_close(struct pw_csv *csv);

/** Next record into csv->field. @return 1 read, 0 at end, PW_ETERM on a malformed record. */
int pw_csv_next(struct pw_csv *csv);

/** Index of header column @p name, or -1. */
int pw_csv_col(const struct pw_csv *csv, const char *name);

/** Field @p col of the current record ("" when the record is short or col < 0). */
const char *pw_csv_get(const struct pw_csv *csv, int col);

#endif
