/* SPDX-License-Identifier: Apache-2.0 */
/*
 * systemd service notification (sd_notify): READY, STATUS, RELOADING, STOPPING, and watchdog
 * pings from a libuv timer at half of $WATCHDOG_USEC. Every call is a no-op outside systemd.
 */
#ifndef PAINWATCH_NOTIFY_H
#define PAINWATCH_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

/** READY=1 (send after the first successful connection check) with a STATUS line. */
void pw_notify_ready(const char *status);

/** STATUS=<printf format>: progress shown by `systemctl status`. No patient data. */
void pw_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** RELOADING=1 (SIGHUP received); follow with pw_notify_ready() when done, ok or not. */
void pw_notify_reloading(void);

/** STOPPING=1 (SIGTERM received). */
void pw_notify_stopping(void);

/** Watchdog pings. Embed in the owner; uv_timer inside, so close before the loop closes. */
struct pw_watchdog {
    uv_timer_t timer;
    uint64_t interval_ms; /* 0 when no watchdog is configured */
    bool started;
};

/**
 * Start pinging WATCHDOG=1 every WATCHDOG_USEC/2 when systemd asks for it (WatchdogSec=); the
 * pings come from the loop, so a stuck loop gets the service restarted. Without a watchdog this
 * initialises nothing and returns 0. @return 0 or a negative PW_E* code.
 */
int pw_watchdog_start(struct pw_watchdog *wd, uv_loop_t *loop);

/** Stop and close the timer (if started). @p wd may be reused after the close completes. */
void pw_watchdog_close(struct pw_watchdog *wd);

#endif
