/* SPDX-License-Identifier: Apache-2.0 */
/* libuv loop teardown for tests, in one place (as libuv's own tests keep it in one macro). */
#ifndef PAINWATCH_TESTS_LOOP_H
#define PAINWATCH_TESTS_LOOP_H

#include <uv.h>

/**
 * End a test's loop: run it until every close callback has run (uv_run must return 0: nothing
 * left active), then fail naming each handle the code under test left open (closing it first so
 * the loop can still be closed), and assert uv_loop_close() == 0. Call after the code under test
 * has been freed (pw_http_free(), pw_outbox_close(), ...).
 */
void pwt_loop_close(uv_loop_t *loop);

#endif
