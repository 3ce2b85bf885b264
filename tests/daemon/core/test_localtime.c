/* SPDX-License-Identifier: Apache-2.0 */
/* Issue 21: local times in the configured timezone, through the C library's tz database. */
#include <stdlib.h>
#include <string.h>

#include "painwatch/err.h"
#include "painwatch/localtime.h"
#include "painwatch/timeline.h"
#include "support/pwtest.h"

#define T_WINTER ((int64_t)1796480040) /* 2026-12-05T14:14:00Z */
#define T_SUMMER ((int64_t)1782907200) /* 2026-07-01T12:00:00Z */
#define T_2025   ((int64_t)1764944040) /* 2025-12-05T14:14:00Z */

static void test_zone_names(void **state)
{
    (void)state;
    assert_true(pw_timezone_valid("Europe/Berlin"));
    assert_true(pw_timezone_valid("UTC"));
    assert_false(pw_timezone_valid("Mars/Olympus_Mons"));
    assert_false(pw_timezone_valid("/etc/localtime"));
    assert_false(pw_timezone_valid("../../etc/passwd"));
    assert_false(pw_timezone_valid(""));
    assert_false(pw_timezone_valid(NULL));
    assert_int_equal(pw_timezone_set("Mars/Olympus_Mons"), PW_ECONFIG);
}

static void test_local_times(void **state)
{
    char b[40];

    (void)state;
    assert_int_equal(pw_timezone_set("Europe/Berlin"), 0);
    assert_string_equal(pw_timezone_name(), "Europe/Berlin");
    /* CET in winter, CEST in summer: the tz database's rules, not ours */
    assert_string_equal(pw_local_time(b, T_WINTER, T_WINTER), "5 Dec 15:14");
    assert_string_equal(pw_local_time(b, T_SUMMER, T_WINTER), "1 Jul 14:00");
    /* another year than now's, or no now: with the year */
    assert_string_equal(pw_local_time(b, T_2025, T_WINTER), "5 Dec 2025 15:14");
    assert_string_equal(pw_local_time(b, T_WINTER, PW_TIME_NONE), "5 Dec 2026 15:14");
    assert_string_equal(pw_local_time(b, PW_TIME_NONE, T_WINTER), "unknown time");

    assert_int_equal(pw_timezone_set("UTC"), 0);
    assert_string_equal(pw_local_time(b, T_WINTER, T_WINTER), "5 Dec 14:14");
    /* Unset again (a reload without the key): the zone the process started with. */
    assert_int_equal(pw_timezone_set(NULL), 0);
    assert_string_equal(pw_timezone_name(), "Asia/Tokyo");
    assert_string_equal(pw_local_time(b, T_WINTER, T_WINTER), "5 Dec 23:14");
}

int main(void)
{
    /* the "system" zone of this process: TZ as it started */
    if (setenv("TZ", "Asia/Tokyo", 1) != 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zone_names),
        cmocka_unit_test(test_local_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
