/* SPDX-License-Identifier: Apache-2.0 */
/* MHD on the libuv loop (listener.h): moved out of health.c so the CDS Hooks service shares it. */
#include "core/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "painwatch/check.h"
#include "painwatch/err.h"
#include "painwatch/log.h"

int pw_listen_parse(const char *listen, struct sockaddr_storage *ss, bool *v6)
{
    const char *colon = strrchr(listen, ':');
    char host[64];
    size_t hl;
    char *end;
    long port;

    if (!colon || colon == listen) {
        return PW_EINVAL;
    }
    port = strtol(colon + 1, &end, 10);
    hl = (size_t)(colon - listen);
    if (*end || colon[1] == '\0' || port < 0 || port > 65535 || hl >= sizeof(host)) {
        return PW_EINVAL;
    }
    memcpy(host, listen, hl);
    host[hl] = '\0';
    memset(ss, 0, sizeof(*ss));
    *v6 = host[0] == '[';
    if (*v6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        if (hl < 3 || host[hl - 1] != ']') {
            return PW_EINVAL;
        }
        host[hl - 1] = '\0';
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        return inet_pton(AF_INET6, host + 1, &s6->sin6_addr) == 1 ? 0 : PW_EINVAL;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 0 : PW_EINVAL;
}

void pw_listener_mhd_log(void *cls, const char *fmt, va_list ap)
{
    const enum pw_log_comp *comp = cls;
    char msg[256];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    if (LOG_WARNING <= pw_log_level) {
        pw_log_write(LOG_WARNING, *comp, "listener: %s", msg);
    }
}

static void on_timer(uv_timer_t *timer);

void pw_listener_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
    struct pw_listener *l = cls;

    (void)conn;
    (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        l->closed = true;
    }
}

/*
 * MHD_run, again while a run closed a connection. At the connection limit MHD takes its
 * listening socket out of its epoll set and puts it back only at the start of a later run, after
 * connections have gone; they go at the end of a run. With nothing else to wake the loop (no
 * connection left, so no timeout either) the listener stayed deaf for good (issue 18). A run
 * here never waits (MHD polls its epoll set with a zero timeout); should runs keep closing
 * connections, the timer runs it again on the next loop iteration.
 */
static void serve(struct pw_listener *l)
{
    MHD_UNSIGNED_LONG_LONG ms = 0;
    int runs = 0;

    do {
        l->closed = false;
        MHD_run(l->mhd);
    } while (l->closed && ++runs < 4);
    if (l->closed) {
        uv_timer_start(&l->timer, on_timer, 0, 0);
    } else if (MHD_get_timeout(l->mhd, &ms) == MHD_YES) {
        uv_timer_start(&l->timer, on_timer, (uint64_t)ms, 0);
    } else {
        uv_timer_stop(&l->timer);
    }
}

static void on_timer(uv_timer_t *timer)
{
    serve(container_of(timer, struct pw_listener, timer));
}

static void on_poll(uv_poll_t *poll, int status, int events)
{
    struct pw_listener *l = container_of(poll, struct pw_listener, poll);

    (void)events;
    if (status < 0) {
        pw_log_err(HEALTH, "listener poll: %s", uv_strerror(status));
    }
    serve(l);
}

static void on_close(uv_handle_t *handle)
{
    struct pw_listener *l = handle->data;

    if (--l->open_handles == 0 && l->on_closed) {
        l->on_closed(l);
    }
}

int pw_listener_start(struct pw_listener *l, uv_loop_t *loop, struct MHD_Daemon *mhd,
                      void (*on_closed)(struct pw_listener *l))
{
    const union MHD_DaemonInfo *info;
    int err;

    l->mhd = mhd;
    info = MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_BIND_PORT);
    l->port = info ? info->port : 0;
    info = MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_EPOLL_FD);
    err = info ? uv_poll_init(loop, &l->poll, info->epoll_fd) : UV_EINVAL;
    if (err) {
        pw_log_err(HEALTH, "cannot watch the listener: %s", uv_strerror(err));
        MHD_stop_daemon(mhd);
        l->mhd = NULL;
        return PW_EIO;
    }
    uv_timer_init(loop, &l->timer);
    l->poll.data = l;
    l->timer.data = l;
    l->open_handles = 2;
    l->on_closed = on_closed;
    uv_poll_start(&l->poll, UV_READABLE, on_poll);
    serve(l);
    return 0;
}

void pw_listener_close(struct pw_listener *l)
{
    /* Stop watching the epoll fd before MHD closes it (a reused fd must never be polled). */
    uv_close((uv_handle_t *)&l->poll, on_close);
    uv_close((uv_handle_t *)&l->timer, on_close);
    MHD_stop_daemon(l->mhd);
    l->mhd = NULL;
}
