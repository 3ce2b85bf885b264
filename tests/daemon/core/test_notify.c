/* SPDX-License-Identifier: Apache-2.0 */
/* notify.c: READY/STATUS datagrams and watchdog pings reach a real $NOTIFY_SOCKET. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "painwatch/check.h"
#include "painwatch/notify.h"
#include "support/loop.h"
#include "support/pwtest.h"

static char *dir;
static int sock = -1;

static int setup(void **state)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    (void)state;
    dir = pwt_mkdtemp();
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", dir);
    sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(sock >= 0);
    assert_int_equal(bind(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setenv("NOTIFY_SOCKET", sa.sun_path, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close(sock);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    pwt_rmtree(dir);
    free(dir);
    return 0;
}

static void recv_msg(char *buf, size_t size)
{
    ssize_t n = recv(sock, buf, size - 1, 0);

    assert_true(n > 0);
    buf[n] = '\0';
}

static void test_ready_status(void **state)
{
    char msg[512];

    (void)state;
    pw_notify_status("syncing %d servers", 2);
    recv_msg(msg, sizeof(msg));
    assert_string_equal(msg, "STATUS=syncing 2 servers");
    pw_notify_ready("watching 40 patients");
    recv_msg(msg, sizeof(msg));
    assert_string_equal(msg, "READY=1\nSTATUS=watching 40 patients");
    pw_notify_reloading();
    recv_msg(msg, sizeof(msg));
    assert_non_null(strstr(msg, "RELOADING=1"));
    pw_notify_stopping();
    recv_msg(msg, sizeof(msg));
    assert_non_null(strstr(msg, "STOPPING=1"));
}

struct watch {
    uv_poll_t poll;
    struct pw_watchdog wd;
    int pings;
};

static void on_readable(uv_poll_t *poll, int status, int events)
{
    struct watch *w = container_of(poll, struct watch, poll);
    char msg[64];

    (void)events;
    assert_int_equal(status, 0);
    recv_msg(msg, sizeof(msg));
    assert_string_equal(msg, "WATCHDOG=1");
    /* The first ping is sent at start; the next ones come from the loop's timer. */
    if (++w->pings == 3) {
        pw_watchdog_close(&w->wd);
        uv_close((uv_handle_t *)poll, NULL);
    }
}

static void test_watchdog_pings(void **state)
{
    uv_loop_t loop;
    struct watch w = {0};
    char pid[32];

    (void)state;
    setenv("WATCHDOG_USEC", "40000", 1);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(uv_poll_init(&loop, &w.poll, sock), 0);
    assert_int_equal(uv_poll_start(&w.poll, UV_READABLE, on_readable), 0);
    assert_int_equal(pw_watchdog_start(&w.wd, &loop), 0);
    assert_int_equal(w.wd.interval_ms, 20);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(w.pings, 3);
    pwt_loop_close(&loop);
}

static void test_no_watchdog(void **state)
{
    uv_loop_t loop;
    struct pw_watchdog wd;

    (void)state;
    /* WatchdogSec= for another process (WATCHDOG_PID) is not ours: nothing starts. */
    setenv("WATCHDOG_USEC", "40000", 1);
    setenv("WATCHDOG_PID", "1", 1);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(pw_watchdog_start(&wd, &loop), 0);
    assert_int_equal(wd.interval_ms, 0);
    pw_watchdog_close(&wd);
    pwt_loop_close(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ready_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watchdog_pings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_watchdog, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
