/* SPDX-License-Identifier: Apache-2.0 */
/* array.h: room grows by doubling, elements survive growth, an impossible size is PW_ENOMEM with
 * the array unchanged. */
#include <stdint.h>
#include <stdlib.h>

#include "painwatch/array.h"
#include "painwatch/err.h"
#include "support/pwtest.h"

struct pair {
    int a;
    double b;
};

struct pairs {
    struct pair *v;
    size_t n, cap;
};

static void test_grow_keeps_elements(void **state)
{
    (void)state;
    struct pairs p = {0};
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(PW_ARRAY_GROW(&p), 0);
        assert_true(p.cap > p.n);
        p.v[p.n++] = (struct pair){.a = i, .b = i * 0.5};
    }
    assert_int_equal(p.cap, 1024); /* 8, 16, ..., 1024 */
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(p.v[i].a, i);
        assert_true(p.v[i].b == i * 0.5);
    }
    struct pair *before = p.v;
    assert_int_equal(PW_ARRAY_RESERVE(&p, 1024), 0); /* already there: nothing moves */
    assert_ptr_equal(p.v, before);
    assert_int_equal(PW_ARRAY_RESERVE(&p, 3000), 0);
    assert_int_equal(p.cap, 4096);
    assert_int_equal(p.v[999].a, 999);
    free(p.v);
}

static void test_overflow_is_enomem(void **state)
{
    (void)state;
    struct pairs p = {0};
    assert_int_equal(PW_ARRAY_GROW(&p), 0);
    p.v[p.n++] = (struct pair){.a = 7};
    struct pair *before = p.v;
    assert_int_equal(PW_ARRAY_RESERVE(&p, SIZE_MAX / 2), PW_ENOMEM);
    assert_ptr_equal(p.v, before);
    assert_int_equal(p.cap, 8);
    assert_int_equal(p.v[0].a, 7);
    free(p.v);
}

static void test_byte_buffer_first_capacity(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t cap = 0;
    assert_int_equal(pw_array_reserve_from(&buf, &cap, 10, 1, 256), 0);
    assert_int_equal(cap, 256);
    buf[255] = 'x';
    assert_int_equal(pw_array_reserve_from(&buf, &cap, 1000, 1, 256), 0);
    assert_int_equal(cap, 1024);
    assert_int_equal(buf[255], 'x');
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow_keeps_elements),
        cmocka_unit_test(test_overflow_is_enomem),
        cmocka_unit_test(test_byte_buffer_first_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
