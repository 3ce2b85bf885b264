/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One search page's parse, bounded and forgiving (issue 18): a memory budget and an entry cap,
 * and values jansson cannot represent (a number out of range such as 1e400 or a 30-digit
 * integer, invalid UTF-8) set aside so the rest of the page still reads. The resources that held
 * such a value are taken out of the page, never delivered: the source reports them.
 */
#ifndef PAINWATCH_PAGE_PARSE_H
#define PAINWATCH_PAGE_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "painwatch/jarena.h"

/** Why a page was refused. */
enum pw_page_refusal {
    PW_PAGE_OK = 0,
    PW_PAGE_NOT_JSON,     /* not JSON even with the unreadable values set aside */
    PW_PAGE_OVER_BUDGET,  /* the parse passed its memory budget */
    PW_PAGE_OVER_ENTRIES, /* more Bundle.entry elements than the cap */
};

struct pw_page_parsed {
    json_t *bundle;               /* the tree (in @p pg's arena page), NULL when refused */
    enum pw_page_refusal refusal; /* PW_PAGE_OK when bundle is set */
    unsigned repairs;             /* values set aside as unreadable */
    size_t entries;               /* Bundle.entry elements (when parsed) */
    /* Where the parse failed (PW_PAGE_NOT_JSON): position only, never the server's bytes. */
    int line;
    int column;
    size_t position;
};

/**
 * Parse @p body into @p pg (pw_jarena_page_begin_budget() with @p budget; 0: none) with at most
 * @p entries_max entries (0: no cap). On PW_PAGE_OK the caller drops the tree with
 * pw_jarena_page_drop(pg, out->bundle) as any page; refused, nothing is left in @p pg.
 * @return 0, or PW_ENOMEM when a repair copy cannot be made.
 */
int pw_page_parse(const char *body, size_t len, size_t budget, size_t entries_max,
                  struct pw_jarena_page *pg, struct pw_page_parsed *out);

/** True when @p v (any JSON value, searched deeply, keys included) holds a set-aside value. */
bool pw_page_value_unreadable(const json_t *v);

/**
 * Take the entries whose resource holds a set-aside value out of @p bundle's entry array and
 * append their resources to @p out (a JSON array; references into the page's tree, valid until
 * its drop). @return how many were taken.
 */
size_t pw_page_take_unreadable(json_t *bundle, json_t *out);

#endif
