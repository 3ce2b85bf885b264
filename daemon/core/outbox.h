/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The outbox: the only way out to the EHR. Planning turns reconcile decisions into flag-map rows
 * and outbox rows inside the caller's store transaction; delivery sends them through http.h
 * (or the shadow-mode file), with retries, dead letters and duplicate guards.
 */
#ifndef PAINWATCH_CORE_OUTBOX_H
#define PAINWATCH_CORE_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "core/reconcile.h"
#include "painwatch/audit.h"
#include "painwatch/auth.h"
#include "painwatch/finding.h"
#include "painwatch/http.h"
#include "painwatch/sink.h"
#include "painwatch/store.h"

/**
 * Reconcile one patient and record the result, inside the caller's transaction (the page's):
 * reads the patient's flag map into @p flags, runs pw_reconcile() into @p plan, and for every
 * CREATE / RESOLVE / REACTIVATE writes the flag-map row and enqueues an outbox row whose payload
 * is the resource @p sink formats (a RESOLVE is built from the Flag as created, with
 * period.end = @p now). KEEP and SUPPRESSED write nothing. The caller audits the plan
 * (finding-raised / finding-resolved / suppressed) and owns @p flags and @p plan (plan items
 * point into @p findings and @p flags): clean up with pw_flag_list_cleanup() and
 * pw_rc_plan_cleanup(). @p now is in seconds since the epoch.
 * @return 0 or the first error (the caller rolls the transaction back).
 */
int pw_outbox_plan(struct pw_store *st, const struct pw_sink *sink, const char *patient,
                   const struct pw_finding *findings, size_t n_findings, int64_t now,
                   struct pw_flag_list *flags, struct pw_rc_plan *plan);

/**
 * Fold a Flag or DetectedIssue painwatch read back from the EHR (a search of its own, borrowed)
 * into the flag map: the episode key comes from the identifier with @p identifier_system. A
 * clinician's inactive or entered-in-error Flag, or a DetectedIssue someone mitigated or set to
 * another status (pw_sink_episode_status()), then stands (see pw_flag_observe()).
 * @return 0 (also when it is not one of painwatch's), PW_EFHIR (neither type) or a store error.
 */
int pw_outbox_observe_flag(struct pw_store *st, const char *identifier_system, const json_t *flag);

struct pw_outbox;

/** What the outbox tells its owner when it has nothing to do (e.g. `painwatchd --once`). */
typedef void pw_outbox_idle_fn(void *arg, bool pending_later);

/** Delivery settings. Everything borrowed must outlive the outbox. */
struct pw_outbox_conf {
    struct pw_store *store;  /* borrowed */
    struct pw_sink *sink;    /* borrowed: remote (fhir-flag) or local (file, shadow mode) */
    struct pw_http *http;    /* borrowed; required when the sink is remote */
    struct pw_auth *auth;    /* borrowed, may be NULL: credentials for the EHR's writes */
    const char *server;      /* pw_http server name (copied) */
    const char *base_url;    /* FHIR base without a trailing slash (copied) */
    bool conditional_create; /* /metadata advertises conditional create: send If-None-Exist */
    struct pw_audit *audit;  /* borrowed, may be NULL: then nothing is audited (tests) */
    /* The fail-closed gate; NULL means pw_audit_writable(audit) (true without an audit). */
    bool (*audit_writable)(void *arg);
    void *audit_arg;
    uint64_t backoff_base_ms;   /* 0 = PW_OUTBOX_BACKOFF_BASE_MS */
    uint64_t backoff_cap_ms;    /* 0 = PW_OUTBOX_BACKOFF_CAP_MS */
    unsigned inflight_max;      /* 0 (or more) = PW_OUTBOX_INFLIGHT_MAX */
    unsigned max_attempts;      /* dead-letter after this many failed attempts; 0: never give up */
    uint64_t scan_ms;           /* 0 = PW_OUTBOX_SCAN_MS */
    uint64_t settle_ms;         /* 0 = PW_OUTBOX_SETTLE_MS */
    int64_t (*clock_ms)(void);  /* wall clock, ms since the epoch; NULL = real (tests inject) */
    pw_outbox_idle_fn *on_idle; /* may be NULL */
    void *on_idle_arg;
    uint32_t (*rand32)(void); /* the backoff's jitter; NULL = pw_rand32() (tests pin it) */
};

/**
 * A delivery engine on @p loop. Caller owns the result; release with pw_outbox_close().
 * @return 0, PW_EINVAL (missing store/sink, or a remote sink without http/server/base_url) or
 * PW_ENOMEM.
 */
int pw_outbox_new(struct pw_outbox **out, uv_loop_t *loop, const struct pw_outbox_conf *conf);

/** Start delivering: rows left pending by an earlier run resume first. @return 0 or uv error. */
int pw_outbox_start(struct pw_outbox *ob);

/** Whether POSTs carry If-None-Exist (what /metadata advertises, learnt after start). */
void pw_outbox_set_conditional_create(struct pw_outbox *ob, bool on);

/**
 * The kill switch (`painwatch writes pause`): while paused no row starts and a write still
 * queued in the HTTP core is held back (not sent, its attempt not counted); exchanges already
 * on the wire finish. Rows stay pending in the store. Resuming scans at once.
 */
void pw_outbox_pause(struct pw_outbox *ob, bool paused);
bool pw_outbox_paused(const struct pw_outbox *ob);

/** Called once a swapped-out sink is no longer used (the caller may free it). */
typedef void pw_outbox_swapped_fn(void *arg, struct pw_sink *old);

/**
 * A reload's new sink (borrowed, e.g. the shadow file instead of the EHR): from now on no new
 * write starts and queued ones are held; once what is in flight has finished under the old sink
 * the new one takes over and @p done gets the old one. @return 0, or PW_EINVAL (a swap is
 * already pending, or a remote sink without the HTTP settings the outbox was built with).
 */
int pw_outbox_swap_sink(struct pw_outbox *ob, struct pw_sink *sink, pw_outbox_swapped_fn *done,
                        void *arg);

/** A reload's retry settings (as in pw_outbox_conf), from the next failure on. */
void pw_outbox_set_retry(struct pw_outbox *ob, uint64_t base_ms, uint64_t cap_ms,
                         unsigned max_attempts);

/**
 * A reload's credentials (borrowed, may be NULL): writes sent from now on use @p auth; writes
 * in flight finish under the previous one (the caller frees it once pw_auth_in_use() is false).
 */
void pw_outbox_set_auth(struct pw_outbox *ob, struct pw_auth *auth);

/** New rows were committed: look for due rows on the next loop turn. */
void pw_outbox_kick(struct pw_outbox *ob);

/** Counters since start (for metrics and tests). */
struct pw_outbox_stats {
    uint64_t requests;  /* HTTP requests submitted */
    uint64_t delivered; /* rows done */
    uint64_t retried;   /* attempts that ended in a retry */
    uint64_t dead;      /* rows dead-lettered */
    uint64_t blocked;   /* scans skipped because the audit trail was not writable */
    unsigned inflight;  /* rows in flight now */
};
void pw_outbox_stats(const struct pw_outbox *ob, struct pw_outbox_stats *out);

/**
 * Stop and free. Rows in flight stay pending in the store (their requests' callbacks still run,
 * and the memory goes once the last one has; pw_http_free() cancels them). The loop must run
 * afterwards for the close callbacks. NULL is a no-op.
 */
void pw_outbox_close(struct pw_outbox *ob);

/**
 * A Retry-After value (delta-seconds or an HTTP-date) as ms from @p now_ms, capped at
 * PW_OUTBOX_RETRY_AFTER_MAX_S. @return the delay, 0 when absent or unparsable or in the past.
 */
uint64_t pw_outbox_retry_after_ms(const char *value, int64_t now_ms);

#endif
