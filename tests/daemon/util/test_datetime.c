/* SPDX-License-Identifier: Apache-2.0 */
/* datetime.h: civil days both ways, the one FHIR/RFC 3339 parser in each of its modes, the
 * formatter; checked against the C library's timegm/gmtime where both apply. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "painwatch/datetime.h"
#include "painwatch/err.h"
#include "support/pwtest.h"

static void test_civil_days_round_trip(void **state)
{
    (void)state;
    assert_int_equal(pw_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(pw_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(pw_days_from_civil(1969, 12, 31), -1);
    for (int64_t day = -800000; day <= 800000; day += 997) {
        int64_t y;
        unsigned m, d;
        pw_civil_from_days(day, &y, &m, &d);
        assert_true(m >= 1 && m <= 12 && d >= 1 && d <= 31);
        assert_int_equal(pw_days_from_civil(y, m, d), day);
    }
    /* Leap days: 2024 has one, 1900 has none, 2000 has one. */
    assert_int_equal(pw_days_from_civil(2024, 3, 1) - pw_days_from_civil(2024, 2, 28), 2);
    assert_int_equal(pw_days_from_civil(1900, 3, 1) - pw_days_from_civil(1900, 2, 28), 1);
    assert_int_equal(pw_days_from_civil(2000, 3, 1) - pw_days_from_civil(2000, 2, 28), 2);
}

static int64_t parse(const char *s, unsigned flags)
{
    int64_t ms = 42;
    int err = pw_time_parse(s, flags, &ms);
    return err ? (int64_t)err * 1000000 : ms;
}

#define BAD ((int64_t)PW_EINVAL * 1000000)

static void test_parse_modes(void **state)
{
    (void)state;
    const unsigned fhir = PW_TIME_PARTIAL | PW_TIME_LAX;     /* clinical dates */
    const unsigned instant = PW_TIME_PARTIAL | PW_TIME_ZONE; /* search instants */
    const unsigned rfc = PW_TIME_ZONE | PW_TIME_LAX;         /* audit filters */

    assert_int_equal(parse("2024-05-01T10:00:00.123+02:00", instant), 1714550400123);
    assert_int_equal(parse("2024-05-01T08:00:00Z", instant), 1714550400000);
    assert_int_equal(parse("2024-05-01", instant), 1714521600000);
    assert_int_equal(parse("2024-05", instant), 1714521600000);
    assert_int_equal(parse("2024", instant), 1704067200000);
    assert_int_equal(parse("2024-05-01T08:00:00", instant), BAD); /* no zone */
    assert_int_equal(parse("2024-05-01t08:00:00Z", instant), BAD);
    assert_int_equal(parse("2024-05-01T08:00:00+15:00", instant), BAD);
    assert_int_equal(parse("2024-05-01T24:00:00Z", instant), BAD);

    assert_int_equal(parse("2024-05-01T08:00:00", fhir), 1714550400000); /* UTC assumed */
    assert_int_equal(parse("2024-05-01 08:00:00z", fhir), 1714550400000);
    assert_int_equal(parse("2024-05-01T08:00:00.9999-01:30", fhir), 1714555800999);
    assert_int_equal(parse("2024-05", fhir), 1714521600000);

    assert_int_equal(parse("2024-05-01", rfc), 1714521600000);
    assert_int_equal(parse("2024-05", rfc), BAD);
    assert_int_equal(parse("2024-05-01 08:00:00", rfc), BAD);
    assert_int_equal(parse("2024-05-01 08:00:00Z", rfc), 1714550400000);

    const char *bad[] = {"",
                         NULL,
                         "24-05-01",
                         "2024-13-01",
                         "2024-00",
                         "2024-05-32",
                         "2024-05-01T",
                         "2024-05-01T8:00:00Z",
                         "2024-05-01T08:00:00.Z",
                         "2024-05-01T08:60:00Z",
                         "2024-05-01X",
                         "2024-05-01T08:00:00+0200",
                         "2024-05-01T08:00:00Zjunk"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(bad[i], fhir), BAD);
        assert_int_equal(parse(bad[i], instant), BAD);
        assert_int_equal(parse(bad[i], rfc), BAD);
    }
}

static void test_format_against_gmtime(void **state)
{
    (void)state;
    char buf[PW_TIME_FMT_LEN];
    pw_time_format(1714550400123, PW_TIME_FMT_MS, buf, sizeof(buf));
    assert_string_equal(buf, "2024-05-01T08:00:00.123Z");
    pw_time_format(1714550400999, 0, buf, sizeof(buf));
    assert_string_equal(buf, "2024-05-01T08:00:00Z");
    pw_time_format(-1, PW_TIME_FMT_MS, buf, sizeof(buf));
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    assert_int_equal(pw_time_ms_to_s(-1), -1);
    assert_int_equal(pw_time_ms_to_s(1999), 1);

    for (int64_t t = -4000000000; t < 4000000000; t += 86400LL * 37 + 3671) {
        time_t tt = (time_t)t;
        struct tm tm;
        char want[32];
        assert_non_null(gmtime_r(&tt, &tm));
        strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &tm);
        pw_time_format(t * 1000, 0, buf, sizeof(buf));
        assert_string_equal(buf, want);
        assert_int_equal(parse(buf, PW_TIME_ZONE), t * 1000);
        /* with milliseconds: the same, written digit by digit for times after 1970 */
        int64_t ms = t * 1000 + (t >= 0 ? t % 1000 : 0);
        char want_ms[40];
        snprintf(want_ms, sizeof(want_ms), "%.19s.%03dZ", want, (int)(ms - t * 1000));
        pw_time_format(ms, PW_TIME_FMT_MS, buf, sizeof(buf));
        assert_string_equal(buf, want_ms);
    }
    /* A short buffer gets what snprintf would write: the first n - 1 characters. */
    char small[8];
    pw_time_format(1714550400123, PW_TIME_FMT_MS, small, sizeof(small));
    assert_string_equal(small, "2024-05");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_civil_days_round_trip),
        cmocka_unit_test(test_parse_modes),
        cmocka_unit_test(test_format_against_gmtime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
