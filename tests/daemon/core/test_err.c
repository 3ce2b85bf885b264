/* SPDX-License-Identifier: Apache-2.0 */
/* err.h: every code in the table has a distinct name and a message; errno passes through. */
#include <string.h>

#include "painwatch/err.h"
#include "support/pwtest.h"

static const int all_codes[] = {
#define CODE(name, value, msg) (value),
    PW_ERR_MAP(CODE)
#undef CODE
};

static void test_every_code_has_message_and_name(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(all_codes) / sizeof(all_codes[0]); i++) {
        const char *msg = pw_strerror(all_codes[i]);
        assert_non_null(msg);
        assert_true(strlen(msg) > 0);
        assert_string_not_equal(msg, "unknown error");
        assert_string_not_equal(pw_err_name(all_codes[i]), "UNKNOWN");
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(all_codes[i], all_codes[j]);
        }
    }
}

static void test_negative_errno_passes_through(void **state)
{
    (void)state;
    /* EPIPE is not in the table: the message is libc's. */
    assert_string_equal(pw_strerror(-EPIPE), strerror(EPIPE));
    assert_int_equal(PW_ENOMEM, -ENOMEM);
    assert_string_equal(pw_err_name(-EPIPE), "UNKNOWN");
}

static void test_own_codes(void **state)
{
    (void)state;
    assert_string_equal(pw_strerror(PW_EHTTP), "HTTP transfer failed");
    assert_string_equal(pw_err_name(PW_EAUDIT), "EAUDIT");
    assert_string_equal(pw_strerror(0), "success");
    assert_string_equal(pw_strerror(-99999), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_has_message_and_name),
        cmocka_unit_test(test_negative_errno_passes_through),
        cmocka_unit_test(test_own_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
