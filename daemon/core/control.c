/* SPDX-License-Identifier: Apache-2.0 */
/* The control socket (see control.h): a libuv pipe server and its blocking client. */
#define _GNU_SOURCE /* struct ucred, SO_PEERCRED */
#include "core/control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "painwatch/conf.h"
#include "painwatch/err.h"
#include "painwatch/log.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59 /* Linux 4.13; older headers lack the name */
#endif

#define CONTROL_LINE_MAX  64
#define CONTROL_REPLY_MAX 512
#define CONTROL_GROUPS    64
#define CONTROL_CONNS_MAX 16 /* open connections; more are closed at once (a client that */
                             /* connects and never writes cannot exhaust the daemon's fds) */

struct conn {
    uv_pipe_t pipe;
    uv_write_t wr;
    struct pw_control *ctl;
    struct conn *next;
    char in[CONTROL_LINE_MAX + 1];
    size_t len;
    bool answered;
    char out[CONTROL_REPLY_MAX];
};

struct pw_control {
    uv_pipe_t server;
    char *path;
    pw_control_fn *fn;
    void *arg;
    struct conn *conns; /* open connections, closed with the server */
    unsigned n_conns;
    bool closing;
};

static void conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct pw_control *ctl = c->ctl;

    for (struct conn **p = &ctl->conns; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            ctl->n_conns--;
            break;
        }
    }
    free(c);
    if (ctl->closing && !ctl->conns && !ctl->server.data) {
        free(ctl->path);
        free(ctl);
    }
}

static void conn_close(struct conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->pipe)) {
        uv_close((uv_handle_t *)&c->pipe, conn_closed);
    }
}

static void on_written(uv_write_t *wr, int status)
{
    (void)status;
    conn_close(wr->data);
}

/* Whether the peer may use the socket: root, the daemon's user, or a member of its group. */
static bool peer_allowed(int fd, const struct pw_control_peer *peer)
{
    gid_t groups[CONTROL_GROUPS];
    socklen_t len = sizeof(groups);
    gid_t mine = getegid();

    if (peer->uid == 0 || peer->uid == geteuid() || peer->gid == mine) {
        return true;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0) {
        return false; /* more groups than we read, or no SO_PEERGROUPS: fail closed */
    }
    for (size_t i = 0; i < len / sizeof(gid_t); i++) {
        if (groups[i] == mine) {
            return true;
        }
    }
    return false;
}

static void answer(struct conn *c)
{
    struct pw_control *ctl = c->ctl;
    struct pw_control_peer peer = {.pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1};
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    uv_os_fd_t fd = -1;
    bool allowed = false;
    uv_buf_t buf;
    size_t n;

    c->answered = true;
    uv_read_stop((uv_stream_t *)&c->pipe);
    c->in[c->len] = '\0';
    c->in[strcspn(c->in, "\r\n")] = '\0';
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0 &&
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
        peer.pid = cred.pid;
        peer.uid = cred.uid;
        peer.gid = cred.gid;
        allowed = peer_allowed(fd, &peer);
    }
    c->out[0] = '\0';
    ctl->fn(ctl->arg, c->in, &peer, allowed, c->out, sizeof(c->out) - 1);
    if (!allowed) {
        snprintf(c->out, sizeof(c->out) - 1,
                 "refused: uid %ld is neither root nor in the service's group", (long)peer.uid);
    }
    n = strlen(c->out);
    c->out[n++] = '\n';
    buf = uv_buf_init(c->out, (unsigned)n);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->pipe, &buf, 1, on_written) != 0) {
        conn_close(c);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;

    (void)suggested;
    *buf = uv_buf_init(c->in + c->len, (unsigned)(CONTROL_LINE_MAX - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;

    (void)buf;
    if (c->answered) {
        return;
    }
    if (nread > 0) {
        c->len += (size_t)nread;
        if (memchr(c->in, '\n', c->len) || c->len >= CONTROL_LINE_MAX) {
            answer(c);
        }
        return;
    }
    if (nread == UV_EOF && c->len > 0) {
        answer(c);
    } else if (nread < 0) {
        conn_close(c);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct pw_control *ctl = server->data;
    struct conn *c;

    if (status < 0 || ctl->closing) {
        return;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        return;
    }
    c->ctl = ctl;
    if (uv_pipe_init(server->loop, &c->pipe, 0) != 0) {
        free(c);
        return;
    }
    c->pipe.data = c;
    c->next = ctl->conns;
    ctl->conns = c;
    ctl->n_conns++;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0 || ctl->n_conns > CONTROL_CONNS_MAX ||
        uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) != 0) {
        conn_close(c);
    }
}

int pw_control_new(struct pw_control **out, uv_loop_t *loop, const char *path, pw_control_fn *fn,
                   void *arg)
{
    struct sockaddr_un sa;
    struct pw_control *ctl;
    struct stat st;
    int rc;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        return PW_E2BIG;
    }
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            return PW_EEXIST;
        }
        unlink(path); /* left by an earlier run that did not stop cleanly */
    }
    ctl = calloc(1, sizeof(*ctl));
    if (!ctl || !(ctl->path = strdup(path))) {
        free(ctl);
        return PW_ENOMEM;
    }
    ctl->fn = fn;
    ctl->arg = arg;
    rc = uv_pipe_init(loop, &ctl->server, 0);
    if (rc != 0) {
        free(ctl->path);
        free(ctl);
        return rc;
    }
    ctl->server.data = ctl;
    rc = uv_pipe_bind(&ctl->server, path);
    if (rc == 0 && chmod(path, 0660) != 0) {
        rc = -errno;
    }
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&ctl->server, 8, on_connection);
    }
    if (rc != 0) {
        pw_control_close(ctl);
        return rc;
    }
    pw_log_info(MAIN, "control socket %s (painwatch writes pause|resume|status)", path);
    *out = ctl;
    return 0;
}

static void server_closed(uv_handle_t *h)
{
    struct pw_control *ctl = h->data;

    ctl->server.data = NULL;
    if (!ctl->conns) {
        free(ctl->path);
        free(ctl);
    }
}

void pw_control_close(struct pw_control *ctl)
{
    if (!ctl || ctl->closing) {
        return;
    }
    ctl->closing = true;
    unlink(ctl->path);
    for (struct conn *c = ctl->conns; c; c = c->next) {
        conn_close(c);
    }
    uv_close((uv_handle_t *)&ctl->server, server_closed);
}

void pw_control_path(const struct pw_conf_daemon *cd, bool for_client, char *out, size_t cap)
{
    const char *rt = getenv("RUNTIME_DIRECTORY");
    struct stat st;

    if (cd->control_socket && cd->control_socket[0]) {
        snprintf(out, cap, "%s", cd->control_socket);
    } else if (rt && rt[0]) {
        /* RuntimeDirectory= may list several: the first is ours. */
        snprintf(out, cap, "%.*s/control.sock", (int)strcspn(rt, ":"), rt);
    } else if (for_client && stat("/run/painwatch/control.sock", &st) == 0) {
        snprintf(out, cap, "/run/painwatch/control.sock");
    } else {
        snprintf(out, cap, "%s/control.sock", cd->state_dir);
    }
}

int pw_control_request(const char *path, const char *cmd, char *reply, size_t cap)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = 10};
    char line[CONTROL_LINE_MAX + 2];
    size_t got = 0;
    int fd;
    int n;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        return PW_E2BIG;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    n = snprintf(line, sizeof(line), "%s\n", cmd);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        return PW_E2BIG;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || write(fd, line, (size_t)n) != n) {
        int e = -errno;
        close(fd);
        return e;
    }
    while (got + 1 < cap) {
        ssize_t r = read(fd, reply + got, cap - 1 - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    reply[got] = '\0';
    reply[strcspn(reply, "\n")] = '\0';
    return got > 0 ? 0 : PW_EIO;
}
