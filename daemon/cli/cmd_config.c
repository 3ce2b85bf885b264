/* SPDX-License-Identifier: Apache-2.0 */
/* painwatch config: placeholder until its issue lands. */
#include <stdio.h>

#include "cli/cmd.h"

int pw_cmd_config(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "painwatch: 'config' is not available in this build yet\n");
    return 2;
}
