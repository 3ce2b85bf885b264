/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one evaluation entry point (issue 20), used by the daemon (daemon/core/pipeline.c),
 * `painwatch check`, the backtest and the CDS Hooks order-sign service.
 *
 *   1. Once per configuration: pw_evaluator_new() builds the rule engine (factor set,
 *      rules.<id>.enabled / rules.<id>.<param>, scope) and the normalization context
 *      (terminology, factor set, pain_codes) from the daemon's configuration.
 *   2. Per patient: a timeline, from FHIR resources (pw_eval_timeline_add_resources()) or from
 *      the store (pw_eval_timeline_load()); over the per-patient cap it is evaluated on what
 *      fits and a "timeline-cap" data-quality event says so.
 *   3. pw_evaluate(): at a given time, with the sync coverage (what was fetched), the findings;
 *      the timeline's data-quality events (normalization's and this evaluation's) are in tl->dq.
 *   4. Episodes: pw_episodes_reconcile() turns the findings into the episode decisions and the
 *      episode records (flag map) after them, with the daemon's own reconcile code
 *      (daemon/core/reconcile.c, the same code the daemon's outbox planning runs).
 *
 * Pure of the network and of the clock; the store is only read (pw_eval_timeline_load()).
 */
#ifndef PAINWATCH_EVALUATE_H
#define PAINWATCH_EVALUATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "painwatch/engine.h"
#include "painwatch/finding.h"
#include "painwatch/normalize.h"
#include "painwatch/store.h"
#include "painwatch/timeline.h"

struct pw_conf_daemon;
struct pw_terminology;

/* ---- 1. the evaluator: built once from the configuration ---------------------------------- */

/** What pw_evaluator_new() builds from. Everything is borrowed for the call only, but @p term. */
struct pw_eval_opts {
    const struct pw_conf_daemon *cd;   /* the configuration; NULL = every default */
    const struct pw_terminology *term; /* required; borrowed: must outlive the evaluator */
    const char *factor_set;            /* overrides cd->factor_set; NULL = cd's or the default */
    const char *scope;                 /* overrides cd->scope; NULL = cd's or "problem-list" */
};

/**
 * The engine and the normalization context of one configuration. Both are plain members: the
 * pipeline borrows them (pw_pipeline_conf.engine / .norm). Free with pw_evaluator_free().
 */
struct pw_evaluator {
    struct pw_engine *engine;
    struct pw_norm_ctx norm;
    bool norm_ready; /* norm initialised (pw_evaluator_free cleans it up) */
};

/**
 * Build the evaluator of @p opts: engine (factor set, rules, scope) and normalization context
 * (terminology, factor set, pain_codes replacing normalize's defaults). Caller owns *out.
 * @return 0, PW_ENOMEM, PW_EINVAL (unknown factor set) or PW_ECONFIG (a rule setting, a
 * pain code or the scope refused); @p err (may be NULL) then names the place, e.g.
 * "rules.titration-step-too-large.max_step: no such rule or parameter".
 */
int pw_evaluator_new(struct pw_evaluator **out, const struct pw_eval_opts *opts, char *err,
                     size_t err_cap);
void pw_evaluator_free(struct pw_evaluator *ev);

/**
 * Only the engine of @p cd (factor set, rules, scope): what a configuration reload replaces.
 * Caller owns *out (pw_engine_free). @return as pw_evaluator_new().
 */
int pw_evaluator_engine_new(struct pw_engine **out, const struct pw_conf_daemon *cd,
                            const char *factor_set, const char *scope, char *err, size_t err_cap);

/* ---- 2. the patient's timeline ---------------------------------------------------------- */

/**
 * Normalize @p resources (a JSON array of FHIR resources of one patient, any order, latest
 * versions only) into @p tl (initialised for the patient; it may already hold events, e.g. a
 * stored timeline to which draft orders are added: a resource already there is replaced by a
 * newer version, pw_timeline_add_*), newest first (by the time each is
 * about), so a patient over PW_RESOURCES_PER_PATIENT_MAX events keeps the newest, and a
 * "timeline-cap" data-quality event says so. @p refs (may be NULL) resolves references between
 * resources (contained Medications, Bundle entries). @return 0 or PW_ENOMEM.
 */
int pw_eval_timeline_add_resources(const struct pw_evaluator *ev, const json_t *resources,
                                   const struct pw_resolver *refs, struct pw_timeline *tl);

/**
 * Load @p patient's stored events (each resource's, as normalized when it arrived) into @p tl
 * (initialised for the patient). Rows the store marks as FHIR JSON (an older schema) are
 * normalized with @p norm. Over the cap: what fits, a "timeline-cap" data-quality event, a
 * warning in the log. An unreadable row is logged and skipped. @return 0 or the store's error.
 */
int pw_eval_timeline_load(struct pw_store *st, const struct pw_norm_ctx *norm, const char *patient,
                          struct pw_timeline *tl);

/* ---- 3. evaluation ---------------------------------------------------------------------- */

/**
 * Evaluate @p tl at @p now (s since epoch): sort it, set its sync coverage to @p synced (the
 * resource types fetched for this patient, struct pw_synced of timeline.h: known=false counts
 * every type as synced; NULL keeps tl->synced as the caller set it), add this evaluation's
 * data-quality events (out of scope, rules off for want of synced types: pw_engine_annotate) and
 * append every enabled rule's findings to @p out (patient, key and factor set filled).
 * Deterministic. @p rule_err (may be NULL) gets 0 or the first failing rule's error (logged by
 * the engine; the other rules' findings are still appended). Evaluating one timeline at several
 * times (the backtest) is allowed: the data-quality events of each evaluation accumulate in tl->dq
 * (exact duplicates dropped).
 * @return 0, or PW_ENOMEM (nothing was evaluated).
 */
int pw_evaluate(const struct pw_engine *engine, struct pw_timeline *tl,
                const struct pw_synced *synced, int64_t now, struct pw_findings *out,
                int *rule_err);

/**
 * When time alone may next change @p tl's findings: @p now + @p interval_s while the timeline is
 * live (an active order, or an event within the longest look-back of any rule), else
 * PW_TIME_NONE (only new data can). The daemon's time-driven re-evaluation schedule.
 */
int64_t pw_eval_next_due(const struct pw_timeline *tl, int64_t now, int64_t interval_s);

/* ---- 4. episodes: the daemon's reconcile -------------------------------------------------- */

struct pw_rc_plan; /* daemon/core/reconcile.h: the decisions (create/keep/resolve/...) */
struct pw_rc_item;

/**
 * Reconcile one patient's @p findings (as pw_evaluate() returned them) against @p flags (the
 * patient's episode records, as the daemon's flag map holds them; pw_flag_list from store.h,
 * zero-initialised for a new patient) exactly as the daemon does: pw_reconcile() into @p plan
 * (may be NULL; else zero-initialised, freed with pw_rc_plan_cleanup()), then @p flags is
 * updated as the daemon's outbox planning writes its flag map at @p now (s): CREATE appends an
 * ACTIVE record (since = the finding's since), RESOLVE sets RESOLVED, REACTIVATE sets ACTIVE
 * (updated = @p now), KEEP and SUPPRESSED change nothing (pw_rc_item_record(), the function the
 * daemon's outbox planning uses). Plan items point into @p findings and into @p flags->v (the
 * records after the plan, a CREATE's item at the record it appended; valid until @p flags
 * changes again). Records created here carry no Flag resource (rec.resource NULL).
 * @return 0 or PW_ENOMEM (@p flags unchanged, the plan emptied).
 */
int pw_episodes_reconcile(struct pw_flag_list *flags, const struct pw_finding *findings,
                          size_t n_findings, int64_t now, struct pw_rc_plan *plan);

/**
 * The episode record after one decision of a plan at @p now (s), as the daemon's flag map keeps
 * it: CREATE -> a new ACTIVE record of the finding (key, patient, rule, since); RESOLVE ->
 * @p it->flag as RESOLVED; REACTIVATE -> as ACTIVE; @p out->updated = @p now. KEEP and
 * SUPPRESSED: a copy of @p it->flag. @p out->resource is NULL for CREATE, else borrowed from
 * @p it->flag (do not free it). @return true when the record changed (something to write).
 */
bool pw_rc_item_record(const struct pw_rc_item *it, int64_t now, struct pw_flag_rec *out);

#endif
