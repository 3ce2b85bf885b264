/* SPDX-License-Identifier: Apache-2.0 */
/* libuv loop teardown for tests (loop.h). */
#include "support/loop.h"

#include <stdio.h>

#include "support/pwtest.h"

static void close_left_open(uv_handle_t *h, void *arg)
{
    unsigned *left = arg;

    if (!uv_is_closing(h)) {
        fprintf(stderr, "pwt_loop_close: a %s handle was left open\n",
                uv_handle_type_name(uv_handle_get_type(h)));
        uv_close(h, NULL);
        (*left)++;
    }
}

void pwt_loop_close(uv_loop_t *loop)
{
    unsigned left = 0;

    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    uv_walk(loop, close_left_open, &left);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(left, 0);
    assert_int_equal(uv_loop_close(loop), 0);
}
