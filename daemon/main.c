/* SPDX-License-Identifier: Apache-2.0 */
/* painwatchd: arguments, then hands over to the daemon run loop (daemon/core/daemon.c). */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/daemon.h"
#include "painwatch/err.h"
#include "painwatch/jarena.h"
#include "painwatch/log.h"
#include "painwatch/secret.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: painwatchd [--config FILE] [--once] [--version]\n"
            "  --config FILE  configuration (default: the embedded local demo)\n"
            "  --once         run one full cycle (sync, evaluate, reconcile, deliver), exit\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"once", no_argument, NULL, '1'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct pw_daemon_opts dopts = {0};
    int c;

    pw_log_init();
    /* Before any secret is read: no core dump or same-user ptrace can copy them (issue 18). */
    int harden = pw_secret_protect_process();
    if (harden) {
        pw_log_warn(MAIN, "cannot make the process non-dumpable: %s", pw_strerror(harden));
    }
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            dopts.config_path = optarg;
            break;
        case '1':
            dopts.once = true;
            break;
        case 'V':
            printf("painwatchd %s\n", PW_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    /* Before anything allocates JSON: search pages are parsed into the arena (jarena.h). */
    int err = pw_jarena_install();
    if (err) {
        pw_log_warn(MAIN, "page arena unavailable (%s): pages are parsed with malloc",
                    pw_strerror(err));
    }
    return pw_daemon_run(&dopts);
}
