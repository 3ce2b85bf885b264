/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sync driver: per-server cycles (timers, poll interval with jitter, backoff, Retry-After),
 * cohort refresh, the streams of a cycle (resource type[, patient]) run by each server's source
 * adapter (source.h). This header is the contract between the driver and its consumer (the
 * pipeline: normalize + store), and the health read-out for metrics, logs and readiness.
 */
#ifndef PAINWATCH_SYNC_H
#define PAINWATCH_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "painwatch/limits.h"

/*
 * Caps of the sync driver.
 *   PW_SYNC_KEY_MAX         one stream key "<server>/<type>/Patient/<id>" with its NUL.
 *   PW_SYNC_CURSOR_MAX      cursor text handed to the store.
 *   PW_SYNC_RETRY_AFTER_MAX_MS  the longest Retry-After honoured (a broken header cannot park
 *                           a server for days).
 *   PW_SYNC_URL_MAX         one URL a sync requests (search, next link, /metadata, Group).
 */
#define PW_SYNC_KEY_MAX            (64 + 32 + 9 + PW_ID_MAX + 4)
#define PW_SYNC_CURSOR_MAX         (2u * 1024u * 1024u)
#define PW_SYNC_RETRY_AFTER_MAX_MS (6u * 3600u * 1000u)
#define PW_SYNC_URL_MAX            8192

/* uv_loop_t without <uv.h>: files that use libcurl include this header too (only http.c may
 * include both). */
struct uv_loop_s;
struct pw_http;
struct pw_http_req;
struct pw_source;
struct pw_cohort;
struct pw_auth;
struct pw_conf_server;

/**
 * Identity of one incremental stream: one resource type on one server, for one patient
 * (per-patient mode, the normal case) or for the whole server (server-wide mode).
 * Borrowed: valid until the callback it was passed to returns (copy what you keep).
 */
struct pw_sync_source {
    const char *server;  /* server config name, e.g. "ehr" */
    const char *type;    /* "Observation", "MedicationRequest", "Condition", "ServiceRequest" */
    const char *patient; /* Patient id (no "Patient/" prefix), or NULL in server-wide mode */
    /*
     * The store's cursor key, stable across restarts and unique per stream:
     * "<server>/<type>/Patient/<id>" or "<server>/<type>/-" (server-wide). At most
     * PW_SYNC_KEY_MAX bytes including the NUL.
     */
    const char *key;
};

/** Completion of one page: 0 when the page (and the cursor it carried) is durable. */
typedef void pw_sync_page_done_fn(void *done_arg, int err);

/**
 * What the engine needs from its consumer. All callbacks run on the loop thread.
 *
 * Guarantees the engine gives:
 * - Pages of one stream are delivered one at a time, in order: the next page is requested only
 *   after done(0) for the previous one. Different streams may have pages outstanding at the
 *   same time (up to the server's `parallel` setting).
 * - @p resources holds every resource of the page that this stream has not delivered before,
 *   identified by (resourceType, id, meta.versionId) (meta.lastUpdated stands in for a missing
 *   versionId). Entries with search.mode "include" are delivered too; OperationOutcome entries
 *   are logged, never delivered. Duplicates are removed within a run and across runs (the engine
 *   keeps a bounded seen-set inside the cursor text), but NOT across a crash between two pages
 *   of the same run: the consumer must be idempotent on (type, id, versionId). A run sorted by
 *   _lastUpdated forgets, as it pages, what lies more than the overlap behind its progress
 *   (its memory stays bounded); a restart after an expired paging link may then deliver those
 *   again.
 * - The first run of a stream (no cursor yet) fetches the clinical lookback. For
 *   MedicationRequest it is two queries: the lookback (`authoredon`), then the orders still in
 *   force whatever their date (`status=active,on-hold`), skipped when /metadata
 *   (pw_sync_check_servers()) shows no `status` search. Their pages reach the consumer in that
 *   order, as one run: the cursor (the newest meta.lastUpdated of both) comes with the last page
 *   of the second query, and a failure of either leaves no cursor.
 * - @p cursor is NULL on every page but the final page of a run that completed (every page
 *   fetched and accepted, or the page cap reached on a server that sorts by _lastUpdated).
 *   On the final page it is the new cursor text for src->key, to be committed in the same
 *   transaction as that page's resources. A run that fails never hands out a cursor, so the
 *   next run starts again from the old one (the overlap and dedupe absorb the repeat).
 *   The final page may have an empty @p resources array: commit the cursor anyway.
 * - Cursor text is opaque JSON (at most PW_SYNC_CURSOR_MAX bytes); store it verbatim as TEXT.
 *
 * What the consumer must do:
 * - cursor_load: synchronously return the text last committed for src->key (a malloc'ed copy
 *   in *out, which the engine frees) or *out = NULL when there is none (first sync of the
 *   stream: a clinical lookback is fetched instead of the whole history). Return 0, or a
 *   negative PW_E* code to skip the stream for this cycle (counted as a stream failure).
 * - on_page: take ownership of @p resources (a new reference to a JSON array) and call
 *   done(done_arg, err) exactly once, synchronously or later, even at shutdown (then with
 *   PW_ECANCELED). done(0) means "durable"; a non-zero err ends the run without advancing the
 *   cursor. The engine waits for done before it requests the next page. Release @p resources
 *   before calling done and keep nothing of it past done (no json_incref'd value, no string
 *   pointer; copy what must stay): done frees the page's parse at once (jarena.h). Do not add
 *   values to the resources either.
 */
/**
 * A resource of a page that could not be read whole (a number out of range such as 1e400 or a
 * 30-digit integer, invalid UTF-8): skipped, never delivered, so one bad resource never stalls
 * its stream (the page's other resources and the cursor go on). Strings are borrowed for the
 * callback; each is NULL when unknown or itself unreadable.
 */
struct pw_sync_unreadable {
    const char *type;    /* resourceType (checked: a type name) */
    const char *id;      /* a FHIR id (checked against the id grammar) */
    const char *version; /* meta.versionId (checked against the id grammar) */
    const char *patient; /* "Patient/<id>": the stream's patient, or NULL */
    const char *reason;  /* what could not be read, in words */
    /* The resource as read, the unreadable values replaced by a marker string holding control
     * characters (never a FHIR value): for its patient reference in server-wide mode. */
    const json_t *resource;
};

struct pw_sync_consumer {
    int (*cursor_load)(void *arg, const struct pw_sync_source *src, char **out);
    void (*on_page)(void *arg, const struct pw_sync_source *src, json_t *resources,
                    const char *cursor, pw_sync_page_done_fn *done, void *done_arg);
    /*
     * Optional: a server finished a cycle (every stream ran, @p err = 0, or the cycle failed
     * with @p err). Not called for canceled cycles. The pipeline evaluates the patients the
     * cycle touched here, once, on all their resource types.
     */
    void (*on_cycle_end)(void *arg, const char *server, int err);
    void *arg;
    /*
     * Optional (issue 18): a resource of the page about to be delivered was skipped as
     * unreadable (struct pw_sync_unreadable). Called before on_page for that page, on the loop
     * thread; the consumer records it (a data-quality event, an audit record) synchronously.
     * on_cycle_end's @p err is also non-zero for a cycle in which a stream failed on a page it
     * could not use (not JSON even at _count=1, not a Bundle).
     */
    void (*on_unreadable)(void *arg, const struct pw_sync_source *src,
                          const struct pw_sync_unreadable *u);
    /*
     * Optional (issue 17): whether the stream's type is readable. @p status 401 or 403: the
     * server refused it (a 403 fails only that stream, the cycle goes on); 0: a run of the
     * stream completed, the type is readable again; -1 (server-wide src, no patient): /metadata
     * does not advertise the type's search, it is not synced at all (pw_sync_check_servers()).
     * PW_SYNC_TYPE_UNREAD (bug N1): the stream has never completed a run (no stored cursor) and
     * its run failed (transport, timeout, not JSON, not a Bundle) or was never started in an
     * aborted cycle: the type was never read, until a run of the stream completes (0). A stream
     * with a stored cursor that fails is not reported: what it stored stays valid.
     * Absence-based rules rely on it.
     */
    void (*on_type_access)(void *arg, const struct pw_sync_source *src, long status);
};

/** on_type_access() status (bug N1): the stream's type has never been read completely. */
#define PW_SYNC_TYPE_UNREAD (-2L)

/** Completion of pw_sync_run_once(): @p failed is the number of streams whose run failed. */
typedef void pw_sync_cycle_fn(void *arg, int err, unsigned failed);

/** Health of one server, for metrics and logs. A plain copy. */
struct pw_sync_health {
    bool unhealthy;                /* consecutive_failures >= the server's unhealthy_after */
    unsigned consecutive_failures; /* failed cycles in a row; 0 after a clean cycle */
    uint64_t cycles;               /* cycles finished */
    uint64_t requests;             /* HTTP requests submitted */
    uint64_t pages;                /* pages delivered to the consumer */
    uint64_t resources;            /* resources delivered to the consumer */
    uint64_t duplicates;           /* resources dropped as already delivered */
    uint64_t seen_peak;            /* largest seen-set (entries) one run of this server held */
    uint64_t stream_failures;      /* stream runs that failed (any cause) */
    int last_error;                /* PW_E* of the last failure, 0 if none */
    long last_status;              /* HTTP status of the last failure, 0 if none */
    uint64_t next_delay_ms;        /* delay the scheduler computed for the next cycle */
    uint64_t retry_after_ms;       /* Retry-After honoured for that delay, 0 if none */
    bool capability_known;         /* /metadata was read by pw_sync_check_servers() */
    bool conditional_create;       /* it advertises conditional create of Flag */
    uint64_t page_failures;        /* runs ended by a page that could not be used (issue 18) */
    uint64_t unreadable;           /* resources skipped as unreadable */
    uint64_t pages_refused;        /* pages refused (too large, not JSON) and asked again smaller */
    /* issue 21: the write targets /metadata advertises (create + update) */
    bool flag_writable;
    bool detected_issue_writable;
    bool detected_issue_conditional_create;
};

struct pw_sync;

/** How the driver schedules one server (any source). Init with pw_sync_conf_init(). */
struct pw_sync_conf {
    const char *name;          /* the pw_http server name (borrowed for the call) */
    const char *base;          /* FHIR base URL, for the cohort and /metadata (borrowed) */
    uint64_t poll_ms;          /* interval between cycles */
    double jitter;             /* poll jitter fraction, [0, 0.5] */
    uint64_t backoff_base_ms;  /* first backoff step after a failed cycle */
    uint64_t backoff_cap_ms;   /* the largest backoff */
    unsigned unhealthy_after;  /* failed cycles in a row before the server is marked unhealthy */
    unsigned parallel;         /* streams of this server running at once */
    uint64_t group_refresh_ms; /* how often a Group cohort is re-read */
};

/** Defaults: poll 5 min (jitter 0.1), backoff 5 s to 15 min, unhealthy after 3, 2 streams at
 * once, Group refresh 1 h. @p name and @p base are borrowed. */
void pw_sync_conf_init(struct pw_sync_conf *conf, const char *name, const char *base);

/** The scheduling settings of a configured server (conf.h) over the defaults. */
void pw_sync_conf_from_daemon(struct pw_sync_conf *conf, const struct pw_conf_server *cs);

/**
 * A sync engine on @p loop using @p http (borrowed; must outlive the engine's in-flight
 * requests). @p consumer is copied. Caller owns the result; free with pw_sync_free().
 */
int pw_sync_new(struct pw_sync **out, struct uv_loop_s *loop, struct pw_http *http,
                const struct pw_sync_consumer *consumer);

/**
 * Stop and release. In-flight requests finish (or are canceled by pw_http_free()); the memory
 * is released once the last of them and the timers' close callbacks have run, so keep running
 * the loop after this call. Pending pw_sync_run_once() / pw_sync_check_servers() callbacks are
 * not called any more. A consumer holding a page must still call its done(); the memory waits
 * for it. NULL is a no-op.
 */
void pw_sync_free(struct pw_sync *sync);

/**
 * Add one server. @p conf is copied (its name must match a server registered with
 * pw_http_server_add()). Takes ownership of @p source (source.h: it runs the server's streams)
 * and @p cohort, also on failure. @p auth (auth.h)
 * is borrowed and must outlive the engine's requests (free it after pw_sync_free(), before
 * pw_http_free()); NULL = no authorization. With an auth, every request goes through
 * pw_auth_submit_new(): a token is obtained first when none is cached, and a 401 renews it
 * once and retries once; a 401 that survives the renewal fails the server with PW_EAUTH.
 * @return 0, PW_EEXIST (name taken), PW_EINVAL or PW_ENOMEM.
 */
int pw_sync_add_server(struct pw_sync *sync, const struct pw_sync_conf *conf,
                       struct pw_source *source, struct pw_cohort *cohort, struct pw_auth *auth);

/**
 * Periodic mode: every server runs a cycle now, then every poll interval (with jitter), or
 * after a backoff / Retry-After delay when the cycle failed. One failing server never delays
 * the others. @return 0 or PW_EINVAL (no server, already started).
 */
int pw_sync_start(struct pw_sync *sync);

/**
 * One cycle of every server, ignoring timers and backoff (`painwatchd --once`). @p done runs
 * exactly once, never synchronously, with err = 0 when every server finished its cycle
 * (failed streams are counted in @p failed) or the first server-level error otherwise.
 */
int pw_sync_run_once(struct pw_sync *sync, pw_sync_cycle_fn *done, void *arg);

/**
 * Startup check: read every server's /metadata, log what it advertises and compare it with the
 * configured source (pw_source_ops.capability). @p done runs exactly once, never synchronously:
 * err = 0, or PW_ECONFIG when a server's configuration cannot work (@p failed = servers with
 * errors), or the first transport error (a server that cannot be reached at start).
 */
int pw_sync_check_servers(struct pw_sync *sync, pw_sync_cycle_fn *done, void *arg);

struct pw_sink_writes;

/**
 * A reload's sink writes other resource types: read every server's /metadata again and log, as
 * the startup check does, each type of @p writes (copied) it does not advertise with create and
 * update (pw_capability_check_writes()). Nothing else changes. @return 0, or the first error of
 * a fetch that could not start (the others still run).
 */
int pw_sync_check_writes(struct pw_sync *sync, const struct pw_sink_writes *writes);

/** Stop timers; running streams finish their current page and end. Idempotent. */
void pw_sync_stop(struct pw_sync *sync);

/** Replace the wall clock (ms since the epoch) used for lookbacks and Group refreshes (tests). */
void pw_sync_set_clock(struct pw_sync *sync, int64_t (*now_ms)(void));

/**
 * Replace the per-page parse budget (bytes) and entry cap (PW_PAGE_PARSE_BUDGET,
 * PW_PAGE_ENTRIES_MAX by default; 0 keeps the default) (tests).
 */
void pw_sync_set_page_limits(struct pw_sync *sync, size_t budget, size_t entries_max);

/** Copy the health of @p server into @p out. @return 0 or PW_ENOENT. */
int pw_sync_health(const struct pw_sync *sync, const char *server, struct pw_sync_health *out);

/** A reload's new poll interval for @p server: from its next cycle on. @return 0 or PW_ENOENT. */
int pw_sync_set_poll(struct pw_sync *sync, const char *server, uint64_t poll_ms);

/**
 * A reload's credentials for @p server (borrowed, may be NULL; same contract as in
 * pw_sync_add_server()): requests sent from now on use @p auth, those in flight finish under
 * the previous one (the caller frees it once pw_auth_in_use() is false). @return 0 or PW_ENOENT.
 */
int pw_sync_set_auth(struct pw_sync *sync, const char *server, struct pw_auth *auth);

/**
 * A reload's source, scheduling and cohort for the server named conf->name (searches, parallel
 * streams, backoff; the poll interval stays pw_sync_set_poll()'s): applied now when no cycle of
 * it runs, else when its cycle ends (the cycle in flight finishes under the old ones). Copies
 * @p conf; takes ownership of @p source and @p cohort, also on failure.
 * @return 0, PW_ENOENT, PW_EINVAL, PW_ENOMEM.
 */
int pw_sync_replace_server(struct pw_sync *sync, const struct pw_sync_conf *conf,
                           struct pw_source *source, struct pw_cohort *cohort);

/** Number of streams (patient x type, or type in server-wide mode) of @p server, or 0. */
size_t pw_sync_stream_count(const struct pw_sync *sync, const char *server);

/*
 * Scheduling arithmetic (daemon/core/backoff.c), pure and exposed for tests and the outbox.
 */

/** A uniform random number in [0, 2^32) from OpenSSL's CSPRNG (falls back to the clock). */
uint32_t pw_rand32(void);

/**
 * Full-jitter exponential backoff: uniform in [0, min(cap, base * 2^attempt)] using @p r
 * (a uniform 32-bit random number). attempt counts from 0.
 */
uint64_t pw_backoff_full_jitter(uint64_t base_ms, uint64_t cap_ms, unsigned attempt, uint32_t r);

/**
 * A poll interval with jitter: uniform in [interval * (1 - jitter), interval * (1 + jitter)],
 * @p jitter in [0, 1], using @p r.
 */
uint64_t pw_poll_jitter(uint64_t interval_ms, double jitter, uint32_t r);

/**
 * Parse a Retry-After header value: delta-seconds or an HTTP-date (IMF-fixdate, RFC 850 or
 * asctime). @p now_s is the current time (seconds since the epoch) for dates; a date in the past
 * gives 0. The result is capped at PW_SYNC_RETRY_AFTER_MAX_MS.
 * @return 0 and *out_ms, or PW_EINVAL when the value is neither form.
 */
int pw_retry_after_parse(const char *value, int64_t now_s, uint64_t *out_ms);

#endif
