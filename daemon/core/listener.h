/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An HTTP listener on the loop: libmicrohttpd in external-epoll mode, its epoll fd watched by a
 * uv_poll and its timeout by a uv_timer, so requests are answered on the loop thread. Shared by
 * the health listener (health.c) and the CDS Hooks service (cds_hooks.c); each starts its own
 * MHD daemon (its own options: TLS, limits) and hands it here.
 */
#ifndef PAINWATCH_CORE_LISTENER_H
#define PAINWATCH_CORE_LISTENER_H

#include <stdarg.h>
#include <stdbool.h>
#include <sys/socket.h>

#include <microhttpd.h>
#include <uv.h>

#include "core/listen_addr.h"

/** Embedded in its owner; the owner is freed from @c on_closed (both handles closed). */
struct pw_listener {
    uv_poll_t poll;
    uv_timer_t timer;
    struct MHD_Daemon *mhd;
    unsigned port; /* the port actually bound */
    bool closed;   /* the last MHD_run closed a connection */
    int open_handles;
    void (*on_closed)(struct pw_listener *l);
};

/** "127.0.0.1:9187" or "[::1]:9187" -> sockaddr (numeric addresses only). @return 0 or PW_EINVAL.
 */
int pw_listen_parse(const char *listen, struct sockaddr_storage *ss, bool *v6);

/**
 * MHD_OPTION_NOTIFY_CONNECTION callback; pass it with the listener as its closure (cls) when
 * starting the MHD daemon: it tells the listener to run MHD again after a connection closed.
 */
void pw_listener_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe);

/**
 * Drive @p mhd (started with MHD_USE_EPOLL and pw_listener_notify) from @p loop. On success the
 * listener owns @p mhd and @p on_closed is called once, after pw_listener_close(). On failure
 * @p mhd is stopped and @p on_closed is never called. @return 0 or PW_EIO.
 */
int pw_listener_start(struct pw_listener *l, uv_loop_t *loop, struct MHD_Daemon *mhd,
                      void (*on_closed)(struct pw_listener *l));

/**
 * MHD_OPTION_EXTERNAL_LOGGER callback: MHD's messages as warnings of the log component
 * @p cls points to (a const enum pw_log_comp). Give it first, so MHD never prints by itself.
 */
void pw_listener_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/** Stop listening and close the handles; on_closed follows from the loop. */
void pw_listener_close(struct pw_listener *l);

#endif
