/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The startup validation: what painwatchd checks in a loaded configuration before it opens
 * anything, and what `painwatch config check` runs, so the two cannot disagree.
 */
#ifndef PAINWATCH_CORE_CONF_VALIDATE_H
#define PAINWATCH_CORE_CONF_VALIDATE_H

#include <stdbool.h>

#include "painwatch/conf.h"

/**
 * One finding of pw_conf_validate(): @p error true fails the configuration, false is a
 * production risk that does not (a warning). @p key is the configuration key path
 * ("servers[0].auth", "audit.key_file"), @p text says what is wrong and what to do.
 */
typedef void pw_conf_report_fn(void *arg, bool error, const char *key, const char *text);

/**
 * Beyond the schema (pw_conf_load_*): the terminology tables load, the rule settings apply to
 * the engine, the pain codes fit, each server's HTTP settings register, its authorization
 * adapter initialises (keys and secrets read and checked by the adapter itself: e.g.
 * smart-backend needs kid and an RSA >= 2048 or EC P-384 key matching alg), its cohort opens
 * (a list file is read) and its searches build, the sink exists, the audit key loads. No
 * network, nothing is written. Adapters log their own reason (pw_log_err) as the daemon does;
 * @p report gets one line per failed step, and every warning: the audit key beside the trail,
 * info-severity Flags written to charts, a cohort that is not re-read.
 * @return 0 (warnings possible) or PW_ECONFIG (at least one error reported); PW_ENOMEM.
 */
int pw_conf_validate(const struct pw_conf *conf, pw_conf_report_fn *report, void *arg);

/** A pw_conf_report_fn for the daemon: errors with pw_log_err, warnings with pw_log_warn. */
void pw_conf_report_log(void *arg, bool error, const char *key, const char *text);

#endif
