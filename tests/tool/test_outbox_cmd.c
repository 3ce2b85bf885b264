/* SPDX-License-Identifier: Apache-2.0 */
/* `painwatch outbox list|show|replay|drop` on a real store, run as the installed CLI would be. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <jansson.h>

#include "painwatch/store.h"
#include "support/pwtest.h"

struct fx {
    char *dir;
    char out[65536];
};

static char payload[] = "{\"resourceType\":\"Flag\",\"status\":\"active\"}";
static char outcome[] = "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"error\","
                        "\"code\":\"invalid\",\"diagnostics\":\"unknown code system\"}]}";

static void add_row(struct pw_store *st, const char *key, enum pw_outbox_state state, long status)
{
    struct pw_outbox_row r = {.op = PW_OUTBOX_CREATE,
                              .state = state,
                              .payload = payload,
                              .attempts = state == PW_OUTBOX_PENDING ? 0 : 1,
                              .last_status = status};

    snprintf(r.key, sizeof(r.key), "%s", key);
    snprintf(r.patient, sizeof(r.patient), "Patient/42");
    snprintf(r.rule, sizeof(r.rule), "laxative-missing");
    if (state == PW_OUTBOX_DEAD) {
        r.outcome = outcome;
        snprintf(r.last_error, sizeof(r.last_error), "HTTP %ld", status);
    }
    assert_int_equal(pw_store_outbox_enqueue(st, &r), 0);
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    struct pw_store_opts so = {0};
    struct pw_store *st = NULL;

    fx->dir = pwt_mkdtemp();
    so.dir = fx->dir;
    assert_int_equal(pw_store_open(&st, &so), 0);
    add_row(st, "key-pending-000", PW_OUTBOX_PENDING, 0); /* 1 */
    add_row(st, "key-dead-000000", PW_OUTBOX_DEAD, 422);  /* 2 */
    add_row(st, "key-done-000000", PW_OUTBOX_DONE, 201);  /* 3 */
    pw_store_close(st);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    pwt_rmtree(fx->dir);
    free(fx->dir);
    free(fx);
    return 0;
}

/* Run `painwatch outbox ARGS --state-dir DIR`, capture stdout. @return the exit status. */
static int run(struct fx *fx, const char *args)
{
    const char *bin = getenv("PAINWATCH");
    char cmd[8192];
    FILE *p;
    size_t n;
    int status;

    assert_non_null(bin);
    snprintf(cmd, sizeof(cmd), "'%s' outbox %s --state-dir '%s' 2>/dev/null", bin, args, fx->dir);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(fx->out, 1, sizeof(fx->out) - 1, p);
    fx->out[n] = '\0';
    status = pclose(p);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static struct pw_store *reopen(struct fx *fx)
{
    struct pw_store_opts so = {.dir = fx->dir};
    struct pw_store *st = NULL;

    assert_int_equal(pw_store_open(&st, &so), 0);
    return st;
}

static void test_list_shows_pending_and_dead(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(run(fx, "list"), 0);
    assert_non_null(strstr(fx->out, "key-pending"));
    assert_non_null(strstr(fx->out, "key-dead"));
    assert_null(strstr(fx->out, "key-done"));
    assert_non_null(strstr(fx->out, "422"));
    assert_int_equal(run(fx, "list --all"), 0);
    assert_non_null(strstr(fx->out, "key-done"));
    /* --json: one object per line. */
    assert_int_equal(run(fx, "list --json"), 0);
    json_t *first = json_loads(fx->out, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(first);
    assert_int_equal(json_integer_value(json_object_get(first, "id")), 1);
    assert_string_equal(json_string_value(json_object_get(first, "state")), "pending");
    json_decref(first);
}

static void test_show_keeps_operation_outcome(void **state)
{
    struct fx *fx = *state;
    json_t *row;

    assert_int_equal(run(fx, "show 2"), 0);
    row = json_loads(fx->out, 0, NULL);
    assert_non_null(row);
    assert_string_equal(json_string_value(json_object_get(row, "state")), "dead");
    assert_int_equal(json_integer_value(json_object_get(row, "last_status")), 422);
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(json_object_get(row, "server_outcome"), "issue"), 0),
            "diagnostics")),
        "unknown code system");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(row, "payload"), "resourceType")),
        "Flag");
    json_decref(row);
    assert_int_equal(run(fx, "show 99"), 1);
}

struct acts {
    char detail[4][PW_OUTBOX_ERROR_MAX];
    char action[4][32];
    size_t n;
};

static int collect(void *arg, const struct pw_operator_action *act)
{
    struct acts *a = arg;

    snprintf(a->detail[a->n], sizeof(a->detail[0]), "%s", act->detail);
    snprintf(a->action[a->n++], sizeof(a->action[0]), "%s", act->action);
    return 0;
}

static void test_replay_and_drop_are_journaled(void **state)
{
    struct fx *fx = *state;
    struct pw_store *st;
    struct pw_outbox_row r = {0};
    struct acts acts = {0};

    assert_int_equal(run(fx, "replay 1"), 1); /* pending: nothing to replay */
    assert_int_equal(run(fx, "drop 3"), 1);   /* done: nothing to drop */
    assert_int_equal(run(fx, "replay 2"), 0);
    assert_int_equal(run(fx, "drop 1"), 0);

    st = reopen(fx);
    assert_int_equal(pw_store_outbox_get(st, 2, &r), 0);
    assert_int_equal(r.state, PW_OUTBOX_PENDING);
    assert_int_equal(r.attempts, 0);
    assert_int_equal(r.next_try, 0);
    assert_non_null(strstr(r.last_error, "replayed by"));
    pw_outbox_row_cleanup(&r);
    assert_int_equal(pw_store_outbox_get(st, 1, &r), 0);
    assert_int_equal(r.state, PW_OUTBOX_DROPPED);
    pw_outbox_row_cleanup(&r);
    assert_int_equal(pw_store_operator_unaudited(st, collect, &acts), 0);
    assert_int_equal(acts.n, 2);
    assert_string_equal(acts.action[0], "outbox-replay");
    assert_non_null(strstr(acts.detail[0], "dead -> pending"));
    assert_string_equal(acts.action[1], "outbox-drop");
    assert_null(strstr(acts.detail[1], "Patient/42")); /* no patient data in the journal */
    pw_store_close(st);

    /* A dropped row can be replayed later. */
    assert_int_equal(run(fx, "replay 1"), 0);
}

static void test_usage_errors(void **state)
{
    struct fx *fx = *state;
    const char *bin = getenv("PAINWATCH");
    char cmd[4096];
    int status;

    assert_int_equal(run(fx, "show"), 2);
    assert_int_equal(run(fx, "show abc"), 2);
    assert_int_equal(run(fx, "frobnicate 1"), 2);
    snprintf(cmd, sizeof(cmd), "'%s' outbox list >/dev/null 2>&1", bin);
    status = system(cmd);
    assert_int_equal(WEXITSTATUS(status), 2);
    snprintf(cmd, sizeof(cmd), "'%s' outbox list --state-dir '%s/none' >/dev/null 2>&1", bin,
             fx->dir);
    status = system(cmd);
    assert_int_equal(WEXITSTATUS(status), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_shows_pending_and_dead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_show_keeps_operation_outcome, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_and_drop_are_journaled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
