/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The FHIR search source adapter (adapters/source_fhir_search*.c): its configuration (search
 * dialect, resource types, lookback, overlap), the pure pieces of an incremental run (URL
 * building, Bundle page filtering, cursor and seen-set) and its CapabilityStatement check.
 * The adapter itself is pw_source_fhir_search (source.h); the driver that schedules it is in
 * sync.h. Core never calls these: they are the adapter's own parts, shared between its files
 * and its tests.
 */
#ifndef PAINWATCH_FHIR_SEARCH_H
#define PAINWATCH_FHIR_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "painwatch/limits.h"
#include "painwatch/sink.h"
#include "painwatch/sync.h"

/*
 * Caps of the FHIR search source.
 *   PW_SYNC_TYPES_MAX       resource types searched per server.
 *   PW_SYNC_SEEN_MAX        (type, id, versionId) entries kept per stream between runs; only the
 *                           overlap window needs them, so overflow means a very busy window and
 *                           costs a few duplicate deliveries, never a lost resource.
 *   PW_SYNC_RESTARTS_MAX    restarts from the cursor after expired paging links, per run.
 *   PW_SYNC_SEEN_PRUNE_MIN  seen-set size at which a run sorted by _lastUpdated starts dropping
 *                           entries it has paged past (then again each time the set doubles
 *                           since the last prune): a long run holds about this many entries
 *                           plus one overlap window, not one per resource received.
 */
#define PW_SYNC_TYPES_MAX      8
#define PW_SYNC_SEEN_MAX       20000
#define PW_SYNC_RESTARTS_MAX   2
#define PW_SYNC_SEEN_PRUNE_MIN 4096

/** How a server spells its searches. Defaults suit a plain R4 server (HAPI). */
struct pw_fhir_dialect {
    bool subject;       /* patient by `subject=Patient/<id>` instead of `patient=<id>` */
    bool last_updated;  /* `_lastUpdated=gt...` works (else every run re-reads the lookback) */
    bool sort;          /* `_sort=_lastUpdated` works (lets a capped run advance the cursor) */
    bool code_in;       /* `code:in=<ValueSet>` works (used when a type has a value set) */
    bool include;       /* `_include` works (MedicationRequest:medication is then requested) */
    bool date_params;   /* `date` (Observation) and `authoredon` (MedicationRequest) work */
    bool status_list;   /* send every MedicationRequest status explicitly (servers that default
                           to active only, e.g. some EHRs, otherwise hide stopped orders) */
    unsigned count_max; /* the largest `_count` the server honours */
};

/** One resource type to search on a server. */
struct pw_search_type {
    char *type;     /* "Observation", "MedicationRequest", "Condition", "ServiceRequest" */
    char *codes;    /* "system|code,system|code" for `code=`, or NULL for no code filter */
    char *valueset; /* ValueSet URL for `code:in=` when the dialect allows it, or NULL */
};

/**
 * What the FHIR search source searches on one server. Its scheduling (poll interval, backoff,
 * parallel streams) is the driver's (struct pw_sync_conf). Init with pw_fhir_search_conf_init().
 */
struct pw_fhir_search_conf {
    char *name; /* the pw_http server name; also the first part of every stream key */
    char *base; /* FHIR base URL, e.g. "https://ehr.example.org/fhir/R4" (no trailing slash) */
    struct pw_fhir_dialect dialect;
    struct pw_search_type types[PW_SYNC_TYPES_MAX];
    size_t ntypes;
    unsigned count;       /* `_count` requested, clamped to dialect.count_max */
    uint64_t overlap_ms;  /* window re-read below the cursor (clock skew, late commits) */
    uint64_t lookback_ms; /* first sync of a stream: clinical lookback */
    unsigned pages_max;   /* pages per query of a run, <= PW_PAGES_PER_RUN_MAX */
    /* What painwatch writes here (the /metadata check warns when it is not advertised): the
     * sink's (pw_source_env.writes); conf_init: Flag. */
    struct pw_sink_writes writes;
};

/** Defaults: Observation (pain codes) and MedicationRequest, overlap 5 min, lookback 14 d. */
int pw_fhir_search_conf_init(struct pw_fhir_search_conf *conf, const char *name, const char *base);

/** Deep copy; @p dst is initialized by this call. @return 0 or PW_ENOMEM. */
int pw_fhir_search_conf_copy(struct pw_fhir_search_conf *dst,
                             const struct pw_fhir_search_conf *src);

/** Release what init/copy (or the adapter's init) allocated. Safe on a zeroed struct. */
void pw_fhir_search_conf_cleanup(struct pw_fhir_search_conf *conf);

/*
 * One incremental run, pure parts.
 */

/** Per-stream state carried between runs inside the cursor text. */
struct pw_sync_state {
    int64_t cursor_ms; /* largest meta.lastUpdated received; INT64_MIN = never synced */
    json_t *seen;      /* object "type/id/vid" -> lastUpdated ms (new reference, owned) */
};

#define PW_SYNC_NO_CURSOR INT64_MIN

/** Empty state (never synced). Release with pw_sync_state_cleanup(). */
int pw_sync_state_init(struct pw_sync_state *st);
void pw_sync_state_cleanup(struct pw_sync_state *st);

/** Load from cursor text (NULL = never synced). @return 0, PW_EJSON or PW_ENOMEM. */
int pw_sync_state_load(struct pw_sync_state *st, const char *text);

/**
 * Drop seen entries older than cursor - @p overlap_ms (no search can return them again without
 * a new version), then the oldest beyond PW_SYNC_SEEN_MAX, and serialize.
 * If the text would still exceed PW_SYNC_CURSOR_MAX, the oldest half is dropped until it
 * fits (a dropped entry costs a duplicate delivery at most, never a stuck cursor).
 * Caller owns *out; free with free(). @return 0 or PW_ENOMEM.
 */
int pw_sync_state_dump(struct pw_sync_state *st, uint64_t overlap_ms, char **out);

/**
 * Drop seen entries whose lastUpdated is below @p floor_ms, except the keys present in @p keep
 * (an object, or NULL). A run sorted by _lastUpdated calls this with its progress minus the
 * overlap: it cannot meet those entries again. @return the number of entries dropped.
 */
size_t pw_sync_state_prune(struct pw_sync_state *st, int64_t floor_ms, const json_t *keep);

/**
 * The seen-set key of @p res ("type/id/versionId", or "type/id/@lastUpdated" without a
 * versionId) into @p buf. @return false when @p res cannot be identified or @p len is too short.
 */
bool pw_sync_seen_key(const json_t *res, char *buf, size_t len);

/** Counters of one page. */
struct pw_page_stats {
    size_t entries;     /* Bundle.entry elements */
    size_t delivered;   /* resources kept */
    size_t duplicates;  /* resources already seen */
    size_t outcomes;    /* OperationOutcome entries (warnings from the server) */
    size_t no_resource; /* entries without a resource (or its resourceType), skipped */
    size_t no_id;       /* resources without an id, skipped */
    size_t unreadable;  /* resources with a value that could not be read, skipped */
};

/**
 * The page's rejected entries in one line for the log, e.g. "1,000,000 entries rejected:
 * 999,990 no id, 10 no resource" (one line per page, never one per entry). @return the number of
 * rejected entries (0: @p buf holds "").
 */
size_t pw_page_stats_summary(const struct pw_page_stats *ps, char *buf, size_t len);

/**
 * Filter one search page against @p st: resources not seen before go into *out_resources (a new
 * array), are added to the seen-set, and raise @p *max_ms to their meta.lastUpdated. *out_next
 * borrows Bundle.link[relation=next].url from @p bundle, or is NULL.
 * @return 0, PW_EFHIR (not a searchset Bundle, malformed entry) or PW_ENOMEM.
 */
int pw_sync_page_filter(struct pw_sync_state *st, const json_t *bundle, json_t **out_resources,
                        const char **out_next, int64_t *max_ms, struct pw_page_stats *stats);

/**
 * pw_sync_page_filter() that also raises @p *type_max_ms to the meta.lastUpdated of the kept
 * resources whose resourceType is @p type (the search's own type: how far a sorted query has
 * got), read while filtering rather than in a second pass over the page.
 */
int pw_sync_page_filter_typed(struct pw_sync_state *st, const json_t *bundle, const char *type,
                              json_t **out_resources, const char **out_next, int64_t *max_ms,
                              int64_t *type_max_ms, struct pw_page_stats *stats);

/** What the first request of a run is bounded by. */
struct pw_search_window {
    int64_t cursor_ms;  /* PW_SYNC_NO_CURSOR on the first sync */
    int64_t now_ms;     /* the current time, for the lookback */
    bool active_orders; /* MedicationRequest only: the first sync's second query, the orders
                           still in force (status=active,on-hold) authored before the lookback */
};

/**
 * @p url with its `_count` halved (the query's other parameters kept, in order; a URL without
 * one counts as asking for @p dflt): a page refused as too large or unreadable is asked again
 * smaller. *out is malloc'ed, *count the new value.
 * @return 0, PW_ERANGE (already 1: cannot be smaller), PW_EINVAL (not a URL) or PW_ENOMEM.
 */
int pw_search_url_halve_count(const char *url, unsigned dflt, char **out, unsigned *count);

/**
 * The first URL of a run for @p type (an index into conf->types), @p patient (NULL =
 * server-wide). Incremental: `_lastUpdated=gt<cursor - overlap>`; first sync: `date=ge` /
 * `authoredon=ge` <now - lookback> where the dialect allows, else `_lastUpdated=ge`.
 * With win->active_orders (MedicationRequest): `status=active,on-hold` and no date bound.
 * Caller owns *out; free with free(). @return 0, PW_EINVAL or PW_ENOMEM.
 */
int pw_search_url(const struct pw_fhir_search_conf *conf, size_t type, const char *patient,
                  const struct pw_search_window *win, char **out);

/** True when @p url has the scheme, host and port of @p base (default ports made explicit). */
bool pw_url_same_origin(const char *url, const char *base);

/*
 * The adapter (pw_source_fhir_search): its instance and its ops, across its files.
 */

/** The source's keys in servers[].dialect (its config_map's dialect table). */
struct pw_fhir_search_dialect_keys {
    const char *patient_param; /* patient | subject */
    bool last_updated;
    bool sort;
    bool code_in;
    bool include;
    bool date_params; /* `date` (Observation), `authoredon` (MedicationRequest) for the lookback */
    int64_t max_count;
};

/** The source's keys in servers[] (its config_map: lookback, overlap, dialect). */
struct pw_fhir_search_keys {
    int64_t lookback_ms;
    int64_t overlap_ms;
    struct pw_fhir_search_dialect_keys dialect;
};

/**
 * One instance (the adapter's context): its configuration keys as filled from servers[i], the
 * searches built from them with the server's resources and the site's pain codes, and what the
 * server's /metadata taught.
 */
struct pw_fhir_search {
    struct pw_fhir_search_keys keys; /* borrowed strings: valid during init only */
    struct pw_fhir_search_conf conf;
    bool no_status_search; /* MedicationRequest cannot be searched by status (/metadata, 400) */
};

struct pw_source_run;
struct pw_capability;
struct pw_source_ops;

/** The adapter's ops (its registry line is in daemon/core/source.c). */
extern const struct pw_source_ops pw_source_fhir_search;

/* source_fhir_search_run.c: pw_source_ops.run_start, run_page_done, run_cleanup. */
int pw_fhir_search_run_start(void *ctx, struct pw_source_run *run, size_t type, const char *cursor,
                             void **state);
void pw_fhir_search_run_page_done(void *state, int err);
void pw_fhir_search_run_cleanup(void *state);

/* source_fhir_search_capability.c: pw_source_ops.capability. */
int pw_fhir_search_capability(void *ctx, const struct pw_capability *cap,
                              void (*unsynced)(void *arg, const char *type), void *arg,
                              unsigned *errors, unsigned *warnings);

/**
 * Compare what @p conf relies on with @p cap. Errors (the configured search cannot work: type
 * not searchable, patient parameter missing) and warnings (an optional feature not advertised:
 * _lastUpdated, _sort, date, authoredon, code, Flag writes) are logged and counted.
 * @return 0 when there are no errors, PW_ECONFIG otherwise.
 */
int pw_fhir_search_capability_check(const struct pw_capability *cap,
                                    const struct pw_fhir_search_conf *conf, unsigned *errors,
                                    unsigned *warnings);

#endif
