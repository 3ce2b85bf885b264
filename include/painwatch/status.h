/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The /status page of the health listener (issue 22): one self-contained HTML page for hospital
 * IT, refreshed by a meta refresh, no scripts. It carries server names, counts, times and check
 * names only, never patient data. The daemon fills a struct pw_status (pw_health_set_status());
 * the listener adds its readiness checks and renders it with pw_status_render().
 */
#ifndef PAINWATCH_STATUS_H
#define PAINWATCH_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PW_STATUS_SERVERS_MAX 32
#define PW_STATUS_CHECKS_MAX  32

/** Seconds between the page's refreshes. */
#define PW_STATUS_REFRESH_S 10

struct pw_status_server {
    char name[65];
    bool unhealthy;                /* the same verdict as /readyz and painwatch_server_up */
    double last_complete;          /* Unix time of the last complete cycle, 0 if none yet */
    unsigned consecutive_failures; /* failed cycles in a row */
    uint64_t cycles;               /* cycles finished */
    char last_error[96];           /* "HTTP 503", an error name, or "" */
    double newest_data;            /* Unix time of the newest meta.lastUpdated received, 0: none */
};

struct pw_status_check {
    char name[81];
    bool ok;
    char detail[200];
};

struct pw_status {
    double now;        /* Unix time the page is made */
    double start_time; /* Unix time the process started */
    const char *version;
    struct pw_status_server servers[PW_STATUS_SERVERS_MAX];
    size_t n_servers;
    double outbox_pending;
    double outbox_dead;
    bool writes_paused;
    char paused_by[96];
    bool shadow_mode;
    bool audit_writable;
    struct pw_status_check checks[PW_STATUS_CHECKS_MAX]; /* /readyz's checks, by the listener */
    size_t n_checks;
};

/** Fill @p st (zeroed by the caller) from the daemon's state; runs on the loop thread. */
typedef void pw_status_fill_fn(void *arg, struct pw_status *st);

/**
 * The page for @p st. Caller owns the result (free()); @p len gets its length.
 * @return NULL on allocation failure.
 */
char *pw_status_render(const struct pw_status *st, size_t *len);

#endif
