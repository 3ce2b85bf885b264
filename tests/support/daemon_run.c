/* SPDX-License-Identifier: Apache-2.0 */
#include "daemon_run.h"

#include <signal.h>
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

#include "daemon/core/promtext.h"
#include "http_get.h"
#include "pwtest.h"

const char pwt_daemon_capability[] =
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

const char pwt_daemon_empty_bundle[] =
    "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"total\":0,\"entry\":[]}";

static void *reader_main(void *arg)
{
    struct pwt_daemon *d = arg;

    for (;;) {
        char msg[256];
        ssize_t n = recv(d->sock, msg, sizeof(msg) - 1, 0); /* SO_RCVTIMEO: 1 s */
        pthread_mutex_lock(&d->lock);
        if (d->stop_reader) {
            pthread_mutex_unlock(&d->lock);
            return NULL;
        }
        if (n > 0) {
            msg[n] = '\0';
            if (strcmp(msg, "WATCHDOG=1") == 0) {
                d->watchdog_pings++;
            } else {
                snprintf(d->msgs[d->n_msgs % PWT_NOTIFY_KEEP], sizeof(d->msgs[0]), "%s", msg);
                d->n_msgs++;
            }
            pthread_cond_broadcast(&d->cond);
        }
        pthread_mutex_unlock(&d->lock);
    }
}

void pwt_daemon_prepare(struct pwt_daemon *d, unsigned wait_s)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = 1};
    char key[4200];

    d->wait_s = wait_s;
    d->dir = pwt_mkdtemp();
    snprintf(d->cfg, sizeof(d->cfg), "%s/painwatch.yaml", d->dir);
    snprintf(d->log, sizeof(d->log), "%s/painwatchd.log", d->dir);
    snprintf(key, sizeof(key), "%s/audit.key", d->dir);
    pwt_write_file(key, "0123456789abcdef0123456789abcdef-test-audit-key\n");
    assert_int_equal(chmod(key, 0600), 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", d->dir);
    d->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(d->sock >= 0);
    assert_int_equal(bind(d->sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(setsockopt(d->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    assert_int_equal(pthread_create(&d->reader, NULL, reader_main, d), 0);
    d->reading = true;
}

void pwt_daemon_spawn(struct pwt_daemon *d)
{
    const char *daemon = getenv("PAINWATCHD");
    char notify[4200];

    assert_non_null(daemon);
    snprintf(notify, sizeof(notify), "%s/notify", d->dir);
    d->pid = fork();
    assert_true(d->pid >= 0);
    if (d->pid == 0) {
        setenv("NOTIFY_SOCKET", notify, 1);
        if (d->watchdog_usec) {
            char pid[32];
            char usec[32];
            snprintf(pid, sizeof(pid), "%d", (int)getpid());
            snprintf(usec, sizeof(usec), "%lu", d->watchdog_usec);
            setenv("WATCHDOG_PID", pid, 1); /* exec keeps the pid: the pings are ours */
            setenv("WATCHDOG_USEC", usec, 1);
        }
        unsetenv("PAINWATCH_LOG_LEVEL");
        unsetenv("JOURNAL_STREAM");
        unsetenv("STATE_DIRECTORY");
        unsetenv("RUNTIME_DIRECTORY");
        unsetenv("CREDENTIALS_DIRECTORY");
        if (!freopen(d->log, "a", stderr)) {
            _exit(126);
        }
        execl(daemon, daemon, "--config", d->cfg, (char *)NULL);
        _exit(127);
    }
}

void pwt_daemon_dump_log(const struct pwt_daemon *d)
{
    FILE *f = fopen(d->log, "r");
    char line[1024];

    fprintf(stderr, "---- painwatchd stderr ----\n");
    while (f && fgets(line, sizeof(line), f)) {
        fputs(line, stderr);
    }
    if (f) {
        fclose(f);
    }
}

void pwt_daemon_assert_alive(struct pwt_daemon *d)
{
    int status;

    if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
        pwt_daemon_dump_log(d);
        d->pid = 0;
        fail_msg("painwatchd exited early (status %d)", status);
    }
}

void pwt_daemon_wait_notify(struct pwt_daemon *d, const char *needle)
{
    for (unsigned waited = 0; waited < d->wait_s;) {
        struct timespec until;
        bool found = false;

        pthread_mutex_lock(&d->lock);
        while (d->seen < d->n_msgs && !found) {
            const char *m = d->msgs[d->seen % PWT_NOTIFY_KEEP];
            found = strstr(m, needle) != NULL;
            if (found) {
                snprintf(d->last, sizeof(d->last), "%s", m);
            }
            d->seen++;
        }
        if (!found) {
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            if (pthread_cond_timedwait(&d->cond, &d->lock, &until) != 0) {
                waited++;
            }
        }
        pthread_mutex_unlock(&d->lock);
        if (found) {
            return;
        }
        pwt_daemon_assert_alive(d);
    }
    pwt_daemon_dump_log(d);
    fail_msg("no '%s' from painwatchd within %u s", needle, d->wait_s);
}

unsigned pwt_daemon_watchdog_pings(struct pwt_daemon *d)
{
    unsigned n;

    pthread_mutex_lock(&d->lock);
    n = d->watchdog_pings;
    pthread_mutex_unlock(&d->lock);
    return n;
}

int pwt_daemon_wait_exit(struct pwt_daemon *d)
{
    int status = 0;

    for (unsigned waited = 0; waited < d->wait_s * 10; waited++) {
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = 0;
            return status;
        }
        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    }
    pwt_daemon_dump_log(d);
    fail_msg("painwatchd did not exit within %u s", d->wait_s);
    return status;
}

unsigned pwt_daemon_health_port(struct pwt_daemon *d)
{
    static const char tag[] = "/metrics on 127.0.0.1:0 (port ";
    unsigned port = 0;

    for (unsigned i = 0; i < d->wait_s * 10 && !port; i++) {
        char *text = pwt_read_file(d->log, NULL);
        const char *p = NULL;
        /* the last start's line: a restart appends to the same log */
        for (const char *q = strstr(text, tag); q; q = strstr(q + 1, tag)) {
            p = q;
        }
        if (p) {
            port = (unsigned)strtoul(p + strlen(tag), NULL, 10);
        }
        free(text);
        if (!port) {
            nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
        }
    }
    if (!port) {
        pwt_daemon_dump_log(d);
        fail_msg("painwatchd did not log its health port");
    }
    return port;
}

long pwt_daemon_get(struct pwt_daemon *d, const char *path, char **body)
{
    char url[256];

    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", d->health_port, path);
    return pwt_http_get(url, body);
}

double pwt_daemon_scrape(struct pwt_daemon *d, const char *name, const char *labels)
{
    static struct prom_text parsed;
    char *body = NULL;
    double v;

    assert_int_equal(pwt_daemon_get(d, "/metrics", &body), 200);
    prom_parse(&parsed, body);
    free(body);
    v = prom_value(&parsed, name, labels);
    return isnan(v) ? 0 : v;
}

double pwt_daemon_scrape_until_above(struct pwt_daemon *d, const char *name, const char *labels,
                                     double above)
{
    for (unsigned i = 0; i < d->wait_s * 5; i++) {
        double v = pwt_daemon_scrape(d, name, labels);
        if (v > above) {
            return v;
        }
        pwt_daemon_assert_alive(d);
        nanosleep(&(struct timespec){.tv_nsec = 200 * 1000 * 1000}, NULL);
    }
    pwt_daemon_dump_log(d);
    fail_msg("%s{%s} stayed at or below %g for %u s", name, labels, above, d->wait_s);
    return 0;
}

void pwt_daemon_stop(struct pwt_daemon *d)
{
    if (!d->dir) {
        return;
    }
    if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = 0;
    }
    if (d->reading) {
        pthread_mutex_lock(&d->lock);
        d->stop_reader = true;
        pthread_mutex_unlock(&d->lock);
        pthread_join(d->reader, NULL);
        pthread_mutex_destroy(&d->lock);
        pthread_cond_destroy(&d->cond);
        d->reading = false;
    }
    if (d->fhir) {
        pwt_responder_stop(d->fhir);
        d->fhir = NULL;
    }
    close(d->sock);
    pwt_rmtree(d->dir);
    free(d->dir);
    d->dir = NULL;
}
