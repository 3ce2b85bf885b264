/* SPDX-License-Identifier: Apache-2.0 */
/* hex.h: lowercase, two digits a byte, NUL-terminated, agreeing with printf's %02x. */
#include <stdio.h>
#include <string.h>

#include "painwatch/hex.h"
#include "support/pwtest.h"

static void test_hex_encode(void **state)
{
    (void)state;
    unsigned char all[256];
    char out[2 * sizeof(all) + 1];
    char want[3];
    for (size_t i = 0; i < sizeof(all); i++) {
        all[i] = (unsigned char)i;
    }
    memset(out, 'x', sizeof(out));
    assert_ptr_equal(pw_hex_encode(all, sizeof(all), out), out);
    assert_int_equal(strlen(out), 2 * sizeof(all));
    for (size_t i = 0; i < sizeof(all); i++) {
        snprintf(want, sizeof(want), "%02x", all[i]);
        assert_memory_equal(out + 2 * i, want, 2);
    }
    char empty[1] = {'x'};
    pw_hex_encode(all, 0, empty);
    assert_string_equal(empty, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
