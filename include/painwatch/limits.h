/* SPDX-License-Identifier: Apache-2.0 */
/* Every cap and timeout in one place. Each value says what it bounds and why it is that size. */
#ifndef PAINWATCH_LIMITS_H
#define PAINWATCH_LIMITS_H

/*
 * Network input.
 *   PW_HTTP_BODY_MAX        one response body; a 1000-entry search page of Observations is ~1.5 MB,
 *                           so 32 MiB leaves room for verbose EHRs while bounding a runaway server.
 *   PW_HTTP_HEADER_MAX      one response header line (curl's own cap is 100 kB).
 *   PW_HTTP_HEADERS_MAX     the whole header block of one response (over it: PW_E2BIG).
 *   PW_HTTP_CONNECT_MS      TCP+TLS connect timeout per request.
 *   PW_HTTP_TOTAL_MS        whole-request timeout, transfer included.
 *   PW_HTTP_PER_HOST        concurrent connections per FHIR server (politeness).
 *   PW_HTTP_REDIRECTS_MAX   redirects followed, same origin only.
 *   PW_PAGES_PER_RUN_MAX    search pages followed in one incremental run before it is cut short
 *                           and resumed from the cursor (a loop of next links cannot spin forever).
 */
#define PW_HTTP_BODY_MAX      (32u * 1024u * 1024u)
#define PW_HTTP_HEADER_MAX    (100u * 1024u)
#define PW_HTTP_HEADERS_MAX   (256u * 1024u)
#define PW_HTTP_CONNECT_MS    10000
#define PW_HTTP_TOTAL_MS      60000
#define PW_HTTP_PER_HOST      4
#define PW_HTTP_REDIRECTS_MAX 3
#define PW_PAGES_PER_RUN_MAX  1000

/*
 * FHIR content.
 *   PW_ID_MAX               FHIR id is [A-Za-z0-9-.]{1,64}; +1 for NUL.
 *   PW_REF_MAX              "Type/id/_history/vid" with room for long ids.
 *   PW_CODE_MAX             one code or system string we keep.
 *   PW_TEXT_MAX             one clinician-facing finding text.
 *   PW_RESOURCES_PER_PATIENT_MAX  timeline events kept per patient in memory during evaluation;
 *                           a patient over the cap is evaluated on the newest events and a
 *                           data-quality event says so.
 *   PW_EVIDENCE_MAX         evidence references attached to one finding.
 */
#define PW_ID_MAX   65
#define PW_REF_MAX  160
#define PW_CODE_MAX 128
/*
 * A normalization digest as stored with each resource: the first 64 bits of a SHA-256 in hex +
 * NUL. It only tells one normalization from the next (no adversary picks them); the full 256 bits
 * cost 48 bytes more on every stored resource, a fifth of the row.
 */
#define PW_NORM_DIGEST_MAX           17
#define PW_TEXT_MAX                  512
#define PW_RESOURCES_PER_PATIENT_MAX 4096
#define PW_EVIDENCE_MAX              8

/*
 * Files and local input.
 *   PW_CONFIG_FILE_MAX      configuration file size.
 *   PW_SECRET_FILE_MAX      secret files (keys, tokens, client secrets).
 *   PW_INPUT_FILE_MAX       one file given to `painwatch check`.
 *   PW_AUDIT_RECORD_MAX     one audit record line.
 *   PW_LOG_LINE_MAX         one operational log line (longer lines are cut, never split).
 *   PW_AUDIT_BATCH_MAX      bytes of audit records queued in one batch (one write + one fsync);
 *                           a 1000-entry search page audited per entry stays far below it.
 */
#define PW_CONFIG_FILE_MAX  (1u * 1024u * 1024u)
#define PW_SECRET_FILE_MAX  (64u * 1024u)
#define PW_INPUT_FILE_MAX   (256u * 1024u * 1024u)
#define PW_AUDIT_RECORD_MAX (64u * 1024u)
#define PW_LOG_LINE_MAX     1024
#define PW_AUDIT_BATCH_MAX  (8u * 1024u * 1024u)

/*
 * Logging.
 *   PW_LOG_RATE_WINDOW_MS   identical lines within this window after the burst are suppressed.
 *   PW_LOG_RATE_BURST       identical lines let through per window before suppression starts.
 */
#define PW_LOG_RATE_WINDOW_MS 10000
#define PW_LOG_RATE_BURST     5

/*
 * Durable state and the outbox.
 *   PW_STORE_BUSY_MS        how long a store write waits for another process's lock (the
 *                           `painwatch outbox` CLI on a live store) before failing with PW_EAGAIN.
 *   PW_OUTBOX_OUTCOME_MAX   bytes of a server's OperationOutcome kept with a dead-lettered row.
 *   PW_OUTBOX_BACKOFF_BASE_MS / _CAP_MS   full-jitter exponential backoff between retries.
 *   PW_OUTBOX_RETRY_AFTER_MAX_S  a server's Retry-After is honoured up to this (1 h), so a
 *                           misconfigured proxy cannot park the outbox for days.
 *   PW_OUTBOX_INFLIGHT_MAX  outbox rows in flight at once. The EHR still sees at most
 *                           PW_HTTP_PER_HOST connections: the rest wait in the HTTP core's
 *                           queue, and a write leaves it only while the audit trail is
 *                           writable (pw_http_req_set_gate). Deliveries are saved together
 *                           (PW_OUTBOX_SETTLE_MS), so more rows in flight mean fewer fsyncs per
 *                           Flag (figures: tests/bench/README.md).
 *   PW_EVAL_BATCH           due patients evaluated in one store transaction and one audit batch
 *                           (one fsync each instead of one per patient), one batch per loop
 *                           turn (~50 ms of CPU at 1024). A batch whose audit records overflow
 *                           PW_AUDIT_BATCH_MAX (8 KB a patient on average) is evaluated in
 *                           halves; one failing otherwise, one patient per transaction.
 *                           Larger batches mean fewer fsyncs: the disk waits were the gap
 *                           between CPU and wall-clock time.
 *   PW_OUTBOX_SCAN_MS       the outbox re-reads due rows at least this often (rows replayed by
 *                           an operator, rows whose backoff ended).
 *   PW_OUTBOX_SETTLE_MS     after a response, the next scan (which saves the delivered rows and
 *                           starts new ones) waits at most this long for the other requests in
 *                           flight, so that requests sent together are saved with one audit
 *                           fsync and one commit (at once when none is left waiting); a
 *                           delivery's record waits at most this long.
 */
#define PW_STORE_BUSY_MS            5000
#define PW_OUTBOX_OUTCOME_MAX       (64u * 1024u)
#define PW_OUTBOX_BACKOFF_BASE_MS   1000
#define PW_OUTBOX_BACKOFF_CAP_MS    (15 * 60 * 1000)
#define PW_OUTBOX_RETRY_AFTER_MAX_S 3600
#define PW_OUTBOX_INFLIGHT_MAX      64
#define PW_EVAL_BATCH               1024
#define PW_OUTBOX_SCAN_MS           30000
#define PW_OUTBOX_SETTLE_MS         10

/*
 * Metrics and the health listener.
 *   PW_METRIC_FAMILIES_MAX  metric families (built-in ones are ~16).
 *   PW_METRIC_SERIES_MAX    series per family: label sets are server names, resource types and
 *                           rule ids, so a bound that high means a label carries something it
 *                           must not (an id); extra series are dropped, not grown without end.
 *   PW_METRIC_LABELS_MAX    labels per family.
 *   PW_METRIC_VALUE_MAX     one label value, bytes.
 *   PW_HEALTH_CONN_MAX      concurrent connections to the health listener (monitoring only).
 *   PW_HEALTH_CONN_TIMEOUT_S  idle connection timeout of the health listener, seconds.
 *   PW_HEALTH_CHECKS_MAX    readiness checks registered.
 */
#define PW_METRIC_FAMILIES_MAX   64
#define PW_METRIC_SERIES_MAX     1024
#define PW_METRIC_LABELS_MAX     4
#define PW_METRIC_VALUE_MAX      128
#define PW_HEALTH_CONN_MAX       16
#define PW_HEALTH_CONN_TIMEOUT_S 10
#define PW_HEALTH_CHECKS_MAX     32

/*
 * The jansson page arena (jarena.h).
 *   PW_JARENA_BYTES    address space reserved for page trees (PROT_NONE: a segment is committed
 *                      when first used). A search page parses into about ten times its size,
 *                      so this holds a dozen 1000-entry pages in flight; past it (a 32 MiB
 *                      page) values are malloc'd.
 *   PW_JARENA_SEGMENT  unit of reuse: a segment is bumped into by one page and handed back when
 *                      its last value is freed, so a value kept alive pins 1 MiB, not the arena.
 *                      Larger allocations are malloc'd.
 *   PW_JARENA_KEEP     bytes at the start of the region that stay resident when idle (a
 *                      100-entry page's tree); pw_jarena_trim() returns empty segments past it.
 */
#define PW_JARENA_BYTES   (256u * 1024u * 1024u)
#define PW_JARENA_SEGMENT (1024u * 1024u)
#define PW_JARENA_KEEP    (2u * 1024u * 1024u)

/*
 * One search page's parse (issue 18: memory within the body cap).
 *   PW_PAGE_PARSE_BUDGET   bytes one page's JSON tree may take (counted in the page arena); a
 *                          page over it is refused and asked again with half the _count.
 *                          It holds tens of thousands of pain scores, while a page of empty
 *                          entries within the body cap would take gigabytes.
 *   PW_PAGE_ENTRIES_MAX    Bundle.entry elements accepted in one page: twice the largest _count
 *                          painwatch asks for (an _include per match), refused past it the same
 * way. PW_PAGE_REPAIRS_MAX    values of one page that cannot be read (a number out of range,
 *                          invalid UTF-8) set aside before the page counts as unreadable: each
 *                          costs one more parse of the page.
 */
#define PW_PAGE_PARSE_BUDGET (128u * 1024u * 1024u)
#define PW_PAGE_ENTRIES_MAX  20000
#define PW_PAGE_REPAIRS_MAX  16

#endif
