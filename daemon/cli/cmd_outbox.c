/* SPDX-License-Identifier: Apache-2.0 */
/* painwatch outbox: placeholder until its issue lands. */
#include <stdio.h>

#include "cli/cmd.h"

int pw_cmd_outbox(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "painwatch: 'outbox' is not available in this build yet\n");
    return 2;
}
