/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue 18 finding 5: the audit chain head anchored in the store. painwatchd --once runs against
 * a loopback responder with a real SQLite store and trail; then the trail is cut back by 5
 * records, deleted with its key, or forked, and `painwatch audit verify --config` (the config's
 * state dir) and `--state-dir`, the next painwatchd start (a "chain-discontinuity" record, an
 * error line, readiness failing) and `painwatch audit acknowledge` are checked.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "painwatch/audit.h"
#include "painwatch/err.h"
#include "painwatch/store.h"
#include "support/http_get.h"
#include "support/pwtest.h"
#include "support/responder.h"

static const char capability[] =
    "{\"resourceType\":\"CapabilityStatement\",\"status\":\"active\",\"kind\":\"instance\","
    "\"date\":\"2026-01-01\",\"fhirVersion\":\"4.0.1\",\"format\":[\"json\"],"
    "\"rest\":[{\"mode\":\"server\",\"resource\":["
    "{\"type\":\"Observation\",\"interaction\":[{\"code\":\"search-type\"}],"
    "\"searchParam\":[{\"name\":\"patient\",\"type\":\"reference\"},"
    "{\"name\":\"_lastUpdated\",\"type\":\"date\"}]},"
    "{\"type\":\"MedicationRequest\",\"interaction\":[{\"code\":\"search-type\"}],"
    "\"searchParam\":[{\"name\":\"patient\",\"type\":\"reference\"},"
    "{\"name\":\"_lastUpdated\",\"type\":\"date\"}]}]}]}";

#define TEST_DIGEST "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const char empty_bundle[] = "{\"resourceType\":\"Bundle\",\"type\":\"searchset\","
                                   "\"total\":0,\"entry\":[]}";

struct ctx {
    char *dir;
    char cfg[4200];
    char state[4200];
    char trail[4200];
    char key[4200];
    char log[4200];
    struct pwt_responder *fhir;
};

static int run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(char **out, const char *fmt, ...)
{
    char cmd[16384];
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    va_list ap;
    FILE *p;
    int status;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    p = popen(cmd, "r");
    assert_non_null(p);
    while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0) {
        fwrite(chunk, 1, n, mem);
    }
    status = pclose(p);
    fclose(mem);
    if (out) {
        *out = buf;
    } else {
        free(buf);
    }
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static const char *bin(const char *env, const char *dflt)
{
    const char *p = getenv(env);
    return p ? p : dflt;
}

#define PAINWATCH  bin("PAINWATCH", PW_BINARY_DIR "/painwatch")
#define PAINWATCHD bin("PAINWATCHD", PW_BINARY_DIR "/painwatchd")

static int setup(void **state)
{
    struct ctx *c = calloc(1, sizeof(*c));
    char text[8192];

    c->dir = pwt_mkdtemp();
    snprintf(c->cfg, sizeof(c->cfg), "%s/painwatch.yaml", c->dir);
    snprintf(c->state, sizeof(c->state), "%s/state", c->dir);
    snprintf(c->trail, sizeof(c->trail), "%s/state/audit/painwatch-audit.jsonl", c->dir);
    snprintf(c->key, sizeof(c->key), "%s/state/audit.key", c->dir); /* the default: beside */
    snprintf(c->log, sizeof(c->log), "%s/painwatchd.log", c->dir);
    c->fhir = pwt_responder_start(NULL);
    pwt_responder_add(
        c->fhir, &(struct pwt_rule){.method = "GET", .path = "/fhir/metadata", .body = capability});
    pwt_responder_add(c->fhir, &(struct pwt_rule){.path = "/fhir/*", .body = empty_bundle});
    snprintf(text, sizeof(text),
             "state_dir: %s\n"
             "log_level: info\n"
             "shadow_mode: true\n"
             "audit:\n"
             "  allow_local_key: true\n" /* the key beside the trail: deleted with it below */
             "health:\n"
             "  listen: 127.0.0.1:0\n"
             "terminology_dir: %s\n"
             "servers:\n"
             "  - name: ehr\n"
             "    base_url: %s/fhir\n"
             "    cohort:\n"
             "      type: server-wide\n",
             c->state, pwt_src_path("config/terminology"), pwt_responder_url(c->fhir));
    pwt_write_file(c->cfg, text);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    struct ctx *c = *state;

    pwt_responder_stop(c->fhir);
    pwt_rmtree(c->dir);
    free(c->dir);
    free(c);
    return 0;
}

/* painwatchd --once; its log in c->log. */
static void daemon_once(struct ctx *c)
{
    char *log;
    int rc = run(NULL,
                 "env -u STATE_DIRECTORY -u CREDENTIALS_DIRECTORY %s --once --config %s "
                 "2>%s",
                 PAINWATCHD, c->cfg, c->log);
    if (rc != 0) {
        log = pwt_read_file(c->log, NULL);
        fail_msg("painwatchd --once exited %d:\n%s", rc, log ? log : "");
    }
}

static int verify(struct ctx *c, char **out)
{
    return run(out, "%s audit verify --config %s 2>&1", PAINWATCH, c->cfg);
}

/* Cut the last @p k lines off the live trail. */
static void cut_back(struct ctx *c, int k)
{
    size_t len = 0;
    char *text = pwt_read_file(c->trail, &len);

    assert_non_null(text);
    for (int i = 0; i < k; i++) {
        assert_true(len > 1);
        len--; /* the newline of the last line */
        while (len > 0 && text[len - 1] != '\n') {
            len--;
        }
    }
    text[len] = '\0';
    pwt_write_file(c->trail, text);
    free(text);
}

static size_t count(const char *text, const char *needle)
{
    size_t n = 0;

    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++) {
        n++;
    }
    return n;
}

static char *trail_text(struct ctx *c)
{
    char *t = pwt_read_file(c->trail, NULL);
    assert_non_null(t);
    return t;
}

/* Readiness as /readyz computes it (the daemon's "audit-chain" check). */
static bool chain_ready(struct ctx *c, char *detail, size_t size)
{
    struct pw_store *st = NULL;
    struct pw_store_opts so = {.dir = c->state, .read_only = true};
    bool ok;

    assert_int_equal(pw_store_open(&st, &so), 0);
    ok = pw_audit_chain_ready(st, detail, size);
    pw_store_close(st);
    return ok;
}

/* After a discontinuity: recorded at start, logged, readiness and verify fail until acknowledged.
 */
static void expect_detected_at_start(struct ctx *c, const char *why)
{
    char detail[512];
    char *out;
    char *text;
    char *log;

    daemon_once(c);
    text = trail_text(c);
    assert_int_equal(count(text, "\"subtype\":\"chain-discontinuity\""), 1);
    assert_non_null(strstr(text, why));
    free(text);
    log = pwt_read_file(c->log, NULL);
    assert_non_null(strstr(log, "chain discontinuity"));
    free(log);
    assert_false(chain_ready(c, detail, sizeof(detail)));
    assert_non_null(strstr(detail, "painwatch audit acknowledge"));
    /* The trail itself verifies; the store says what happened. */
    assert_int_equal(verify(c, &out), 1);
    assert_non_null(strstr(out, "OK: "));
    assert_non_null(strstr(out, "chain discontinuity not acknowledged"));
    free(out);
    assert_int_equal(run(&out, "%s audit verify --key %s --state-dir %s %s 2>&1", PAINWATCH, c->key,
                         c->state, c->trail),
                     1);
    free(out);

    /* Acknowledged (daemon stopped): ready again, and the next start records who and when. */
    assert_int_equal(
        run(&out, "%s audit acknowledge --config %s --reason 'test review'", PAINWATCH, c->cfg), 0);
    assert_non_null(strstr(out, "acknowledged by "));
    free(out);
    assert_true(chain_ready(c, detail, sizeof(detail)));
    assert_int_equal(run(&out, "%s audit acknowledge --state-dir %s", PAINWATCH, c->state), 0);
    assert_non_null(strstr(out, "nothing to acknowledge"));
    free(out);
    daemon_once(c);
    text = trail_text(c);
    assert_non_null(strstr(text, "\"operator_action\":\"audit-acknowledge\""));
    assert_non_null(strstr(text, "test review"));
    assert_int_equal(count(text, "\"subtype\":\"chain-discontinuity\""), 1); /* not again */
    free(text);
    assert_int_equal(verify(c, &out), 0);
    assert_non_null(strstr(out, "chain head in the store: record"));
    free(out);
}

static void test_anchored_and_continuous(void **state)
{
    struct ctx *c = *state;
    char detail[512];
    char *out;

    daemon_once(c);
    daemon_once(c);
    assert_int_equal(verify(c, &out), 0);
    assert_non_null(strstr(out, "chain head in the store: record"));
    free(out);
    assert_int_equal(run(&out, "%s audit verify --key %s --state-dir %s %s 2>&1", PAINWATCH, c->key,
                         c->state, c->trail),
                     0);
    free(out);
    assert_true(chain_ready(c, detail, sizeof(detail)));
    char *text = trail_text(c);
    assert_int_equal(count(text, "chain-discontinuity"), 0);
    free(text);
}

static void test_cut_back_5(void **state)
{
    struct ctx *c = *state;
    char *out;

    /* Two runs: one --once run's trail may hold only a handful of records (the searches of a
     * cycle are one record), and what is left after the cut must still verify. */
    daemon_once(c);
    daemon_once(c);
    cut_back(c, 5);
    /* The finding: the cut trail verified and the store was not asked. */
    assert_int_equal(verify(c, &out), 1);
    assert_non_null(strstr(out, "OK: "));
    assert_non_null(strstr(out, "FAILED: chain discontinuity"));
    assert_non_null(strstr(out, "cut back"));
    free(out);
    assert_int_equal(run(&out, "%s audit verify --key %s --state-dir %s %s 2>&1", PAINWATCH, c->key,
                         c->state, c->trail),
                     1);
    assert_non_null(strstr(out, "cut back"));
    free(out);
    /* Restarting on it no longer reuses the record numbers silently. */
    expect_detected_at_start(c, "cut back");
}

static void test_trail_and_key_deleted(void **state)
{
    struct ctx *c = *state;
    char *out;
    char cmd[8800];

    daemon_once(c);
    snprintf(cmd, sizeof(cmd), "rm -f %s %s*", c->key, c->trail);
    assert_int_equal(system(cmd), 0);
    /* verify with the configuration: no key, no trail, but the store knows there was one */
    assert_int_equal(verify(c, &out), 1);
    assert_non_null(strstr(out, "FAILED: chain discontinuity: no trail file of sequence 0"));
    free(out);
    /* verify needs a key: the daemon's next start makes a new one and a fresh chain */
    expect_detected_at_start(c, "records are missing");
    assert_int_equal(verify(c, &out), 0);
    free(out);
}

static void test_forked(void **state)
{
    struct ctx *c = *state;
    struct pw_audit_opts ao = {.path = c->trail, .key_path = c->key, .device = "Device/fork"};
    struct pw_audit *a = NULL;
    char *out;

    /* Two runs: one --once run's trail may hold only a handful of records (the searches of a
     * cycle are one record), and what is left after the cut must still verify. */
    daemon_once(c);
    daemon_once(c);
    cut_back(c, 5);
    /* Another writer with the key goes on from the cut: longer than before, a different chain. */
    assert_int_equal(pw_audit_open(&a, &ao), 0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(pw_audit_event(a, "start", 'E', PW_AUDIT_SUCCESS, "fork", NULL), 0);
    }
    pw_audit_free(a);
    assert_int_equal(verify(c, &out), 1);
    assert_non_null(strstr(out, "OK: "));
    assert_non_null(strstr(out, "forked"));
    free(out);
    expect_detected_at_start(c, "forked");
}

/* Bounded waits on a running daemon (a failure, not a timing assertion). */
#define WAIT_TENTHS 600

static void pause_tenth(void)
{
    nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
}

/* GET /readyz; the body into *body (caller frees). */
static long readyz(unsigned port, char **body)
{
    char url[128];

    snprintf(url, sizeof(url), "http://127.0.0.1:%u/readyz", port);
    return pwt_http_get(url, body);
}

/* /readyz until its audit-chain line is @p line. */
static void wait_readyz_line(unsigned port, const char *line)
{
    for (int i = 0; i < WAIT_TENTHS; i++) {
        char *body = NULL;
        readyz(port, &body);
        bool seen = body && strstr(body, line);
        free(body);
        if (seen) {
            return;
        }
        pause_tenth();
    }
    fail_msg("/readyz never showed '%s'", line);
}

/* A running painwatchd sees an acknowledgement made beside it. */
static void test_running_daemon_notices_acknowledge(void **state)
{
    struct ctx *c = *state;
    const char *marker = "/metrics on 127.0.0.1:0 (port ";
    unsigned port = 0;
    char *out;
    pid_t pid;
    int status = 0;

    /* Two runs: one --once run's trail may hold only a handful of records (the searches of a
     * cycle are one record), and what is left after the cut must still verify. */
    daemon_once(c);
    daemon_once(c);
    cut_back(c, 5);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        unsetenv("STATE_DIRECTORY");
        unsetenv("CREDENTIALS_DIRECTORY");
        unsetenv("NOTIFY_SOCKET");
        if (!freopen(c->log, "w", stderr)) {
            _exit(126);
        }
        execl(PAINWATCHD, PAINWATCHD, "--config", c->cfg, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < WAIT_TENTHS && !port; i++) {
        char *log = pwt_read_file(c->log, NULL);
        const char *p = log ? strstr(log, marker) : NULL;
        port = p ? (unsigned)strtoul(p + strlen(marker), NULL, 10) : 0;
        free(log);
        if (!port) {
            assert_int_equal(waitpid(pid, NULL, WNOHANG), 0); /* still running */
            pause_tenth();
        }
    }
    assert_true(port > 0);
    wait_readyz_line(port, "audit-chain: FAIL chain discontinuity");
    assert_int_equal(run(&out, "%s audit acknowledge --config %s", PAINWATCH, c->cfg), 0);
    free(out);
    wait_readyz_line(port, "audit-chain: ok");
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    daemon_once(c);
    char *text = trail_text(c);
    assert_non_null(strstr(text, "\"operator_action\":\"audit-acknowledge\""));
    free(text);
    assert_int_equal(verify(c, &out), 0);
    free(out);
}

static int failing_hook(void *arg, struct pw_store *st)
{
    (void)arg;
    (void)st;
    return PW_EIO;
}

/* The head goes into the store with each transaction, and only records that are durable. */
static void test_head_written_with_each_commit(void **state)
{
    struct ctx *c = *state;
    struct pw_store_opts so = {.dir = c->state};
    struct pw_audit_opts ao = {.path = c->trail, .key_path = c->key, .device = "Device/t"};
    struct pw_store *st = NULL;
    struct pw_audit *a = NULL;
    struct pw_audit_head h;
    char v[256];
    char want[256];
    uint64_t epoch;

    assert_int_equal(mkdir(c->state, 0700), 0);
    snprintf(v, sizeof(v), "%s/audit", c->state);
    assert_int_equal(mkdir(v, 0700), 0);
    pwt_write_file(c->key, "0123456789abcdef0123456789abcdef\n");
    assert_int_equal(chmod(c->key, 0600), 0);
    assert_int_equal(pw_store_open(&st, &so), 0);
    assert_int_equal(pw_audit_open(&a, &ao), 0);
    pw_store_on_commit(st, pw_audit_store_head, a);
    assert_int_equal(pw_audit_event(a, "start", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);

    assert_int_equal(pw_store_begin(st), 0);
    assert_int_equal(pw_store_cursor_set(st, "ehr/Observation", "c1"), 0);
    assert_int_equal(pw_store_commit(st), 0);
    assert_int_equal(pw_store_meta_get(st, PW_AUDIT_META_HEAD, v, sizeof(v)), 0);
    assert_int_equal(pw_audit_durable_head(a, &h), 0);
    assert_int_equal(h.n, 1);
    assert_string_equal(h.digest, pw_audit_last_digest(a));
    assert_int_equal(pw_audit_head_format(&h, want, sizeof(want)), 0);
    assert_string_equal(v, want);

    /* Written but not yet durable: the head stays where the disk is. */
    epoch = pw_audit_epoch(a);
    assert_int_equal(pw_audit_batch_begin(a), 0);
    assert_int_equal(pw_audit_event(a, "token-renewed", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    assert_int_equal(pw_audit_batch_write(a), 0);
    assert_int_equal(pw_store_begin(st), 0);
    assert_int_equal(pw_store_commit(st), 0);
    assert_int_equal(pw_store_meta_get(st, PW_AUDIT_META_HEAD, v, sizeof(v)), 0);
    assert_string_equal(v, want);
    assert_int_equal(pw_audit_sync(a, epoch), 0);
    assert_int_equal(pw_store_begin(st), 0);
    assert_int_equal(pw_store_commit(st), 0);
    assert_int_equal(pw_store_meta_get(st, PW_AUDIT_META_HEAD, v, sizeof(v)), 0);
    assert_int_equal(pw_audit_head_parse(v, &h), 0);
    assert_int_equal(h.n, 2);
    assert_string_equal(h.digest, pw_audit_last_digest(a));

    /* A hook that fails takes its transaction with it. */
    pw_store_on_commit(st, failing_hook, NULL);
    assert_int_equal(pw_store_begin(st), 0);
    assert_int_equal(pw_store_cursor_set(st, "ehr/Observation", "c2"), 0);
    assert_int_equal(pw_store_commit(st), PW_EIO);
    assert_int_equal(pw_store_cursor_get(st, "ehr/Observation", v, sizeof(v)), 0);
    assert_string_equal(v, "c1");

    /* The head names a real place in the trail; parse refuses what is not one. */
    assert_int_equal(pw_audit_head_parse("1 2 xyz", &h), PW_EINVAL);
    assert_int_equal(pw_audit_head_parse("", &h), PW_EINVAL);
    assert_int_equal(pw_audit_head_parse("-1 2 " TEST_DIGEST, &h), PW_EINVAL);
    assert_int_equal(pw_audit_head_parse("1 2 " TEST_DIGEST " ", &h), PW_EINVAL);
    assert_int_equal(pw_audit_head_parse("1 2 " TEST_DIGEST, &h), 0);
    pw_audit_free(a);
    pw_store_close(st);
}

/* pw_audit_head_check() on a trail of several 64 KiB blocks and rotated files. */
static void test_head_check_across_blocks_and_files(void **state)
{
    struct ctx *c = *state;
    struct pw_audit_opts ao = {
        .path = c->trail, .key_path = c->key, .device = "Device/t", .rotate_bytes = 300000};
    struct pw_audit *a = NULL;
    struct pw_audit_head mid, other;
    unsigned char *key = NULL;
    size_t key_len = 0;
    char pad[300];
    char why[1024];
    char **files = NULL;
    size_t n = 0;
    char end[PW_AUDIT_DIGEST_HEX + 1];

    snprintf(why, sizeof(why), "%s/audit", c->state);
    assert_int_equal(mkdir(c->state, 0700), 0);
    assert_int_equal(mkdir(why, 0700), 0);
    pwt_write_file(c->key, "0123456789abcdef0123456789abcdef\n");
    assert_int_equal(chmod(c->key, 0600), 0);
    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    assert_int_equal(pw_audit_open(&a, &ao), 0);
    for (int i = 0; i < 1500; i++) {
        assert_int_equal(pw_audit_event(a, "start", 'E', PW_AUDIT_SUCCESS, pad, NULL), 0);
        if (i == 1098) {
            assert_int_equal(pw_audit_durable_head(a, &other), 0);
        }
        if (i == 1099) {
            assert_int_equal(pw_audit_durable_head(a, &mid), 0);
        }
    }
    snprintf(end, sizeof(end), "%s", pw_audit_last_digest(a));
    pw_audit_free(a);
    assert_int_equal(pw_audit_trail_files(c->trail, &files, &n), 0);
    assert_true(n >= 3); /* rotated: the head is in the middle of an earlier file */
    assert_int_equal(pw_audit_key_load(c->key, &key, &key_len), 0);
    const char *const *f = (const char *const *)files;

    assert_int_equal(pw_audit_head_check(key, key_len, f, n, &mid, end, why, sizeof(why)), 0);
    assert_int_equal(pw_audit_head_check(key, key_len, f, n, &mid, NULL, why, sizeof(why)), 0);
    /* another record's digest at that number: forked */
    snprintf(other.digest, sizeof(other.digest), "%s", mid.digest);
    other.n = mid.n + 1;
    assert_int_equal(pw_audit_head_check(key, key_len, f, n, &other, end, why, sizeof(why)),
                     PW_EVERIFY);
    assert_non_null(strstr(why, "forked"));
    /* the trail does not end where the writer says: started again or forked */
    assert_int_equal(pw_audit_head_check(key, key_len, f, n, &mid, mid.digest, why, sizeof(why)),
                     PW_EVERIFY);
    assert_non_null(strstr(why, "not at the trail's last record"));
    /* beyond the end of the head's file: cut back */
    other = mid;
    other.n = mid.n + 100000;
    assert_int_equal(pw_audit_head_check(key, key_len, f, n, &other, end, why, sizeof(why)),
                     PW_EVERIFY);
    assert_non_null(strstr(why, "cut back"));
    /* its file gone */
    for (size_t i = 0; i < n; i++) {
        char *hit = strstr(files[i], ".jsonl.");
        if (hit && strtoull(hit + 7, NULL, 10) == mid.seq) {
            assert_int_equal(unlink(files[i]), 0);
        }
    }
    assert_int_equal(pw_audit_head_check(key, key_len, f, n, &mid, end, why, sizeof(why)),
                     PW_EVERIFY);
    assert_non_null(strstr(why, "no trail file of sequence"));
    pw_audit_key_free(key, key_len);
    pw_audit_files_free(files, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_anchored_and_continuous, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_back_5, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trail_and_key_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_written_with_each_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_running_daemon_notices_acknowledge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_check_across_blocks_and_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
