/* SPDX-License-Identifier: Apache-2.0 */
/* painwatch: the command-line tool. Dispatches to one subcommand file per verb. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cmd.h"
#include "painwatch/check.h"
#include "painwatch/log.h"

static const struct {
    const char *name;
    pw_cmd_fn *fn;
    const char *summary;
} commands[] = {
    {"check", pw_cmd_check, "evaluate FHIR bundles offline and print findings"},
    {"config", pw_cmd_config, "config check FILE: validate a configuration"},
    {"audit", pw_cmd_audit, "audit verify|show: check or read the audit trail"},
    {"outbox", pw_cmd_outbox, "outbox list|show|replay|drop: inspect pending writes"},
    {"auth", pw_cmd_auth, "auth test: obtain a token and read /metadata with it"},
    {"jwks", pw_cmd_jwks, "print the public JWK Set to register with the EHR"},
    {"backup", pw_cmd_backup, "copy the store and the audit trail, consistently, while running"},
    {"writes", pw_cmd_writes, "writes pause|resume|status: the kill switch of EHR writes"},
    {"codesystem", pw_cmd_codesystem, "print the rule CodeSystem (FHIR R4) to load into the EHR"},
    {"backtest", pw_cmd_backtest, "replay a FHIR export: the alert burden the rules would have"},
    {"report", pw_cmd_report, "the alert burden of a shadow-mode period (file sink + audit)"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: painwatch [--version] [--credentials-dir DIR] COMMAND [ARGS]\n\n"
                 "  --credentials-dir DIR  read secrets named as systemd credentials (a value\n"
                 "                         without '/') from DIR, as the service reads them from\n"
                 "                         $CREDENTIALS_DIRECTORY (may also follow COMMAND).\n"
                 "                         Default: $CREDENTIALS_DIRECTORY, else " PW_SYSCONFDIR
                 "/credentials\n"
                 "                         when it exists (where the unit loads them from)\n"
                 "\ncommands:\n");
    for (size_t i = 0; i < PW_ARRAY_SIZE(commands); i++) {
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(out, "\nRun 'painwatch COMMAND --help' for a command's options.\n");
}

/*
 * --credentials-dir DIR (or =DIR), anywhere on the line: taken out of argv and set as
 * $CREDENTIALS_DIRECTORY, which is where the configuration loader and the adapters resolve
 * credential names (as under systemd). @return 0, or 2 after a message.
 */
static int take_credentials_dir(int *argc, char **argv)
{
    static const char opt[] = "--credentials-dir";
    int out = 1;

    for (int i = 1; i < *argc; i++) {
        const char *dir = NULL;

        if (strcmp(argv[i], opt) == 0) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "painwatch: %s needs a directory\n", opt);
                return 2;
            }
            dir = argv[++i];
        } else if (strncmp(argv[i], opt, sizeof(opt) - 1) == 0 && argv[i][sizeof(opt) - 1] == '=') {
            dir = argv[i] + sizeof(opt);
        } else {
            argv[out++] = argv[i];
            continue;
        }
        if (!dir[0] || setenv("CREDENTIALS_DIRECTORY", dir, 1) != 0) {
            fprintf(stderr, "painwatch: %s: not usable as a credentials directory\n", dir);
            return 2;
        }
    }
    argv[out] = NULL;
    *argc = out;
    /* Neither given nor set: the directory the shipped unit loads its credentials from
     * (LoadCredential=NAME:/etc/painwatch/credentials/NAME), so a root shell sees what the
     * service sees. */
    const char *env = getenv("CREDENTIALS_DIRECTORY");
    struct stat st;
    if ((!env || !env[0]) && stat(PW_SYSCONFDIR "/credentials", &st) == 0 && S_ISDIR(st.st_mode)) {
        setenv("CREDENTIALS_DIRECTORY", PW_SYSCONFDIR "/credentials", 1);
    }
    return 0;
}

int main(int argc, char **argv)
{
    pw_log_init();
    if (take_credentials_dir(&argc, argv) != 0) {
        return 2;
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("painwatch %s\n", PW_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < PW_ARRAY_SIZE(commands); i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "painwatch: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
