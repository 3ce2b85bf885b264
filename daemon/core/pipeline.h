/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pipeline: the sync engine's consumer. A page's resources, the patients it touched (marked
 * due) and the advanced cursor commit in one store transaction; when the server's cycle ends the
 * due patients are evaluated and reconciled into outbox rows, one transaction each (a crash in
 * between leaves them due). Time-driven re-evaluation runs the same path from the store alone.
 */
#ifndef PAINWATCH_CORE_PIPELINE_H
#define PAINWATCH_CORE_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "painwatch/sync.h"
#include "painwatch/timeline.h"

struct pw_store;
struct pw_engine;
struct pw_norm_ctx;
struct pw_sink;
struct pw_audit;
struct pw_outbox;

/** What the pipeline works with. Everything is borrowed and must outlive the pipeline. */
struct pw_pipeline_conf {
    struct pw_store *store;
    const struct pw_engine *engine;
    const struct pw_norm_ctx *norm;
    const struct pw_sink *sink;
    const char *identifier_system; /* Flag.identifier.system: read-back of painwatch's Flags */
    struct pw_audit *audit;        /* may be NULL (tests) */
    struct pw_outbox *outbox;      /* may be NULL: then nothing is kicked after a commit */
    int64_t reevaluate_ms;         /* time-driven re-evaluation interval (ms) */
    int64_t (*clock_ms)(void);     /* wall clock in ms since the epoch; NULL = real */
    /* At a server's cycle end, with its patients due: NULL evaluates them there and then
     * (pw_pipeline_reevaluate_due()); otherwise this is called instead and the owner evaluates
     * them with pw_pipeline_reevaluate_step(), a batch per loop turn. */
    void (*on_due)(void *arg);
    void *on_due_arg;
    /* issue 17: the resource types every server syncs (known false: all count as synced); a
     * type a server refuses at run time (HTTP 401/403) is taken out per patient until a run of
     * that stream completes again */
    struct pw_synced synced;
};

/** Counters, for metrics and `--once` reports. A plain copy. */
struct pw_pipeline_stats {
    uint64_t pages;
    uint64_t resources;
    uint64_t patients_evaluated;
    uint64_t findings;
    uint64_t flags_planned; /* create + resolve + reactivate rows enqueued */
    uint64_t page_failures;
};

struct pw_pipeline;

/**
 * Caller owns the result; free with pw_pipeline_free(). Checks the normalization the store's
 * events were derived by: when it changed, every cursor is reset (one transaction).
 * @return 0, PW_ENOMEM, PW_EINVAL (no conf->norm) or the store's error.
 */
int pw_pipeline_new(struct pw_pipeline **out, const struct pw_pipeline_conf *conf);
void pw_pipeline_free(struct pw_pipeline *p);

/** The sync consumer that feeds this pipeline (cursor_load + on_page). */
void pw_pipeline_consumer(struct pw_pipeline *p, struct pw_sync_consumer *out);

/**
 * Re-evaluate, from the store alone, every patient whose scheduled re-evaluation time has come
 * (one transaction per patient). @p n_out (may be NULL) gets the number evaluated.
 * @return 0 or the first error (the other patients are still evaluated).
 */
int pw_pipeline_reevaluate_due(struct pw_pipeline *p, size_t *n_out);

/**
 * One step of pw_pipeline_reevaluate_due(): merge what pages staged, then evaluate one batch
 * of due patients (PW_EVAL_BATCH, one transaction) and kick the outbox, so that its
 * Flags go out while the next batch is judged. @p more: patients may still be due (call
 * again); false when none is left or a batch failed (the rest waits for the next pass).
 * @return 0 or the first error.
 */
int pw_pipeline_reevaluate_step(struct pw_pipeline *p, size_t *n_out, bool *more);

/**
 * Evaluate one patient inside the caller's transaction: load from the store, normalize, run the
 * engine at @p now_s, reconcile into outbox rows, audit the plan, schedule the next
 * time-driven evaluation. Its data-quality events are recorded in the audit trail
 * ("data-quality") once per episode: those that stood at its last evaluation are not recorded
 * again (the store keeps them, pw_store_dq_set); they count in PW_M_DATA_QUALITY when the
 * pipeline's transaction commits. @return 0 or a negative PW_E* code (roll the transaction back).
 */
int pw_pipeline_evaluate_patient(struct pw_pipeline *p, const char *patient, int64_t now_s);

void pw_pipeline_stats(const struct pw_pipeline *p, struct pw_pipeline_stats *out);

/**
 * The resource types @p patient's evaluation may rest on now: the configured ones less those
 * whose last read was refused (401/403), not advertised, or not complete yet (for this patient
 * or for everyone). The CDS Hooks service asks the same (absence is evidence only where
 * painwatch looked).
 */
void pw_pipeline_synced_for(const struct pw_pipeline *p, const char *patient,
                            struct pw_synced *out);

/**
 * Whether a server's cycle is under way (its pages have arrived, its end not yet). Its patients
 * are already due but only half synced: the time-driven timer waits rather than evaluate them.
 */
bool pw_pipeline_cycle_open(const struct pw_pipeline *p);

/**
 * A configuration reload (issue 19), between loop turns: later evaluations use @p engine, @p sink
 * and @p identifier_system (borrowed, as in pw_pipeline_conf; the caller keeps the old ones alive
 * until nothing uses them).
 */
void pw_pipeline_reconfigure(struct pw_pipeline *p, const struct pw_engine *engine,
                             const struct pw_sink *sink, const char *identifier_system,
                             int64_t reevaluate_ms);

#endif
