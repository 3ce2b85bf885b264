/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Source adapters: how resources come in from one server. A source fetches, stream by stream
 * (one resource type for one patient, or for the whole server), pages of resources with the
 * cursor that resumes them; the sync driver (sync.h) schedules its cycles, builds its streams
 * from the cohort and hands its pages to the consumer. An adapter implements struct
 * pw_source_ops in one file under adapters/ (plus a registry line in daemon/core/source.c),
 * declares its configuration keys there (conf_map.h: they sit in servers[] beside the server's
 * own, `servers[].type` picks the adapter) and reaches the driver only through the
 * pw_source_run_* calls below.
 */
#ifndef PAINWATCH_SOURCE_H
#define PAINWATCH_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "painwatch/conf_map.h"

struct pw_conf_server;
struct pw_conf_pain_codes;
struct pw_http_resp;
struct pw_capability;
struct pw_sync_source;
struct pw_sync_unreadable;
struct pw_sink_writes;
struct pw_sync_health;

/** What an adapter is built from. Borrowed for the init call only. */
struct pw_source_env {
    /* The server's effective config object (servers[i], defaults filled): the adapter's keys
     * are read from it with its config_map (pw_source_new() fills the scalar ones). */
    const json_t *section;
    const struct pw_conf_server *server;    /* the server's core settings (conf.h) */
    const struct pw_conf_pain_codes *codes; /* the site's pain codes, or NULL: built-in ones */
    /* The adapter's own typed configuration when it is built in code rather than from the
     * configuration file (tests, tools); NULL: from @p server. Its type is the adapter's. */
    const void *typed;
    /* issue 20 (r20): what the configured sink writes (sink.h), for the adapter's /metadata
     * check; NULL: painwatch's default (Flag). */
    const struct pw_sink_writes *writes;
};

/** One run of one stream: the driver's handle, valid until pw_source_run_end(). */
struct pw_source_run;

/** A type a source will not sync (pw_source_ops.capability): the consumer is told. */
typedef void pw_source_unsynced_fn(void *arg, const char *type);

struct pw_source_ops {
    /* Must stay first. Name ("fhir-search": config servers[].type), config_map (its keys in
     * servers[]), ctx_size (the instance's state, zeroed, scalar keys filled before init). */
    struct pw_adapter adapter;
    /** Build the instance from @p env; no network I/O. @return 0, PW_ECONFIG (errbuf) or
     * PW_ENOMEM; close is called either way. */
    int (*init)(void *ctx, const struct pw_source_env *env, char *errbuf, size_t errlen);
    void (*close)(void *ctx);
    /** The @p i-th stream type (a resource type name, borrowed from ctx), NULL past the end. */
    const char *(*stream_type)(const void *ctx, size_t i);
    /**
     * Start a run of the stream of @p run (pw_source_run_src(); type index @p type) from
     * @p cursor (the text committed with the stream's last completed run, NULL: never synced).
     * *state is the adapter's run state, set before anything can call pw_source_run_end().
     * @return 0 once the run is under way or already ended (pw_source_run_end() called), or a
     * negative PW_E* before any request (*state NULL: the driver ends the run with it).
     */
    int (*run_start)(void *ctx, struct pw_source_run *run, size_t type, const char *cursor,
                     void **state);
    /** The consumer's done() for the page the run delivered last (pw_source_run_deliver()). */
    void (*run_page_done)(void *state, int err);
    /** Release @p state. Called once the run ended. */
    void (*run_cleanup)(void *state);
    /**
     * Optional: compare the server's /metadata with what the instance relies on: log, count
     * errors and warnings, drop what cannot be searched (each dropped type reported through
     * @p unsynced). @return 0, or PW_ECONFIG when the configured source cannot work.
     */
    int (*capability)(void *ctx, const struct pw_capability *cap, pw_source_unsynced_fn *unsynced,
                      void *arg, unsigned *errors, unsigned *warnings);
    /** Optional: a reload's instance @p ctx takes over what @p old learnt from the server. */
    void (*adopt)(void *ctx, const void *old);
};

/** The source registry (daemon/core/source.c: one line per adapter; pw_adapter_register()). */
extern struct pw_adapter_kind pw_source_kind;

/** An instance of a source adapter. */
struct pw_source {
    const struct pw_source_ops *ops;
    void *ctx; /* ops->ctx_size bytes */
};

/** The registered adapter called @p name, or NULL. */
const struct pw_source_ops *pw_source_find(const char *name);

/**
 * Build an instance of @p ops from @p env. Caller owns *out; free with pw_source_free().
 * @return 0, PW_ECONFIG (errbuf) or PW_ENOMEM.
 */
int pw_source_new(struct pw_source **out, const struct pw_source_ops *ops,
                  const struct pw_source_env *env, char *errbuf, size_t errlen);

/** NULL is a no-op. */
void pw_source_free(struct pw_source *src);

/**
 * The source of configured server @p cs (conf.h) whose effective config object is @p section
 * (servers[i]: its "type" picks the adapter), with the site's pain @p codes (NULL: the built-in
 * ones); @p sink, the effective `sink` section, says what painwatch writes there (the adapter's
 * /metadata check). Caller owns *out. @return 0, PW_ECONFIG (errbuf names the key) or PW_ENOMEM.
 */
int pw_source_from_conf(struct pw_source **out, const json_t *section,
                        const struct pw_conf_server *cs, const struct pw_conf_pain_codes *codes,
                        const json_t *sink, char *errbuf, size_t errlen);

/*
 * The driver's side of a run, for adapters. All on the loop thread.
 */

/** The stream this run is for (borrowed: valid for the run). */
const struct pw_sync_source *pw_source_run_src(const struct pw_source_run *run);

/** The driver's clock, ms since the epoch (replaced in tests). */
int64_t pw_source_run_now(const struct pw_source_run *run);

/** One page's parse budget (bytes) and entry cap. */
void pw_source_run_page_limits(const struct pw_source_run *run, size_t *budget,
                               size_t *entries_max);

/** The server's health counters, for the adapter's own: duplicates, seen_peak, unreadable,
 * pages_refused (sync.h). */
struct pw_sync_health *pw_source_run_health(struct pw_source_run *run);

/** True once the driver is stopping: a run ends after the page in hand (PW_ECANCELED). */
bool pw_source_run_stopping(const struct pw_source_run *run);

/**
 * GET @p url on the run's server, through its auth when it has one (auth.h). @p done runs
 * exactly once, never synchronously, unless this returns an error; after pw_sync_free() with
 * PW_ECANCELED. One request per run at a time. @return 0 or a negative PW_E*.
 */
int pw_source_run_get(struct pw_source_run *run, const char *url,
                      void (*done)(void *arg, int err, const struct pw_http_resp *resp), void *arg);

/**
 * Hand a page to the consumer (sync.h: ownership of @p resources passes; @p cursor is copied,
 * non-NULL on the final page of a completed run only). ops->run_page_done follows exactly once.
 */
void pw_source_run_deliver(struct pw_source_run *run, json_t *resources, const char *cursor);

/** A resource of the page skipped as unreadable (sync.h); before the page is delivered. */
void pw_source_run_unreadable(struct pw_source_run *run, const struct pw_sync_unreadable *u);

/** The server refused the stream's type (@p status 401 or 403). */
void pw_source_run_refused(struct pw_source_run *run, long status);

/** How a run ended. */
struct pw_source_run_result {
    int err;                 /* 0: completed (its cursor was delivered) */
    long status;             /* HTTP status of the failure, 0 if none */
    bool transport;          /* the exchange itself failed (reset, timeout) */
    bool page_failed;        /* the run ends on a page it could not use */
    uint64_t retry_after_ms; /* Retry-After of a 429/503, 0 if none */
    unsigned pages;          /* pages fetched, for the log */
};

/**
 * End the run: the driver counts and logs it, calls ops->run_cleanup and starts the next stream.
 * The run and its state are gone when this returns.
 */
void pw_source_run_end(struct pw_source_run *run, const struct pw_source_run_result *res);

#endif
