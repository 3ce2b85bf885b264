/* SPDX-License-Identifier: Apache-2.0 */
/*
 * painwatchd run the way systemd runs it, for the systemd tests: a scratch directory with an
 * audit key, a real $NOTIFY_SOCKET drained by a reader thread, the daemon forked with its stderr
 * in a log file, and its health listener (/healthz, /readyz, /metrics) on loopback.
 */
#ifndef PAINWATCH_TESTS_DAEMON_RUN_H
#define PAINWATCH_TESTS_DAEMON_RUN_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "support/responder.h"

#define PWT_NOTIFY_KEEP 64

/* A CapabilityStatement (Observation, MedicationRequest, Flag) and an empty searchset. */
extern const char pwt_daemon_capability[];
extern const char pwt_daemon_empty_bundle[];

/*
 * One painwatchd run. The reader thread drains $NOTIFY_SOCKET all the time, as systemd does:
 * sd_notify() blocks once the socket's queue is full (net.unix.max_dgram_qlen, 10 here), and a
 * daemon blocked on a watchdog ping cannot poll or stop. Zero it before pwt_daemon_prepare().
 */
struct pwt_daemon {
    char *dir;       /* scratch directory (owned) */
    char cfg[4096];  /* dir/painwatch.yaml: the test writes it */
    char log[4096];  /* dir/painwatchd.log: the daemon's stderr, appended by every spawn */
    unsigned wait_s; /* bound on every wait (a failure, not a timing assertion) */
    unsigned long watchdog_usec; /* WATCHDOG_USEC given to the daemon, 0: none */
    pid_t pid;                   /* 0 once it exited */
    struct pwt_responder *fhir;  /* the test's FHIR responder, stopped by pwt_daemon_stop() */
    unsigned health_port;        /* set by the test from pwt_daemon_health_port() */
    int sock;
    pthread_t reader;
    bool reading;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char msgs[PWT_NOTIFY_KEEP][256]; /* ring of the last non-watchdog messages */
    unsigned long n_msgs;            /* total received (ring index = n % PWT_NOTIFY_KEEP) */
    unsigned long seen;              /* wait_notify has consumed up to here */
    unsigned watchdog_pings;
    bool stop_reader;
    char last[256]; /* the message pwt_daemon_wait_notify() matched */
};

/** The scratch directory, file names, audit key and notify socket with its reader thread. */
void pwt_daemon_prepare(struct pwt_daemon *d, unsigned wait_s);

/** Fork and exec $PAINWATCHD --config d->cfg with $NOTIFY_SOCKET set, stderr to d->log. */
void pwt_daemon_spawn(struct pwt_daemon *d);

/** The daemon's log on stderr (on a failure). */
void pwt_daemon_dump_log(const struct pwt_daemon *d);

/** Fail the test (with the log) when the daemon has exited. */
void pwt_daemon_assert_alive(struct pwt_daemon *d);

/** Wait for the next notify message containing @p needle (earlier ones are consumed). */
void pwt_daemon_wait_notify(struct pwt_daemon *d, const char *needle);

/** WATCHDOG=1 messages received so far. */
unsigned pwt_daemon_watchdog_pings(struct pwt_daemon *d);

/** Wait for the exit of the daemon (after a signal). @return its wait status. */
int pwt_daemon_wait_exit(struct pwt_daemon *d);

/** The health port the daemon logged last (health.listen 127.0.0.1:0; a restart appends). */
unsigned pwt_daemon_health_port(struct pwt_daemon *d);

/** GET http://127.0.0.1:<d->health_port><path>. Caller frees *body. @return the HTTP status. */
long pwt_daemon_get(struct pwt_daemon *d, const char *path, char **body);

/** The value of @p name{@p labels} in a strict parse of /metrics, 0 when absent. */
double pwt_daemon_scrape(struct pwt_daemon *d, const char *name, const char *labels);

/** Scrape until @p name{@p labels} exceeds @p above. @return the value seen. */
double pwt_daemon_scrape_until_above(struct pwt_daemon *d, const char *name, const char *labels,
                                     double above);

/** Kill a daemon still running, stop the reader and the responder, remove the directory. */
void pwt_daemon_stop(struct pwt_daemon *d);

#endif
