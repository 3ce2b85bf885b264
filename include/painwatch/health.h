/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The health and metrics listener: /healthz, /readyz and /metrics over HTTP on a loopback
 * address, served by libmicrohttpd driven from the daemon's libuv loop (no extra thread).
 */
#ifndef PAINWATCH_HEALTH_H
#define PAINWATCH_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "painwatch/status.h"

struct pw_health;

/**
 * A readiness check, e.g. "store" (open), "audit" (writable), "server:ehr" (last sync
 * succeeded recently). Runs on the loop thread while /readyz is answered, so it may read the
 * module's state directly; it must not block. Write a short reason into @p detail (no patient
 * data). @return true when ready.
 */
typedef bool pw_health_check_fn(void *arg, char *detail, size_t size);

/**
 * Start listening on @p listen ("127.0.0.1:9187", "[::1]:0"; port 0 picks a free port).
 * Caller owns the result; release with pw_health_close() before closing the loop.
 * @return 0, PW_EINVAL (bad address), PW_EIO (cannot listen: in use, permission) or PW_ENOMEM.
 */
int pw_health_new(struct pw_health **out, uv_loop_t *loop, const char *listen);

/** pw_health_new() with an idle connection timeout of @p idle_timeout_s (0: the default). */
int pw_health_new_idle(struct pw_health **out, uv_loop_t *loop, const char *listen,
                       unsigned idle_timeout_s);

/** The port actually bound (useful with port 0). */
unsigned pw_health_port(const struct pw_health *health);

/**
 * Register a readiness check; @p name is copied, @p arg borrowed until pw_health_close().
 * @return 0, PW_E2BIG (over PW_HEALTH_CHECKS_MAX) or PW_ENOMEM.
 */
int pw_health_add_check(struct pw_health *health, const char *name, pw_health_check_fn *fn,
                        void *arg);

/**
 * Issue 22: @p fn fills the /status page's data at each request (on the loop thread); @p arg is
 * borrowed until pw_health_close(). Without it the page shows the readiness checks only.
 */
void pw_health_set_status(struct pw_health *health, pw_status_fill_fn *fn, void *arg);

/**
 * Stop listening (open connections are dropped) and free @p health once its handles have closed
 * (during the next uv_run). NULL is a no-op.
 */
void pw_health_close(struct pw_health *health);

#endif
