/* SPDX-License-Identifier: Apache-2.0 */
/* painwatchd's run loop: build every component from the configuration, run, shut down in order. */
#ifndef PAINWATCH_CORE_DAEMON_H
#define PAINWATCH_CORE_DAEMON_H

#include <stdbool.h>

struct pw_daemon_opts {
    const char *config_path; /* NULL: the embedded default (the local demo) */
    bool once;               /* one full cycle (sync, evaluate, reconcile, deliver), then exit */
};

/** Run until SIGTERM/SIGINT (or one cycle with once). @return the process exit status. */
int pw_daemon_run(const struct pw_daemon_opts *opts);

#endif
