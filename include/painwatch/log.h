/* SPDX-License-Identifier: Apache-2.0 */
/* Operational logging: syslog levels, a tag per subsystem, journald prefixes, rate limiting. */
#ifndef PAINWATCH_LOG_H
#define PAINWATCH_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <syslog.h>

/*
 * PHI rule: operational logs never carry patient data. Log resource type/id/versionId, rule id,
 * HTTP status and correlation ids only. Clinical values go to the audit trail and the Flags.
 */

/** Subsystems; the tag is printed as "[tag] ". Add a line here to add a component. */
#define PW_LOG_COMPONENTS(X) \
    X(MAIN, "main")          \
    X(CONF, "conf")          \
    X(HTTP, "http")          \
    X(AUTH, "auth")          \
    X(SYNC, "sync")          \
    X(CLIN, "clinical")      \
    X(RULE, "rule")          \
    X(STORE, "store")        \
    X(OUTBOX, "outbox")      \
    X(SINK, "sink")          \
    X(AUDIT, "audit")        \
    X(HEALTH, "health")      \
    X(TOOL, "tool")          \
    X(CDS, "cds-hooks")

enum pw_log_comp {
#define PW_LOG_COMP_ENUM(name, tag) PW_LOG_##name,
    PW_LOG_COMPONENTS(PW_LOG_COMP_ENUM)
#undef PW_LOG_COMP_ENUM
        PW_LOG_COMP_COUNT
};

/** Current threshold: lines with a level numerically greater are dropped (LOG_INFO default). */
extern int pw_log_level;

/** Set the threshold (LOG_EMERG..LOG_DEBUG). */
void pw_log_set_level(int level);

/** Parse "err", "warning", "notice", "info", "debug" (syslog names). @return level or -1. */
int pw_log_level_from_name(const char *name);

/**
 * Direct output to @p stream (borrowed; stderr by default). @p journal forces the "<N>" priority
 * prefix on or off; pw_log_init() sets it from $JOURNAL_STREAM.
 */
void pw_log_set_output(FILE *stream, bool journal);

/** Read $JOURNAL_STREAM and $PAINWATCH_LOG_LEVEL; reset rate-limit state. */
void pw_log_init(void);

/** Clock in milliseconds used by the rate limiter; NULL restores the monotonic clock (tests). */
void pw_log_set_clock(uint64_t (*now_ms)(void));

/** Emit the summaries of suppressed lines whose window has ended (call from a timer, or at exit).
 */
void pw_log_flush(void);

/** At exit: emit the summary of every kind of line still suppressed, its window ended or not
 * (nothing held back may vanish with the process). */
void pw_log_flush_final(void);

/** Write one line. Use the pw_log_* macros instead: they skip argument evaluation when disabled. */
void pw_log_write(int level, enum pw_log_comp comp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The level is checked before the arguments are evaluated (Redis serverLog). */
#define pw_log(level, comp, ...)                               \
    do {                                                       \
        if ((level) <= pw_log_level) {                         \
            pw_log_write((level), PW_LOG_##comp, __VA_ARGS__); \
        }                                                      \
    } while (0)

#define pw_log_crit(comp, ...)   pw_log(LOG_CRIT, comp, __VA_ARGS__)
#define pw_log_err(comp, ...)    pw_log(LOG_ERR, comp, __VA_ARGS__)
#define pw_log_warn(comp, ...)   pw_log(LOG_WARNING, comp, __VA_ARGS__)
#define pw_log_notice(comp, ...) pw_log(LOG_NOTICE, comp, __VA_ARGS__)
#define pw_log_info(comp, ...)   pw_log(LOG_INFO, comp, __VA_ARGS__)
#define pw_log_debug(comp, ...)  pw_log(LOG_DEBUG, comp, __VA_ARGS__)

/*
 * Issue 19: journal fields. Lines logged while a context is set go to journald (when logging to
 * it, $JOURNAL_STREAM) as entries with PW_SERVER, PW_RULE and PW_RESOURCE_TYPE. Strings are
 * borrowed until the context is changed; NULL or "" leaves a field out; all NULL clears it.
 * The daemon is single-threaded: set it around the work, clear it after.
 */
void pw_log_context(const char *server, const char *rule, const char *resource_type);

/** Tests: receive the journald entries instead of sd_journal_sendv(). NULL restores it. */
struct iovec;
typedef int pw_log_journal_fn(const struct iovec *iov, int n);
void pw_log_set_journal_sink(pw_log_journal_fn *fn);

#endif
