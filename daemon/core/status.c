/* SPDX-License-Identifier: Apache-2.0 */
/* The /status page (see painwatch/status.h), written with the HTML/SVG writer. */
#include "painwatch/status.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "painwatch/datetime.h"
#include "painwatch/html.h"

/* "2026-12-07T20:31:05Z", or "never" for 0. */
static void iso(double t, char *out, size_t cap)
{
    if (t <= 0) {
        snprintf(out, cap, "never");
        return;
    }
    pw_time_format((int64_t)t * 1000, 0, out, cap);
}

/* "3d 4h 05m", "2h 01m", "12m 03s", "9s". */
static void span(double seconds, char *out, size_t cap)
{
    unsigned long s = seconds > 0 ? (unsigned long)seconds : 0;

    if (s >= 86400) {
        snprintf(out, cap, "%lud %luh %02lum", s / 86400, s % 86400 / 3600, s % 3600 / 60);
    } else if (s >= 3600) {
        snprintf(out, cap, "%luh %02lum", s / 3600, s % 3600 / 60);
    } else if (s >= 60) {
        snprintf(out, cap, "%lum %02lus", s / 60, s % 60);
    } else {
        snprintf(out, cap, "%lus", s);
    }
}

static const struct pw_status_check *find_check(const struct pw_status *st, const char *name)
{
    for (size_t i = 0; i < st->n_checks; i++) {
        if (strcmp(st->checks[i].name, name) == 0) {
            return &st->checks[i];
        }
    }
    return NULL;
}

static void servers(struct pw_html *h, const struct pw_status *st)
{
    static const char *const head[] = {
        "server",   "state",  "last complete cycle",  "since",     "newest data (lastUpdated)",
        "data lag", "cycles", "consecutive failures", "last error"};
    const char *labels[PW_STATUS_SERVERS_MAX];
    double lags[PW_STATUS_SERVERS_MAX];
    size_t n = st->n_servers < PW_STATUS_SERVERS_MAX ? st->n_servers : PW_STATUS_SERVERS_MAX;

    pw_html_heading(h, 2, "Servers");
    if (n == 0) {
        pw_html_para(h, "warn", "No FHIR server is configured.");
        return;
    }
    pw_html_table_begin(h, NULL, head, sizeof(head) / sizeof(head[0]));
    for (size_t i = 0; i < n; i++) {
        const struct pw_status_server *s = &st->servers[i];
        char last[32], lag[32], newest[32], data_lag[32], cycles[24], fails[16];
        const char *row[9];

        iso(s->last_complete, last, sizeof(last));
        lags[i] = s->last_complete > 0 ? st->now - s->last_complete : 0;
        if (s->last_complete > 0) {
            span(lags[i], lag, sizeof(lag));
        } else {
            snprintf(lag, sizeof(lag), "no cycle yet");
        }
        iso(s->newest_data, newest, sizeof(newest));
        if (s->newest_data > 0) {
            span(st->now - s->newest_data, data_lag, sizeof(data_lag));
        } else {
            snprintf(data_lag, sizeof(data_lag), "-");
        }
        snprintf(cycles, sizeof(cycles), "%llu", (unsigned long long)s->cycles);
        snprintf(fails, sizeof(fails), "%u", s->consecutive_failures);
        row[0] = s->name;
        row[1] = s->unhealthy ? "UNHEALTHY" : "ok";
        row[2] = last;
        row[3] = lag;
        row[4] = newest;
        row[5] = data_lag;
        row[6] = cycles;
        row[7] = fails;
        row[8] = s->last_error[0] ? s->last_error : "-";
        pw_html_table_row(h,
                          s->unhealthy                  ? "bad"
                          : s->consecutive_failures > 0 ? "warn"
                                                        : NULL,
                          row, 9);
        labels[i] = s->name;
    }
    pw_html_table_end(h);
    pw_html_svg_bars(h, "Seconds since each server's last complete cycle", labels, lags, n, "s");
}

static void writes(struct pw_html *h, const struct pw_status *st)
{
    static const char *const head[] = {"queue", "Flags"};
    char pending[32], dead[32];
    const char *row[2];
    char line[160];

    pw_html_heading(h, 2, "Flag writes");
    if (st->writes_paused) {
        snprintf(line, sizeof(line), "EHR writes PAUSED (%s): queued writes wait.",
                 st->paused_by[0] ? st->paused_by : "by an operator");
        pw_html_para(h, "bad", line);
    } else if (st->shadow_mode) {
        pw_html_para(h, "warn",
                     "Shadow mode: Flags go to the shadow file, nothing is written to "
                     "the EHR.");
    } else {
        pw_html_para(h, "ok", "Writing Flags to the EHR.");
    }
    snprintf(pending, sizeof(pending), "%.0f", st->outbox_pending);
    snprintf(dead, sizeof(dead), "%.0f", st->outbox_dead);
    pw_html_table_begin(h, "Outbox", head, 2);
    row[0] = "pending (outbox depth)";
    row[1] = pending;
    pw_html_table_row(h, NULL, row, 2);
    row[0] = "dead letters";
    row[1] = dead;
    pw_html_table_row(h, st->outbox_dead > 0 ? "bad" : NULL, row, 2);
    pw_html_table_end(h);
}

static void audit(struct pw_html *h, const struct pw_status *st)
{
    const struct pw_status_check *chain = find_check(st, "audit-chain");
    char line[256];

    pw_html_heading(h, 2, "Audit trail");
    pw_html_para(h, st->audit_writable ? "ok" : "bad",
                 st->audit_writable ? "Audit trail writable." : "Audit trail NOT writable.");
    if (chain) {
        snprintf(line, sizeof(line), "Audit chain: %s%s%s%s", chain->ok ? "intact" : "BROKEN",
                 chain->detail[0] ? " (" : "", chain->detail, chain->detail[0] ? ")" : "");
        pw_html_para(h, chain->ok ? "ok" : "bad", line);
    }
}

static void checks(struct pw_html *h, const struct pw_status *st)
{
    static const char *const head[] = {"check", "result", "detail"};

    pw_html_heading(h, 2, "Readiness checks (/readyz)");
    pw_html_table_begin(h, NULL, head, 3);
    for (size_t i = 0; i < st->n_checks && i < PW_STATUS_CHECKS_MAX; i++) {
        const struct pw_status_check *c = &st->checks[i];
        const char *row[3] = {c->name, c->ok ? "ok" : "FAIL", c->detail};
        pw_html_table_row(h, c->ok ? NULL : "bad", row, 3);
    }
    pw_html_table_end(h);
}

char *pw_status_render(const struct pw_status *st, size_t *len)
{
    struct pw_html h = {0};
    char now[32], started[32], up[32], line[192];
    bool ready = true;

    for (size_t i = 0; i < st->n_checks && i < PW_STATUS_CHECKS_MAX; i++) {
        ready = ready && st->checks[i].ok;
    }
    iso(st->now, now, sizeof(now));
    iso(st->start_time, started, sizeof(started));
    span(st->start_time > 0 ? st->now - st->start_time : 0, up, sizeof(up));
    pw_html_begin(&h, "painwatch status", PW_STATUS_REFRESH_S);
    pw_html_heading(&h, 1, "painwatch status");
    pw_html_para(&h, ready ? "ok" : "bad", ready ? "Ready." : "NOT ready: see the checks below.");
    snprintf(line, sizeof(line), "painwatchd %s, up %s (since %s); page made %s.",
             st->version ? st->version : "?", up, started, now);
    pw_html_para(&h, "note", line);
    servers(&h, st);
    writes(&h, st);
    audit(&h, st);
    checks(&h, st);
    pw_html_para(&h, "note",
                 "Refreshed every 10 s. Server names, counts and times only: no patient data. "
                 "Metrics for alerting: /metrics.");
    pw_html_end(&h);
    return pw_html_finish(&h, len);
}
