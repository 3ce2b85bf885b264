/* SPDX-License-Identifier: Apache-2.0 */
/* RFC 4180 CSV: quoted fields may hold commas, doubled quotes and newlines. */
#include "clinical/csv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "painwatch/err.h"

static int read_all(const char *path, size_t max, char **out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return -errno;
    }
    size_t cap = (size_t)64 * 1024, n = 0;
    char *buf = malloc(cap + 1);
    int rc = buf ? 0 : PW_ENOMEM;
    while (rc == 0) {
        if (n == cap) {
            if (cap >= max) {
                rc = PW_E2BIG;
                break;
            }
            cap = cap * 2 > max ? max : cap * 2;
            char *p = realloc(buf, cap + 1);
            if (p == NULL) {
                rc = PW_ENOMEM;
                break;
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            rc = ferror(f) ? PW_EIO : 0;
            break;
        }
    }
    fclose(f);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

int pw_csv_open(struct pw_csv *csv, const char *path, size_t max)
{
    memset(csv, 0, sizeof(*csv));
    int rc = read_all(path, max, &csv->buf);
    if (rc < 0) {
        return rc;
    }
    csv->pos = csv->buf;
    csv->next_line = 1;
    rc = pw_csv_next(csv);
    if (rc <= 0) {
        pw_csv_close(csv);
        return rc < 0 ? rc : PW_ETERM;
    }
    for (size_t i = 0; i < csv->n_fields; i++) {
        csv->header[i] = csv->field[i];
    }
    csv->n_header = csv->n_fields;
    return 0;
}

void pw_csv_close(struct pw_csv *csv)
{
    free(csv->buf);
    memset(csv, 0, sizeof(*csv));
}

/*
 * Parse one field at csv->pos in place and NUL-terminate it; *sep gets the character that ended
 * it (',' '\r' '\n' or '\0') and pos moves past that character.
 */
static int parse_field(struct pw_csv *csv, char **start, char *sep)
{
    char *p = csv->pos;
    if (*p != '"') {
        *start = p;
        p += strcspn(p, ",\r\n");
        *sep = *p;
        if (*p != '\0') {
            *p++ = '\0';
        }
        csv->pos = p;
        return 0;
    }
    char *w = ++p;
    *start = w;
    for (;;) {
        if (*p == '\0') {
            return PW_ETERM; /* unterminated quote */
        }
        if (*p == '"') {
            if (p[1] != '"') {
                p++;
                break;
            }
            p++;
        }
        if (*p == '\n') {
            csv->next_line++;
        }
        *w++ = *p++;
    }
    if (*p != ',' && *p != '\r' && *p != '\n' && *p != '\0') {
        return PW_ETERM;
    }
    *sep = *p;
    if (*p != '\0') {
        p++;
    }
    *w = '\0';
    csv->pos = p;
    return 0;
}

int pw_csv_next(struct pw_csv *csv)
{
    /* Skip blank lines. */
    while (*csv->pos == '\n' || *csv->pos == '\r') {
        if (*csv->pos == '\n') {
            csv->next_line++;
        }
        csv->pos++;
    }
    if (*csv->pos == '\0') {
        return 0;
    }
    csv->line = csv->next_line;
    csv->n_fields = 0;
    for (;;) {
        char *start;
        char sep;
        if (parse_field(csv, &start, &sep) < 0 || csv->n_fields >= PW_CSV_FIELDS_MAX) {
            return PW_ETERM;
        }
        csv->field[csv->n_fields++] = start;
        if (sep == ',') {
            continue;
        }
        if (sep == '\r' && *csv->pos == '\n') {
            csv->pos++;
        }
        if (sep != '\0') {
            csv->next_line++;
        }
        return 1;
    }
}

int pw_csv_col(const struct pw_csv *csv, const char *name)
{
    for (size_t i = 0; i < csv->n_header; i++) {
        if (strcmp(csv->header[i], name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *pw_csv_get(const struct pw_csv *csv, int col)
{
    if (col < 0 || (size_t)col >= csv->n_fields) {
        return "";
    }
    return csv->field[col];
}
