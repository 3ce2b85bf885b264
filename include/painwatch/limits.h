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
#define PW_ID_MAX                    65
#define PW_REF_MAX                   160
#define PW_CODE_MAX                  128
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
 */
#define PW_CONFIG_FILE_MAX  (1u * 1024u * 1024u)
#define PW_SECRET_FILE_MAX  (64u * 1024u)
#define PW_INPUT_FILE_MAX   (256u * 1024u * 1024u)
#define PW_AUDIT_RECORD_MAX (64u * 1024u)
#define PW_LOG_LINE_MAX     1024

/*
 * Logging.
 *   PW_LOG_RATE_WINDOW_MS   identical lines within this window after the burst are suppressed.
 *   PW_LOG_RATE_BURST       identical lines let through per window before suppression starts.
 */
#define PW_LOG_RATE_WINDOW_MS 10000
#define PW_LOG_RATE_BURST     5

#endif
