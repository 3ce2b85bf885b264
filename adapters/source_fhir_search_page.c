/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The FHIR search source, pure parts of a run: the cursor and its seen-set (the state carried
 * between runs inside the cursor text) and the filtering of one Bundle page against it. No I/O:
 * the run that uses them is source_fhir_search_run.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "painwatch/err.h"
#include "painwatch/fhir.h"
#include "painwatch/fhir_search.h"
#include "painwatch/limits.h"
#include "painwatch/log.h"

/*
 * Cursor and seen-set.
 */

int pw_sync_state_init(struct pw_sync_state *st)
{
    st->cursor_ms = PW_SYNC_NO_CURSOR;
    st->seen = json_object();
    return st->seen ? 0 : PW_ENOMEM;
}

void pw_sync_state_cleanup(struct pw_sync_state *st)
{
    if (st) {
        json_decref(st->seen);
        st->seen = NULL;
    }
}

int pw_sync_state_load(struct pw_sync_state *st, const char *text)
{
    json_error_t jerr;
    json_t *root;
    json_t *seen;
    json_int_t ms;
    int version;

    if (!text) {
        st->cursor_ms = PW_SYNC_NO_CURSOR;
        json_object_clear(st->seen);
        return 0;
    }
    root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        return PW_EJSON;
    }
    seen = NULL;
    const char *at = NULL; /* human-readable copy of ms, not read back */
    if (json_unpack_ex(root, &jerr, JSON_STRICT, "{s:i, s:I, s?s, s:o}", "v", &version, "ms", &ms,
                       "cursor", &at, "seen", &seen) != 0 ||
        version != 1 || !json_is_object(seen)) {
        json_decref(root);
        return PW_EJSON;
    }
    const char *k;
    json_t *v;
    json_object_foreach(seen, k, v)
    {
        if (!json_is_integer(v)) {
            json_decref(root);
            return PW_EJSON;
        }
    }
    json_decref(st->seen);
    st->seen = json_incref(seen);
    st->cursor_ms = ms;
    json_decref(root);
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Drop the oldest entries until at most @p max remain. */
static int seen_trim(json_t *seen, size_t max)
{
    size_t n = json_object_size(seen);
    if (n <= max) {
        return 0;
    }
    int64_t *all = malloc(n * sizeof(*all));
    if (!all) {
        return PW_ENOMEM;
    }
    size_t i = 0;
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach(seen, k, v)
    {
        all[i++] = json_integer_value(v);
    }
    qsort(all, n, sizeof(*all), cmp_i64);
    int64_t keep_from = all[n - max];
    size_t excess = n - max;
    free(all);
    /* Entries equal to the threshold survive unless the excess still needs them gone. */
    json_object_foreach_safe(seen, tmp, k, v)
    {
        if (excess && json_integer_value(v) <= keep_from) {
            json_object_del(seen, k);
            excess--;
        }
    }
    return 0;
}

static char *state_text(const struct pw_sync_state *st)
{
    char at[40] = "";
    if (st->cursor_ms != PW_SYNC_NO_CURSOR) {
        pw_fhir_instant_format(st->cursor_ms, at, sizeof(at));
    }
    json_t *root = json_pack("{s:i, s:I, s:s, s:O}", "v", 1, "ms", (json_int_t)st->cursor_ms,
                             "cursor", at, "seen", st->seen);
    char *text = root ? json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    return text;
}

int pw_sync_state_dump(struct pw_sync_state *st, uint64_t overlap_ms, char **out)
{
    if (st->cursor_ms != PW_SYNC_NO_CURSOR) {
        int64_t floor_ms = st->cursor_ms - (int64_t)overlap_ms;
        const char *k;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(st->seen, tmp, k, v)
        {
            if (json_integer_value(v) < floor_ms) {
                json_object_del(st->seen, k);
            }
        }
    }
    size_t max = PW_SYNC_SEEN_MAX;
    for (;;) {
        if (seen_trim(st->seen, max)) {
            return PW_ENOMEM;
        }
        char *text = state_text(st);
        if (!text) {
            return PW_ENOMEM;
        }
        if (strlen(text) < PW_SYNC_CURSOR_MAX) {
            *out = text;
            return 0;
        }
        free(text);
        /* Very long ids: keep the newest half. A dropped entry costs at most a duplicate
         * delivery (the store is idempotent), never a lost resource or a stuck cursor. */
        max = json_object_size(st->seen) / 2;
    }
}

size_t pw_sync_state_prune(struct pw_sync_state *st, int64_t floor_ms, const json_t *keep)
{
    size_t dropped = 0;
    const char *k;
    json_t *v;
    void *tmp;

    json_object_foreach_safe(st->seen, tmp, k, v)
    {
        if (json_integer_value(v) < floor_ms && !json_object_get(keep, k)) {
            json_object_del(st->seen, k);
            dropped++;
        }
    }
    return dropped;
}

/*
 * One page.
 */

static const char *str_at(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* The seen-set key "type/id/version"; false when the resource cannot be identified. @p type and
 * @p id are the resource's own (the page filter has them at hand already). */
static bool seen_key(const json_t *res, const char *type, const char *id, char *buf, size_t len,
                     int64_t *lu_ms, bool *has_lu)
{
    const json_t *meta = json_object_get(res, "meta");
    const char *vid = str_at(meta, "versionId");
    const char *lu = str_at(meta, "lastUpdated");

    *has_lu = lu && pw_fhir_instant_parse(lu, lu_ms) == 0;
    if (!type || !id || (!vid && !*has_lu)) {
        return false;
    }
    /* "Type/id/version" or "Type/id/@lastUpdated", joined by hand: once per resource. */
    const char *parts[] = {type, "/", id, vid ? "/" : "/@", vid ? vid : lu};
    size_t n = 0;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        size_t k = strlen(parts[i]);
        if (n + k >= len) {
            return false;
        }
        memcpy(buf + n, parts[i], k);
        n += k;
    }
    buf[n] = '\0';
    return true;
}

bool pw_sync_seen_key(const json_t *res, char *buf, size_t len)
{
    int64_t lu_ms;
    bool has_lu;
    return seen_key(res, str_at(res, "resourceType"), str_at(res, "id"), buf, len, &lu_ms, &has_lu);
}

static const char *next_link(const json_t *bundle)
{
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(bundle, "link"), i, l)
    {
        const char *rel = str_at(l, "relation");
        if (rel && strcmp(rel, "next") == 0) {
            return str_at(l, "url");
        }
    }
    return NULL;
}

int pw_sync_page_filter(struct pw_sync_state *st, const json_t *bundle, json_t **out_resources,
                        const char **out_next, int64_t *max_ms, struct pw_page_stats *stats)
{
    int64_t unused = 0;
    return pw_sync_page_filter_typed(st, bundle, NULL, out_resources, out_next, max_ms, &unused,
                                     stats);
}

int pw_sync_page_filter_typed(struct pw_sync_state *st, const json_t *bundle, const char *of_type,
                              json_t **out_resources, const char **out_next, int64_t *max_ms,
                              int64_t *type_max_ms, struct pw_page_stats *stats)
{
    const char *rt = str_at(bundle, "resourceType");
    const char *bt = str_at(bundle, "type");
    const json_t *entries = json_object_get(bundle, "entry");

    memset(stats, 0, sizeof(*stats));
    if (!rt || strcmp(rt, "Bundle") != 0 || (bt && strcmp(bt, "searchset") != 0) ||
        (entries && !json_is_array(entries))) {
        return PW_EFHIR;
    }
    json_t *out = json_array();
    if (!out) {
        return PW_ENOMEM;
    }
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e)
    {
        json_t *res = json_object_get(e, "resource");
        const char *type = str_at(res, "resourceType");
        const char *mode = str_at(json_object_get(e, "search"), "mode");
        char key[PW_REF_MAX + 64];
        int64_t lu_ms = 0;
        bool has_lu;

        stats->entries++;
        if (!json_is_object(res) || !type) {
            /* A malformed entry is skipped, not fatal: failing would pin the cursor forever.
             * Counted, not logged one by one: the caller logs one summary per page. */
            stats->no_resource++;
            continue;
        }
        if (strcmp(type, "OperationOutcome") == 0 || (mode && strcmp(mode, "outcome") == 0)) {
            stats->outcomes++;
            continue;
        }
        const char *id = str_at(res, "id");
        if (!id) {
            stats->no_id++;
            continue;
        }
        if (seen_key(res, type, id, key, sizeof(key), &lu_ms, &has_lu)) {
            if (json_object_get(st->seen, key)) {
                stats->duplicates++;
                continue;
            }
            if (json_object_set_new(st->seen, key, json_integer(lu_ms))) {
                json_decref(out);
                return PW_ENOMEM;
            }
        } else {
            /* No versionId and no lastUpdated: it cannot be deduped here; the store is
             * idempotent on (type, id, versionId) anyway. */
            pw_log_debug(SYNC, "%s/%s has no meta.versionId or lastUpdated", type, id);
        }
        if (has_lu && lu_ms > *max_ms) {
            *max_ms = lu_ms;
        }
        if (has_lu && of_type && lu_ms > *type_max_ms && strcmp(type, of_type) == 0) {
            *type_max_ms = lu_ms;
        }
        if (json_array_append(out, res)) {
            json_decref(out);
            return PW_ENOMEM;
        }
        stats->delivered++;
    }
    *out_next = next_link(bundle);
    *out_resources = out;
    return 0;
}

/* @p n with thousands separators ("1,000,000"): a count an operator reads at a glance. */
static const char *grouped(size_t n, char buf[32])
{
    char digits[24];
    int nd = snprintf(digits, sizeof(digits), "%zu", n);
    size_t o = 0;

    for (int i = 0; i < nd; i++) {
        if (i && (nd - i) % 3 == 0) {
            buf[o++] = ',';
        }
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

size_t pw_page_stats_summary(const struct pw_page_stats *ps, char *buf, size_t len)
{
    char g[32];
    const struct {
        size_t n;
        const char *what;
    } parts[] = {
        {ps->no_id, "no id"},
        {ps->no_resource, "no resource"},
        {ps->unreadable, "unreadable"},
        {ps->outcomes, "OperationOutcome from the server"},
    };
    size_t total = 0;
    size_t off;
    int w;

    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        total += parts[i].n;
    }
    if (len) {
        buf[0] = '\0';
    }
    if (total == 0 || len == 0) {
        return total;
    }
    w = snprintf(buf, len, "%s %s rejected:", grouped(total, g), total == 1 ? "entry" : "entries");
    off = w > 0 && (size_t)w < len ? (size_t)w : len - 1;
    for (size_t i = 0, k = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (parts[i].n == 0) {
            continue;
        }
        w = snprintf(buf + off, len - off, "%s %s %s", k++ ? "," : "", grouped(parts[i].n, g),
                     parts[i].what);
        off += w > 0 && (size_t)w < len - off ? (size_t)w : len - 1 - off;
    }
    return total;
}
