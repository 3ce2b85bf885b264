/* SPDX-License-Identifier: Apache-2.0 */
/* Rules are pure functions of a patient's timeline and `now`: no I/O, no JSON, no clock. */
#ifndef PAINWATCH_RULE_H
#define PAINWATCH_RULE_H

#include <stddef.h>
#include <stdint.h>

#include "painwatch/finding.h"
#include "painwatch/timeline.h"

/**
 * A configurable threshold of a rule. Config key: rules.<rule id>.<name>. A duration's name
 * says its unit: "<what>_h" (or "<what>_h_<qualifier>") in hours, "<what>_days" in days; other
 * names are not durations (pw_engine_param_unit: the backtest skips instants by them).
 */
struct pw_rule_param {
    const char *name; /* "max_increase_pct_low_pain" */
    double def;       /* default */
    double min;       /* accepted range, inclusive */
    double max;
    const char *help; /* one line, with where the default comes from (guide, CDC, site) */
};

/** What a rule sees. Everything is borrowed for the duration of the call. */
struct pw_rule_input {
    const struct pw_timeline *tl; /* sorted (pw_timeline_sort) */
    int64_t now;                  /* evaluation instant; rules never read the clock */
    const double *params;         /* values in the order of pw_rule.params */
    const char *factor_set;       /* MME factor set the timeline was computed with */
};

struct pw_rule;

/**
 * Evaluate one rule. Append zero or more findings to @p out (rule, category, severity, text,
 * situation, since, evidence, numbers); the engine fills patient, key and factor_set.
 * @return 0 or a negative PW_E* code (the engine logs it and goes on with the other rules).
 */
typedef int pw_rule_eval_fn(const struct pw_rule *rule, const struct pw_rule_input *in,
                            struct pw_findings *out);

struct pw_rule {
    const char *id;       /* stable: "rescue-dose-out-of-range" */
    const char *title;    /* human summary, lands in Flag.code.text */
    const char *category; /* "clinical" or "drug" */
    const struct pw_rule_param *params;
    size_t n_params;
    pw_rule_eval_fn *eval;
    /* issue 17: PW_RES_* bits of the types the rule reads, and of those whose absence one of
     * its findings rests on (the rule is off for a patient when one of these was not synced) */
    unsigned reads;
    unsigned absence;
};

#endif
