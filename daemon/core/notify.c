/* SPDX-License-Identifier: Apache-2.0 */
/* sd_notify wrappers and the watchdog timer. */
#include "painwatch/notify.h"

#include <stdarg.h>
#include <stdio.h>

#include <systemd/sd-daemon.h>

#include "painwatch/err.h"
#include "painwatch/log.h"

/* sd_notify returns <0 on error, 0 when $NOTIFY_SOCKET is unset: only errors are worth a line. */
static void send_state(const char *state)
{
    int r = sd_notify(0, state);

    if (r < 0) {
        pw_log_warn(MAIN, "sd_notify: %s", pw_strerror(r));
    }
}

void pw_notify_ready(const char *status)
{
    char msg[512];

    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status ? status : "running");
    send_state(msg);
}

void pw_notify_status(const char *fmt, ...)
{
    char msg[512] = "STATUS=";
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg + 7, sizeof(msg) - 7, fmt, ap);
    va_end(ap);
    send_state(msg);
}

void pw_notify_reloading(void)
{
    send_state("RELOADING=1\nSTATUS=reloading configuration");
}

void pw_notify_stopping(void)
{
    send_state("STOPPING=1\nSTATUS=stopping: finishing in-flight work");
}

static void on_watchdog(uv_timer_t *timer)
{
    (void)timer;
    send_state("WATCHDOG=1");
}

int pw_watchdog_start(struct pw_watchdog *wd, uv_loop_t *loop)
{
    uint64_t usec = 0;
    int r;

    wd->started = false;
    wd->interval_ms = 0;
    /* 0: no watchdog for us (unset, or WATCHDOG_PID names another process). */
    r = sd_watchdog_enabled(0, &usec);
    if (r < 0) {
        pw_log_warn(MAIN, "watchdog: %s", pw_strerror(r));
        return 0;
    }
    if (r == 0 || usec == 0) {
        return 0;
    }
    /* Half the period, as sd_watchdog_enabled(3) recommends; at least 1 ms. */
    wd->interval_ms = usec / 2000 ? usec / 2000 : 1;
    r = uv_timer_init(loop, &wd->timer);
    if (r) {
        return PW_ENOMEM;
    }
    wd->started = true;
    send_state("WATCHDOG=1");
    uv_timer_start(&wd->timer, on_watchdog, wd->interval_ms, wd->interval_ms);
    pw_log_info(MAIN, "watchdog: pinging every %llu ms", (unsigned long long)wd->interval_ms);
    return 0;
}

void pw_watchdog_close(struct pw_watchdog *wd)
{
    if (wd->started && !uv_is_closing((uv_handle_t *)&wd->timer)) {
        uv_close((uv_handle_t *)&wd->timer, NULL);
    }
    wd->started = false;
}
