/* SPDX-License-Identifier: Apache-2.0 */
/* jansson errors for logs: position and category, never the input's bytes (json_err.h). */
#include "painwatch/json_err.h"

#include <stdio.h>

const char *pw_json_error_category(const json_error_t *e)
{
    if (!e) {
        return "malformed JSON";
    }
    switch (json_error_code(e)) {
    case json_error_out_of_memory:
        return "out of memory";
    case json_error_stack_overflow:
        return "nested too deep";
    case json_error_invalid_utf8:
        return "invalid UTF-8";
    case json_error_premature_end_of_input:
        return "truncated";
    case json_error_end_of_input_expected:
        return "data after the end";
    case json_error_null_character:
    case json_error_null_byte_in_key:
        return "NUL byte";
    case json_error_duplicate_key:
        return "duplicate key";
    case json_error_numeric_overflow:
        return "number out of range";
    case json_error_wrong_type:
        return "wrong type";
    case json_error_item_not_found:
        return "member missing";
    case json_error_invalid_syntax:
        return "invalid syntax";
    default:
        return "malformed JSON";
    }
}

const char *pw_json_error_describe(const json_error_t *e, char *buf, size_t cap)
{
    if (!buf || cap == 0) {
        return "";
    }
    if (!e) {
        snprintf(buf, cap, "malformed JSON");
    } else if (e->line > 0) {
        snprintf(buf, cap, "line %d, column %d, byte %d: %s", e->line, e->column, e->position,
                 pw_json_error_category(e));
    } else {
        snprintf(buf, cap, "%s", pw_json_error_category(e));
    }
    return buf;
}
