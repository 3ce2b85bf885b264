/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue 19, the daemon side, run as systemd runs painwatchd against a loopback FHIR responder:
 * the kill switch (`painwatch writes pause|resume` over the control socket: a pause holds every
 * Flag write while the queue keeps it, survives a restart, is refused to a user outside the
 * service's group and obeyed for one inside it), an honest reload (SIGHUP to shadow mode stops
 * EHR writes; a reload that changes state_dir is refused whole and audited as refused; a reload
 * rotates a server's credentials for the next requests and Flag writes), READY
 * that waits for /metadata (or names the servers down after startup_timeout), the metrics an
 * operator alerts on, audit.retain (verified files only), and transport failures named in the
 * log. The setuid parts need root and are skipped otherwise.
 */
#define _GNU_SOURCE /* setgroups */
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
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
#include "painwatch/audit.h"
#include "support/daemon_run.h"
#include "support/pwtest.h"
#include "support/responder.h"

/* Bounds on waiting for the daemon (a failure, not a timing assertion). */
#define WAIT_S 90

#define NOBODY 65534

/*
 * Every Observation search returns a severe pain score (9/10, two days old, never reassessed)
 * for each of the first `pain_patients` synthetic patients: each one is a finding, hence a Flag
 * write. Synthetic data only.
 */
static pthread_mutex_t data_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned pain_patients;
static unsigned flags_made;

static void set_pain_patients(unsigned n)
{
    pthread_mutex_lock(&data_lock);
    pain_patients = n;
    pthread_mutex_unlock(&data_lock);
}

static void observation_page(void *arg, const struct pwt_request *req, struct pwt_reply *reply)
{
    char now[32];
    char then[32];
    time_t t = time(NULL);
    time_t t0 = t - 2 * 86400;
    struct tm tm;
    unsigned n;
    size_t cap = 512 + 1024 * 8;
    size_t off;

    (void)arg;
    (void)req;
    pthread_mutex_lock(&data_lock);
    n = pain_patients;
    pthread_mutex_unlock(&data_lock);
    gmtime_r(&t, &tm);
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
    gmtime_r(&t0, &tm);
    strftime(then, sizeof(then), "%Y-%m-%dT%H:%M:%SZ", &tm);
    reply->status = 200;
    reply->body = malloc(cap);
    assert_non_null(reply->body);
    off = (size_t)snprintf(reply->body, cap,
                           "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"total\":%u,"
                           "\"entry\":[",
                           n);
    for (unsigned i = 1; i <= n && i <= 8; i++) {
        off += (size_t)snprintf(
            reply->body + off, cap - off,
            "%s{\"fullUrl\":\"urn:uuid:pain-%u\",\"search\":{\"mode\":\"match\"},\"resource\":{"
            "\"resourceType\":\"Observation\",\"id\":\"pain-%u\","
            "\"meta\":{\"versionId\":\"1\",\"lastUpdated\":\"%s\"},\"status\":\"final\","
            "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"72514-3\"}]},"
            "\"subject\":{\"reference\":\"Patient/synthetic-%u\"},"
            "\"effectiveDateTime\":\"%s\",\"valueInteger\":9}}",
            i > 1 ? "," : "", i, i, now, i, then);
    }
    snprintf(reply->body + off, cap - off, "]}");
    reply->body_len = strlen(reply->body);
}

/* POST /fhir/Flag: 201 with a fresh id. */
static void flag_created(void *arg, const struct pwt_request *req, struct pwt_reply *reply)
{
    const char *base = arg;
    unsigned n;

    (void)req;
    pthread_mutex_lock(&data_lock);
    n = ++flags_made;
    pthread_mutex_unlock(&data_lock);
    reply->status = 201;
    reply->headers = malloc(512);
    assert_non_null(reply->headers);
    snprintf(reply->headers, 512, "Location: %s/fhir/Flag/f%u/_history/1\nETag: W/\"1\"\n", base,
             n);
    reply->body = malloc(128);
    assert_non_null(reply->body);
    snprintf(reply->body, 128,
             "{\"resourceType\":\"Flag\",\"id\":\"f%u\",\"meta\":{\"versionId\":\"1\"}}", n);
    reply->body_len = strlen(reply->body);
}

/* One painwatchd run with its control socket. */
struct run {
    struct pwt_daemon d;
    char sock_path[4096];
    char fhir_base[256];
};

/* Flag POSTs received, for @p patient ("Patient/synthetic-2") or all when NULL. */
static size_t flag_posts_for(struct run *r, const char *patient)
{
    size_t n = 0;
    size_t all = pwt_responder_count(r->d.fhir);

    for (size_t i = 0; i < all; i++) {
        const struct pwt_request *q = pwt_responder_request(r->d.fhir, i);
        if (strcmp(q->method, "POST") == 0 && strcmp(q->path, "/fhir/Flag") == 0 &&
            (!patient || strstr(q->body, patient))) {
            n++;
        }
    }
    return n;
}

static size_t flag_posts(struct run *r)
{
    return flag_posts_for(r, NULL);
}

static void wait_flag_posts(struct run *r, size_t n)
{
    for (int i = 0; i < WAIT_S * 10; i++) {
        if (flag_posts(r) >= n) {
            return;
        }
        pwt_daemon_assert_alive(&r->d);
        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    }
    pwt_daemon_dump_log(&r->d);
    fail_msg("fewer than %zu Flag POSTs within %d s", n, WAIT_S);
}

/* Wait until @p path holds @p needle. */
static void wait_file_has(struct run *r, const char *path, const char *needle)
{
    for (int i = 0; i < WAIT_S * 10; i++) {
        FILE *f = fopen(path, "r");
        if (f) {
            fclose(f);
            char *text = pwt_read_file(path, NULL);
            bool found = strstr(text, needle) != NULL;
            free(text);
            if (found) {
                return;
            }
        }
        pwt_daemon_assert_alive(&r->d);
        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    }
    pwt_daemon_dump_log(&r->d);
    fail_msg("%s never held '%s' within %d s", path, needle, WAIT_S);
}

/* Extra lines of the audit section ("  retain: 1d\n"), for the next write_config(). */
static const char *audit_extra = "";

static void write_config(struct run *r, const char *state, bool shadow, const char *extra)
{
    char text[8192];

    snprintf(text, sizeof(text),
             "state_dir: %s/%s\n"
             "log_level: info\n"
             "shadow_mode: %s\n"
             "scope: cohort\n" /* the responder's patients have no problem list */
             "control_socket: %s\n"
             "health:\n"
             "  listen: 127.0.0.1:0\n"
             "audit:\n"
             "  key_file: %s/audit.key\n"
             "%s"
             "terminology_dir: %s\n"
             "servers:\n"
             "  - name: ehr\n"
             "    base_url: %s/fhir\n"
             "    cohort:\n"
             "      type: server-wide\n"
             "    poll_interval: 10s\n"
             "%s",
             r->d.dir, state, shadow ? "true" : "false", r->sock_path, r->d.dir, audit_extra,
             pwt_src_path("config/terminology"), r->fhir_base, extra ? extra : "");
    pwt_write_file(r->d.cfg, text);
}

/* The responder and the notify socket; the daemon is started by pwt_daemon_spawn(). */
static void setup(struct run *r, bool metadata_ok)
{
    char run_dir[4200];

    pwt_daemon_prepare(&r->d, WAIT_S);
    /* The CLI runs as other users too: they must reach the socket's directory. */
    assert_int_equal(chmod(r->d.dir, 0755), 0);
    snprintf(run_dir, sizeof(run_dir), "%s/run", r->d.dir);
    assert_int_equal(mkdir(run_dir, 0755), 0);
    snprintf(r->sock_path, sizeof(r->sock_path), "%s/control.sock", run_dir);
    set_pain_patients(0);

    r->d.fhir = pwt_responder_start(NULL);
    snprintf(r->fhir_base, sizeof(r->fhir_base), "%s", pwt_responder_url(r->d.fhir));
    if (!metadata_ok) {
        /* /metadata fails twice (a server still starting), then answers. */
        pwt_responder_add(r->d.fhir, &(struct pwt_rule){.method = "GET",
                                                        .path = "/fhir/metadata",
                                                        .times = 2,
                                                        .status = 503,
                                                        .body = "{}"});
    }
    pwt_responder_add(r->d.fhir, &(struct pwt_rule){.method = "GET",
                                                    .path = "/fhir/metadata",
                                                    .body = pwt_daemon_capability});
    pwt_responder_add(r->d.fhir, &(struct pwt_rule){.method = "GET",
                                                    .path = "/fhir/Observation",
                                                    .handler = observation_page});
    pwt_responder_add(r->d.fhir, &(struct pwt_rule){.method = "POST",
                                                    .path = "/fhir/Flag",
                                                    .handler = flag_created,
                                                    .handler_arg = r->fhir_base});
    pwt_responder_add(r->d.fhir,
                      &(struct pwt_rule){.path = "/fhir/*", .body = pwt_daemon_empty_bundle});
}

/* SIGTERM and wait for the exit. */
static void terminate(struct run *r)
{
    assert_int_equal(kill(r->d.pid, SIGTERM), 0);
    pwt_daemon_wait_exit(&r->d);
}

enum as { AS_ROOT, AS_NOBODY_IN_GROUP, AS_NOBODY };

/* `painwatch writes VERB` as @p who; its stdout+stderr into @p out. @return the exit status. */
static int writes_cmd(struct run *r, enum as who, const char *verb, char *out, size_t cap)
{
    const char *tool = getenv("PAINWATCH");
    char outfile[4200];
    int status;
    pid_t pid;

    assert_non_null(tool);
    snprintf(outfile, sizeof(outfile), "%s/cli.out", r->d.dir);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        gid_t group = getegid(); /* the daemon's group: it runs as we do */
        if (!freopen(outfile, "w", stdout) || dup2(fileno(stdout), 2) < 0) {
            _exit(126);
        }
        if (who != AS_ROOT) {
            if (setgroups(who == AS_NOBODY_IN_GROUP ? 1 : 0, &group) != 0 || setgid(NOBODY) != 0 ||
                setuid(NOBODY) != 0) {
                _exit(125);
            }
        }
        execl(tool, tool, "writes", verb, "--socket", r->sock_path, (char *)NULL);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    char *text = pwt_read_file(outfile, NULL);
    snprintf(out, cap, "%s", text);
    free(text);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static char *trail_text(struct run *r)
{
    char path[4200];

    snprintf(path, sizeof(path), "%s/state/audit/painwatch-audit.jsonl", r->d.dir);
    return pwt_read_file(path, NULL);
}

static struct run run;

static int teardown(void **state)
{
    (void)state;
    audit_extra = "";
    pwt_daemon_stop(&run.d);
    memset(&run, 0, sizeof(run));
    return 0;
}

static void test_kill_switch(void **state)
{
    struct run *r = &run;
    char out[1024];
    char *body = NULL;
    struct stat st;

    (void)state;
    if (geteuid() != 0) {
        skip(); /* the users outside and inside the group are made with setuid */
    }
    setup(r, true);
    write_config(r, "state", false, NULL);
    pwt_daemon_spawn(&r->d);
    pwt_daemon_wait_notify(&r->d, "READY=1");
    r->d.health_port = pwt_daemon_health_port(&r->d);

    /* The socket: 0660, the daemon's user and group. */
    assert_int_equal(stat(r->sock_path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0660);
    assert_int_equal(st.st_uid, geteuid());
    assert_int_equal(st.st_gid, getegid());

    assert_int_equal(writes_cmd(r, AS_ROOT, "status", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "writing"));
    assert_int_equal(writes_cmd(r, AS_ROOT, "pause", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "paused (uid 0 at "));
    pwt_daemon_wait_notify(&r->d, "STATUS=");
    assert_non_null(strstr(r->d.last, "PAUSED"));
    assert_true(pwt_daemon_scrape(&r->d, "painwatch_writes_paused", "") == 1.0);
    assert_int_equal(pwt_daemon_get(&r->d, "/readyz", &body), 200);
    assert_non_null(strstr(body, "writes: ok PAUSED"));
    free(body);

    /* A finding arrives: its Flag is queued, and not sent. */
    set_pain_patients(1);
    pwt_daemon_scrape_until_above(&r->d, "painwatch_outbox_depth", "server=\"ehr\"", 0);
    assert_int_equal(flag_posts(r), 0);

    /* The pause survives a restart: READY says so, and the queued write still waits. */
    terminate(r);
    size_t polls = pwt_responder_count_path(r->d.fhir, "/fhir/Observation");
    pwt_daemon_spawn(&r->d);
    pwt_daemon_wait_notify(&r->d, "READY=1");
    assert_non_null(strstr(r->d.last, "PAUSED"));
    r->d.health_port = pwt_daemon_health_port(&r->d);
    if (!pwt_responder_wait_count(r->d.fhir, pwt_responder_count(r->d.fhir) + 1, WAIT_S * 1000)) {
        fail_msg("no sync after the restart");
    }
    while (pwt_responder_count_path(r->d.fhir, "/fhir/Observation") <= polls) {
        pwt_daemon_assert_alive(&r->d);
        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    }
    assert_true(pwt_daemon_scrape(&r->d, "painwatch_writes_paused", "") == 1.0);
    pwt_daemon_scrape_until_above(&r->d, "painwatch_outbox_depth", "server=\"ehr\"", 0);
    assert_int_equal(flag_posts(r), 0);

    /* A user outside the service's group is refused; the pause stands. */
    assert_int_equal(writes_cmd(r, AS_NOBODY, "resume", out, sizeof(out)), 2);
    assert_non_null(strstr(out, "Permission denied") ? out : strstr(out, "permission denied"));
    assert_int_equal(writes_cmd(r, AS_ROOT, "status", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "paused"));
    assert_int_equal(flag_posts(r), 0);
    /* ...also by the daemon itself (SO_PEERCRED), should the socket's mode ever be loosened. */
    assert_int_equal(chmod(r->sock_path, 0666), 0);
    assert_int_equal(writes_cmd(r, AS_NOBODY, "resume", out, sizeof(out)), 1);
    assert_non_null(strstr(out, "refused: uid 65534"));
    assert_int_equal(chmod(r->sock_path, 0660), 0);
    assert_int_equal(writes_cmd(r, AS_ROOT, "status", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "paused"));
    assert_int_equal(flag_posts(r), 0);

    /* A member of the group may resume: the queued write goes out. */
    assert_int_equal(writes_cmd(r, AS_NOBODY_IN_GROUP, "resume", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "writing"));
    wait_flag_posts(r, 1);
    assert_true(pwt_daemon_scrape(&r->d, "painwatch_writes_paused", "") == 0.0);
    terminate(r);

    /* The trail names who paused and who resumed, by uid. */
    char *trail = trail_text(r);
    assert_non_null(strstr(trail, "writes-paused"));
    assert_non_null(strstr(trail, "writes-resumed"));
    assert_non_null(strstr(trail, "\"peer_uid\":65534"));
    assert_non_null(strstr(trail, "control-refused"));
    free(trail);
}

static void test_reload_shadow_and_refused(void **state)
{
    struct run *r = &run;
    char shadow[4200];
    char *log;

    (void)state;
    setup(r, true);
    snprintf(shadow, sizeof(shadow), "%s/state/flags.ndjson", r->d.dir);
    write_config(r, "state", false, NULL);
    set_pain_patients(1);
    pwt_daemon_spawn(&r->d);
    pwt_daemon_wait_notify(&r->d, "READY=1");
    r->d.health_port = pwt_daemon_health_port(&r->d);
    wait_flag_posts(r, 1);
    assert_true(pwt_daemon_scrape(&r->d, "painwatch_shadow_mode", "") == 0.0);

    /* SIGHUP to shadow mode: the next Flag goes to the shadow file, not the EHR. */
    write_config(r, "state", true, NULL);
    assert_int_equal(kill(r->d.pid, SIGHUP), 0);
    pwt_daemon_wait_notify(&r->d, "RELOADING=1");
    pwt_daemon_wait_notify(&r->d, "READY=1");
    assert_non_null(strstr(r->d.last, "shadow mode"));
    assert_true(pwt_daemon_scrape(&r->d, "painwatch_shadow_mode", "") == 1.0);
    assert_true(pwt_daemon_scrape(&r->d, "painwatch_config_reloads_total", "result=\"ok\"") == 1.0);
    set_pain_patients(2);
    wait_file_has(r, shadow, "Patient/synthetic-2");
    assert_int_equal(flag_posts_for(r, "Patient/synthetic-2"), 0);

    /* A reload that moves the store is refused whole: shadow_mode=false in it is not applied. */
    write_config(r, "elsewhere", false, NULL);
    assert_int_equal(kill(r->d.pid, SIGHUP), 0);
    pwt_daemon_wait_notify(&r->d, "RELOADING=1");
    pwt_daemon_wait_notify(&r->d, "READY=1");
    assert_true(pwt_daemon_scrape(&r->d, "painwatch_config_reloads_total", "result=\"refused\"") ==
                1.0);
    assert_true(pwt_daemon_scrape(&r->d, "painwatch_shadow_mode", "") == 1.0);
    set_pain_patients(3);
    wait_file_has(r, shadow, "Patient/synthetic-3");
    assert_int_equal(flag_posts_for(r, "Patient/synthetic-3"), 0);

    /* audit.retain is the one audit key that applies at run time. */
    audit_extra = "  retain: 30d\n";
    write_config(r, "state", true, NULL);
    assert_int_equal(kill(r->d.pid, SIGHUP), 0);
    pwt_daemon_wait_notify(&r->d, "RELOADING=1");
    pwt_daemon_wait_notify(&r->d, "READY=1");
    assert_true(pwt_daemon_scrape(&r->d, "painwatch_config_reloads_total", "result=\"ok\"") == 2.0);
    terminate(r);

    log = pwt_read_file(r->d.log, NULL);
    assert_non_null(strstr(log, "reload refused: state_dir cannot change while running"));
    free(log);
    char *trail = trail_text(r);
    assert_non_null(strstr(trail, "config-refused"));
    free(trail);
}

/* Index of the first request to @p path carrying "Authorization: @p auth", from @p from on. */
static size_t first_with_auth(struct run *r, const char *path, const char *auth, size_t from)
{
    size_t all = pwt_responder_count(r->d.fhir);

    for (size_t i = from; i < all; i++) {
        const struct pwt_request *q = pwt_responder_request(r->d.fhir, i);
        const char *a = pwt_request_header(q, "Authorization");
        if (strcmp(q->path, path) == 0 && a && strcmp(a, auth) == 0) {
            return i;
        }
    }
    return SIZE_MAX;
}

static size_t wait_auth(struct run *r, const char *path, const char *auth)
{
    for (int i = 0; i < WAIT_S * 10; i++) {
        size_t at = first_with_auth(r, path, auth, 0);
        if (at != SIZE_MAX) {
            return at;
        }
        pwt_daemon_assert_alive(&r->d);
        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    }
    pwt_daemon_dump_log(&r->d);
    fail_msg("no %s request with '%s' within %d s", path, auth, WAIT_S);
    return SIZE_MAX;
}

/*
 * Credential rotation at SIGHUP: a bearer token file replaced by another in the configuration
 * is used by the next sync requests and by the next Flag write; the old token is never sent
 * after the first request with the new one, and the trail records the new configuration's hash.
 */
static void test_reload_rotates_credentials(void **state)
{
    struct run *r = &run;
    char tok_a[4200];
    char tok_b[4200];
    char extra[8800];
    char cmd[9000];
    char hash[128];
    char needle[128];
    size_t first_b;

    (void)state;
    setup(r, true);
    snprintf(tok_a, sizeof(tok_a), "%s/token-a", r->d.dir);
    snprintf(tok_b, sizeof(tok_b), "%s/token-b", r->d.dir);
    pwt_write_file(tok_a, "synthetic-token-A\n");
    pwt_write_file(tok_b, "synthetic-token-B\n");
    assert_int_equal(chmod(tok_a, 0600), 0);
    assert_int_equal(chmod(tok_b, 0600), 0);
    snprintf(extra, sizeof(extra), "    auth:\n      type: bearer\n      token_file: %s\n", tok_a);
    write_config(r, "state", false, extra);
    pwt_daemon_spawn(&r->d);
    pwt_daemon_wait_notify(&r->d, "READY=1");
    r->d.health_port = pwt_daemon_health_port(&r->d);
    wait_auth(r, "/fhir/Observation", "Bearer synthetic-token-A");

    /* Token B, and one more resource type (a sync key: applies from the next cycle). */
    snprintf(extra, sizeof(extra),
             "    resources: [Observation, MedicationRequest, Condition]\n"
             "    auth:\n      type: bearer\n      token_file: %s\n",
             tok_b);
    write_config(r, "state", false, extra);
    assert_int_equal(kill(r->d.pid, SIGHUP), 0);
    pwt_daemon_wait_notify(&r->d, "RELOADING=1");
    pwt_daemon_wait_notify(&r->d, "READY=1");
    assert_true(pwt_daemon_scrape(&r->d, "painwatch_config_reloads_total", "result=\"ok\"") == 1.0);
    assert_true(pwt_daemon_scrape(&r->d, "painwatch_config_reloads_total", "result=\"refused\"") ==
                0.0);

    /* The next cycle's searches carry token B, and token A is not sent after it. */
    first_b = wait_auth(r, "/fhir/Observation", "Bearer synthetic-token-B");
    /* The new resource type is searched, with the new credentials (none before the reload). */
    wait_auth(r, "/fhir/Condition", "Bearer synthetic-token-B");
    assert_int_equal(first_with_auth(r, "/fhir/Condition", "Bearer synthetic-token-A", 0),
                     SIZE_MAX);
    /* The next Flag write (the outbox's credentials) carries token B too. */
    set_pain_patients(1);
    wait_flag_posts(r, 1);
    wait_auth(r, "/fhir/Flag", "Bearer synthetic-token-B");
    assert_int_equal(first_with_auth(r, "/fhir/Observation", "Bearer synthetic-token-A", first_b),
                     SIZE_MAX);
    assert_int_equal(first_with_auth(r, "/fhir/Flag", "Bearer synthetic-token-A", 0), SIZE_MAX);

    /* A server's HTTP settings still need a restart: refused whole, naming the key. */
    snprintf(cmd, sizeof(cmd), "%s    timeout: 45s\n", extra);
    write_config(r, "state", false, cmd);
    assert_int_equal(kill(r->d.pid, SIGHUP), 0);
    pwt_daemon_wait_notify(&r->d, "RELOADING=1");
    pwt_daemon_wait_notify(&r->d, "READY=1");
    assert_true(pwt_daemon_scrape(&r->d, "painwatch_config_reloads_total", "result=\"refused\"") ==
                1.0);
    write_config(r, "state", false, extra); /* the configuration in force, for its hash below */
    terminate(r);
    char *log = pwt_read_file(r->d.log, NULL);
    assert_non_null(strstr(log, "reload refused: servers[0].timeout cannot change while running"));
    free(log);

    /* The trail: config-loaded with the new configuration's hash (`painwatch config hash`). */
    snprintf(cmd, sizeof(cmd), "'%s' config hash '%s'", getenv("PAINWATCH"), r->d.cfg);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(hash, sizeof(hash), p));
    assert_int_equal(pclose(p), 0);
    hash[strcspn(hash, "\n")] = '\0';
    assert_int_equal(strncmp(hash, "sha256:", 7), 0);
    snprintf(needle, sizeof(needle), "\"config_hash\":\"%s\"", hash + 7);
    char *trail = trail_text(r);
    const char *at = strstr(trail, needle);
    assert_non_null(at);
    /* ...in a config-loaded record of the reload (the start's record has the old hash) */
    const char *line = at;
    while (line > trail && line[-1] != '\n') {
        line--;
    }
    const char *end = strchr(at, '\n');
    char *rec = strndup(line, end ? (size_t)(end - line) : strlen(line));
    assert_non_null(strstr(rec, "config-loaded"));
    assert_non_null(strstr(rec, "reload"));
    free(rec);
    free(trail);
}

/*
 * A reload that changes only the sink checks /metadata again for what the new sink writes: the
 * server advertises Flag writes and no DetectedIssue ones, and the warning comes with the
 * reload, not at the next restart; back to Flags, the check says they are advertised.
 */
static void test_reload_sink_rechecks_writes(void **state)
{
    struct run *r = &run;
    size_t metadata;
    char *log;

    (void)state;
    setup(r, true);
    write_config(r, "state", true, NULL);
    pwt_daemon_spawn(&r->d);
    pwt_daemon_wait_notify(&r->d, "READY=1");
    r->d.health_port = pwt_daemon_health_port(&r->d);
    log = pwt_read_file(r->d.log, NULL);
    assert_null(strstr(log, "not advertised: posting"));
    free(log);
    metadata = pwt_responder_count_path(r->d.fhir, "/fhir/metadata");

    write_config(r, "state", true, "sink:\n  type: detected-issue\n");
    assert_int_equal(kill(r->d.pid, SIGHUP), 0);
    pwt_daemon_wait_notify(&r->d, "RELOADING=1");
    pwt_daemon_wait_notify(&r->d, "READY=1");
    assert_true(pwt_daemon_scrape(&r->d, "painwatch_config_reloads_total", "result=\"ok\"") == 1.0);
    wait_file_has(r, r->d.log,
                  "ehr: DetectedIssue create not advertised: posting DetectedIssue resources "
                  "here will fail");
    assert_true(pwt_responder_count_path(r->d.fhir, "/fhir/metadata") > metadata);

    write_config(r, "state", true, NULL);
    assert_int_equal(kill(r->d.pid, SIGHUP), 0);
    pwt_daemon_wait_notify(&r->d, "RELOADING=1");
    pwt_daemon_wait_notify(&r->d, "READY=1");
    wait_file_has(r, r->d.log, "ehr: /metadata advertises what the new sink writes");
    terminate(r);
}

static void test_ready_waits_for_metadata(void **state)
{
    struct run *r = &run;

    (void)state;
    setup(r, false);
    write_config(r, "state", true, NULL);
    pwt_daemon_spawn(&r->d);
    pwt_daemon_wait_notify(&r->d, "READY=1");
    /* Two 503s, then the answer: READY came after the third /metadata. */
    assert_true(pwt_responder_count_path(r->d.fhir, "/fhir/metadata") >= 3);
    r->d.health_port = pwt_daemon_health_port(&r->d);
    assert_true(pwt_daemon_scrape(&r->d, "painwatch_server_up", "server=\"ehr\"") == 1.0);

    /* Metrics an operator alerts on (issue 19): present from the start, counters at 0. */
    static struct prom_text parsed;
    char *body = NULL;
    assert_int_equal(pwt_daemon_get(&r->d, "/metrics", &body), 200);
    prom_parse(&parsed, body);
    assert_true(prom_value(&parsed, "painwatch_findings_total",
                           "rule=\"reassessment-overdue-after-high-score\"") == 0.0);
    assert_true(prom_value(&parsed, "painwatch_config_reloads_total", "result=\"refused\"") == 0.0);
    assert_true(prom_value(&parsed, "painwatch_auth_failures_total", "server=\"ehr\"") == 0.0);
    assert_true(prom_value(&parsed, "painwatch_shadow_mode", "") == 1.0);
    assert_true(prom_value(&parsed, "painwatch_writes_paused", "") == 0.0);
    assert_true(prom_value(&parsed, "process_resident_memory_bytes", "") > 0);
    assert_true(prom_value(&parsed, "process_open_fds", "") > 0);
    assert_true(prom_value(&parsed, "process_cpu_seconds_total", "") > 0);
    /* three /metadata exchanges timed (two 503s, one answer) */
    assert_true(prom_value(&parsed, "painwatch_http_request_duration_seconds_count",
                           "server=\"ehr\",operation=\"metadata\"") >= 3.0);
    /* Prometheus's own linter agrees, when installed (Debian: prometheus). */
    if (system("command -v promtool >/dev/null 2>&1") == 0) {
        char path[4200];
        char cmd[8600];
        snprintf(path, sizeof(path), "%s/metrics.txt", r->d.dir);
        pwt_write_file(path, body);
        snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' 1>&2", path);
        assert_int_equal(system(cmd), 0);
    }
    free(body);
}

static void test_ready_after_deadline_names_servers(void **state)
{
    struct run *r = &run;
    char *body = NULL;

    (void)state;
    setup(r, true);
    pwt_responder_clear_rules(r->d.fhir);
    pwt_responder_add(
        r->d.fhir,
        &(struct pwt_rule){.method = "GET", .path = "/fhir/metadata", .status = 401, .body = "{}"});
    write_config(r, "state", true, "startup_timeout: 2s\n");
    pwt_daemon_spawn(&r->d);
    pwt_daemon_wait_notify(&r->d, "READY=1");
    assert_non_null(strstr(r->d.last, "down: ehr"));
    assert_true(pwt_responder_count_path(r->d.fhir, "/fhir/metadata") >= 1);
    r->d.health_port = pwt_daemon_health_port(&r->d);
    assert_true(pwt_daemon_scrape(&r->d, "painwatch_server_up", "server=\"ehr\"") == 0.0);
    assert_int_equal(pwt_daemon_get(&r->d, "/readyz", &body), 503);
    assert_non_null(strstr(body, "ehr=unhealthy"));
    free(body);
}

/*
 * audit.retain: rotated trail files past retention are deleted once they verify, never the newest
 * rotated one; a tampered old file stops the deletion (and is reported), nothing is lost.
 */
static void test_audit_retain(void **state)
{
    struct run *r = &run;
    char dir[4200];
    char trail[4200];
    char key[4200];
    char rotated[4][4300];
    char *orig;
    struct pw_audit *a = NULL;
    struct stat st;

    (void)state;
    setup(r, true);
    snprintf(dir, sizeof(dir), "%s/state", r->d.dir);
    assert_int_equal(mkdir(dir, 0750), 0);
    snprintf(dir, sizeof(dir), "%s/state/audit", r->d.dir);
    assert_int_equal(mkdir(dir, 0750), 0);
    snprintf(trail, sizeof(trail), "%s/painwatch-audit.jsonl", dir);
    snprintf(key, sizeof(key), "%s/audit.key", r->d.dir);
    /* A trail of four rotated files (sequence 0..3) and a live one, made by the real writer. */
    struct pw_audit_opts ao = {.path = trail, .key_path = key, .device = "Device/painwatch"};
    assert_int_equal(pw_audit_open(&a, &ao), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pw_audit_event(a, "start", 'E', PW_AUDIT_SUCCESS, "test", NULL), 0);
        assert_int_equal(pw_audit_rotate(a), 0);
    }
    pw_audit_free(a);
    for (int i = 0; i < 4; i++) {
        snprintf(rotated[i], sizeof(rotated[i]), "%s.%d", trail, i);
        assert_int_equal(stat(rotated[i], &st), 0);
    }

    /* The oldest file tampered with: nothing is deleted, the log says why. */
    orig = pwt_read_file(rotated[0], NULL);
    char *bad = strdup(orig);
    char *p = strstr(bad, "\"test\"");
    assert_non_null(p);
    p[1] = 'T';
    pwt_write_file(rotated[0], bad);
    free(bad);
    /* Ten days old, all four (the newest rotated one stays all the same). */
    for (int i = 0; i < 4; i++) {
        struct timespec old[2] = {{.tv_sec = time(NULL) - 10 * 86400},
                                  {.tv_sec = time(NULL) - 10 * 86400}};
        assert_int_equal(utimensat(AT_FDCWD, rotated[i], old, 0), 0);
    }
    audit_extra = "  retain: 1d\n";
    write_config(r, "state", true, NULL);
    pwt_daemon_spawn(&r->d);
    pwt_daemon_wait_notify(&r->d, "READY=1");
    terminate(r);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(stat(rotated[i], &st), 0);
    }
    char *log = pwt_read_file(r->d.log, NULL);
    if (!strstr(log, "audit.retain: 3 old trail file(s) NOT deleted")) {
        pwt_daemon_dump_log(&r->d);
        fail_msg("no report of the file that did not verify");
    }
    free(log);

    /* Restored: the three oldest go, the newest rotated file stays, the rest still verifies. */
    pwt_write_file(rotated[0], orig);
    free(orig);
    struct timespec old[2] = {{.tv_sec = time(NULL) - 10 * 86400},
                              {.tv_sec = time(NULL) - 10 * 86400}};
    assert_int_equal(utimensat(AT_FDCWD, rotated[0], old, 0), 0);
    pwt_daemon_spawn(&r->d);
    pwt_daemon_wait_notify(&r->d, "READY=1");
    terminate(r);
    for (int i = 0; i < 3; i++) {
        assert_int_not_equal(stat(rotated[i], &st), 0);
    }
    assert_int_equal(stat(rotated[3], &st), 0);
    char cmd[12000];
    snprintf(cmd, sizeof(cmd), "'%s' audit verify --key %s %s %s 1>&2", getenv("PAINWATCH"), key,
             rotated[3], trail);
    int status = system(cmd);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char *text = pwt_read_file(trail, NULL);
    assert_non_null(strstr(text, "trail-file-retired"));
    free(text);
}

/* Every HTTP failure says what failed: a refused connection is named, never "HTTP 0". */
static void test_transport_failure_named(void **state)
{
    struct run *r = &run;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char *log = NULL;

    (void)state;
    setup(r, true);
    /* A loopback port nobody listens on: bound, then closed. */
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    snprintf(r->fhir_base, sizeof(r->fhir_base), "http://127.0.0.1:%u", ntohs(sa.sin_port));
    write_config(r, "state", true, "startup_timeout: 1s\n");
    pwt_daemon_spawn(&r->d);
    pwt_daemon_wait_notify(&r->d, "READY=1");
    assert_non_null(strstr(r->d.last, "servers down: ehr"));
    /* The first sync fails too; its run failure is reported with what failed. */
    for (int i = 0; i < WAIT_S * 10; i++) {
        free(log);
        log = pwt_read_file(r->d.log, NULL);
        if (strstr(log, "run failed after 0 page(s)")) {
            break;
        }
        pwt_daemon_assert_alive(&r->d);
        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    }
    if (!strstr(log, "ehr: /metadata: HTTP transfer failed (") ||
        !strstr(log, "(no HTTP response)") || strstr(log, "HTTP 0")) {
        pwt_daemon_dump_log(&r->d);
        fail_msg("a transport failure not named");
    }
    free(log);
}

/* ---- issue 22: the /status page ---------------------------------------------------------------
 */

/*
 * A daemon with writes paused and one Flag queued, after a complete cycle: its /status page
 * (also read back to the caller in @p page).
 */
static void status_daemon(struct run *r, char **page)
{
    char out[1024];

    setup(r, true);
    write_config(r, "state", false, NULL);
    pwt_daemon_spawn(&r->d);
    pwt_daemon_wait_notify(&r->d, "READY=1");
    r->d.health_port = pwt_daemon_health_port(&r->d);
    assert_int_equal(writes_cmd(r, AS_ROOT, "pause", out, sizeof(out)), 0);
    set_pain_patients(1);
    pwt_daemon_scrape_until_above(&r->d, "painwatch_outbox_depth", "server=\"ehr\"", 0);
    pwt_daemon_scrape_until_above(&r->d, "painwatch_sync_last_success_timestamp_seconds",
                                  "server=\"ehr\"", 0);
    assert_int_equal(pwt_daemon_get(&r->d, "/status", page), 200);
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;

    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

static void test_status_page(void **state)
{
    struct run *r = &run;
    char *page = NULL;
    char want[256];
    double depth;

    (void)state;
    status_daemon(r, &page);
    /* The page counts the outbox when made, the gauge every few seconds: ask until they agree. */
    for (int i = 0;; i++) {
        const char *p = strstr(page, "<td>pending (outbox depth)</td><td>");
        assert_non_null(p);
        depth = pwt_daemon_scrape(&r->d, "painwatch_outbox_depth", "server=\"ehr\"");
        if (strtod(p + strlen("<td>pending (outbox depth)</td><td>"), NULL) == depth ||
            i == WAIT_S * 10) {
            break;
        }
        free(page);
        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
        assert_int_equal(pwt_daemon_get(&r->d, "/status", &page), 200);
    }
    assert_true(depth >= 1);
    assert_non_null(strstr(page, "<meta http-equiv=\"refresh\" content=\"10\">"));
    assert_null(strstr(page, "<script"));
    assert_non_null(strstr(page, "painwatchd " PW_VERSION ", up "));
    /* the server's row: healthy, a complete cycle, no failures */
    assert_non_null(strstr(page, "<tr><td>ehr</td><td>ok</td><td>20"));
    assert_null(strstr(page, "no cycle yet"));
    assert_int_equal(count_of(page, "<svg "), 1);
    snprintf(want, sizeof(want), "<td>pending (outbox depth)</td><td>%.0f</td>", depth);
    assert_non_null(strstr(page, want));
    assert_non_null(strstr(page, "<td>dead letters</td><td>0</td>"));
    assert_non_null(strstr(page, "EHR writes PAUSED (uid "));
    assert_non_null(strstr(page, "Audit trail writable."));
    assert_non_null(strstr(page, "Audit chain: intact"));
    assert_non_null(strstr(page, "<td>writes</td><td>ok</td><td>PAUSED"));
    /* no patient data: the queued Flag's patient is nowhere on the page */
    assert_null(strstr(page, "synthetic-"));
    free(page);

    /* resumed, then shadow mode by a reload */
    char out[1024];
    assert_int_equal(writes_cmd(r, AS_ROOT, "resume", out, sizeof(out)), 0);
    write_config(r, "state", true, NULL);
    assert_int_equal(kill(r->d.pid, SIGHUP), 0);
    pwt_daemon_wait_notify(&r->d, "RELOADING=1");
    pwt_daemon_wait_notify(&r->d, "READY=1");
    assert_int_equal(pwt_daemon_get(&r->d, "/status", &page), 200);
    assert_null(strstr(page, "PAUSED"));
    assert_non_null(strstr(page, "Shadow mode: Flags go to the shadow file"));
    free(page);
    terminate(r);
}

/* The headless browser, or NULL. */
static const char *chromium_path(void)
{
    static const char *const paths[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser"};

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (access(paths[i], X_OK) == 0) {
            return paths[i];
        }
    }
    return NULL;
}

/* Run headless Chromium with @p action ("--dump-dom", "--screenshot=FILE") on @p url; its stdout
 * into @p out_file, stderr into @p err_file. @return its exit status. */
static int chromium(struct run *r, const char *action, const char *url, const char *out_file,
                    const char *err_file)
{
    char profile[4200];
    char cmd[16384];
    int rc;

    snprintf(profile, sizeof(profile), "%s/chromium-profile", r->d.dir);
    pwt_rmtree(profile);
    snprintf(cmd, sizeof(cmd),
             "'%s' --headless --no-sandbox --disable-gpu --disable-background-networking "
             "--disable-component-update --disable-sync --no-first-run --disable-extensions "
             "--enable-logging=stderr --v=0 --user-data-dir='%s' --window-size=1280,900 "
             "--virtual-time-budget=2000 %s '%s' >'%s' 2>'%s'",
             chromium_path(), profile, action, url, out_file, err_file);
    rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_status_in_chromium(void **state)
{
    struct run *r = &run;
    char *page = NULL;
    char url[128], dom_file[4200], err_file[4200], png[4200];
    char *dom, *err;
    struct stat st;

    (void)state;
    status_daemon(r, &page);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/status", r->d.health_port);
    snprintf(dom_file, sizeof(dom_file), "%s/status-dom.html", r->d.dir);
    snprintf(err_file, sizeof(err_file), "%s/chromium.err", r->d.dir);
    assert_int_equal(chromium(r, "--dump-dom", url, dom_file, err_file), 0);
    dom = pwt_read_file(dom_file, NULL);
    err = pwt_read_file(err_file, NULL);
    if (strstr(err, ":CONSOLE")) {
        fail_msg("console messages while rendering /status:\n%s", err);
    }
    /* The browser built the same page: the chart, every table row, the server's row. */
    assert_true(count_of(dom, "<svg") >= 1);
    assert_int_equal(count_of(dom, "<svg"), count_of(page, "<svg "));
    assert_int_equal(count_of(dom, "<rect "), 1); /* one bar: one server */
    assert_int_equal(count_of(dom, "<tr"), count_of(page, "<tr"));
    assert_int_equal(count_of(dom, "<table"), 3);
    assert_non_null(strstr(dom, "<td>ehr</td><td>ok</td>"));
    assert_non_null(strstr(dom, "EHR writes PAUSED"));
    free(dom);
    free(err);

    /* The screenshot, kept under the build directory as the test's artefact. */
    snprintf(png, sizeof(png), "%s/status-page.png", PW_BINARY_DIR);
    unlink(png);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/status", r->d.health_port);
    char shot[4300];
    snprintf(shot, sizeof(shot), "--screenshot='%s'", png);
    assert_int_equal(chromium(r, shot, url, dom_file, err_file), 0);
    assert_int_equal(stat(png, &st), 0);
    assert_true(st.st_size > 1000);
    char *head = pwt_read_file(png, NULL);
    assert_memory_equal(head, "\x89PNG\r\n\x1a\n", 8);
    free(head);
    printf("status page screenshot: %s\n", png);
    free(page);
    terminate(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_kill_switch, teardown),
        cmocka_unit_test_teardown(test_reload_shadow_and_refused, teardown),
        cmocka_unit_test_teardown(test_reload_rotates_credentials, teardown),
        cmocka_unit_test_teardown(test_reload_sink_rechecks_writes, teardown),
        cmocka_unit_test_teardown(test_ready_waits_for_metadata, teardown),
        cmocka_unit_test_teardown(test_ready_after_deadline_names_servers, teardown),
        cmocka_unit_test_teardown(test_audit_retain, teardown),
        cmocka_unit_test_teardown(test_transport_failure_named, teardown),
        cmocka_unit_test_teardown(test_status_page, teardown),
    };
    /* Issue 22: the same daemon's /status in headless Chromium, as its own ctest. */
    const struct CMUnitTest browser[] = {
        cmocka_unit_test_teardown(test_status_in_chromium, teardown),
    };
    bool in_browser = getenv("PW_STATUS_CHROMIUM") != NULL;
    int rc;

    if (in_browser && !chromium_path()) {
        printf("SKIP: chromium is not installed (Debian package chromium; .ci/install-deps)\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_ALL);
    rc = in_browser ? cmocka_run_group_tests(browser, NULL, NULL)
                    : cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
