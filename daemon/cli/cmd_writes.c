/* SPDX-License-Identifier: Apache-2.0 */
/*
 * painwatch writes pause|resume|status: the kill switch. Talks to the running painwatchd over
 * its control socket (control.h); the daemon checks who is asking (root or the service's group)
 * and audits it. A pause stops every EHR write at once, keeps what is queued, and survives
 * restarts until `resume`.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "core/control.h"
#include "painwatch/conf.h"
#include "painwatch/err.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: painwatch writes pause|resume|status [--config FILE | --socket PATH]\n"
            "\n"
            "pause    stop every EHR write now; queued writes stay queued (survives restarts)\n"
            "resume   send what is queued, and write again\n"
            "status   paused or writing (and shadow mode)\n"
            "\n"
            "The socket: --socket, else control_socket of --config, else $RUNTIME_DIRECTORY/\n"
            "control.sock, else /run/painwatch/control.sock, else <state_dir>/control.sock.\n"
            "Allowed: root and members of the service's group. Exit: 0 done, 1 refused or\n"
            "failed by the daemon, 2 usage or no daemon to talk to.\n");
}

int pw_cmd_writes(int argc, char **argv)
{
    static const struct option longs[] = {
        {"config", required_argument, NULL, 'c'},
        {"socket", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    const char *socket_path = NULL;
    char path[4096];
    char reply[512];
    const char *verb;
    int rc;

    rc = pw_cmd_opts_cs(argc, argv, longs, usage, &config, &socket_path, 1);
    if (rc >= 0) {
        return rc;
    }
    verb = argv[optind];
    if (strcmp(verb, "pause") != 0 && strcmp(verb, "resume") != 0 && strcmp(verb, "status") != 0) {
        fprintf(stderr, "painwatch writes: unknown action '%s'\n", verb);
        usage(stderr);
        return 2;
    }
    if (socket_path) {
        snprintf(path, sizeof(path), "%s", socket_path);
    } else {
        struct pw_conf *conf = NULL;
        struct pw_conf_errors errs = {0};

        if (!config) {
            fprintf(stderr, "painwatch writes: give --config FILE or --socket PATH\n");
            return 2;
        }
        rc = pw_conf_load_file(&conf, config, &errs);
        for (size_t i = 0; i < errs.n; i++) {
            fprintf(stderr, "%s\n", errs.lines[i]);
        }
        pw_conf_errors_cleanup(&errs);
        if (rc < 0) {
            fprintf(stderr, "painwatch writes: %s: %s\n", config, pw_strerror(rc));
            return 2;
        }
        pw_control_path(pw_conf_daemon(conf), true, path, sizeof(path));
        pw_conf_free(conf);
    }
    rc = pw_control_request(path, verb, reply, sizeof(reply));
    if (rc < 0) {
        fprintf(stderr, "painwatch writes: cannot reach painwatchd at %s: %s%s\n", path,
                pw_strerror(rc),
                rc == PW_EACCES ? " (run as root or as a member of the service's group)" : "");
        return 2;
    }
    if (strncmp(reply, "refused", 7) == 0 || strncmp(reply, "error", 5) == 0) {
        fprintf(stderr, "painwatch writes: %s\n", reply);
        return 1;
    }
    printf("%s\n", reply);
    return 0;
}
