/* SPDX-License-Identifier: Apache-2.0 */
/* Small pieces several subcommands share (issue 20: each written once). */
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli/cmd.h"

int pw_cmd_opts_cs(int argc, char **argv, const struct option *longs, void (*usage)(FILE *),
                   const char **c_arg, const char **s_arg, int operands)
{
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:s:h", longs, NULL)) != -1) {
        switch (c) {
        case 'c':
            *c_arg = optarg;
            break;
        case 's':
            *s_arg = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (operands >= 0 && argc - optind != operands) {
        usage(stderr);
        return 2;
    }
    return -1;
}

void pw_cmd_operator_name(char *out, size_t cap)
{
    const char *sudo = getenv("SUDO_USER");
    struct passwd *pw = getpwuid(geteuid());

    snprintf(out, cap, "%s%s%s", pw ? pw->pw_name : "uid?", sudo ? " via sudo by " : "",
             sudo ? sudo : "");
}
