/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A jansson parse error described without its text (issue 18, finding 10): jansson quotes the
 * bytes near the error ("'Jane Doe' is not..."), which from a server can be a patient's name or
 * the start of an access token. Logs get the position and a fixed category instead.
 */
#ifndef PAINWATCH_JSON_ERR_H
#define PAINWATCH_JSON_ERR_H

#include <stddef.h>

#include <jansson.h>

/** A fixed category for @p e: "invalid syntax", "invalid UTF-8", "truncated"... Static. */
const char *pw_json_error_category(const json_error_t *e);

/**
 * "line L, column C, byte P: <category>" into @p buf (always NUL-terminated). No byte of the
 * parsed input ever appears in it. @return @p buf, for use as a printf argument.
 */
const char *pw_json_error_describe(const json_error_t *e, char *buf, size_t cap);

#endif
