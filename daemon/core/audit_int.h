/* SPDX-License-Identifier: Apache-2.0 */
/* Private to the audit files: canonical bytes, the HMAC, and the check of one line. */
#ifndef PAINWATCH_CORE_AUDIT_INT_H
#define PAINWATCH_CORE_AUDIT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "painwatch/audit.h"

/* The one serialisation used for hashing and for the line itself. */
#define PW_AUDIT_JSON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS)

/** 64 ASCII zeros: the prev of the very first record of a trail. */
extern const char pw_audit_zero_digest[PW_AUDIT_DIGEST_HEX + 1];

/**
 * hex(HMAC-SHA256(key, prev || canon)) into @p out (65 bytes).
 * @return 0 or PW_ENOMEM.
 */
int pw_audit_mac(const unsigned char *key, size_t key_len, const char *prev, const char *canon,
                 size_t canon_len, char *out);

/** True when @p s is exactly 64 lowercase hex digits. */
bool pw_audit_is_digest(const char *s);

/**
 * Check one line (without its newline) on its own: size cap, JSON object without duplicate keys,
 * canonical form, "prev" and "hmac" digests, integer "n", string "type", and the HMAC.
 * Chain position is the caller's business.
 * @param out on 0, the parsed record: caller owns the result; free with json_decref(). May be
 *            NULL.
 * @return 0, PW_EVERIFY (reason in @p why) or PW_ENOMEM.
 */
/** Whether @p line is @p canon (a record's canonical dump without "hmac") with "hmac" last. */
bool pw_audit_line_is(const char *canon, const char *hmac, const char *line, size_t len);

int pw_audit_check_line(const unsigned char *key, size_t key_len, const char *line, size_t len,
                        json_t **out, char *why, size_t why_len);

/** A capped line reader over one trail file (NUL bytes inside a line are kept). */
struct pw_audit_lines {
    FILE *f;
    char *buf;     /* the current line, NUL-terminated, at most PW_AUDIT_RECORD_MAX bytes */
    size_t len;    /* bytes in buf */
    long line;     /* 1-based number of the current line */
    bool too_long; /* the line was longer than the cap (buf holds its head) */
    bool torn;     /* the file ended without a newline after this line */
};

/** @return 0, PW_ENOENT, PW_EIO or PW_ENOMEM. Close with pw_audit_lines_close(). */
int pw_audit_lines_open(struct pw_audit_lines *r, const char *path);

/** @return 1 a line is in r->buf, 0 end of file, PW_EIO read error. */
int pw_audit_lines_next(struct pw_audit_lines *r);

void pw_audit_lines_close(struct pw_audit_lines *r);

/** The writer's live file path and key (borrowed), for the chain head check. */
const char *pw_audit_path(const struct pw_audit *a);
const unsigned char *pw_audit_key(const struct pw_audit *a, size_t *len);

#endif
