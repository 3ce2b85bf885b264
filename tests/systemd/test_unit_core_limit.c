/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue 18, finding 8: the shipped unit allows no core dump (LimitCORE=0), so the secrets in
 * painwatchd's memory never land in a core file (painwatchd also makes itself non-dumpable:
 * tests/adapters/test_auth_secret.c).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/pwtest.h"

static void test_limit_core_zero(void **state)
{
    size_t len = 0;
    char *unit = pwt_read_file(pwt_src_path("systemd/painwatch.service"), &len);
    bool in_service = false;
    bool found = false;

    (void)state;
    assert_non_null(unit);
    for (char *line = strtok(unit, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '[') {
            in_service = strcmp(line, "[Service]") == 0;
        } else if (in_service && strncmp(line, "LimitCORE=", 10) == 0) {
            assert_string_equal(line + 10, "0");
            found = true;
        }
    }
    assert_true(found);
    free(unit);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_core_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
