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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "daemon/core/promtext.h"
#include "support/http_get.h"
#include "support/pwtest.h"
#include "support/responder.h"

/* Bounds on waiting for the daemon (a failure, not a timing assertion: events arrive far sooner).
 */
#define WAIT_S 60

static const char capability[] =
    "{\"resourceType\":\"CapabilityStatement\",\"status\":\"active\",\"kind\":\"instance\","
    "\"date\":\"2026-01-01\",\"fhirVersion\":\"4.0.1\",\"format\":[\"json\"],"
    "\"software\":{\"name\":\"painwatch test responder\"},"
    "\"rest\":[{\"mode\":\"server\",\"resource\":["
    "{\"type\":\"Observation\",\"interaction\":[{\"code\":\"search-type\"},{\"code\":\"read\"}],"
    "\"searchParam\":[{\"name\":\"patient\",\"type\":\"reference\"},"
    "{\"name\":\"subject\",\"type\":\"reference\"},{\"name\":\"code\",\"type\":\"token\"},"
    "{\"name\":\"date\",\"type\":\"date\"},{\"name\":\"_lastUpdated\",\"type\":\"date\"},"
    "{\"name\":\"_sort\",\"type\":\"string\"}]},"
    "{\"type\":\"MedicationRequest\",\"interaction\":[{\"code\":\"search-type\"}],"
    "\"searchParam\":[{\"name\":\"patient\",\"type\":\"reference\"},"
    "{\"name\":\"subject\",\"type\":\"reference\"},{\"name\":\"authoredon\",\"type\":\"date\"},"
    "{\"name\":\"_lastUpdated\",\"type\":\"date\"},{\"name\":\"_sort\",\"type\":\"string\"}]},"
    "{\"type\":\"Flag\",\"interaction\":[{\"code\":\"create\"},{\"code\":\"update\"},"
    "{\"code\":\"search-type\"},{\"code\":\"read\"}],\"conditionalCreate\":true,"
    "\"searchParam\":[{\"name\":\"identifier\",\"type\":\"token\"},"
    "{\"name\":\"patient\",\"type\":\"reference\"}]}]}]}";

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

static const char empty_bundle[] =
    "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"total\":0,\"entry\":[]}";

#define NOTIFY_KEEP 64

/*
 * A reader thread drains $NOTIFY_SOCKET all the time, as systemd does: sd_notify() blocks once
 * the socket's queue is full (net.unix.max_dgram_qlen, 10 here), and a daemon blocked on a
 * watchdog ping cannot poll or stop.
 */
struct run {
    char *dir;
    char cfg[4096];
    char log[4096];
    int sock;
    pid_t pid;
    struct pwt_responder *fhir;
    unsigned health_port;
    pthread_t reader;
    bool reading;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char msgs[NOTIFY_KEEP][256]; /* ring of the last non-watchdog messages */
    unsigned long n_msgs;        /* total received (ring index = n % NOTIFY_KEEP) */
    unsigned long seen;          /* wait_notify has consumed up to here */
    unsigned watchdog_pings;
    bool stop_reader;
};

static void dump_log(const struct run *r)
{
    FILE *f = fopen(r->log, "r");
    char line[1024];

    fprintf(stderr, "---- painwatchd stderr ----\n");
    while (f && fgets(line, sizeof(line), f)) {
        fputs(line, stderr);
    }
    if (f) {
        fclose(f);
    }
}

static void assert_alive(struct run *r)
{
    int status;

    if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
        dump_log(r);
        r->pid = 0;
        fail_msg("painwatchd exited early (status %d)", status);
    }
}

static void *reader_main(void *arg)
{
    struct run *r = arg;

    for (;;) {
        char msg[256];
        ssize_t n = recv(r->sock, msg, sizeof(msg) - 1, 0); /* SO_RCVTIMEO: 1 s */
        pthread_mutex_lock(&r->lock);
        if (r->stop_reader) {
            pthread_mutex_unlock(&r->lock);
            return NULL;
        }
        if (n > 0) {
            msg[n] = '\0';
            if (strcmp(msg, "WATCHDOG=1") == 0) {
                r->watchdog_pings++;
            } else {
                snprintf(r->msgs[r->n_msgs % NOTIFY_KEEP], sizeof(r->msgs[0]), "%s", msg);
                r->n_msgs++;
            }
            pthread_cond_broadcast(&r->cond);
        }
        pthread_mutex_unlock(&r->lock);
    }
}

/* Wait for the next notify message containing @p needle (messages before it are consumed). */
static void wait_notify(struct run *r, const char *needle)
{
    for (int waited = 0; waited < WAIT_S;) {
        struct timespec until;
        bool found = false;

        pthread_mutex_lock(&r->lock);
        while (r->seen < r->n_msgs && !found) {
            found = strstr(r->msgs[r->seen % NOTIFY_KEEP], needle) != NULL;
            r->seen++;
        }
        if (!found) {
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            if (pthread_cond_timedwait(&r->cond, &r->lock, &until) != 0) {
                waited++;
            }
        }
        pthread_mutex_unlock(&r->lock);
        if (found) {
            return;
        }
        assert_alive(r);
    }
    dump_log(r);
    fail_msg("no '%s' from painwatchd within %d s", needle, WAIT_S);
}

static unsigned watchdog_pings(struct run *r)
{
    unsigned n;

    pthread_mutex_lock(&r->lock);
    n = r->watchdog_pings;
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* The daemon logs the port it bound (health.listen uses port 0 here). */
static unsigned health_port(struct run *r)
{
    char *text = pwt_read_file(r->log, NULL);
    const char *p = strstr(text, "/metrics on 127.0.0.1:0 (port ");
    unsigned port = 0;

    if (p) {
        port = (unsigned)strtoul(p + strlen("/metrics on 127.0.0.1:0 (port "), NULL, 10);
    }
    free(text);
    if (!port) {
        dump_log(r);
        fail_msg("painwatchd did not log its health port");
    }
    return port;
}

/* GET http://127.0.0.1:<health port><path>. Caller frees *body. */
static long get(struct run *r, const char *path, char **body)
{
    char url[256];

    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", r->health_port, path);
    return pwt_http_get(url, body);
}

static double scrape(struct run *r, const char *name, const char *labels)
{
    static struct prom_text parsed;
    char *body = NULL;
    double v;

    assert_int_equal(get(r, "/metrics", &body), 200);
    prom_parse(&parsed, body);
    free(body);
    v = prom_value(&parsed, name, labels);
    return isnan(v) ? 0 : v;
}

/* Scrape until @p name{labels} exceeds @p above (the daemon updates it when its work is done). */
static double scrape_until_above(struct run *r, const char *name, const char *labels, double above)
{
    for (int i = 0; i < WAIT_S * 5; i++) {
        double v = scrape(r, name, labels);
        if (v > above) {
            return v;
        }
        assert_alive(r);
        nanosleep(&(struct timespec){.tv_nsec = 200 * 1000 * 1000}, NULL);
    }
    dump_log(r);
    fail_msg("%s{%s} stayed at or below %g for %d s", name, labels, above, WAIT_S);
    return 0;
}

static void write_config(struct run *r, const char *log_level)
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

static void start(struct run *r)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = 1};
    const char *daemon = getenv("PAINWATCHD");
    char key[4200];

    assert_non_null(daemon);
    r->dir = pwt_mkdtemp();
    snprintf(r->cfg, sizeof(r->cfg), "%s/painwatch.yaml", r->dir);
    snprintf(r->log, sizeof(r->log), "%s/painwatchd.log", r->dir);
    snprintf(key, sizeof(key), "%s/audit.key", r->dir);
    pwt_write_file(key, "0123456789abcdef0123456789abcdef-test-audit-key\n");
    assert_int_equal(chmod(key, 0600), 0);

    r->fhir = pwt_responder_start(NULL);
    pwt_responder_add(
        r->fhir, &(struct pwt_rule){.method = "GET", .path = "/fhir/metadata", .body = capability});
    pwt_responder_add(r->fhir, &(struct pwt_rule){.method = "GET",
                                                  .path = "/fhir/Observation",
                                                  .handler = observation_page});
    pwt_responder_add(r->fhir, &(struct pwt_rule){.path = "/fhir/*", .body = empty_bundle});
    write_config(r, "info");

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", r->dir);
    r->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(r->sock >= 0);
    assert_int_equal(bind(r->sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(setsockopt(r->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    assert_int_equal(pthread_create(&r->reader, NULL, reader_main, r), 0);
    r->reading = true;

    r->pid = fork();
    assert_true(r->pid >= 0);
    if (r->pid == 0) {
        char pid[32];
        snprintf(pid, sizeof(pid), "%d", (int)getpid());
        setenv("NOTIFY_SOCKET", sa.sun_path, 1);
        setenv("WATCHDOG_PID", pid, 1); /* exec keeps the pid: the pings are ours */
        setenv("WATCHDOG_USEC", "1000000", 1);
        unsetenv("PAINWATCH_LOG_LEVEL");
        unsetenv("JOURNAL_STREAM");
        unsetenv("STATE_DIRECTORY");
        unsetenv("CREDENTIALS_DIRECTORY");
        if (!freopen(r->log, "w", stderr)) {
            _exit(126);
        }
        execl(daemon, daemon, "--config", r->cfg, (char *)NULL);
        _exit(127);
    }
}

static void stop(struct run *r)
{
    if (!r->dir) {
        return;
    }
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
    }
    if (r->reading) {
        pthread_mutex_lock(&r->lock);
        r->stop_reader = true;
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->reader, NULL);
        pthread_mutex_destroy(&r->lock);
        pthread_cond_destroy(&r->cond);
    }
    pwt_responder_stop(r->fhir);
    close(r->sock);
    pwt_rmtree(r->dir);
    free(r->dir);
}

/* One run per test; the teardown kills a daemon left behind by a failed assertion. */
static struct run run;

static int teardown(void **state)
{
    (void)state;
    stop(&run);
    memset(&run, 0, sizeof(run));
    return 0;
}

static void test_service_lifecycle(void **state)
{
    struct run *rp = &run;
    char *body = NULL;
    int status = 0;

    (void)state;
#define r (*rp)
    start(&r);

    /* Type=notify: READY only after the server check; the watchdog pings come from the loop. */
    wait_notify(&r, "READY=1");
    assert_true(pwt_responder_count_path(r.fhir, "/fhir/metadata") >= 1);
    r.health_port = health_port(&r);
    /* The first ping is sent at start: seeing two proves the loop's timer sends them. */
    for (int i = 0; i < WAIT_S * 10 && watchdog_pings(&r) < 2; i++) {
        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    }
    assert_true(watchdog_pings(&r) >= 2);

    assert_int_equal(get(&r, "/healthz", &body), 200);
    assert_string_equal(body, "ok\n");
    free(body);
    assert_int_equal(get(&r, "/readyz", &body), 200);
    assert_non_null(strstr(body, "store: ok"));
    assert_non_null(strstr(body, "audit: ok"));
    free(body);

    /* /metrics is strict Prometheus text from the running daemon. */
    assert_true(scrape(&r, "painwatch_build_info", "version=\"" PW_VERSION "\"") == 1.0);
    assert_true(scrape(&r, "painwatch_start_time_seconds", "") > 1.7e9);
    assert_true(scrape(&r, "painwatch_config_reloads_total", "result=\"error\"") == 0.0);

    /* Counters move during the run: each poll ingests the new pain score it was served. */
    const char *obs = "server=\"ehr\",resource=\"Observation\"";
    double first = scrape_until_above(&r, "painwatch_resources_ingested_total", obs, 0);
    /* Set when the cycle completes (issue 18), a moment after its pages are ingested. */
    scrape_until_above(&r, "painwatch_sync_last_success_timestamp_seconds", "server=\"ehr\"",
                       1.7e9);
    scrape_until_above(&r, "painwatch_resources_ingested_total", obs, first);

    /* SIGHUP with a bad file: refused, the running configuration stays, the daemon lives. */
    pwt_write_file(r.cfg, "log_level: loud\n");
    assert_int_equal(kill(r.pid, SIGHUP), 0);
    wait_notify(&r, "RELOADING=1");
    wait_notify(&r, "READY=1");
    assert_alive(&r);
    assert_true(scrape(&r, "painwatch_config_reloads_total", "result=\"error\"") == 1.0);
    assert_int_equal(get(&r, "/healthz", &body), 200);
    free(body);

    /* SIGHUP with a good file: applied (the counter moves during the run). */
    write_config(&r, "debug");
    assert_int_equal(kill(r.pid, SIGHUP), 0);
    wait_notify(&r, "RELOADING=1");
    wait_notify(&r, "READY=1");
    assert_true(scrape(&r, "painwatch_config_reloads_total", "result=\"ok\"") == 1.0);
    assert_true(scrape(&r, "painwatch_config_reloads_total", "result=\"error\"") == 1.0);

    /* The sync kept polling through both reloads. */
    size_t seen = pwt_responder_count(r.fhir);
    if (!pwt_responder_wait_count(r.fhir, seen + 1, WAIT_S * 1000)) {
        dump_log(&r);
        fail_msg("no FHIR request after the reloads (%zu before)", seen);
    }

    /* SIGTERM: STOPPING=1, then exit 0. */
    assert_int_equal(kill(r.pid, SIGTERM), 0);
    wait_notify(&r, "STOPPING=1");
    for (int waited = 0; waited < WAIT_S * 10; waited++) {
        if (waitpid(r.pid, &status, WNOHANG) == r.pid) {
            r.pid = 0;
            break;
        }
        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    }
    if (r.pid != 0) {
        dump_log(&r);
        fail_msg("painwatchd did not exit within %d s of SIGTERM", WAIT_S);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        dump_log(&r);
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
