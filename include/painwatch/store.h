/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Durable state behind a small ops table: source cursors, raw resources per patient, the flag map
 * and the outbox. SQLite (adapters/store_sqlite.c) is the default; a PostgreSQL backend fills the
 * same table and the pipeline does not change.
 */
#ifndef PAINWATCH_STORE_H
#define PAINWATCH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "painwatch/conf_map.h"
#include "painwatch/finding.h"
#include "painwatch/limits.h"

struct pw_store;

/** How to open a store. Strings are borrowed for the duration of pw_store_open(). */
struct pw_store_opts {
    const char *backend; /* "sqlite"; NULL: the section's "type", else "sqlite" */
    const char *dir;     /* state directory; the SQLite backend keeps painwatch.db there */
    const char *path;    /* database file; overrides the section's and dir */
    /* The store's config object (pw_conf_daemon()->store.section): "type" and the backend's keys
     * (its config_map, e.g. SQLite's "path"). NULL: none. Borrowed for pw_store_open(). */
    const json_t *section;
    int schema_max;    /* stop migrations at this version (tests of migrations); 0 = latest */
    bool read_only;    /* `painwatch outbox list` on a live daemon's store */
    bool stage_always; /* tests: stage every ingested resource (else the backend's policy) */
};

/**
 * One FHIR resource, the latest version of (type, id), kept as what evaluation needs: its
 * normalized timeline events (pw_timeline_encode), derived when it arrived under the
 * normalization @p norm (pw_norm_ctx_digest). The store treats the bytes as opaque; a row of
 * another @p norm is replaced by any copy of the resource, even the same version (re-derived).
 */
struct pw_store_resource {
    const char *type;     /* "Observation" */
    const char *id;       /* FHIR id */
    const char *version;  /* meta.versionId, "" when absent */
    int64_t last_updated; /* meta.lastUpdated (s since epoch), PW_TIME_NONE when absent */
    const char *patient;  /* "Patient/123": whose timeline it joins */
    const char *norm;     /* normalization digest the events were derived under ("" = none) */
    const void *events;   /* encoded events (schema <= 3 rows hold the resource's JSON) */
    size_t events_len;
    /* Set by the store on reads: @p events hold the resource's FHIR JSON, not events (a row
     * kept by an older schema, until a sync replaces it); the reader normalizes it. */
    bool json;
};

/** Called once per resource; everything is borrowed until it returns. Non-zero stops the walk. */
typedef int pw_store_resource_fn(void *arg, const struct pw_store_resource *res);

/** Called once per patient reference (borrowed). Non-zero stops the walk and is returned. */
typedef int pw_store_patient_fn(void *arg, const char *patient);

/*
 * What painwatch knows about one Flag episode. `state` is what the EHR should show (decided by
 * reconcile) or what a clinician set there (learnt when painwatch reads its Flag back).
 */
enum pw_flag_state {
    PW_FLAG_ACTIVE = 0,         /* painwatch wants it active (create or reactivate queued/done) */
    PW_FLAG_RESOLVED,           /* painwatch resolved it (status inactive + period.end) */
    PW_FLAG_CLINICIAN_INACTIVE, /* set inactive in the EHR by someone else: never re-created */
    PW_FLAG_ENTERED_IN_ERROR,   /* set entered-in-error in the EHR: never re-created */
};

/** "active", "resolved", "clinician-inactive", "entered-in-error". */
const char *pw_flag_state_name(enum pw_flag_state s);
/** Inverse of pw_flag_state_name(). @return 0 or PW_EINVAL. */
int pw_flag_state_parse(const char *name, enum pw_flag_state *out);

#define PW_RULE_ID_MAX 96

/** One row of the flag map (episode key -> server id, versionId, state, patient, rule). */
struct pw_flag_rec {
    char key[PW_KEY_MAX];
    char patient[PW_REF_MAX];
    char rule[PW_RULE_ID_MAX];
    enum pw_flag_state state;
    char server_id[PW_ID_MAX]; /* "" until the create is delivered */
    char version[PW_ID_MAX];   /* meta.versionId the server last returned, "" when unknown */
    int64_t since;             /* period.start */
    int64_t updated;           /* when this row last changed (s) */
    char *resource; /* the Flag JSON as created (heap, may be NULL): resolve builds on it */
};

/** Free rec->resource; the struct can be reused. */
void pw_flag_rec_cleanup(struct pw_flag_rec *rec);

/** A list of flag records. Free with pw_flag_list_cleanup(). */
struct pw_flag_list {
    struct pw_flag_rec *v;
    size_t n;
    size_t cap;
};
void pw_flag_list_cleanup(struct pw_flag_list *list);

/* Outbox rows: one per write to the EHR (or to the shadow-mode file). */
enum pw_outbox_op {
    PW_OUTBOX_CREATE = 0, /* POST the Flag */
    PW_OUTBOX_RESOLVE,    /* PUT status inactive + period.end, If-Match */
    PW_OUTBOX_REACTIVATE, /* PUT status active again (the same episode came back), If-Match */
};
enum pw_outbox_state {
    PW_OUTBOX_PENDING = 0, /* waiting for delivery (first try or retry at next_try) */
    PW_OUTBOX_DONE,        /* delivered, or found already delivered */
    PW_OUTBOX_DEAD,        /* rejected by the server: kept with its OperationOutcome for review */
    PW_OUTBOX_DROPPED,     /* dropped by an operator (`painwatch outbox drop`): kept, never sent */
};
const char *pw_outbox_op_name(enum pw_outbox_op op);
int pw_outbox_op_parse(const char *name, enum pw_outbox_op *out);
const char *pw_outbox_state_name(enum pw_outbox_state s);
int pw_outbox_state_parse(const char *name, enum pw_outbox_state *out);

#define PW_OUTBOX_ERROR_MAX 256

/** One outbox row. Strings on the heap are owned by the row: free with pw_outbox_row_cleanup(). */
struct pw_outbox_row {
    int64_t id; /* assigned by enqueue, increasing: rows of one key are delivered in id order */
    char key[PW_KEY_MAX];
    char patient[PW_REF_MAX];
    char rule[PW_RULE_ID_MAX];
    enum pw_outbox_op op;
    enum pw_outbox_state state;
    char *payload;     /* the resource to send (JSON), decided when the row was enqueued */
    char type[32];     /* the payload's resourceType, set by the planner ("" in rows enqueued
                        * before schema 9: the outbox reads it from the payload) */
    unsigned attempts; /* delivery attempts so far */
    int64_t next_try;  /* ms since epoch: not tried before this instant */
    int64_t created;   /* ms since epoch */
    int64_t updated;   /* ms since epoch */
    bool unknown;      /* an attempt may have reached the server: search before trying again */
    long last_status;  /* last HTTP status, 0 when none */
    char last_error[PW_OUTBOX_ERROR_MAX]; /* last failure, no patient data */
    char *outcome; /* the server's OperationOutcome (or body) when dead, NULL otherwise */
};
void pw_outbox_row_cleanup(struct pw_outbox_row *row);

/** Called once per row (borrowed until it returns). Non-zero stops the walk and is returned. */
typedef int pw_store_outbox_fn(void *arg, const struct pw_outbox_row *row);

/*
 * An operator action (`painwatch outbox replay|drop`), journaled in the same transaction as the
 * change it made. The daemon, the only writer of the audit trail, records it there and marks it
 * audited (two processes appending to one hash chain would break it).
 */
struct pw_operator_action {
    int64_t id;                       /* assigned by the store */
    int64_t at;                       /* ms since epoch */
    char who[64];                     /* the operator's login name */
    char action[32];                  /* "outbox-replay", "outbox-drop" */
    int64_t outbox_id;                /* the row acted on */
    char detail[PW_OUTBOX_ERROR_MAX]; /* state before -> after, rule, episode; no patient data */
};

/** Called once per action (borrowed). Non-zero stops the walk and is returned. */
typedef int pw_store_operator_fn(void *arg, const struct pw_operator_action *act);

/** Called with each data-quality event key recorded for a patient (pw_store_dq_of_patient). */
typedef int pw_store_dq_fn(void *arg, const char *key);

/**
 * The backend. Every op returns 0 or a negative PW_E* code (PW_ESTORE for a database failure,
 * PW_ENOENT for a missing row, PW_EBUSY-like contention after the busy timeout is PW_EAGAIN).
 * Writes outside begin/commit commit on their own; inside, they commit or roll back together.
 */
struct pw_store_ops {
    /* Must stay first. Name (config "store.type"), config_map, ctx_size (conf_map.h). */
    struct pw_adapter adapter;
    int (*open)(struct pw_store *st, const struct pw_store_opts *opts);
    void (*close)(struct pw_store *st);
    int (*schema_version)(struct pw_store *st, int *out);
    int (*begin)(struct pw_store *st);
    int (*commit)(struct pw_store *st);
    void (*rollback)(struct pw_store *st);
    int (*cursor_get)(struct pw_store *st, const char *source, char *out, size_t cap);
    int (*cursor_set)(struct pw_store *st, const char *source, const char *value);
    int (*cursors_reset)(struct pw_store *st);
    int (*meta_get)(struct pw_store *st, const char *key, char *out, size_t cap);
    int (*meta_set)(struct pw_store *st, const char *key, const char *value);
    int (*put_resource)(struct pw_store *st, const struct pw_store_resource *res, bool *changed);
    int (*stage_resource)(struct pw_store *st, const struct pw_store_resource *res);
    int (*merge_staged)(struct pw_store *st, size_t max, pw_store_patient_fn *fn, void *arg,
                        size_t *n_out);
    int (*size_bytes)(struct pw_store *st, uint64_t *out);
    int (*resource_count)(struct pw_store *st, uint64_t *out);
    int (*load_patient)(struct pw_store *st, const char *patient, pw_store_resource_fn *fn,
                        void *arg);
    int (*patient_schedule)(struct pw_store *st, const char *patient, int64_t at);
    int (*patient_due_by)(struct pw_store *st, const char *patient, int64_t at);
    int (*patients_due)(struct pw_store *st, int64_t now, size_t max, pw_store_patient_fn *fn,
                        void *arg);
    int (*flag_get)(struct pw_store *st, const char *key, struct pw_flag_rec *out);
    int (*flag_put)(struct pw_store *st, const struct pw_flag_rec *rec);
    int (*flags_of_patient)(struct pw_store *st, const char *patient, struct pw_flag_list *out);
    int (*outbox_enqueue)(struct pw_store *st, struct pw_outbox_row *row);
    int (*outbox_get)(struct pw_store *st, int64_t id, struct pw_outbox_row *out);
    int (*outbox_update)(struct pw_store *st, const struct pw_outbox_row *row);
    int (*outbox_list)(struct pw_store *st, int state, pw_store_outbox_fn *fn, void *arg);
    int (*outbox_due)(struct pw_store *st, int64_t now_ms, int64_t *ids, size_t max, size_t *n);
    int (*outbox_next_due)(struct pw_store *st, int64_t *at_ms);
    int (*operator_log)(struct pw_store *st, struct pw_operator_action *act);
    int (*operator_unaudited)(struct pw_store *st, pw_store_operator_fn *fn, void *arg);
    int (*operator_audited)(struct pw_store *st, int64_t id);
    void (*release_memory)(struct pw_store *st); /* optional: drop caches, the owner is idle */
    /* optional: a consistent copy of the whole store to a new file @p path (issue 19) */
    int (*backup)(struct pw_store *st, const char *path);
    /*
     * optional (issue 20): the backend's bulk-ingestion policy (NULL: every resource ingested is
     * put). stage_wanted: whether resources are staged from now on (asked at the first ingest of
     * each transaction until it says yes; then staging stays on). merge_policy: how many staged
     * resources make a merge worthwhile now (asked after each merge) and how many one merge
     * transaction takes.
     */
    int (*stage_wanted)(struct pw_store *st, bool *out);
    void (*merge_policy)(struct pw_store *st, size_t *merge_at, size_t *chunk);
    /* data-quality events recorded per patient (pw_store_dq_*): optional; a backend without
     * them keeps no such state and the daemon records no data-quality events (it warns) */
    int (*dq_of_patient)(struct pw_store *st, const char *patient, pw_store_dq_fn *fn, void *arg);
    int (*dq_set)(struct pw_store *st, const char *patient, const char *key, bool present);
};

/*
 * Threading. A handle is used by one thread at a time (SQLite's connection is opened without
 * its own mutex, SQLITE_OPEN_NOMUTEX); it may move between threads with a happens-before edge
 * (uv_queue_work and its after_work give one). A 1000-resource page's write and commit
 * (synchronous=FULL) take tens of milliseconds (tests/bench/README.md). To take that off the loop
 * later, run the page's begin..commit in a uv_queue_work() work callback on a
 * handle the loop thread does not touch until after_work (the outbox keeps its own handle: WAL lets
 * two connections write one after the other, PW_STORE_BUSY_MS covers the wait).
 */

/** The store handle: the backend's ops and its private state. */
struct pw_store {
    const struct pw_store_ops *ops;
    /* backend state: ctx_size bytes, zeroed and filled from its config_map before open (strings
     * borrowed for open only), freed by pw_store_close() after the backend's close */
    void *ctx;
    int depth; /* 1 inside begin..commit/rollback */

    /* Called before each commit: see pw_store_on_commit(). */
    int (*on_commit)(void *arg, struct pw_store *st);
    void *on_commit_arg;

    /* Bulk ingestion (pw_store_ingest_resource), by the backend's policy (issue 20). */
    bool staging;      /* resources are staged for a sorted merge; once on, stays on */
    bool stage_asked;  /* the backend was asked in the open transaction */
    size_t staged;     /* staged by committed transactions and not merged yet */
    size_t txn_staged; /* staged in the open transaction */
    size_t merge_at;   /* staged resources that make a merge worthwhile */
    size_t merge_chunk;
};

/**
 * The store registry: sqlite (daemon/core/store.c: one line per backend, which also declares its
 * ops; pw_adapter_register() for backends outside the tree).
 */
extern struct pw_adapter_kind pw_store_kind;

/**
 * Open (creating and migrating as needed) the store described by @p opts.
 * Caller owns the result; close with pw_store_close(). @return 0, PW_ECONFIG (unknown backend),
 * PW_ESTORE (database unusable; logged with the path) or PW_ENOMEM.
 */
int pw_store_open(struct pw_store **out, const struct pw_store_opts *opts);

/** Roll back an open transaction, close, free. NULL is a no-op. */
void pw_store_close(struct pw_store *st);

/**
 * The owner is idle (between polls): free what the backend caches (SQLite's page cache).
 * Only a hint: nothing is lost, the next reads are a little slower. Not inside begin..commit.
 */
void pw_store_release_memory(struct pw_store *st);

/** The schema version in the database (PRAGMA user_version for SQLite). */
int pw_store_schema_version(struct pw_store *st, int *out);

/** Latest schema version this build knows. */
#define PW_STORE_SCHEMA_VERSION 9

/**
 * Start a transaction. Transactions do not nest (PW_EINVAL). Everything written until
 * pw_store_commit() becomes durable together, or not at all (a crash before the commit, or
 * pw_store_rollback(), leaves nothing).
 */
int pw_store_begin(struct pw_store *st);
/** Commit. On failure the transaction is rolled back (nothing of it remains). */
int pw_store_commit(struct pw_store *st);
/** Roll back; a no-op outside a transaction. */
void pw_store_rollback(struct pw_store *st);

/**
 * Call @p fn inside every transaction, just before it commits (issue 18: the audit chain head
 * is written with the state it records). A hook failing rolls the transaction back and
 * pw_store_commit() returns its error. @p fn NULL removes it.
 */
void pw_store_on_commit(struct pw_store *st, int (*fn)(void *arg, struct pw_store *st), void *arg);

/** Cursor of @p source (copied into @p out). @return 0, PW_ENOENT (none yet) or PW_E2BIG. */
int pw_store_cursor_get(struct pw_store *st, const char *source, char *out, size_t cap);
int pw_store_cursor_set(struct pw_store *st, const char *source, const char *value);
/** Forget every cursor: every stream starts over with a first sync. @return 0 or PW_ESTORE. */
int pw_store_cursors_reset(struct pw_store *st);

/** Store-wide settings (e.g. the normalization digest). @return 0, PW_ENOENT or PW_E2BIG. */
int pw_store_meta_get(struct pw_store *st, const char *key, char *out, size_t cap);
int pw_store_meta_set(struct pw_store *st, const char *key, const char *value);

/**
 * Keep @p res as the current copy of (type, id). An older copy (smaller lastUpdated) never
 * replaces a newer one. @p changed (may be NULL) says whether the stored copy changed, i.e.
 * whether the patient needs re-evaluation.
 */
int pw_store_put_resource(struct pw_store *st, const struct pw_store_resource *res, bool *changed);

/**
 * Bulk ingestion. Once the store outgrows its cache, a page of server-wide resources (ids and
 * patients in no useful order) costs a random index leaf read and write per resource. Staged
 * resources are appended as they come (no index); pw_store_merge_staged then applies them in
 * sorted order, so each index leaf is visited once per merge instead of once per resource.
 */
int pw_store_stage_resource(struct pw_store *st, const struct pw_store_resource *res);
/**
 * Apply the oldest staged resources (at most about @p max) exactly as pw_store_put_resource
 * would have in the order they were staged, then forget them. @p fn (may be NULL) is called
 * with the patient of each copy that changed the store, mostly in patient order, possibly
 * repeated.
 * @return PW_ECANCELED when copies in the chunk file one resource under different patients:
 * roll back (the patients named by the call are void) and call again, which merges that chunk
 * grouping each resource's copies (slower, rare: a chart correction within one merge).
 * @p n_out gets how many were applied: 0 when nothing was staged. Call inside a transaction.
 */
int pw_store_merge_staged(struct pw_store *st, size_t max, pw_store_patient_fn *fn, void *arg,
                          size_t *n_out);
/**
 * Keep @p res as its type's current copy, the way the backend judges best (issue 20): put at once
 * (pw_store_put_resource(); @p changed says whether the stored copy changed), or, once the
 * backend finds bulk ingestion cheaper staged (SQLite: its file outgrew its cache), staged for a
 * sorted merge (*changed false: pw_store_merge_all() names the patient when its copy changes
 * the store). Call inside a transaction. @return 0 or the backend's error.
 */
int pw_store_ingest_resource(struct pw_store *st, const struct pw_store_resource *res,
                             bool *changed);
/** Whether committed transactions staged enough for a merge now (the backend's policy). */
bool pw_store_merge_wanted(const struct pw_store *st);
/**
 * Merge every staged resource, one transaction per chunk of the backend's size (call outside a
 * transaction). @p fn (may be NULL) is called inside each chunk's transaction: first with NULL
 * (a new chunk: patients named before in a rolled-back chunk are void), then with the patient of
 * each copy that changed the store (pw_store_merge_staged()); it may write (mark them due). A
 * cancelled chunk (pw_store_merge_staged's PW_ECANCELED) is merged again grouping each resource's
 * copies. A failed chunk rolls back whole and stays staged, and resources are staged from then
 * on (copies keep their order); the failure is logged. @p n_out (may be NULL): resources merged.
 * @return 0 or the first error.
 */
int pw_store_merge_all(struct pw_store *st, pw_store_patient_fn *fn, void *arg, size_t *n_out);

/** Bytes the store's file occupies. @return 0 or PW_ESTORE. */
int pw_store_size_bytes(struct pw_store *st, uint64_t *out);
/** Resources stored (merged or put; staged ones not yet), cheaply. @return 0 or PW_ESTORE. */
int pw_store_resource_count(struct pw_store *st, uint64_t *out);

/** Walk the resources of @p patient, ordered by type then id (deterministic). */
int pw_store_load_patient(struct pw_store *st, const char *patient, pw_store_resource_fn *fn,
                          void *arg);

/**
 * Ask for a time-driven re-evaluation of @p patient at @p at (s since epoch), replacing any
 * earlier request; PW_TIME_NONE removes it.
 */
int pw_store_patient_schedule(struct pw_store *st, const char *patient, int64_t at);
/**
 * Make @p patient due no later than @p at: an earlier request stands (and nothing is written),
 * a later one is brought forward. What new data asks for, as often as it arrives.
 */
int pw_store_patient_due_by(struct pw_store *st, const char *patient, int64_t at);

/** Patients whose re-evaluation time is <= @p now, earliest first, at most @p max (0 = all). */
int pw_store_patients_due(struct pw_store *st, int64_t now, size_t max, pw_store_patient_fn *fn,
                          void *arg);

/** The flag record of episode @p key. Caller owns out->resource. @return 0 or PW_ENOENT. */
int pw_store_flag_get(struct pw_store *st, const char *key, struct pw_flag_rec *out);
/** Insert or replace the record of rec->key. */
int pw_store_flag_put(struct pw_store *st, const struct pw_flag_rec *rec);
/** Append every flag record of @p patient to @p out (ordered by key). */
int pw_store_flags_of_patient(struct pw_store *st, const char *patient, struct pw_flag_list *out);

/** Insert @p row (state, attempts, next_try, created as given); sets row->id. */
int pw_store_outbox_enqueue(struct pw_store *st, struct pw_outbox_row *row);
/** Read row @p id. Caller cleans up @p out with pw_outbox_row_cleanup(). @return 0 or PW_ENOENT. */
int pw_store_outbox_get(struct pw_store *st, int64_t id, struct pw_outbox_row *out);
/** Write back the mutable fields of row->id (state, attempts, next_try, unknown, status, errors).
 */
int pw_store_outbox_update(struct pw_store *st, const struct pw_outbox_row *row);
/** Walk rows in id order; @p state is an enum pw_outbox_state or -1 for all. */
int pw_store_outbox_list(struct pw_store *st, int state, pw_store_outbox_fn *fn, void *arg);
/**
 * Ids of pending rows due at @p now_ms, at most @p max, earliest next_try first (then id), only
 * the first pending row of each key (rows of one episode are delivered one after the other, in
 * order).
 */
int pw_store_outbox_due(struct pw_store *st, int64_t now_ms, int64_t *ids, size_t max, size_t *n);
/** Earliest next_try of any pending row. @return 0, or PW_ENOENT when nothing is pending. */
int pw_store_outbox_next_due(struct pw_store *st, int64_t *at_ms);

/** Journal @p act (sets act->id); call inside the transaction that made the change. */
int pw_store_operator_log(struct pw_store *st, struct pw_operator_action *act);
/** Walk the actions not yet recorded in the audit trail, oldest first. */
int pw_store_operator_unaudited(struct pw_store *st, pw_store_operator_fn *fn, void *arg);
/** Mark action @p id as recorded in the audit trail. */
int pw_store_operator_audited(struct pw_store *st, int64_t id);

/*
 * Data-quality events recorded in the audit trail, per patient: one key per event that stands
 * (pipeline.c: "<code> <Type>/<id>"), kept while it stands and removed when it is gone, so that
 * each episode of an event is recorded once however often the patient is evaluated.
 */
/** Whether the backend keeps them (both ops). */
bool pw_store_keeps_dq(const struct pw_store *st);
/** Walk the keys recorded for @p patient, in key order. @return 0, PW_EINVAL (the backend keeps
 * none) or the backend's error. */
int pw_store_dq_of_patient(struct pw_store *st, const char *patient, pw_store_dq_fn *fn, void *arg);
/** Record (@p present true) or forget @p key for @p patient; idempotent. */
int pw_store_dq_set(struct pw_store *st, const char *patient, const char *key, bool present);

/**
 * A consistent copy of the whole store, taken while others may write (SQLite: the online backup
 * API), to the new file @p path (refused if it exists), self-contained (no WAL). For backups and
 * before schema migrations. @return 0, PW_EEXIST, PW_ENOSPC, PW_ESTORE, PW_EINVAL (backend
 * without backup).
 */
int pw_store_backup(struct pw_store *st, const char *path);

#endif
