/* SPDX-License-Identifier: Apache-2.0 */
/* Pure helpers shared by the rules: titration steps, scores before a time, text and situations. */
#ifndef PAINWATCH_RULE_UTIL_H
#define PAINWATCH_RULE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "painwatch/finding.h"
#include "painwatch/rule.h"
#include "painwatch/timeline.h"

#define PW_HOUR 3600
#define PW_DAY  86400

/*
 * Baseline changes this close together are one titration step: an order stopped and its
 * replacement started in the same round of orders (often minutes apart in the EHR) must not read
 * as a fall then a rise of the baseline.
 */
#define PW_STEP_COALESCE_S PW_HOUR

/*
 * Every fixed duration a rule compares `now` with (an event time plus one of these), beside its
 * parameters: pw_engine_time_offsets() hands them to the backtest, which skips the instants where
 * no event time plus an offset falls (issue 22). A rule that compares `now` with a new constant
 * adds it here; the rule cases' exhaustive backtest (e2e_backtest_skip) fails otherwise.
 */
#define PW_RU_FIXED_OFFSETS_S                                \
    {                                                        \
        PW_DAY, 2 * PW_DAY, PW_STEP_COALESCE_S, 72 * PW_HOUR \
    }

/* Two baseline doses closer than this (MME/day) are the same dose (rounding in the EHR). */
#define PW_MME_EPS 0.01

/** One change of the baseline total daily dose (TDD, MME/day). */
struct pw_step {
    int64_t first; /* first order change of the step */
    int64_t at;    /* last order change: the new TDD is in force from here */
    double old_mme;
    double new_mme;
};

/** The steps of a timeline, oldest first. Caller owns; free with pw_steps_cleanup(). */
struct pw_steps {
    struct pw_step *v;
    size_t n;
};

/**
 * Every baseline TDD change at or before @p now (starts and ends of baseline orders; changes
 * within PW_STEP_COALESCE_S are one step). Changes where a dose is unknown (NAN) are skipped:
 * a data-quality event already says why. @return 0 or PW_ENOMEM.
 */
int pw_steps_build(const struct pw_timeline *tl, int64_t now, struct pw_steps *out);
void pw_steps_cleanup(struct pw_steps *s);

/** True for an increase (initiation from 0 included). */
bool pw_step_is_increase(const struct pw_step *s);

/** Step size as a percentage of the old TDD; NAN for an initiation (old TDD 0). */
double pw_step_pct(const struct pw_step *s);

/**
 * The latest baseline increase still worth judging: builds @p steps from @p in, and sets *@p out
 * to the last increase and *@p pct to its percentage, or *@p out to NULL when there is none, when
 * it is an initiation (from 0: not a step) or when it is older than @p window_h hours (history).
 * @return 0 (then clean @p steps up with pw_steps_cleanup()) or the error of pw_steps_build().
 */
int pw_steps_recent_increase(const struct pw_rule_input *in, double window_h,
                             struct pw_steps *steps, const struct pw_step **out, double *pct);

/**
 * The titration rules' step: the step pw_steps_recent_increase() finds, unless the patient is
 * outside the cancer-pain opioid rules (pw_ru_oud()) or the step is a conversion within @p conv_h
 * hours (pw_ru_step_is_conversion()). @return 1 with *@p out and *@p pct set, 0 when there is no
 * such step, or PW_ENOMEM.
 */
int pw_ru_titration_step(const struct pw_rule_input *in, double window_h, double conv_h,
                         struct pw_step *out, double *pct);

/**
 * The context of a finding about step @p s: situation "step:<time>|" and the regimen then,
 * f->since, the regimen's orders as evidence.
 */
void pw_ru_step_context(struct pw_finding *f, const struct pw_timeline *tl,
                        const struct pw_step *s);

/** The numbers of step @p s: old and new baseline MME/day, then "step_pct" @p pct. */
void pw_ru_step_numbers(struct pw_finding *f, const struct pw_step *s, double pct);

/**
 * Ends a finding about one resource and pushes it to @p out: situation "<what>:<reference>",
 * f->since = @p since, the resource as evidence and one number @p name = @p value.
 */
int pw_ru_push_about(struct pw_findings *out, struct pw_finding *f, const char *what,
                     const struct pw_ref *ref, int64_t since, const char *name, double value);

/* Parameters several rules share (same key, default, range and help). */
#define PW_RU_PARAM_WINDOW_H(thing, things, note)                                                  \
    {                                                                                              \
        "window_h", 72, 1, 8760,                                                                   \
            "only " thing " within this many hours is judged; older " things " are history (" note \
            ")"                                                                                    \
    }
#define PW_RU_PARAM_CONVERSION_H                                                                   \
    {                                                                                              \
        "conversion_window_h", 24, 0, 720,                                                         \
            "a baseline started within this many hours of another opioid or route being stopped "  \
            "is a "                                                                                \
            "conversion, judged by opioid-rotation-without-reduction, not as titration (issue 16 " \
            "default)"                                                                             \
    }

/** Index of the latest increase in @p s at or before @p before, or -1. */
long pw_steps_last_increase(const struct pw_steps *s, long before);

/** Baseline TDD at @p t, NAN when a baseline order active at t has an unknown dose. */
double pw_ru_tdd(const struct pw_timeline *tl, int64_t t);

/** The latest pain score taken at or before @p t, or NULL. */
const struct pw_pain_score *pw_ru_score_at(const struct pw_timeline *tl, int64_t t);

/** True when an order with any of @p classes (and, when @p role >= 0, that role) is active. */
bool pw_ru_active(const struct pw_timeline *tl, int64_t t, unsigned classes, int role);

/**
 * Start of the uninterrupted stretch, containing @p t, during which some order with any of
 * @p classes was active; PW_TIME_NONE when none is active at t.
 */
int64_t pw_ru_exposure_start(const struct pw_timeline *tl, int64_t t, unsigned classes);

/** Latest end (<= t) of an order with any of @p classes, or PW_TIME_NONE. */
int64_t pw_ru_last_end(const struct pw_timeline *tl, int64_t t, unsigned classes);

/**
 * Append printf output to a situation. A situation that would overflow is replaced by "#" and
 * the hex SHA-256 of its whole content, so distinct situations stay distinct.
 */
void pw_ru_sit(char *sit, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** Append "Type/id@version;" to a situation string (pw_ru_sit). */
void pw_ru_sit_ref(char *sit, size_t size, const struct pw_ref *ref);

/** Append "tag:" + the refs of the baseline orders active at @p t + "|" to a situation. */
void pw_ru_sit_regimen(char *sit, size_t size, const struct pw_timeline *tl, int64_t t);

/** Evidence: every baseline order active at @p t. */
void pw_ru_evidence_regimen(struct pw_finding *f, const struct pw_timeline *tl, int64_t t);

/** Append printf output to a buffer, truncating at @p size. */
void pw_ru_cat(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** A number for clinicians: at most one decimal, no trailing ".0" ("4.2", "120"). */
const char *pw_ru_num(char buf[static 32], double v);

/** "2026-11-20 08:00 UTC": local time in the configured timezone, with its abbreviation. */
const char *pw_ru_time(char buf[static 32], int64_t t);

/** Hours as text ("12 h", "1.5 h"), days past 72 h ("5 days"). */
const char *pw_ru_dur(char buf[static 32], int64_t seconds);

/** A finding initialised for @p rule (id, category) with @p sev; everything else zero. */
void pw_ru_finding_init(struct pw_finding *f, const struct pw_rule *rule, enum pw_severity sev);

/* ---- Issue 16: routes, conversions, buprenorphine and opioid use disorder ---- */

/** True when an opioid-use-disorder product (PW_ORDER_OUD) is active at @p t: the patient is
 * outside the cancer-pain opioid rules (normalize reported why as data quality). */
bool pw_ru_oud(const struct pw_timeline *tl, int64_t t);

/** True when a baseline order active at @p t has any of @p flags (enum pw_order_flag). */
bool pw_ru_regimen_flag(const struct pw_timeline *tl, int64_t t, unsigned flags);

/** True when a baseline order active at @p t has any of @p classes (enum pw_med_class). */
bool pw_ru_regimen_class(const struct pw_timeline *tl, int64_t t, unsigned classes);

/** Same drug by the same route (ingredient code, else name; route names). */
bool pw_ru_same_drug_route(const struct pw_med_order *a, const struct pw_med_order *b);

/**
 * True when step @p s is a conversion: a baseline order started within the step and a baseline
 * order of another ingredient or route ended within @p window_h hours of that start. Such a step
 * is judged by opioid-rotation-without-reduction, not by the titration rules.
 */
bool pw_ru_step_is_conversion(const struct pw_timeline *tl, const struct pw_step *s,
                              double window_h);

/** "oral", "IV/SC", "transdermal", "transmucosal", "rectal", "neuraxial" or "" for a route. */
const char *pw_ru_route_word(const char *route);

/** Why the baseline MME is not computed at @p t, in words ("" when it is computed). */
const char *pw_ru_tdd_why(const struct pw_timeline *tl, int64_t t);

/** A dose rounded as a pharmacist would measure it when the product's unit is not known. */
double pw_ru_nice_mg(double v);

/**
 * A practical dose of a product near @p mg: a whole multiple (at least one) of its smallest
 * practical dose @p unit (mg), or pw_ru_nice_mg() when @p unit is unknown (NAN).
 */
double pw_ru_practical_mg(double mg, double unit);

/**
 * Issue 17: the end-of-life context active at @p t (hospice encounter, comfort-care goal or
 * care plan, a continuous benzodiazepine infusion), or NULL.
 */
const struct pw_context *pw_ru_end_of_life(const struct pw_timeline *tl, int64_t t);

/** Issue 17: the encounter whose period contains @p t (the latest started), or NULL. */
const struct pw_context *pw_ru_encounter_at(const struct pw_timeline *tl, int64_t t);

/** The first encounter that started after @p t and at or before @p now, or NULL. */
const struct pw_context *pw_ru_next_encounter(const struct pw_timeline *tl, int64_t t, int64_t now);

/** Inpatient or emergency (24-h timers apply) / ambulatory or virtual (the next visit). */
bool pw_ru_acute_setting(const struct pw_context *enc);
bool pw_ru_visit_setting(const struct pw_context *enc);

/** The first pain score taken in [@p from, @p to], or NULL. */
const struct pw_pain_score *pw_ru_score_between(const struct pw_timeline *tl, int64_t from,
                                                int64_t to);

/** The end-of-life wording appended to a finding dropped to low in that context. */
#define PW_RU_EOL_TEXT                                                                        \
    " End-of-life care context on record: weigh this against the goals of comfort care (low " \
    "priority)."

#endif
