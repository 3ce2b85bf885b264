/* SPDX-License-Identifier: Apache-2.0 */
/*
 * painwatchd run the way systemd runs it (Type=notify, WatchdogSec=, SIGHUP, SIGTERM) against a
 * loopback FHIR responder: READY/STATUS/WATCHDOG/RELOADING/STOPPING on a real $NOTIFY_SOCKET,
 * /healthz, /readyz and /metrics on the loopback listener (strict Prometheus parse), a SIGHUP
 * with a bad file (refused, old configuration kept, daemon alive) and a good one (applied), and
 * SIGTERM ending with exit 0 and an audit trail that verifies.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "support/daemon_run.h"
#include "support/pwtest.h"
#include "support/responder.h"

/* Bounds on waiting for the daemon (a failure, not a timing assertion: events arrive far sooner).
 */
#define WAIT_S 60

/*
 * Every Observation search returns one new pain score (a fresh id, versionId 1, lastUpdated now),
 * so each sync ingests something and the counters have a reason to move. Synthetic data only.
 */
static pthread_mutex_t obs_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned obs_served;

static void observation_page(void *arg, const struct pwt_request *req, struct pwt_reply *reply)
{
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    unsigned n;

    (void)arg;
    (void)req;
    pthread_mutex_lock(&obs_lock);
    n = ++obs_served;
    pthread_mutex_unlock(&obs_lock);
    gmtime_r(&t, &tm);
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
    reply->status = 200;
    reply->body = malloc(2048);
    assert_non_null(reply->body);
    snprintf(reply->body, 2048,
             "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"total\":1,\"entry\":[{"
             "\"fullUrl\":\"urn:uuid:pain-%u\",\"search\":{\"mode\":\"match\"},\"resource\":{"
             "\"resourceType\":\"Observation\",\"id\":\"pain-%u\","
             "\"meta\":{\"versionId\":\"1\",\"lastUpdated\":\"%s\"},\"status\":\"final\","
             "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"72514-3\"}]},"
             "\"subject\":{\"reference\":\"Patient/synthetic-1\"},"
             "\"effectiveDateTime\":\"%s\",\"valueInteger\":2}}]}",
             n, n, now, now);
    reply->body_len = strlen(reply->body);
}

static void write_config(struct pwt_daemon *r, const char *log_level)
{
    char text[8192];

    snprintf(text, sizeof(text),
             "state_dir: %s/state\n"
             "log_level: %s\n"
             "shadow_mode: true\n"
             "health:\n"
             "  listen: 127.0.0.1:0\n"
             "audit:\n"
             "  key_file: %s/audit.key\n"
             "terminology_dir: %s\n"
             "servers:\n"
             "  - name: ehr\n"
             "    base_url: %s/fhir\n"
             "    cohort:\n"
             "      type: server-wide\n"
             "    poll_interval: 10s\n",
             r->dir, log_level, r->dir, pwt_src_path("config/terminology"),
             pwt_responder_url(r->fhir));
    pwt_write_file(r->cfg, text);
}

static void start(struct pwt_daemon *r)
{
    pwt_daemon_prepare(r, WAIT_S);
    r->watchdog_usec = 1000000;
    r->fhir = pwt_responder_start(NULL);
    pwt_responder_add(r->fhir, &(struct pwt_rule){.method = "GET",
                                                  .path = "/fhir/metadata",
                                                  .body = pwt_daemon_capability});
    pwt_responder_add(r->fhir, &(struct pwt_rule){.method = "GET",
                                                  .path = "/fhir/Observation",
                                                  .handler = observation_page});
    pwt_responder_add(r->fhir,
                      &(struct pwt_rule){.path = "/fhir/*", .body = pwt_daemon_empty_bundle});
    write_config(r, "info");
    pwt_daemon_spawn(r);
}

/* One run per test; the teardown kills a daemon left behind by a failed assertion. */
static struct pwt_daemon run;

static int teardown(void **state)
{
    (void)state;
    pwt_daemon_stop(&run);
    memset(&run, 0, sizeof(run));
    return 0;
}

static void test_service_lifecycle(void **state)
{
    struct pwt_daemon *rp = &run;
    char *body = NULL;
    int status = 0;

    (void)state;
#define r (*rp)
    start(&r);

    /* Type=notify: READY only after the server check; the watchdog pings come from the loop. */
    pwt_daemon_wait_notify(&r, "READY=1");
    assert_true(pwt_responder_count_path(r.fhir, "/fhir/metadata") >= 1);
    r.health_port = pwt_daemon_health_port(&r);
    /* The first ping is sent at start: seeing two proves the loop's timer sends them. */
    for (int i = 0; i < WAIT_S * 10 && pwt_daemon_watchdog_pings(&r) < 2; i++) {
        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    }
    assert_true(pwt_daemon_watchdog_pings(&r) >= 2);

    assert_int_equal(pwt_daemon_get(&r, "/healthz", &body), 200);
    assert_string_equal(body, "ok\n");
    free(body);
    assert_int_equal(pwt_daemon_get(&r, "/readyz", &body), 200);
    assert_non_null(strstr(body, "store: ok"));
    assert_non_null(strstr(body, "audit: ok"));
    free(body);

    /* /metrics is strict Prometheus text from the running daemon. */
    assert_true(pwt_daemon_scrape(&r, "painwatch_build_info", "version=\"" PW_VERSION "\"") == 1.0);
    assert_true(pwt_daemon_scrape(&r, "painwatch_start_time_seconds", "") > 1.7e9);
    assert_true(pwt_daemon_scrape(&r, "painwatch_config_reloads_total", "result=\"error\"") == 0.0);

    /* Counters move during the run: each poll ingests the new pain score it was served. */
    const char *obs = "server=\"ehr\",resource=\"Observation\"";
    double first = pwt_daemon_scrape_until_above(&r, "painwatch_resources_ingested_total", obs, 0);
    /* Set when the cycle completes (issue 18), a moment after its pages are ingested. */
    pwt_daemon_scrape_until_above(&r, "painwatch_sync_last_success_timestamp_seconds",
                                  "server=\"ehr\"", 1.7e9);
    pwt_daemon_scrape_until_above(&r, "painwatch_resources_ingested_total", obs, first);

    /* SIGHUP with a bad file: refused, the running configuration stays, the daemon lives. */
    pwt_write_file(r.cfg, "log_level: loud\n");
    assert_int_equal(kill(r.pid, SIGHUP), 0);
    pwt_daemon_wait_notify(&r, "RELOADING=1");
    pwt_daemon_wait_notify(&r, "READY=1");
    pwt_daemon_assert_alive(&r);
    assert_true(pwt_daemon_scrape(&r, "painwatch_config_reloads_total", "result=\"error\"") == 1.0);
    assert_int_equal(pwt_daemon_get(&r, "/healthz", &body), 200);
    free(body);

    /* SIGHUP with a good file: applied (the counter moves during the run). */
    write_config(&r, "debug");
    assert_int_equal(kill(r.pid, SIGHUP), 0);
    pwt_daemon_wait_notify(&r, "RELOADING=1");
    pwt_daemon_wait_notify(&r, "READY=1");
    assert_true(pwt_daemon_scrape(&r, "painwatch_config_reloads_total", "result=\"ok\"") == 1.0);
    assert_true(pwt_daemon_scrape(&r, "painwatch_config_reloads_total", "result=\"error\"") == 1.0);

    /* The sync kept polling through both reloads. */
    size_t seen = pwt_responder_count(r.fhir);
    if (!pwt_responder_wait_count(r.fhir, seen + 1, WAIT_S * 1000)) {
        pwt_daemon_dump_log(&r);
        fail_msg("no FHIR request after the reloads (%zu before)", seen);
    }

    /* SIGTERM: STOPPING=1, then exit 0. */
    assert_int_equal(kill(r.pid, SIGTERM), 0);
    pwt_daemon_wait_notify(&r, "STOPPING=1");
    status = pwt_daemon_wait_exit(&r);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        pwt_daemon_dump_log(&r);
        fail_msg("painwatchd exit status %d after SIGTERM, want 0", status);
    }

    /* The log says why the bad file was refused, with the file position. */
    char *log = pwt_read_file(r.log, NULL);
    assert_non_null(strstr(log, "painwatch.yaml:1:12: log_level: 'loud' is not one of"));
    free(log);

    /* The audit trail of the run (start, config loads, stop) verifies. */
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "'%s' audit verify --key %s/audit.key %s/state/audit/*.jsonl 1>&2",
             getenv("PAINWATCH"), r.dir, r.dir);
    status = system(cmd);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* ... and holds the configuration hash at start and after the good reload. */
    snprintf(cmd, sizeof(cmd), "%s/state/audit/painwatch-audit.jsonl", r.dir);
    char *trail = pwt_read_file(cmd, NULL);
    int loads = 0;
    for (const char *p = trail; (p = strstr(p, "config_hash")); p++) {
        loads++;
    }
    free(trail);
    assert_true(loads >= 2);
#undef r
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_service_lifecycle, teardown),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_ALL);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
