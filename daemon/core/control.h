/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control socket: a Unix stream socket (libuv pipe) where `painwatch writes pause|resume|
 * status` reaches the running daemon. One line in ("pause\n"), one line out, then close. The
 * socket file is mode 0660, owned by the daemon's user and group; the peer's credentials come
 * from the kernel (SO_PEERCRED, SO_PEERGROUPS): root, the daemon's own user and members of its
 * group are served, anyone else is refused (and the owner is told, to audit it).
 */
#ifndef PAINWATCH_CORE_CONTROL_H
#define PAINWATCH_CORE_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <uv.h>

struct pw_conf_daemon;

/** Who is at the other end, as the kernel says. */
struct pw_control_peer {
    pid_t pid;
    uid_t uid;
    gid_t gid;
};

/**
 * One command from a peer. @p allowed is false for a refused peer (the reply is then written by
 * the control socket; the owner only audits). Writes a one-line reply (no newline needed) into
 * @p reply. @return 0 when done, <0 when the command failed (the reply says why).
 */
typedef int pw_control_fn(void *arg, const char *cmd, const struct pw_control_peer *peer,
                          bool allowed, char *reply, size_t cap);

struct pw_control;

/**
 * Listen on @p path (a stale socket file there is replaced; anything else there is an error).
 * @return 0, PW_E2BIG (path longer than sun_path), or a negative error.
 */
int pw_control_new(struct pw_control **out, uv_loop_t *loop, const char *path, pw_control_fn *fn,
                   void *arg);

/** Stop listening, remove the socket file. The loop must run for the close callbacks. */
void pw_control_close(struct pw_control *c);

/**
 * Where the socket is: control_socket when set, else $RUNTIME_DIRECTORY/control.sock (systemd's
 * RuntimeDirectory=), else <state_dir>/control.sock. @p for_client: a shell has no
 * $RUNTIME_DIRECTORY, so /run/painwatch/control.sock is used when it exists.
 */
void pw_control_path(const struct pw_conf_daemon *cd, bool for_client, char *out, size_t cap);

/**
 * The client side (blocking, for the CLI): send @p cmd, read the one-line reply into @p reply.
 * @return 0, or a negative errno (cannot connect: -EACCES, -ENOENT, -ECONNREFUSED, ...).
 */
int pw_control_request(const char *path, const char *cmd, char *reply, size_t cap);

#endif
