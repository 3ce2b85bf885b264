/* SPDX-License-Identifier: Apache-2.0 */
/* Bytes as lowercase hex (digests, keys, random ids), written once (issue 20). Pure. */
#ifndef PAINWATCH_HEX_H
#define PAINWATCH_HEX_H

#include <stddef.h>

/** Hex length of a SHA-256 digest, without the NUL. */
#define PW_SHA256_HEX_LEN 64

/**
 * Write the @p n bytes at @p in as 2 * @p n lowercase hex digits and a NUL into @p out, which
 * holds at least 2 * @p n + 1 bytes. @return @p out.
 */
char *pw_hex_encode(const unsigned char *in, size_t n, char *out);

#endif
