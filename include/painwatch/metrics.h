/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small process-wide metrics registry (counters and gauges with labels) rendered in the
 * Prometheus text exposition format by the health listener. Thread-safe: any thread may update.
 */
#ifndef PAINWATCH_METRICS_H
#define PAINWATCH_METRICS_H

#include <stddef.h>

/*
 * The families painwatch exports. Labels are listed after each name, in the order the label
 * values are passed. Status labels carry the HTTP status ("200") or "timeout"/"error" when no
 * response arrived. Label values must never carry patient data (server names, resource types,
 * rule ids only).
 */
#define PW_M_BUILD_INFO        "painwatch_build_info"          /* version */
#define PW_M_START_TIME        "painwatch_start_time_seconds"  /* - */
#define PW_M_HTTP_REQUESTS     "painwatch_http_requests_total" /* server, status */
#define PW_M_AUTH_FAILURES     "painwatch_auth_failures_total" /* server */
#define PW_M_SERVER_UP         "painwatch_server_up"           /* server */
#define PW_M_SYNC_LAG          "painwatch_sync_lag_seconds"    /* server, resource: see below */
#define PW_M_SYNC_LAST_SUCCESS "painwatch_sync_last_success_timestamp_seconds" /* server */
#define PW_M_INGESTED          "painwatch_resources_ingested_total" /* server, resource */
#define PW_M_FINDINGS          "painwatch_findings_total"           /* rule */
#define PW_M_FLAGS_CREATED     "painwatch_flags_created_total"      /* rule */
#define PW_M_FLAGS_RESOLVED    "painwatch_flags_resolved_total"     /* rule */
#define PW_M_OUTBOX_DEPTH      "painwatch_outbox_depth"             /* server */
#define PW_M_DEAD_LETTERS      "painwatch_outbox_dead_letters"      /* server */
#define PW_M_AUDIT_RECORDS     "painwatch_audit_records_total"      /* - */
#define PW_M_AUDIT_WRITABLE    "painwatch_audit_writable"           /* - */
#define PW_M_CONFIG_RELOADS    "painwatch_config_reloads_total"     /* result */
/* Issue 18: pages a sync run could not use, and resources skipped as unreadable. */
#define PW_M_SYNC_PAGE_FAILURES "painwatch_sync_page_failures_total"   /* server */
#define PW_M_UNREADABLE         "painwatch_resources_unreadable_total" /* server, resource */
/*
 * Issue 19: PW_M_SYNC_LAG is set to the newest meta.lastUpdated received (Unix seconds) and
 * rendered as the seconds since then at each scrape, so the lag grows between polls.
 */
#define PW_M_WRITES_PAUSED   "painwatch_writes_paused"                 /* - */
#define PW_M_SHADOW_MODE     "painwatch_shadow_mode"                   /* - */
#define PW_M_PROCESS_CPU     "process_cpu_seconds_total"               /* - */
#define PW_M_PROCESS_RSS     "process_resident_memory_bytes"           /* - */
#define PW_M_PROCESS_FDS     "process_open_fds"                        /* - */
#define PW_M_PROCESS_MAX_FDS "process_max_fds"                         /* - */
#define PW_M_PROCESS_START   "process_start_time_seconds"              /* - */
#define PW_M_HTTP_DURATION   "painwatch_http_request_duration_seconds" /* server, operation */
/* Data-quality events recorded in the audit trail, once per episode (pipeline.c), by code. */
#define PW_M_DATA_QUALITY "painwatch_data_quality_events_total" /* code */

enum pw_metric_type {
    PW_METRIC_COUNTER,
    PW_METRIC_GAUGE,
    PW_METRIC_HISTOGRAM, /* issue 19: pw_metric_observe() only */
};

/**
 * Declare a family beyond the built-in ones above. @p labels is a comma-separated list of label
 * names ("server,status"), or "" for none. Registering an existing name with the same type and
 * labels is a no-op. @return 0, PW_EEXIST (same name, different shape), PW_EINVAL (bad name) or
 * PW_E2BIG (too many families).
 */
int pw_metric_register(const char *name, enum pw_metric_type type, const char *help,
                       const char *labels);

/**
 * Add @p delta to a counter or gauge. The label values follow in declared order, then NULL:
 *     pw_metric_add(PW_M_INGESTED, 25, "ehr", "Observation", NULL);
 * A negative delta on a counter, an unknown family or a wrong number of labels is an invariant
 * failure (logged, ignored). New series past PW_METRIC_SERIES_MAX per family are dropped.
 */
void pw_metric_add(const char *name, double delta, ...) __attribute__((sentinel));

/** pw_metric_add(name, 1, labels..., NULL). */
void pw_metric_inc(const char *name, ...) __attribute__((sentinel));

/** Set a gauge: pw_metric_set(PW_M_OUTBOX_DEPTH, 3, NULL). */
void pw_metric_set(const char *name, double value, ...) __attribute__((sentinel));

/** Issue 19: one observation into a histogram family (label values, then NULL). */
void pw_metric_observe(const char *name, double value, ...) __attribute__((sentinel));

/** Current value of one series, 0 when it does not exist (tests, readiness). */
double pw_metric_get(const char *name, ...) __attribute__((sentinel));

/**
 * Everything in the Prometheus text format, version 0.0.4: "# HELP", "# TYPE", then one line per
 * series. Caller owns the result; free with free(). NULL on allocation failure.
 */
char *pw_metrics_render(size_t *len);

/** Content-Type of pw_metrics_render()'s output. */
#define PW_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/** Drop every series and extra family; set build info and start time again (tests, startup). */
void pw_metrics_reset(void);

/**
 * Issue 19: @p fn runs at the start of every pw_metrics_render() (a scrape), so gauges that are
 * computed (lag, server up, paused) are current when read. NULL removes it.
 */
typedef void pw_metrics_collect_fn(void *arg);
void pw_metrics_set_collect(pw_metrics_collect_fn *fn, void *arg);

#endif
