/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue 22: the backtest (history replayed through the engine and the daemon's reconcile) and
 * the alert-burden summary it shares with `painwatch report` (a shadow-mode period).
 *
 * Input (backtest_input.c, read into backtest_spool.c; a --jobs run's part files:
 * backtest_parts.c): FHIR Bulk Data export directories, NDJSON files and Bundles are read
 * once, resource by resource, into a temporary SQLite file (an on-disk database deleted on
 * close) keyed by patient; then patients are read back one at a time. Why a spool and not a byte
 * offset index: an export is not ordered by patient (one file per type), and an index of every
 * resource's offset grows with the export (60 M resources for 100,000 patients x 30 days), while
 * the spool keeps in memory only SQLite's page cache and the patient being evaluated. The spool
 * also settles repeated versions of a resource (the later versionId, else lastUpdated, else the
 * later input wins) and keeps the resources no patient owns (Medication) for reference lookups.
 * An NDJSON line that is one resource is stored as read; a Bundle entry is re-serialized. With
 * jansson's page arena installed (pw_jarena_install), the input's trees and each patient's
 * resources read back are parsed into arena pages and dropped whole.
 */
#ifndef PAINWATCH_CORE_BACKTEST_H
#define PAINWATCH_CORE_BACKTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "painwatch/fhir.h"
#include "painwatch/finding.h"
#include "painwatch/timeline.h"

/* ---- input spool ------------------------------------------------------------------------ */

struct pw_bt_spool;

/** A new, empty spool (a temporary SQLite file). @return 0, PW_ENOMEM or PW_EIO. */
int pw_bt_spool_new(struct pw_bt_spool **out);
void pw_bt_spool_free(struct pw_bt_spool *sp);

/**
 * Read @p path into the spool: a directory (its *.ndjson files, in name order: a Bulk Data
 * export), an NDJSON file, or a JSON document (a Bundle of any type, or one resource).
 * @return 0, or -1 after writing a message naming the file and place (file:line, Bundle entry,
 * resource id) into @p err.
 */
int pw_bt_spool_add(struct pw_bt_spool *sp, const char *path, char *err, size_t errlen);

/**
 * The input as a list of files in input order (each directory replaced by its *.ndjson files in
 * name order), with their sizes: what pw_bt_spool_read() reads, and what the workers of a --jobs
 * run split between them. A path that cannot be read is reported where it stands in the input,
 * when read. @return 0 or PW_ENOMEM.
 */
struct pw_bt_input;
int pw_bt_input_new(struct pw_bt_input **out, const char *const *paths, size_t n);
void pw_bt_input_free(struct pw_bt_input *in);

/** Read all of @p in into the spool (as pw_bt_spool_add). @return 0, or -1 with @p err. */
int pw_bt_spool_read(struct pw_bt_spool *sp, const struct pw_bt_input *in, char *err,
                     size_t errlen);

/*
 * A --jobs run in two phases, so that the input is parsed once in all. Phase 1: worker k of n
 * (pw_bt_scatter) reads part k of the input (the input's bytes cut in n equal ranges: a JSON
 * document belongs to the part its first byte is in, an NDJSON file is cut at line boundaries)
 * and writes into @p dir each patient's resources to the file of the patient's shard (a hash of
 * its reference), the shared resources (Medication) and a summary (types, period) to files of
 * its own. Phase 2, once every worker of phase 1 is done: worker k (pw_bt_spool_gather) spools
 * shard k from every part, in input order (the file's place in the input, then the place in the
 * file), so the later version of a resource wins whoever read it, and the shared resources,
 * types and period of every part; then it replays its patients. pw_bt_scatter_remove() removes
 * what is left in @p dir, and @p dir.
 */

/** Phase 1 of worker @p part of @p n_parts. @return 0, or -1 with @p err (file:line etc.). */
int pw_bt_scatter(const struct pw_bt_input *in, unsigned part, unsigned n_parts, const char *dir,
                  char *err, size_t errlen);

/** Phase 2 of worker @p shard: into @p sp (new). @return 0, or -1 with @p err. */
int pw_bt_spool_gather(struct pw_bt_spool *sp, const char *dir, unsigned shard, unsigned n_parts,
                       char *err, size_t errlen);

/** Remove the phase files of @p n_parts workers from @p dir, and @p dir (whatever is left). */
void pw_bt_scatter_remove(const char *dir, unsigned n_parts);

/** The PW_RES_* bits of the resource types read (what the export holds). */
unsigned pw_bt_spool_types(const struct pw_bt_spool *sp);

/** The earliest and latest clinical time of any resource read (PW_TIME_NONE when none). */
void pw_bt_spool_span(const struct pw_bt_spool *sp, int64_t *first, int64_t *last);

/**
 * Called once per patient, in patient order: @p resources is the patient's resources (a JSON
 * array, input order, borrowed for the call: nothing of it, no json_incref'd value and no string
 * pointer, may be kept after the call, as the page it was parsed into is dropped whole), @p refs
 * resolves references among them and to the shared resources (Medication). A non-zero return
 * stops the walk and is returned.
 */
typedef int pw_bt_patient_fn(void *arg, const char *patient, const json_t *resources,
                             const struct pw_resolver *refs);

/** Walk the patients (after the last pw_bt_spool_add). @return 0, an error, or fn's value. */
int pw_bt_spool_each(struct pw_bt_spool *sp, pw_bt_patient_fn *fn, void *arg);

/** How many patients the spool holds. */
size_t pw_bt_spool_patients(struct pw_bt_spool *sp);

/* ---- the summary (backtest and report) -------------------------------------------------- */

/** One episode: a Flag that was active from start until end (PW_TIME_NONE: still open). */
struct pw_bt_episode {
    char rule[48];
    char key[PW_KEY_MAX];
    char patient[PW_REF_MAX];
    enum pw_severity severity;
    int64_t start;
    int64_t end;
};

/** A point of a patient's chart (HTML timelines). */
struct pw_bt_point {
    int64_t at;
    double value;
};

/** What the HTML report draws for one patient: kept for the top patients only. */
struct pw_bt_chart {
    char patient[PW_REF_MAX];
    size_t n_episodes;
    struct pw_bt_point *scores; /* pain scores 0-10 */
    size_t n_scores;
    struct pw_bt_point *mme; /* baseline MME/day, one point per change (a step line) */
    size_t n_mme;
    int64_t *rescue; /* rescue doses given (or rescue orders started) */
    size_t n_rescue;
};

/** The whole result. Zero-initialise; free with pw_bt_result_cleanup(). */
struct pw_bt_result {
    const char *source; /* "backtest" or "report" (static) */
    int64_t from, to;   /* the period summarised */
    int64_t step;       /* backtest --step, seconds (0 for report) */
    const char *factor_set;
    size_t n_patients;
    double patient_days;
    size_t n_evaluations;
    struct pw_bt_episode *ep; /* every episode, patient order, then start */
    size_t n_ep, cap_ep;
    struct pw_bt_chart *charts; /* the top patients by episodes (PW_BT_TOP at most) */
    size_t n_charts;
    size_t n_dq;    /* data-quality events seen (backtest) */
    int64_t live_s; /* backtest: the patients' seconds in the period (patient_days = / 86400) */
};

#define PW_BT_TOP 10

void pw_bt_result_cleanup(struct pw_bt_result *r);
void pw_bt_chart_cleanup(struct pw_bt_chart *c);

/** Append a copy of @p e. @return 0 or PW_ENOMEM. */
int pw_bt_result_add_episode(struct pw_bt_result *r, const struct pw_bt_episode *e);

/**
 * Offer @p c (taken: zeroed on return) for the top patients: kept when it is among the PW_BT_TOP
 * with most episodes (ties: patient order), else freed. @return 0 or PW_ENOMEM.
 */
int pw_bt_result_offer_chart(struct pw_bt_result *r, struct pw_bt_chart *c);

/**
 * Write @p r (a worker's part of a --jobs run, @p rc and @p err its outcome) to @p f, a file
 * read back by pw_bt_result_merge() in a process of the same binary. @return 0 or PW_EIO.
 */
int pw_bt_result_save(const struct pw_bt_result *r, int rc, const char *err, FILE *f);

/**
 * Add the part saved in @p f (from its start) to @p into: counts summed, episodes appended,
 * charts offered (the top patients do not depend on the order parts are merged in). Call
 * pw_bt_result_sort() after the last part. @return 0, the worker's error (@p err says what),
 * or PW_EIO / PW_ENOMEM.
 */
int pw_bt_result_merge(struct pw_bt_result *into, FILE *f, char *err, size_t errlen);

/** Sort episodes (patient, start, rule, key): the order every output uses. */
void pw_bt_result_sort(struct pw_bt_result *r);

/**
 * The summary as JSON: period, per rule (episodes, per 100 patient-days, patients affected,
 * median and p90 duration in hours of the closed episodes, per severity), episodes opened per
 * day, per patient the episode list. Deterministic. NULL on ENOMEM.
 */
json_t *pw_bt_result_json(const struct pw_bt_result *r);

/** The summary (@p doc, from pw_bt_result_json()) as text for a terminal. */
void pw_bt_doc_text(const json_t *doc, FILE *out);

/**
 * The summary (@p doc, from pw_bt_result_json()) as one self-contained HTML page: the per-rule
 * burden table, a chart of episodes opened per day, and a timeline per top patient (pain scores,
 * baseline MME step line with titration steps, rescue doses, episodes as bars by rule). Inline
 * SVG written by html.c, no scripts, no external assets, A4 landscape print CSS. SVG charts:
 * 1 + the top patients; table body rows: the rules + the top patients. Caller frees; NULL on
 * ENOMEM.
 */
char *pw_bt_doc_html(const json_t *doc, size_t *len);

/**
 * Write @p doc as @p format ("text", "json", "html") to @p path (NULL or "-": stdout).
 * @return 0, or -1 with @p err naming the file.
 */
int pw_bt_doc_write(const json_t *doc, const char *format, const char *path, char *err,
                    size_t errlen);

/**
 * The summary of a shadow-mode period into @p out: episodes from the file sink's NDJSON
 * @p sinks (create / reactivate open one, resolve closes it), severities from the audit trail's
 * finding-raised records, patients and their first time seen from every audit record naming a
 * patient (and the sink's lines). Without a sink file, the audit trail's finding-raised /
 * finding-resolved records are the episodes. @p from / @p to: PW_TIME_NONE = the first / last
 * time read. @return 0, or -1 with @p err naming file:line.
 */
int pw_bt_shadow_report(const char *const *sinks, size_t n_sinks, const char *const *audits,
                        size_t n_audits, int64_t from, int64_t to, struct pw_bt_result *out,
                        char *err, size_t errlen);

/* ---- the backtest ------------------------------------------------------------------------ */

struct pw_evaluator;

/** What pw_backtest_run() replays. */
struct pw_bt_opts {
    const struct pw_evaluator *ev; /* the configuration's engine and normalization */
    int64_t from, to;              /* the period; PW_TIME_NONE: the input's first / last time */
    int64_t step;                  /* grid ticks and due-time spacing, seconds (> 0) */
    struct pw_synced synced;       /* the types the export holds (rules resting on absence) */
    int64_t lookback;              /* the daemon's first-sync lookback, seconds (0: all history) */
    bool exhaustive;               /* evaluate every instant, also where nothing can change */
};

/**
 * Replay every patient of @p sp: each patient's timeline is evaluated, as it stood (only events
 * at or before the instant), at every event time, at the engine's due times (pw_eval_next_due:
 * while time alone can change the findings, every @p o->step after an evaluation) and at each
 * step tick of the period while the patient is live; findings are reconciled into episodes by
 * pw_episodes_reconcile() (the daemon's reconcile). A tick when the patient is not live is
 * skipped: the daemon does not re-evaluate then either, and the findings cannot differ.
 * An instant where no rule's outcome can change since the last evaluation (no event time, and no
 * event time plus one of pw_engine_time_offsets(), in between) keeps the last findings without
 * evaluating (unless @p o->exhaustive): the same result, most hourly ticks of a live patient
 * skipped. The patient's first and last instants are always evaluated.
 * What the patient's record holds is what a daemon started at the period's start would hold:
 * its first sync's window (@p o->lookback before the start, by the clinical date the search
 * uses: Observation date, MedicationRequest authoredon, ServiceRequest authored, Condition
 * recorded-date, else meta.lastUpdated), the orders in force and the active problems whatever
 * their date, and everything dated or updated since.
 * @return 0 or an error code (@p err says what).
 */
int pw_backtest_run(struct pw_bt_spool *sp, const struct pw_bt_opts *o, struct pw_bt_result *out,
                    char *err, size_t errlen);

#endif
