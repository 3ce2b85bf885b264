/* SPDX-License-Identifier: Apache-2.0 */
/* check.h: PW_CHECK reports and recovers, PW_REQUIRE aborts, container_of finds the owner. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "painwatch/check.h"
#include "painwatch/log.h"
#include "support/pwtest.h"

struct owner {
    int before;
    double member;
    int after;
};

static void test_container_of(void **state)
{
    struct owner o;
    double *m = &o.member;
    (void)state;
    assert_ptr_equal(container_of(m, struct owner, member), &o);
}

static int guarded(int n)
{
    if (PW_CHECK(n <= 10)) {
        return -1;
    }
    return n;
}

static void test_check_recovers_and_logs(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    (void)state;

    pw_log_init();
    pw_log_set_output(out, false);
    assert_int_equal(guarded(3), 3);
    assert_int_equal(guarded(11), -1);
    fflush(out);
    assert_non_null(strstr(buf, "recoverable check failed: n <= 10"));
    pw_log_set_output(NULL, false);
    fclose(out);
    free(buf);
}

static void test_require_aborts(void **state)
{
    int status = 0;
    pid_t pid;
    (void)state;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 2);
        }
        PW_REQUIRE(pid == 12345);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_container_of),
        cmocka_unit_test(test_check_recovers_and_logs),
        cmocka_unit_test(test_require_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
