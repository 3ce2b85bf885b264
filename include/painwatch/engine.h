/* SPDX-License-Identifier: Apache-2.0 */
/* The rule engine: the registry of rules, their parameter values, and evaluation of a timeline. */
#ifndef PAINWATCH_ENGINE_H
#define PAINWATCH_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "painwatch/finding.h"
#include "painwatch/rule.h"
#include "painwatch/timeline.h"

/** Version of the rule set as a whole (printed by `painwatch check` as "ruleset"). */
#define PW_RULESET_VERSION "painwatch-cancer-pain/1"

/** The registered rules, in registry order (daemon/clinical/rules/rule_list.h). */
const struct pw_rule *const *pw_rules_all(size_t *count);

/** Find a rule by id, or NULL. */
const struct pw_rule *pw_rule_find(const char *id);

/** Rule parameter values and on/off switches. Caller owns; free with pw_engine_free(). */
struct pw_engine;

/** A new engine with every rule enabled at its default parameters. @return 0 or PW_ENOMEM. */
int pw_engine_new(struct pw_engine **out, const char *factor_set);
void pw_engine_free(struct pw_engine *engine);

/** Override one parameter. @return 0, PW_ENOENT (no such rule/param) or PW_ERANGE. */
int pw_engine_set_param(struct pw_engine *engine, const char *rule, const char *param,
                        double value);

/** Enable or disable a rule. @return 0 or PW_ENOENT. */
int pw_engine_enable(struct pw_engine *engine, const char *rule, bool on);

/** The factor set name this engine reports in findings (static or engine-owned). */
const char *pw_engine_factor_set(const struct pw_engine *engine);

/**
 * Run every enabled rule on @p tl at @p now and append the findings to @p out, with patient,
 * key and factor_set filled in. Deterministic: the same timeline and now give the same findings
 * in the same order. @return 0, or the first error (the other rules still ran).
 */
int pw_engine_eval(const struct pw_engine *engine, const struct pw_timeline *tl, int64_t now,
                   struct pw_findings *out);

/*
 * Issue 17: the evidence the rules rest on, and the population they apply to.
 *
 * A rule whose finding rests on the absence of a resource type (pw_rule.absence) that was not
 * synced for the patient (pw_timeline.synced) is off for that patient: pw_engine_eval() skips it.
 * A patient out of scope gets no findings at all.
 */
enum pw_scope {
    PW_SCOPE_COHORT = 0,   /* every patient evaluated is in scope (an oncology ward Group) */
    PW_SCOPE_PROBLEM_LIST, /* an active malignant neoplasm, or a palliative / hospice context */
};

/** "cohort" | "problem-list" -> *out. @return 0 or PW_EINVAL. */
int pw_scope_parse(const char *name, enum pw_scope *out);

/** Set the population scope (the engine's default is PW_SCOPE_COHORT). */
void pw_engine_set_scope(struct pw_engine *engine, enum pw_scope scope);

/** Issue 21: findings below @p min are audit-only (config post_min_severity; default low). */
void pw_engine_set_post_min(struct pw_engine *engine, enum pw_severity min);

/** Whether @p tl is in the engine's scope at @p now. */
bool pw_engine_in_scope(const struct pw_engine *engine, const struct pw_timeline *tl, int64_t now);

/**
 * Add to @p tl the data-quality events of this evaluation: "out-of-scope" (the patient is not
 * in the population: no findings), "rules-off-not-synced" (one event naming the enabled rules
 * that are off and the types they miss, with why: not configured, not advertised, refused).
 * Call before pw_engine_eval(). @return 0 or what pw_timeline_add_dq returns.
 */
int pw_engine_annotate(const struct pw_engine *engine, struct pw_timeline *tl, int64_t now);

/**
 * The offsets (s) after an event at which time alone may change a rule's outcome. Rules compare
 * `now` only with the timeline's event times (scores, pain types, order starts and ends,
 * referrals, context starts and ends) shifted by one of these or by nothing: each enabled rule's
 * duration parameters in seconds (pw_engine_param_unit) and the fixed offsets the rules use
 * (rule_util.h, PW_RU_FIXED_OFFSETS_S). Between two instants with no event and no event + offset
 * between them, every finding stays the same (the backtest skips those evaluations:
 * pw_eval_change_times).
 * @p *out gets them sorted, each once, all > 0 (caller frees), @p *n how many.
 * @return 0 or PW_ENOMEM.
 */
int pw_engine_time_offsets(const struct pw_engine *engine, int64_t **out, size_t *n);

/**
 * The unit in seconds a rule parameter's name gives it: "..._h" / "..._h_<qualifier>" hours,
 * "..._d" / "..._days" days; 0 for a parameter that is not a duration.
 */
int64_t pw_engine_param_unit(const char *name);

/** The data-quality codes pw_engine_annotate() adds. */
#define PW_DQ_OUT_OF_SCOPE "out-of-scope"
#define PW_DQ_RULES_OFF    "rules-off-not-synced"

#endif
