/* SPDX-License-Identifier: Apache-2.0 */
/* painwatch audit: placeholder until its issue lands. */
#include <stdio.h>

#include "cli/cmd.h"

int pw_cmd_audit(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "painwatch: 'audit' is not available in this build yet\n");
    return 2;
}
