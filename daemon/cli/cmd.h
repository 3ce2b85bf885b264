/* SPDX-License-Identifier: Apache-2.0 */
/* The `painwatch` subcommands: one file each under daemon/cli/, one line each in tool.c. */
#ifndef PAINWATCH_CLI_CMD_H
#define PAINWATCH_CLI_CMD_H

/*
 * A subcommand gets argv starting at its own name (argv[0] == "check") and returns the process
 * exit status: 0 done, 1 done with a negative verdict (e.g. audit verify found a bad record),
 * 2 usage or unreadable input (with a message naming the file and place on stderr).
 */
typedef int pw_cmd_fn(int argc, char **argv);

pw_cmd_fn pw_cmd_check;
pw_cmd_fn pw_cmd_config;
pw_cmd_fn pw_cmd_audit;
pw_cmd_fn pw_cmd_outbox;
pw_cmd_fn pw_cmd_auth;
pw_cmd_fn pw_cmd_jwks;
pw_cmd_fn pw_cmd_backup;
pw_cmd_fn pw_cmd_writes;     /* issue 19 */
pw_cmd_fn pw_cmd_codesystem; /* issue 21 */
pw_cmd_fn pw_cmd_backtest;   /* issue 22 */
pw_cmd_fn pw_cmd_report;     /* issue 22 */

#include <stdio.h>
struct option;

/*
 * Parses the options "c:s:h" (their long names in @p longs, getopt_long's table) from argv[1..]:
 * -c sets *@p c_arg, -s sets *@p s_arg, -h prints @p usage to stdout. Then exactly @p operands
 * operands must follow (-1: any number; the first at argv[optind]).
 * @return -1 to go on, else the exit status: 0 after --help, 2 (usage on stderr) on a bad option
 * or operand count.
 */
int pw_cmd_opts_cs(int argc, char **argv, const struct option *longs, void (*usage)(FILE *),
                   const char **c_arg, const char **s_arg, int operands);

/** Who runs this command, for the audit trail: "user" or "user via sudo by other". */
void pw_cmd_operator_name(char *out, size_t cap);

#endif
