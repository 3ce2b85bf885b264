/* SPDX-License-Identifier: Apache-2.0 */
/* painwatch config: check a configuration file offline, print the embedded default. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "core/conf_validate.h"
#include "painwatch/conf.h"
#include "painwatch/err.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: painwatch config check [--quiet] FILE\n"
        "       painwatch config hash FILE\n"
        "       painwatch config default\n"
        "       painwatch config describe\n"
        "  check    validate FILE without starting anything, with the checks painwatchd\n"
        "           runs at startup (adapters included: keys, secrets, terminology,\n"
        "           cohort files); print the effective configuration (defaults filled in,\n"
        "           masked values hidden) and its hash, and warn about production risks\n"
        "           (FILE: key: warning: ...). --quiet prints one line and no warnings.\n"
        "           Exit 0 valid, 2 invalid (each error as file:line:column: key: message\n"
        "           or FILE: key: error: message).\n"
        "Secrets named as systemd credentials (a value without '/') are read from\n"
        "$CREDENTIALS_DIRECTORY, or from DIR with `painwatch --credentials-dir DIR config ...`.\n"
        "  hash     print only the SHA-256 of the effective configuration (audit trail).\n"
        "  default  print the embedded default configuration (the local demo).\n"
        "  describe list every accepted key: path, type, default, help.\n");
}

struct report_to {
    const char *file;
    bool quiet; /* errors only */
};

static void report(void *arg, bool error, const char *key, const char *text)
{
    const struct report_to *to = arg;

    if (error || !to->quiet) {
        fprintf(stderr, "%s: %s: %s: %s\n", to->file, key, error ? "error" : "warning", text);
    }
}

/* Load FILE; print errors on stderr. @return the configuration or NULL. */
static struct pw_conf *load(const char *file)
{
    struct pw_conf_errors errs = {0};
    struct pw_conf *conf = NULL;
    int err = pw_conf_load_file(&conf, file, &errs);

    if (err) {
        for (size_t i = 0; i < errs.n; i++) {
            fprintf(stderr, "%s\n", errs.lines[i]);
        }
        if (errs.count > errs.n) {
            fprintf(stderr, "%s: %zu more errors not shown\n", file, errs.count - errs.n);
        }
        if (errs.count == 0) {
            fprintf(stderr, "%s: %s\n", file, pw_strerror(err));
        }
        fprintf(stderr, "%s: invalid configuration (%zu error%s)\n", file, errs.count,
                errs.count == 1 ? "" : "s");
    }
    pw_conf_errors_cleanup(&errs);
    return conf;
}

static int cmd_check(int argc, char **argv)
{
    bool quiet = false;
    const char *file = NULL;
    struct report_to to;
    struct pw_conf *conf;
    char *dump;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
            quiet = true;
        } else if (!file && argv[i][0] != '-') {
            file = argv[i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!file) {
        usage(stderr);
        return 2;
    }
    to.file = file;
    to.quiet = quiet;
    conf = load(file);
    if (!conf) {
        return 2;
    }
    /* The startup validation of painwatchd, the same function (conf_validate.h). */
    if (pw_conf_validate(conf, report, &to) < 0) {
        fprintf(stderr, "%s: invalid configuration (painwatchd would refuse to start)\n", file);
        pw_conf_free(conf);
        return 2;
    }
    if (!quiet) {
        dump = pw_conf_dump(conf, true);
        if (!dump) {
            pw_conf_free(conf);
            fprintf(stderr, "painwatch: out of memory\n");
            return 2;
        }
        /* '#' lines keep the output valid YAML, so it can be checked again. */
        printf("# %s: valid\n# config-hash: sha256:%s\n%s\n", file, pw_conf_hash(conf), dump);
        free(dump);
    } else {
        printf("%s: valid\n", file);
    }
    pw_conf_free(conf);
    return 0;
}

int pw_cmd_config(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "check")) {
        return cmd_check(argc - 1, argv + 1);
    }
    if (argc == 3 && !strcmp(argv[1], "hash")) {
        struct pw_conf *conf = load(argv[2]);
        if (!conf) {
            return 2;
        }
        printf("sha256:%s\n", pw_conf_hash(conf));
        pw_conf_free(conf);
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "default")) {
        fputs(pw_conf_default_yaml(), stdout);
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "describe")) {
        char *text = pw_conf_describe();
        if (!text) {
            return 2;
        }
        fputs(text, stdout);
        free(text);
        return 0;
    }
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
