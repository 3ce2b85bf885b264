/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Crash safety of delivery: a child process delivers 30 Flags to a loopback server that keeps
 * what it is sent, and is killed with SIGKILL at random instants, 20 times; a last run finishes.
 * The server must end up with exactly one Flag per episode (no conditional create: the unknown
 * mark + identifier search alone must prevent duplicates), and every row must be done.
 */
#define _XOPEN_SOURCE 700 /* realpath */

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "core/outbox.h"
#include "painwatch/err.h"
#include "painwatch/http.h"
#include "painwatch/sink.h"
#include "painwatch/store.h"
#include "support/pwtest.h"
#include "support/responder.h"

#define N_FLAGS 30
#define N_KILLS 20

extern char **environ;

/* This test binary, by the path it was started with: /proc/self/exe would name valgrind when the
 * suite runs under it. */
static char g_self[4096];

/* ---- the child: one delivery run ---------------------------------------------------------- */

static bool g_idle;

static void on_idle(void *arg, bool pending_later)
{
    (void)arg;
    g_idle = !pending_later;
}

static int child(const char *dir, const char *origin)
{
    uv_loop_t loop;
    struct pw_http *http = NULL;
    struct pw_store *st = NULL;
    struct pw_sink *sink = NULL;
    struct pw_outbox *ob = NULL;
    struct pw_store_opts so = {.dir = dir};
    struct pw_http_server srv = {.name = "ehr", .origin = origin, .timeout_ms = 5000};
    char base[512];
    int rc = 1;

    snprintf(base, sizeof(base), "%s/fhir", origin);
    uv_loop_init(&loop);
    if (pw_http_new(&http, &loop) || pw_http_server_add(http, &srv) || pw_store_open(&st, &so) ||
        pw_sink_new(&sink, "fhir-flag", NULL)) {
        return 3;
    }
    struct pw_outbox_conf c = {.store = st,
                               .sink = sink,
                               .http = http,
                               .server = "ehr",
                               .base_url = base,
                               .backoff_base_ms = 5,
                               .backoff_cap_ms = 20,
                               .on_idle = on_idle};
    if (pw_outbox_new(&ob, &loop, &c) == 0 && pw_outbox_start(ob) == 0) {
        while (!g_idle) {
            uv_run(&loop, UV_RUN_ONCE);
        }
        rc = 0;
    }
    pw_outbox_close(ob);
    pw_http_free(http);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    pw_sink_free(sink);
    pw_store_close(st);
    return rc;
}

/* ---- the server: remembers the Flags it created ------------------------------------------- */

struct server {
    pthread_mutex_t mu;
    char keys[256][PW_KEY_MAX];
    unsigned creates[256];
    size_t n;
};

static int find_key(struct server *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->keys[i], key) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void reply(struct pwt_reply *r, int status, const char *headers, char *body)
{
    r->status = status;
    r->headers = headers ? strdup(headers) : NULL;
    r->body = body;
    r->body_len = body ? strlen(body) : 0;
}

static void on_post(struct server *s, const struct pwt_request *req, struct pwt_reply *r)
{
    json_t *flag = json_loads(req->body, 0, NULL);
    const char *key = json_string_value(
        json_object_get(json_array_get(json_object_get(flag, "identifier"), 0), "value"));
    char hdr[256];
    int i;

    if (!key) {
        json_decref(flag);
        reply(r, 400, NULL, NULL);
        return;
    }
    pthread_mutex_lock(&s->mu);
    i = find_key(s, key);
    if (i < 0 && s->n < 256) {
        i = (int)s->n++;
        snprintf(s->keys[i], sizeof(s->keys[i]), "%s", key);
    }
    s->creates[i]++; /* a duplicate shows up as creates > 1 */
    unsigned delay = (unsigned)rand() % 20000;
    pthread_mutex_unlock(&s->mu);
    json_decref(flag);
    /* Answer slowly so that kills land between "applied" and "answer read". */
    struct timespec ts = {0, (long)delay * 1000L};
    nanosleep(&ts, NULL);
    snprintf(hdr, sizeof(hdr), "Location: http://x/fhir/Flag/f%d/_history/1\n", i);
    reply(r, 201, hdr, NULL);
}

static void on_search(struct server *s, const struct pwt_request *req, struct pwt_reply *r)
{
    const char *bar = strchr(req->query, '|');
    json_t *b =
        json_pack("{s:s, s:s, s:[]}", "resourceType", "Bundle", "type", "searchset", "entry");
    int i;

    pthread_mutex_lock(&s->mu);
    i = bar ? find_key(s, bar + 1) : -1;
    if (i >= 0) {
        char id[16];

        snprintf(id, sizeof(id), "f%d", i);
        json_array_append_new(json_object_get(b, "entry"),
                              json_pack("{s:{s:s, s:s, s:{s:s}, s:[{s:s, s:s}], s:s}}", "resource",
                                        "resourceType", "Flag", "id", id, "meta", "versionId", "1",
                                        "identifier", "system", PW_FLAG_IDENTIFIER_SYSTEM, "value",
                                        s->keys[i], "status", "active"));
    }
    pthread_mutex_unlock(&s->mu);
    reply(r, 200, NULL, json_dumps(b, JSON_COMPACT));
    json_decref(b);
}

static void handler(void *arg, const struct pwt_request *req, struct pwt_reply *r)
{
    if (strcmp(req->method, "POST") == 0) {
        on_post(arg, req, r);
    } else {
        on_search(arg, req, r);
    }
}

/* ---- the test ------------------------------------------------------------------------------ */

static pid_t spawn_child(const char *dir, const char *origin)
{
    char name[] = "test_outbox_crash";
    char flag[] = "--child";
    char *d = strdup(dir);
    char *o = strdup(origin);
    char *argv[] = {name, flag, d, o, NULL};
    pid_t pid = 0;

    assert_int_equal(posix_spawn(&pid, g_self, NULL, NULL, argv, environ), 0);
    free(d);
    free(o);
    return pid;
}

static void plan_all(const char *dir)
{
    struct pw_store_opts so = {.dir = dir};
    struct pw_store *st = NULL;
    struct pw_sink *sink = NULL;
    struct pw_finding f[N_FLAGS];
    struct pw_flag_list flags = {0};
    struct pw_rc_plan plan = {0};

    assert_int_equal(pw_store_open(&st, &so), 0);
    assert_int_equal(pw_sink_new(&sink, "fhir-flag", NULL), 0);
    for (int i = 0; i < N_FLAGS; i++) {
        f[i] = (struct pw_finding){.rule = "laxative-missing",
                                   .category = "drug",
                                   .severity = PW_SEV_MEDIUM,
                                   .since = 1767225600};
        snprintf(f[i].patient, sizeof(f[i].patient), "Patient/p1");
        snprintf(f[i].key, sizeof(f[i].key), "crash-key-%02d", i);
        snprintf(f[i].text, sizeof(f[i].text), "finding %d", i);
    }
    assert_int_equal(pw_store_begin(st), 0);
    assert_int_equal(pw_outbox_plan(st, sink, "Patient/p1", f, N_FLAGS, 1767225600, &flags, &plan),
                     0);
    assert_int_equal(pw_store_commit(st), 0);
    pw_rc_plan_cleanup(&plan);
    pw_flag_list_cleanup(&flags);
    pw_sink_free(sink);
    pw_store_close(st);
}

static int count_done(void *arg, const struct pw_outbox_row *row)
{
    *(int *)arg += row->state == PW_OUTBOX_DONE;
    return 0;
}

static void test_kill_9_during_delivery(void **state)
{
    struct server *s = calloc(1, sizeof(*s));
    struct pwt_responder *srv = pwt_responder_start(NULL);
    char *dir = pwt_mkdtemp();
    struct pw_store_opts so = {.dir = dir};
    struct pw_store *st = NULL;
    int status = 0;
    int done = 0;
    unsigned killed = 0;

    (void)state;
    pthread_mutex_init(&s->mu, NULL);
    srand((unsigned)time(NULL));
    pwt_responder_add(
        srv, &(struct pwt_rule){.path = "/fhir/Flag", .handler = handler, .handler_arg = s});
    plan_all(dir);
    for (int k = 0; k < N_KILLS; k++) {
        size_t before = pwt_responder_count(srv);
        pid_t pid = spawn_child(dir, pwt_responder_url(srv));
        struct timespec ts = {0, (long)(rand() % 15) * 1000000L};

        /* Kill during delivery, not during process start: wait for a request or two first
         * (bounded: once everything is delivered, a child sends nothing and exits). */
        pwt_responder_wait_count(srv, before + 1 + (size_t)(rand() % 3), 3000);
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        killed += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    }
    /* The last run finishes what is left. */
    pid_t last = spawn_child(dir, pwt_responder_url(srv));
    assert_int_equal(waitpid(last, &status, 0), last);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    print_message("%u kills, %zu episodes on the server\n", killed, s->n);
    assert_int_equal(s->n, N_FLAGS);
    for (size_t i = 0; i < s->n; i++) {
        if (s->creates[i] != 1) {
            fail_msg("episode %s created %u times", s->keys[i], s->creates[i]);
        }
    }
    assert_int_equal(pw_store_open(&st, &so), 0);
    assert_int_equal(pw_store_outbox_list(st, -1, count_done, &done), 0);
    assert_int_equal(done, N_FLAGS);
    for (int i = 0; i < N_FLAGS; i++) {
        struct pw_flag_rec rec = {0};
        char key[32];

        snprintf(key, sizeof(key), "crash-key-%02d", i);
        assert_int_equal(pw_store_flag_get(st, key, &rec), 0);
        assert_true(rec.server_id[0] == 'f');
        pw_flag_rec_cleanup(&rec);
    }
    pw_store_close(st);
    pwt_responder_stop(srv);
    pthread_mutex_destroy(&s->mu);
    free(s);
    pwt_rmtree(dir);
    free(dir);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_9_during_delivery),
    };

    if (argc == 4 && strcmp(argv[1], "--child") == 0) {
        return child(argv[2], argv[3]);
    }
    if (!realpath(argv[0], g_self)) {
        snprintf(g_self, sizeof(g_self), "/proc/self/exe");
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
