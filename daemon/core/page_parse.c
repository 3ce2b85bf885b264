/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One search page's parse (page_parse.h). A value jansson refuses (numeric overflow, invalid
 * UTF-8) is replaced, in a copy of the body, by a marker string at the byte position jansson
 * reports, and the page is parsed again: the marker is a JSON string with control characters no
 * FHIR string may hold, so the resource carrying it is found afterwards and set aside whole.
 * Nothing here reads JSON by hand: jansson says where, this only swaps those bytes.
 */
#include "painwatch/page_parse.h"

#include <stdlib.h>
#include <string.h>

#include "painwatch/err.h"
#include "painwatch/limits.h"

/* As JSON text: a whole value (a number's place), or string content (invalid bytes' place). */
#define MARK_VALUE "\"\\u0001painwatch:unreadable\\u0001\""
#define MARK_TEXT  "\\u0001painwatch:unreadable\\u0001"
/* As parsed. */
#define MARK_PARSED "\001painwatch:unreadable\001"

/* The bytes to replace for jansson's error at byte @p pos: [*start, *end). */
static bool repair_span(const char *s, size_t len, int code, size_t pos, size_t *start, size_t *end,
                        const char **mark)
{
    if (pos == 0 || pos > len) {
        return false;
    }
    if (code == json_error_numeric_overflow) {
        /* The number token ends at pos (jansson put its lookahead back). */
        size_t b = pos;
        while (b > 0 && strchr("0123456789+-.eE", s[b - 1]) && s[b - 1] != '\0') {
            b--;
        }
        if (b == pos) {
            return false;
        }
        *start = b;
        *end = pos;
        *mark = MARK_VALUE;
        return true;
    }
    if (code == json_error_invalid_utf8) {
        /* jansson reports the bad sequence at pos - 1 or pos (depending on what followed its
         * first byte): the run of non-ASCII bytes there goes whole (a valid neighbour with it:
         * the resource is set aside anyway). */
        size_t b;
        if ((unsigned char)s[pos - 1] >= 0x80) {
            b = pos - 1;
        } else if (pos < len && (unsigned char)s[pos] >= 0x80) {
            b = pos;
        } else {
            return false;
        }
        size_t e = b + 1;
        while (b > 0 && pos - b < 8 && (unsigned char)s[b - 1] >= 0x80) {
            b--;
        }
        while (e < len && e - pos < 8 && (unsigned char)s[e] >= 0x80) {
            e++;
        }
        *start = b;
        *end = e;
        *mark = MARK_TEXT;
        return true;
    }
    return false;
}

/* A copy of @p s with [start, end) replaced by @p mark. */
static char *splice(const char *s, size_t len, size_t start, size_t end, const char *mark,
                    size_t *out_len)
{
    size_t m = strlen(mark);
    size_t n = len - (end - start) + m;
    char *t = malloc(n ? n : 1);

    if (!t) {
        return NULL;
    }
    memcpy(t, s, start);
    memcpy(t + start, mark, m);
    memcpy(t + start + m, s + end, len - end);
    *out_len = n;
    return t;
}

int pw_page_parse(const char *body, size_t len, size_t budget, size_t entries_max,
                  struct pw_jarena_page *pg, struct pw_page_parsed *out)
{
    const char *cur = body;
    size_t cur_len = len;
    char *copy = NULL;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    for (;;) {
        json_error_t jerr;
        bool arena = pw_jarena_page_begin_budget(pg, budget) == 0;
        json_t *root = json_loadb(cur, cur_len, 0, &jerr);
        if (arena) {
            pw_jarena_end();
        }
        if (root) {
            const json_t *entries = json_object_get(root, "entry");
            out->entries = json_is_array(entries) ? json_array_size(entries) : 0;
            if (entries_max && out->entries > entries_max) {
                pw_jarena_page_drop(pg, root);
                out->refusal = PW_PAGE_OVER_ENTRIES;
                break;
            }
            out->bundle = root;
            out->refusal = PW_PAGE_OK;
            break;
        }
        bool over = pg->over;
        pw_jarena_page_drop(pg, NULL); /* what the failed parse left in the arena */
        if (over) {
            out->refusal = PW_PAGE_OVER_BUDGET;
            break;
        }
        size_t start;
        size_t end;
        const char *mark;
        if (out->repairs < PW_PAGE_REPAIRS_MAX && jerr.position >= 0 &&
            repair_span(cur, cur_len, json_error_code(&jerr), (size_t)jerr.position, &start, &end,
                        &mark)) {
            size_t n;
            char *next = splice(cur, cur_len, start, end, mark, &n);
            if (!next) {
                rc = PW_ENOMEM;
                out->refusal = PW_PAGE_NOT_JSON;
                break;
            }
            free(copy);
            copy = next;
            cur = copy;
            cur_len = n;
            out->repairs++;
            continue;
        }
        out->refusal = PW_PAGE_NOT_JSON;
        out->line = jerr.line;
        out->column = jerr.column;
        out->position = jerr.position > 0 ? (size_t)jerr.position : 0;
        break;
    }
    free(copy);
    return rc;
}

/* jansson's iteration takes a non-const json_t even when it only reads. */
static json_t *unconst(const json_t *j)
{
    union {
        const json_t *c;
        json_t *m;
    } u = {.c = j};
    return u.m;
}

bool pw_page_value_unreadable(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return strstr(json_string_value(v), MARK_PARSED) != NULL;
    case JSON_ARRAY: {
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (pw_page_value_unreadable(json_array_get(v, i))) {
                return true;
            }
        }
        return false;
    }
    case JSON_OBJECT: {
        const char *k;
        json_t *e;
        json_object_foreach(unconst(v), k, e)
        {
            if (strstr(k, MARK_PARSED) || pw_page_value_unreadable(e)) {
                return true;
            }
        }
        return false;
    }
    default:
        return false;
    }
}

size_t pw_page_take_unreadable(json_t *bundle, json_t *out)
{
    json_t *entries = json_object_get(bundle, "entry");
    size_t taken = 0;

    if (!json_is_array(entries)) {
        return 0;
    }
    for (size_t i = 0; i < json_array_size(entries);) {
        json_t *res = json_object_get(json_array_get(entries, i), "resource");
        if (res && pw_page_value_unreadable(res)) {
            /* Appended first (a new reference), then out of the page. */
            if (json_array_append(out, res) != 0) {
                break;
            }
            json_array_remove(entries, i);
            taken++;
            continue;
        }
        i++;
    }
    return taken;
}
