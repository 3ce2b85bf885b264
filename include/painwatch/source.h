/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The FHIR search source: per-server configuration (search dialect, resource types, timing),
 * the pure pieces of an incremental run (URL building, Bundle page filtering, cursor and
 * seen-set), and the CapabilityStatement check. The engine that drives them is in sync.h.
 */
#ifndef PAINWATCH_SOURCE_H
#define PAINWATCH_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "painwatch/limits.h"

/*
 * Caps of the sync engine (they belong with limits.h; kept here to keep that contract stable).
 *   PW_SYNC_TYPES_MAX       resource types searched per server.
 *   PW_SYNC_KEY_MAX         one stream key "<server>/<type>/Patient/<id>" with its NUL.
 *   PW_SYNC_SEEN_MAX        (type, id, versionId) entries kept per stream between runs; only the
 *                           overlap window needs them, so overflow means a very busy window and
 *                           costs a few duplicate deliveries, never a lost resource.
 *   PW_SYNC_CURSOR_MAX      cursor text handed to the store (the seen-set dominates it).
 *   PW_SYNC_RESTARTS_MAX    restarts from the cursor after expired paging links, per run.
 *   PW_SYNC_RETRY_AFTER_MAX_MS  the longest Retry-After honoured (a broken header cannot park
 *                           a server for days).
 *   PW_SYNC_URL_MAX         one search URL, next links included.
 *   PW_SYNC_SEEN_PRUNE_MIN  seen-set size at which a run sorted by _lastUpdated starts dropping
 *                           entries it has paged past (then again each time the set doubles
 *                           since the last prune): a long run holds about this many entries
 *                           plus one overlap window, not one per resource received.
 */
#define PW_SYNC_TYPES_MAX          8
#define PW_SYNC_KEY_MAX            (64 + 32 + 9 + PW_ID_MAX + 4)
#define PW_SYNC_SEEN_MAX           20000
#define PW_SYNC_CURSOR_MAX         (2u * 1024u * 1024u)
#define PW_SYNC_RESTARTS_MAX       2
#define PW_SYNC_RETRY_AFTER_MAX_MS (6u * 3600u * 1000u)
#define PW_SYNC_URL_MAX            8192
#define PW_SYNC_SEEN_PRUNE_MIN     4096

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

/** Everything about one FHIR server the engine needs. Init with pw_source_conf_init(). */
struct pw_source_conf {
    char *name; /* the pw_http server name; also the first part of every stream key */
    char *base; /* FHIR base URL, e.g. "https://ehr.example.org/fhir/R4" (no trailing slash) */
    struct pw_fhir_dialect dialect;
    struct pw_search_type types[PW_SYNC_TYPES_MAX];
    size_t ntypes;
    unsigned count;            /* `_count` requested, clamped to dialect.count_max */
    uint64_t overlap_ms;       /* window re-read below the cursor (clock skew, late commits) */
    uint64_t lookback_ms;      /* first sync of a stream: clinical lookback */
    uint64_t poll_ms;          /* interval between cycles */
    double jitter;             /* poll jitter fraction, [0, 0.5] */
    uint64_t backoff_base_ms;  /* first backoff step after a failed cycle */
    uint64_t backoff_cap_ms;   /* the largest backoff */
    unsigned unhealthy_after;  /* failed cycles in a row before the server is marked unhealthy */
    unsigned parallel;         /* streams of this server running at once */
    unsigned pages_max;        /* pages per query of a run, <= PW_PAGES_PER_RUN_MAX */
    uint64_t group_refresh_ms; /* how often a Group cohort is re-read */
};

/** Defaults: Observation (pain codes) and MedicationRequest, overlap 5 min, lookback 14 d. */
int pw_source_conf_init(struct pw_source_conf *conf, const char *name, const char *base);

/**
 * Overlay the keys of a config object (a "servers[i]" entry, already loaded from YAML) on
 * @p conf. Unknown keys and bad values are errors described in @p errbuf with the key path.
 * Keys: name, base, count, overlap_s, lookback_days, poll_s, jitter, backoff_base_s,
 * backoff_cap_s, unhealthy_after, parallel, pages_max, group_refresh_s,
 * dialect{patient_param: patient|subject, last_updated, sort, code_in, include, date_params,
 * status_list, count_max}, types[{type, codes: [system|code...], valueset}].
 * @return 0 or PW_ECONFIG.
 */
int pw_source_conf_from_json(struct pw_source_conf *conf, const json_t *obj, char *errbuf,
                             size_t errlen);

struct pw_conf_server;
struct pw_conf_pain_codes;

/**
 * Initialize @p conf from the daemon's typed configuration (conf.h): base URL, dialect,
 * resources, poll interval, lookback, overlap. Observation searches are filtered by the
 * pain score codes plus the pain type codes of @p codes (NULL: the built-in pain score codes);
 * other types are not code-filtered. Release with pw_source_conf_cleanup().
 * @return 0, PW_ECONFIG (errbuf names the key) or PW_ENOMEM.
 */
int pw_source_conf_from_daemon(struct pw_source_conf *conf, const struct pw_conf_server *cs,
                               const struct pw_conf_pain_codes *codes, char *errbuf, size_t errlen);

/** Deep copy; @p dst is initialized by this call. @return 0 or PW_ENOMEM. */
int pw_source_conf_copy(struct pw_source_conf *dst, const struct pw_source_conf *src);

/** Release what init/from_json/copy allocated. Safe on a zeroed struct. */
void pw_source_conf_cleanup(struct pw_source_conf *conf);

/*
 * FHIR instants.
 */

/**
 * Parse a FHIR instant or dateTime with a time zone ("2024-05-01T10:00:00.123+02:00", "...Z")
 * into milliseconds since the epoch, UTC. A date without time counts as its midnight UTC.
 * @return 0 or PW_EINVAL.
 */
int pw_fhir_instant_parse(const char *s, int64_t *out_ms);

/** Format @p ms as "YYYY-MM-DDThh:mm:ss.sssZ" into @p buf (at least 25 bytes). */
void pw_fhir_instant_format(int64_t ms, char *buf, size_t len);

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
int pw_search_url(const struct pw_source_conf *conf, size_t type, const char *patient,
                  const struct pw_search_window *win, char **out);

/** True when @p url has the scheme, host and port of @p base (default ports made explicit). */
bool pw_url_same_origin(const char *url, const char *base);

/*
 * CapabilityStatement (/metadata).
 */

/** What a server advertises, for the types a source searches (and Flag). */
struct pw_capability {
    char *fhir_version; /* "4.0.1", or NULL */
    char *software;     /* software.name + version, for the log, or NULL */
    bool flag_create;   /* Flag: interaction create */
    bool flag_update;   /* Flag: interaction update */
    bool flag_conditional_create;
    json_t *types;  /* object type -> {"search": bool, "params": [names]}; owned */
    json_t *common; /* array of rest-level search parameter names; owned */
};

/** Parse a CapabilityStatement. @return 0, PW_EFHIR (not one, no server rest) or PW_ENOMEM. */
int pw_capability_parse(struct pw_capability *cap, const json_t *statement);
void pw_capability_cleanup(struct pw_capability *cap);

/** True when @p type advertises search parameter @p param (or the rest level does). */
bool pw_capability_has_param(const struct pw_capability *cap, const char *type, const char *param);

/**
 * True when @p type advertises both create and update (issue 21: the write targets);
 * *@p conditional_create (may be NULL) says whether it advertises conditional create.
 */
bool pw_capability_writable(const struct pw_capability *cap, const char *type,
                            bool *conditional_create);

/**
 * Compare what @p conf relies on with @p cap. Errors (the configured search cannot work: type
 * not searchable, patient parameter missing) and warnings (an optional feature not advertised:
 * _lastUpdated, _sort, date, authoredon, code, Flag writes) are logged and counted.
 * @return 0 when there are no errors, PW_ECONFIG otherwise.
 */
int pw_capability_check(const struct pw_capability *cap, const struct pw_source_conf *conf,
                        unsigned *errors, unsigned *warnings);

/** Completion of pw_capability_fetch(). @p cap is borrowed: valid until the callback returns. */
typedef void pw_capability_fn(void *arg, int err, const struct pw_capability *cap);

struct pw_http;
struct pw_http_req;

struct pw_auth;

/**
 * GET <base>/metadata on server @p server and parse it, through @p auth when not NULL.
 * @p done runs exactly once, never synchronously, unless this returns an error; err is 0, a
 * transport error, PW_EHTTP (non-200), PW_EJSON or PW_EFHIR.
 */
int pw_capability_fetch(struct pw_http *http, const char *server, const char *base,
                        struct pw_auth *auth, pw_capability_fn *done, void *arg);

#endif
