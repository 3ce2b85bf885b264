/* SPDX-License-Identifier: Apache-2.0 */
/* painwatch: the command-line tool. Dispatches to one subcommand file per verb. */
#include <stdio.h>
#include <string.h>

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
    {"writes", pw_cmd_writes, "writes pause|resume|status: the kill switch of EHR writes"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: painwatch [--version] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < PW_ARRAY_SIZE(commands); i++) {
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(out, "\nRun 'painwatch COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    pw_log_init();
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
