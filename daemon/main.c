/* SPDX-License-Identifier: Apache-2.0 */
/* painwatchd: arguments, then hands over to the daemon run loop (daemon/core/daemon.c). */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conf_validate.h"
#include "core/daemon.h"
#include "painwatch/err.h"
#include "painwatch/jarena.h"
#include "painwatch/log.h"
#include "painwatch/secret.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: painwatchd [--config FILE] [--once | --check-config] [--version]\n"
        "  --config FILE   configuration (default: the embedded local demo)\n"
        "  --once          run one full cycle (sync, evaluate, reconcile, deliver), exit\n"
        "  --check-config  run the startup validation only (as `painwatch config check`)\n"
        "                  and exit: 0 valid, 2 invalid\n"
        "Exit status: 0 stopped cleanly (SIGTERM) or --once done, 1 runtime failure (store,\n"
        "audit trail, a server that cannot work; systemd restarts it), 2 invalid configuration\n"
        "or usage (not restarted: RestartPreventExitStatus=2). See painwatchd(8).\n");
}

static void report(void *arg, bool error, const char *key, const char *text)
{
    fprintf(stderr, "%s: %s: %s: %s\n", (const char *)arg, key, error ? "error" : "warning", text);
}

/* --check-config: load and validate exactly as the daemon's startup does; open nothing. */
static int check_config(const char *path)
{
    char name[4096];
    struct pw_conf_errors errs = {0};
    struct pw_conf *conf = NULL;
    const char *text = pw_conf_default_yaml();
    int rc;

    snprintf(name, sizeof(name), "%s", path ? path : "<embedded default>");
    rc = path ? pw_conf_load_file(&conf, path, &errs)
              : pw_conf_load_string(&conf, name, ".", text, strlen(text), &errs);

    for (size_t i = 0; i < errs.n; i++) {
        fprintf(stderr, "%s\n", errs.lines[i]);
    }
    if (rc < 0 && errs.n == 0) {
        fprintf(stderr, "%s: %s\n", name, pw_strerror(rc));
    }
    pw_conf_errors_cleanup(&errs);
    if (rc == 0) {
        rc = pw_conf_validate(conf, report, name);
    }
    pw_conf_free(conf);
    printf("%s: %s\n", name, rc == 0 ? "valid" : "invalid");
    return rc == 0 ? 0 : 2;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"once", no_argument, NULL, '1'},
        {"version", no_argument, NULL, 'V'},      {"check-config", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    struct pw_daemon_opts dopts = {0};
    bool check_only = false;
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
        case 'C':
            check_only = true;
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
    if (check_only) {
        return check_config(dopts.config_path);
    }
    /* Before anything allocates JSON: search pages are parsed into the arena (jarena.h). */
    int err = pw_jarena_install();
    if (err) {
        pw_log_warn(MAIN, "page arena unavailable (%s): pages are parsed with malloc",
                    pw_strerror(err));
    }
    return pw_daemon_run(&dopts);
}
