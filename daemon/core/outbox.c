/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Outbox delivery: due rows go out through http.h (or the shadow-mode file), one row per episode
 * at a time, in order. 2xx done; 408/429/5xx/transport retry with full-jitter backoff honouring
 * Retry-After; other 4xx dead-lettered with the OperationOutcome kept. Duplicates are guarded by
 * the key -> id map, If-None-Exist, and an identifier search after an unknown outcome. Nothing is
 * sent while the audit trail cannot be written (fail closed).
 */
#include "core/outbox.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <uv.h>

#include "painwatch/auth.h"
#include "painwatch/check.h"
#include "painwatch/err.h"
#include "painwatch/fhir.h"
#include "painwatch/log.h"
#include "painwatch/metrics.h"
#include "painwatch/sync.h"
#include "painwatch/timeline.h"

/* Due rows read per scan: the rows in flight may be among them, so at least inflight_max. */
#define DUE_BATCH PW_OUTBOX_INFLIGHT_MAX

enum step {
    STEP_SEARCH, /* Flag?identifier=system|key */
    STEP_POST,   /* create */
    STEP_PUT,    /* resolve / reactivate, If-Match */
    STEP_GET,    /* read back after 412 Precondition Failed */
};

/* One row in flight. Owned by the outbox until its last HTTP callback has run. */
struct job {
    struct pw_outbox *ob;
    struct job *next;
    struct pw_outbox_row row;
    struct pw_flag_rec flag;
    enum step step;
    bool was_unknown;         /* the row's unknown mark before this attempt */
    unsigned reputs;          /* PUTs repeated after a 412 in this job (bounded) */
    struct job *settled_next; /* delivered and audited, its row not yet saved (settle_end) */
    uint64_t audit_epoch;     /* the trail's epoch when its fate was written (pw_audit_sync) */
    struct job *held_next;    /* started by a scan, its request held until the scan commits */
    struct pw_http_req *held;
    long settled_status;
    char settled_why[80];
    char url[2048];
    char type[32]; /* the payload's resourceType: Flag, DetectedIssue (issue 21) */
};

struct pw_outbox {
    uv_loop_t *loop;
    uv_timer_t timer;
    struct pw_outbox_conf conf;
    char *server;
    char *base_url;
    struct job *jobs;    /* in flight (settled ones included until their rows are saved) */
    struct job *settled; /* delivered, audited, rows saved together by the next scan */
    struct job **settled_tail;
    unsigned nsettled; /* jobs on `settled` (or being saved): in flight, waiting on nothing */
    struct job *held;  /* requests of the rows a scan starts, sent once their marks commit */
    struct job **held_tail;
    bool hold; /* a scan is starting rows inside one transaction */
    unsigned inflight;
    bool started;
    bool closing;
    bool timer_closed;
    bool audit_batch; /* a response's audit records are being batched (audit_flush) */
    bool paused;      /* pw_outbox_pause(): nothing new starts, unsent writes are held back */
    struct pw_sink *next_sink; /* pw_outbox_swap_sink(): taken once nothing is in flight */
    pw_outbox_swapped_fn *swapped;
    void *swapped_arg;
    struct pw_outbox_stats stats;
};

static void schedule(struct pw_outbox *ob, uint64_t delay_ms);
static void schedule_within(struct pw_outbox *ob, uint64_t delay_ms);
static void settle_soon(struct pw_outbox *ob);
static void not_sent(struct job *job, const char *why);
static void settle_end(struct pw_outbox *ob, struct job *list, int err);
static void job_finish(struct job *job);
static int submit(struct job *job, enum step step);

/* ---- time, backoff, Retry-After ------------------------------------------------------------ */

static int64_t real_clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ms(const struct pw_outbox *ob)
{
    return ob->conf.clock_ms ? ob->conf.clock_ms() : real_clock_ms();
}

uint64_t pw_outbox_retry_after_ms(const char *value, int64_t now)
{
    uint64_t ms = 0;

    /* Delta-seconds or an HTTP-date: the parser the sync engine uses (backoff.c). */
    if (!value || pw_retry_after_parse(value, now / 1000, &ms) < 0) {
        return 0;
    }
    if (ms > (uint64_t)PW_OUTBOX_RETRY_AFTER_MAX_S * 1000) {
        ms = (uint64_t)PW_OUTBOX_RETRY_AFTER_MAX_S * 1000;
    }
    return ms;
}

/* ---- audit --------------------------------------------------------------------------------- */

static bool audit_ok(struct pw_outbox *ob)
{
    if (ob->conf.audit_writable) {
        return ob->conf.audit_writable(ob->conf.audit_arg);
    }
    if (!ob->conf.audit) {
        return true;
    }
    if (!pw_audit_writable(ob->conf.audit)) {
        pw_audit_retry(ob->conf.audit);
    }
    return pw_audit_writable(ob->conf.audit);
}

#define OPERATOR_BATCH 32

struct op_batch {
    struct pw_operator_action v[OPERATOR_BATCH];
    size_t n;
};

static int collect_action(void *arg, const struct pw_operator_action *act)
{
    struct op_batch *b = arg;

    b->v[b->n++] = *act;
    return b->n == OPERATOR_BATCH ? 1 : 0;
}

/*
 * Operator actions journaled by `painwatch outbox` go into the trail before anything else is
 * sent: the daemon is the trail's only writer. @return 0, or an error (then nothing is sent).
 */
static int audit_operator_actions(struct pw_outbox *ob)
{
    struct op_batch b = {.n = 0};
    int err;

    if (!ob->conf.audit) {
        return 0;
    }
    err = pw_store_operator_unaudited(ob->conf.store, collect_action, &b);
    if (err < 0) {
        return err;
    }
    for (size_t i = 0; i < b.n; i++) {
        const struct pw_operator_action *act = &b.v[i];
        json_t *extra = json_pack("{s:{s:s, s:s, s:I, s:I}}", "painwatch", "operator", act->who,
                                  "operator_action", act->action, "outbox_id",
                                  (json_int_t)act->outbox_id, "requested_ms", (json_int_t)act->at);

        err = pw_audit_event(ob->conf.audit, "operator-action", 'U', PW_AUDIT_SUCCESS, act->detail,
                             extra);
        if (!err) {
            err = pw_store_operator_audited(ob->conf.store, act->id);
        }
        if (err) {
            return err;
        }
    }
    return 0;
}

static const char *interaction_of(enum step step)
{
    static const char *const names[] = {[STEP_SEARCH] = "search",
                                        [STEP_POST] = "create",
                                        [STEP_PUT] = "update",
                                        [STEP_GET] = "read"};

    return names[step];
}

static void audit_exchange(struct job *job, int err, const struct pw_http_resp *resp)
{
    struct pw_outbox *ob = job->ob;
    char corr[32];
    struct pw_audit_fhir ix = {
        .interaction = interaction_of(job->step),
        .server = ob->base_url,
        .method = job->step == STEP_POST  ? "POST"
                  : job->step == STEP_PUT ? "PUT"
                                          : "GET",
        .url = job->url,
        .status = resp ? resp->status : 0,
        .err = err,
        .patient = job->row.patient,
        .correlation = corr,
        .entries = -1,
    };

    if (ob->conf.audit) {
        snprintf(corr, sizeof(corr), "outbox-%" PRId64, job->row.id);
        pw_audit_fhir_interaction(ob->conf.audit, &ix);
    }
}

/*
 * A response's exchange record and the row's fate reach the trail as one batch (one write).
 * @p durable: fsync'd now, for a fate the caller saves right away (a dead letter). Otherwise
 * the lines wait for the next fsync: a delivery's row is saved only by the next scan, after
 * one pw_audit_sync() for every delivery settled since (settled_audited); an exchange alone (a
 * retry, a search before the write) is covered by whichever fsync comes next.
 */
static int audit_flush(struct pw_outbox *ob, bool durable)
{
    if (!ob->audit_batch) {
        return 0;
    }
    ob->audit_batch = false;
    int rc = durable ? pw_audit_batch_commit(ob->conf.audit) : pw_audit_batch_write(ob->conf.audit);
    return rc == 0 ? 0 : PW_EAUDIT;
}

/*
 * Record the fate of a row. Delivery only counts once this is durable: when the audit append
 * fails, the caller leaves the row pending (fail closed) and the next attempt finds the Flag
 * already there (key -> id map) and records it then.
 */
static int audit_fate(struct job *job, const char *subtype, long status, const char *detail,
                      bool durable)
{
    struct pw_outbox *ob = job->ob;
    char flag_ref[PW_ID_MAX * 2 + 32] = "";
    char corr[32];
    struct pw_audit_flag fl = {
        .subtype = subtype,
        .action = job->row.op == PW_OUTBOX_CREATE ? 'C' : 'U',
        .server = ob->base_url ? ob->base_url : ob->conf.sink->path,
        .patient = job->row.patient,
        .rule = job->row.rule,
        .episode = job->row.key,
        .flag = NULL,
        .status = status,
        .detail = detail,
        .correlation = corr,
    };

    if (!ob->conf.audit) {
        return 0;
    }
    if (job->flag.server_id[0]) {
        snprintf(flag_ref, sizeof(flag_ref), "%s/%s%s%s", job->type, job->flag.server_id,
                 job->flag.version[0] ? "/_history/" : "", job->flag.version);
        fl.flag = flag_ref;
    }
    snprintf(corr, sizeof(corr), "outbox-%" PRId64, job->row.id);
    if (!ob->audit_batch) {
        /* Outside a response (a map hit, the shadow file): a batch of its own. */
        if (pw_audit_batch_begin(ob->conf.audit) != 0) {
            return PW_EAUDIT;
        }
        ob->audit_batch = true;
    }
    job->audit_epoch = pw_audit_epoch(ob->conf.audit);
    if (pw_audit_flag(ob->conf.audit, &fl) != 0) {
        audit_flush(ob, durable);
        return PW_EAUDIT;
    }
    return audit_flush(ob, durable);
}

/* ---- row bookkeeping ----------------------------------------------------------------------- */

static int save_row(struct job *job)
{
    job->row.updated = now_ms(job->ob);
    return pw_store_outbox_update(job->ob->conf.store, &job->row);
}

/* Row done + flag map, inside the caller's transaction. */
static int put_done(struct job *job)
{
    int err;

    job->row.state = PW_OUTBOX_DONE;
    job->row.unknown = false;
    job->row.last_status = job->settled_status;
    job->row.last_error[0] = '\0';
    job->flag.updated = now_ms(job->ob) / 1000;
    err = pw_store_flag_put(job->ob->conf.store, &job->flag);
    return err ? err : save_row(job);
}

/* Row done + flag map, one transaction. */
static int save_done(struct job *job)
{
    struct pw_store *st = job->ob->conf.store;
    int err = pw_store_begin(st);

    if (!err) {
        err = put_done(job);
    }
    if (!err) {
        err = pw_store_commit(st);
    } else {
        pw_store_rollback(st);
    }
    return err;
}

static void report_done(struct job *job, int err)
{
    if (err) {
        pw_log_err(OUTBOX, "outbox row %" PRId64 ": cannot record delivery: %s", job->row.id,
                   pw_strerror(err));
        return;
    }
    job->ob->stats.delivered++;
    if (job->row.op == PW_OUTBOX_CREATE) {
        pw_metric_inc(PW_M_FLAGS_CREATED, job->row.rule, NULL);
    } else if (job->row.op == PW_OUTBOX_RESOLVE) {
        pw_metric_inc(PW_M_FLAGS_RESOLVED, job->row.rule, NULL);
    }
    pw_log_info(OUTBOX, "outbox row %" PRId64 " (%s, rule %s) done: Flag/%s (%s)", job->row.id,
                pw_outbox_op_name(job->row.op), job->row.rule,
                job->flag.server_id[0] ? job->flag.server_id : "-", job->settled_why);
}

/*
 * Delivered, but its fate is not durable in the trail: the server id is kept so that the next
 * try sees it, and the row stays pending, marked unknown (the next try finds the Flag by
 * identifier and records the delivery then).
 */
static void not_audited(struct job *job)
{
    pw_store_flag_put(job->ob->conf.store, &job->flag);
    job->ob->stats.blocked++;
    pw_log_crit(OUTBOX, "outbox row %" PRId64 ": delivered but not audited: kept pending",
                job->row.id);
    job->row.unknown = true;
    job->row.next_try = now_ms(job->ob) + 1000;
    save_row(job);
    job_finish(job);
}

/*
 * Make the trail lines of every settled delivery durable with one fsync. A job whose lines may
 * be lost (the fsync failed, or the trail failed after they were written) leaves the list and
 * stays pending (not_audited).
 */
static void settled_audited(struct pw_outbox *ob)
{
    struct pw_audit *a = ob->conf.audit;
    struct job **p = &ob->settled;

    if (!a || !ob->settled) {
        return;
    }
    int rc = pw_audit_sync(a, pw_audit_epoch(a));
    uint64_t epoch = pw_audit_epoch(a);

    while (*p) {
        struct job *j = *p;

        if (rc == 0 && j->audit_epoch == epoch) {
            p = &j->settled_next;
            continue;
        }
        *p = j->settled_next;
        ob->nsettled--;
        not_audited(j);
    }
    ob->settled_tail = p;
}

/*
 * Open a transaction holding the rows of every settled delivery (done, flag map): saved with
 * whatever else the caller puts in it, one commit and one fsync for all the deliveries since
 * the last scan instead of one each. Settled jobs stay in flight until settle_end(), so no scan
 * starts their rows again; a crash before the commit leaves the rows pending and marked unknown
 * (their next attempt finds the Flags by identifier).
 * @return 0: open, *list to pass to settle_end() after the commit; otherwise nothing is open and
 *         the rows were already saved one by one.
 */
static int settle_begin(struct pw_outbox *ob, struct job **list)
{
    struct pw_store *st = ob->conf.store;
    int err;

    settled_audited(ob);
    *list = ob->settled;
    ob->settled = NULL;
    ob->settled_tail = &ob->settled;
    err = pw_store_begin(st);
    bool open = err == 0;
    for (struct job *j = *list; j && !err; j = j->settled_next) {
        err = put_done(j);
    }
    if (err && open) {
        pw_store_rollback(st);
    }
    if (err) {
        settle_end(ob, *list, err);
        *list = NULL;
    }
    return err;
}

/* The transaction of settle_begin() ended with @p err: report the rows, or, when it failed,
 * save each in a transaction of its own (and report its own error). */
static void settle_end(struct pw_outbox *ob, struct job *list, int err)
{
    while (list) {
        struct job *j = list;

        list = j->settled_next;
        ob->nsettled--;
        report_done(j, err ? save_done(j) : 0);
        job_finish(j);
    }
}

/* The settled rows alone, in their own transaction. */
static void flush_settled(struct pw_outbox *ob)
{
    struct job *list = NULL;

    if (!ob->settled) {
        return;
    }
    if (settle_begin(ob, &list) == 0) {
        settle_end(ob, list, pw_store_commit(ob->conf.store));
    }
}

/*
 * A job is done with the network (settled, retried, dead): scan soon to save and start rows.
 * When nothing else is waiting on a response, now; otherwise within settle_ms, so that the
 * responses of requests sent together are saved together (and a slow one holds back nothing
 * for longer than that).
 */
static void settle_soon(struct pw_outbox *ob)
{
    if (ob->inflight <= ob->nsettled) {
        schedule(ob, 0);
    } else {
        schedule_within(ob, ob->conf.settle_ms);
    }
}

static void done(struct job *job, long status, const char *why)
{
    /* The audit record first (fail closed); the next scan makes it durable before it saves
     * the row (settled_audited). */
    if (audit_fate(job, "flag-delivered", status, why, false) != 0) {
        not_audited(job);
        return;
    }
    job->settled_status = status;
    snprintf(job->settled_why, sizeof(job->settled_why), "%s", why);
    job->settled_next = NULL;
    *job->ob->settled_tail = job;
    job->ob->settled_tail = &job->settled_next;
    job->ob->nsettled++;
    if (job->ob->closing) {
        flush_settled(job->ob); /* no scan will run again */
    } else {
        settle_soon(job->ob);
    }
}

static void dead(struct job *job, long status, const char *why, const struct pw_http_resp *resp);

static void retry(struct job *job, long status, const char *why, uint64_t retry_after_ms)
{
    struct pw_outbox *ob = job->ob;

    if (ob->conf.max_attempts && job->row.attempts >= ob->conf.max_attempts) {
        char gave_up[PW_OUTBOX_ERROR_MAX];

        snprintf(gave_up, sizeof(gave_up), "gave up after %u attempts: %s", job->row.attempts, why);
        dead(job, status, gave_up, NULL);
        return;
    }
    /* Full jitter (Fluent Bit's scheduler, AWS's "exponential backoff and jitter"): spreads the
     * retries of many rows after one outage instead of sending them in waves. The sync engine's
     * backoff (backoff.c); its attempt counts from 0, the row's from 1. */
    uint64_t delay = pw_backoff_full_jitter(ob->conf.backoff_base_ms, ob->conf.backoff_cap_ms,
                                            job->row.attempts ? job->row.attempts - 1 : 0,
                                            ob->conf.rand32 ? ob->conf.rand32() : pw_rand32());

    if (retry_after_ms > delay) {
        delay = retry_after_ms;
    }
    if ((ob->paused || ob->next_sink) && status == 0) {
        delay = 0; /* held back by the kill switch: due again as soon as writes resume */
    }
    job->row.last_status = status;
    snprintf(job->row.last_error, sizeof(job->row.last_error), "%s", why);
    job->row.next_try = now_ms(ob) + (int64_t)delay;
    ob->stats.retried++;
    pw_log_warn(OUTBOX, "outbox row %" PRId64 ": %s: retry in %" PRIu64 " ms", job->row.id, why,
                delay);
    if (save_row(job) != 0) {
        pw_log_err(OUTBOX, "outbox row %" PRId64 ": cannot record the retry", job->row.id);
    }
    job_finish(job);
}

static void dead(struct job *job, long status, const char *why, const struct pw_http_resp *resp)
{
    job->row.state = PW_OUTBOX_DEAD;
    if (resp) {
        job->row.unknown = false; /* the server answered: it did not apply the write */
    }
    job->row.last_status = status;
    snprintf(job->row.last_error, sizeof(job->row.last_error), "%s", why);
    free(job->row.outcome);
    job->row.outcome = NULL;
    if (resp && resp->body && resp->body_len > 0) {
        size_t n = resp->body_len < PW_OUTBOX_OUTCOME_MAX ? resp->body_len : PW_OUTBOX_OUTCOME_MAX;

        job->row.outcome = strndup(resp->body, n);
    }
    /* Dead-lettering is a decision about the chart: audited like a delivery (fail closed). */
    if (audit_fate(job, "flag-dead-lettered", status, why, true) != 0) {
        job->row.state = PW_OUTBOX_PENDING;
        job->row.next_try = now_ms(job->ob) + 1000;
    } else {
        job->ob->stats.dead++;
        pw_log_err(OUTBOX, "outbox row %" PRId64 " (%s, rule %s) dead-lettered: %s", job->row.id,
                   pw_outbox_op_name(job->row.op), job->row.rule, why);
    }
    if (save_row(job) != 0) {
        pw_log_err(OUTBOX, "outbox row %" PRId64 ": cannot record the dead letter", job->row.id);
    }
    job_finish(job);
}

/* ---- parsing responses --------------------------------------------------------------------- */

/*
 * "https://x/fhir/Flag/123/_history/4" (or relative "Flag/123") -> id "123", version "4"; either
 * may stay empty. Parsed from the end, so a base URL that happens to contain "Flag/" is harmless.
 */
static void parse_location(const char *loc, const char *want, char *id, size_t id_cap, char *ver,
                           size_t ver_cap)
{
    char buf[2048];
    char *hist;
    char *slash;
    char *type;

    if (!loc || strlen(loc) >= sizeof(buf)) {
        return;
    }
    snprintf(buf, sizeof(buf), "%s", loc);
    buf[strcspn(buf, "?#")] = '\0';
    hist = strstr(buf, "/_history/");
    if (hist) {
        if (strlen(hist + 10) < ver_cap && !strchr(hist + 10, '/')) {
            snprintf(ver, ver_cap, "%s", hist + 10);
        }
        *hist = '\0';
    }
    slash = strrchr(buf, '/');
    if (!slash) {
        return;
    }
    *slash = '\0';
    type = strrchr(buf, '/');
    type = type ? type + 1 : buf;
    if (strcmp(type, want) == 0 && slash[1] && strlen(slash + 1) < id_cap) {
        snprintf(id, id_cap, "%s", slash + 1);
    }
}

/* ETag: W/"4" -> "4". */
static void parse_etag(const char *etag, char *ver, size_t cap)
{
    const char *q;
    size_t n;

    if (!etag) {
        return;
    }
    q = strchr(etag, '"');
    if (!q) {
        return;
    }
    n = strcspn(q + 1, "\"");
    if (n > 0 && n < cap) {
        memcpy(ver, q + 1, n);
        ver[n] = '\0';
    }
}

/*
 * The id and version the server gave the Flag we wrote: Location, then ETag, then the body.
 * @return false when the server named an id that is not a FHIR id (nothing is learnt then: such
 * an id would be put in a URL, issue 18). A version that is not an id is dropped.
 */
static bool learn_identity(struct job *job, const struct pw_http_resp *resp)
{
    char id[PW_ID_MAX] = "";
    char ver[PW_ID_MAX] = "";
    json_t *body;

    parse_location(pw_http_resp_header(resp, "Location"), job->type, id, sizeof(id), ver,
                   sizeof(ver));
    if (!ver[0]) {
        parse_etag(pw_http_resp_header(resp, "ETag"), ver, sizeof(ver));
    }
    body = resp->body_len ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
    if (!id[0]) {
        const char *bid = json_string_value(json_object_get(body, "id"));
        if (bid && !pw_fhir_id_valid(bid)) {
            json_decref(body); /* checked whole: a cut copy of a long one would pass */
            return false;
        }
        snprintf(id, sizeof(id), "%s", bid ? bid : "");
    }
    if (!ver[0]) {
        const char *v =
            json_string_value(json_object_get(json_object_get(body, "meta"), "versionId"));
        snprintf(ver, sizeof(ver), "%s", pw_fhir_id_valid(v) ? v : "");
    }
    json_decref(body);
    if (id[0] && !pw_fhir_id_valid(id)) {
        return false;
    }
    if (id[0]) {
        snprintf(job->flag.server_id, sizeof(job->flag.server_id), "%s", id);
    }
    snprintf(job->flag.version, sizeof(job->flag.version), "%s", pw_fhir_id_valid(ver) ? ver : "");
    return true;
}

enum found {
    FOUND_NONE,
    FOUND,
    FOUND_BAD_ID, /* ours by identifier, but its id is not a FHIR id: not usable in a URL */
};

/*
 * The Flag with our identifier in a search Bundle. The match is checked here, not trusted to the
 * server: a server that ignores an unknown parameter returns every Flag.
 */
static enum found find_in_bundle(struct job *job, const struct pw_http_resp *resp)
{
    json_t *bundle = json_loadb(resp->body, resp->body_len, 0, NULL);
    const char *system = job->ob->conf.sink->identifier_system;
    json_t *entry;
    size_t i;
    bool found = false;
    bool bad_id = false;

    json_array_foreach(json_object_get(bundle, "entry"), i, entry)
    {
        json_t *res = json_object_get(entry, "resource");
        const char *type = json_string_value(json_object_get(res, "resourceType"));
        const char *id = json_string_value(json_object_get(res, "id"));
        json_t *ident;
        size_t j;

        if (!type || strcmp(type, job->type) != 0 || !id) {
            continue;
        }
        json_array_foreach(json_object_get(res, "identifier"), j, ident)
        {
            const char *sys = json_string_value(json_object_get(ident, "system"));
            const char *val = json_string_value(json_object_get(ident, "value"));

            if (!found && sys && val && strcmp(sys, system) == 0 &&
                strcmp(val, job->row.key) == 0) {
                const char *v =
                    json_string_value(json_object_get(json_object_get(res, "meta"), "versionId"));

                if (!pw_fhir_id_valid(id)) {
                    bad_id = true;
                    continue;
                }
                snprintf(job->flag.server_id, sizeof(job->flag.server_id), "%s", id);
                snprintf(job->flag.version, sizeof(job->flag.version), "%s",
                         pw_fhir_id_valid(v) ? v : "");
                found = true;
            }
        }
    }
    json_decref(bundle);
    return found ? FOUND : bad_id ? FOUND_BAD_ID : FOUND_NONE;
}

/* After a failed write: could the server have applied it? Then search before writing again. */
static bool maybe_applied(const struct job *job, int err, const struct pw_http_resp *resp)
{
    if (err) {
        return resp->sent ? true : job->was_unknown;
    }
    if (resp->status == 408 || resp->status == 429 || resp->status == 503) {
        return job->was_unknown; /* the server says it did not process the request */
    }
    return resp->status >= 500 ? true : job->was_unknown;
}

static void describe(char *out, size_t cap, int err, const struct pw_http_resp *resp)
{
    if (err) {
        snprintf(out, cap, "%s%s", pw_strerror(err), resp->sent ? " after sending" : "");
    } else {
        snprintf(out, cap, "HTTP %ld", resp->status);
    }
}

/* Retry or dead-letter a failed exchange according to the sink. */
static void failed(struct job *job, int err, const struct pw_http_resp *resp, bool was_write)
{
    char why[128];
    enum pw_outcome o = job->ob->conf.sink->ops->classify(job->ob->conf.sink, err, resp->status);

    describe(why, sizeof(why), err, resp);
    if (was_write) {
        job->row.unknown = o == PW_RETRY && maybe_applied(job, err, resp);
    }
    if (o == PW_REJECTED) {
        dead(job, resp->status, why, resp);
    } else {
        retry(job, resp->status, why,
              pw_outbox_retry_after_ms(pw_http_resp_header(resp, "Retry-After"), now_ms(job->ob)));
    }
}

static void after_search(struct job *job, int err, const struct pw_http_resp *resp)
{
    if (err || resp->status < 200 || resp->status >= 300) {
        failed(job, err, resp, false);
        return;
    }
    enum found f = find_in_bundle(job, resp);

    if (f == FOUND_BAD_ID) {
        /* It may well be ours, so no second POST; its id cannot go in a URL: try again later
         * (a row the server never names properly ends as a dead letter, kept for review). */
        pw_log_err(OUTBOX,
                   "outbox row %" PRId64 ": the Flag found by identifier has an id that is not "
                   "a FHIR id; not used",
                   job->row.id);
        retry(job, resp->status, "Flag found by identifier has an id that is not a FHIR id", 0);
        return;
    }
    if (f == FOUND) {
        if (job->row.op == PW_OUTBOX_CREATE) {
            done(job, resp->status, "found by identifier");
        } else if (submit(job, STEP_PUT) != 0) {
            retry(job, 0, "cannot submit", 0);
        }
        return;
    }
    switch (job->row.op) {
    case PW_OUTBOX_CREATE:
        /* Known now: the earlier attempt did not create it. */
        job->row.unknown = false;
        job->was_unknown = false;
        if (submit(job, STEP_POST) != 0) {
            retry(job, 0, "cannot submit", 0);
        }
        break;
    case PW_OUTBOX_RESOLVE:
        done(job, resp->status, "no Flag on the server to resolve");
        break;
    case PW_OUTBOX_REACTIVATE:
        dead(job, resp->status, "no Flag on the server to reactivate", NULL);
        break;
    }
}

static void after_write(struct job *job, int err, const struct pw_http_resp *resp)
{
    if (!err && resp->status >= 200 && resp->status < 300) {
        if (!learn_identity(job, resp)) {
            /* Applied, most likely, but under a name we will not put in a URL: an unknown
             * outcome, so the next attempt searches by identifier instead of writing again. */
            pw_log_err(OUTBOX,
                       "outbox row %" PRId64 ": HTTP %ld names the Flag with an id that is not a "
                       "FHIR id; outcome treated as unknown",
                       job->row.id, resp->status);
            job->row.unknown = true;
            retry(job, resp->status, "server gave the Flag an id that is not a FHIR id", 0);
            return;
        }
        done(job, resp->status,
             job->step == STEP_POST && resp->status == 200 ? "existed (If-None-Exist)" : "written");
        return;
    }
    if (!err && job->step == STEP_PUT && resp->status == 412) {
        /* Our version is stale: someone else changed the Flag. Read it before deciding. */
        if (submit(job, STEP_GET) != 0) {
            retry(job, 0, "cannot submit", 0);
        }
        return;
    }
    if (!err && job->step == STEP_PUT && (resp->status == 404 || resp->status == 410)) {
        if (job->row.op == PW_OUTBOX_RESOLVE) {
            done(job, resp->status, "Flag no longer on the server");
        } else {
            dead(job, resp->status, "Flag no longer on the server", resp);
        }
        return;
    }
    failed(job, err, resp, true);
}

static void after_get(struct job *job, int err, const struct pw_http_resp *resp)
{
    json_t *flag;
    const char *type;
    const struct pw_sink_ops *t;
    const char *status;
    const char *version;
    const char *want = job->row.op == PW_OUTBOX_RESOLVE ? "inactive" : "active";

    if (err || resp->status < 200 || resp->status >= 300) {
        failed(job, err, resp, false);
        return;
    }
    flag = json_loadb(resp->body, resp->body_len, 0, NULL);
    /* In Flag terms whatever the type: a DetectedIssue someone mitigated reads "inactive". */
    type = json_string_value(json_object_get(flag, "resourceType"));
    t = pw_sink_for_resource(type ? type : job->type);
    status = t && strcmp(t->resource_type, job->type) == 0 ? t->episode_status(flag) : NULL;
    version = json_string_value(json_object_get(json_object_get(flag, "meta"), "versionId"));
    snprintf(job->flag.version, sizeof(job->flag.version), "%s",
             pw_fhir_id_valid(version) ? version : "");
    if (!status) {
        json_decref(flag);
        dead(job, resp->status, "read-back is not a Flag", resp);
        return;
    }
    if (strcmp(status, want) == 0) {
        json_decref(flag);
        done(job, resp->status, "already so on the server");
        return;
    }
    if (strcmp(status, "entered-in-error") == 0 || strcmp(want, "active") == 0) {
        /* A clinician closed it (again): that decision stands. */
        job->flag.state = strcmp(status, "entered-in-error") == 0 ? PW_FLAG_ENTERED_IN_ERROR
                                                                  : PW_FLAG_CLINICIAN_INACTIVE;
        json_decref(flag);
        done(job, resp->status, "changed in the EHR by someone else: left as is");
        return;
    }
    json_decref(flag);
    /* Still active under a newer version (e.g. a note added): resolve that version. */
    job->row.unknown = false;
    job->was_unknown = false;
    if (++job->reputs > 2 || submit(job, STEP_PUT) != 0) {
        retry(job, resp->status, "Flag keeps changing", 0);
    }
}

static void on_response_fields(void *arg, int err, const struct pw_http_resp *resp);

/* Journal fields (issue 19) for whatever the exchange's end logs: the server and the rule. */
static void on_response(void *arg, int err, const struct pw_http_resp *resp)
{
    struct job *job = arg;
    char rule[PW_RULE_ID_MAX];
    char server[128];
    char type[sizeof(job->type)];

    /* Copies: the job, even the outbox, may be freed inside. */
    snprintf(rule, sizeof(rule), "%s", job->row.rule);
    snprintf(type, sizeof(type), "%s", job->type);
    snprintf(server, sizeof(server), "%s", job->ob->server ? job->ob->server : "");
    pw_log_context(server, rule, type);
    on_response_fields(arg, err, resp);
    pw_log_context(NULL, NULL, NULL);
}

static void on_response_fields(void *arg, int err, const struct pw_http_resp *resp)
{
    struct job *job = arg;
    struct pw_outbox *ob = job->ob;

    if (err == PW_EAUDIT && !resp->sent) {
        ob->stats.blocked++;
        not_sent(job, "audit trail not writable: not sent");
        return;
    }
    if (err == PW_EAGAIN && !resp->sent && (ob->paused || ob->next_sink)) {
        not_sent(job, "writes paused: not sent");
        return;
    }
    ob->audit_batch = ob->conf.audit && pw_audit_batch_begin(ob->conf.audit) == 0;
    audit_exchange(job, err, resp);
    if (err == PW_ECANCELED || ob->closing) {
        audit_flush(ob, false);
        job_finish(job); /* shutdown: the row stays pending, its unknown mark on disk */
        return;
    }
    switch (job->step) {
    case STEP_SEARCH:
        after_search(job, err, resp);
        break;
    case STEP_POST:
    case STEP_PUT:
        after_write(job, err, resp);
        break;
    case STEP_GET:
        after_get(job, err, resp);
        break;
    }
    audit_flush(ob, false); /* paths that recorded no fate: the exchange record alone */
}

/* ---- requests ------------------------------------------------------------------------------ */

static int build_url(struct job *job, enum step step)
{
    const struct pw_sink *sink = job->ob->conf.sink;
    const char *base = job->ob->base_url;
    char ident[PW_CODE_MAX + PW_KEY_MAX + 8];
    char *esc;
    int n;

    switch (step) {
    case STEP_SEARCH:
        snprintf(ident, sizeof(ident), "%s|%s", sink->identifier_system, job->row.key);
        esc = pw_http_escape(ident);
        if (!esc) {
            return PW_ENOMEM;
        }
        n = snprintf(job->url, sizeof(job->url), "%s/%s?identifier=%s", base, job->type, esc);
        pw_http_escape_free(esc);
        break;
    case STEP_POST:
        n = snprintf(job->url, sizeof(job->url), "%s/%s", base, job->type);
        break;
    case STEP_PUT:
    case STEP_GET:
        if (!pw_fhir_id_valid(job->flag.server_id)) {
            return PW_EFHIR; /* never a path built from something that is not an id */
        }
        n = snprintf(job->url, sizeof(job->url), "%s/%s/%s", base, job->type, job->flag.server_id);
        break;
    default:
        return PW_EINVAL;
    }
    return n > 0 && (size_t)n < sizeof(job->url) ? 0 : PW_E2BIG;
}

/* The body of a PUT: the planned resource with the server's id. Caller frees. */
static char *put_body(const struct job *job)
{
    json_t *res = json_loads(job->row.payload, 0, NULL);
    char *s = NULL;

    if (res && json_object_set_new(res, "id", json_string(job->flag.server_id)) == 0) {
        s = json_dumps(res, JSON_COMPACT | JSON_SORT_KEYS);
    }
    json_decref(res);
    return s;
}

static int add_write_headers(struct job *job, struct pw_http_req *req, enum step step)
{
    char line[PW_CODE_MAX + PW_KEY_MAX + 64];
    char *body = step == STEP_PUT ? put_body(job) : NULL;
    const char *b = step == STEP_PUT ? body : job->row.payload;
    int err = b ? pw_http_req_set_body(req, b, strlen(b), "application/fhir+json") : PW_EFHIR;

    free(body);
    if (!err) {
        err = pw_http_req_add_header(req, "Prefer: return=representation");
    }
    if (!err && step == STEP_POST && job->ob->conf.conditional_create) {
        char ident[PW_CODE_MAX + PW_KEY_MAX + 8];
        char *esc;

        snprintf(ident, sizeof(ident), "%s|%s", job->ob->conf.sink->identifier_system,
                 job->row.key);
        esc = pw_http_escape(ident);
        if (!esc) {
            return PW_ENOMEM;
        }
        snprintf(line, sizeof(line), "If-None-Exist: identifier=%s", esc);
        pw_http_escape_free(esc);
        err = pw_http_req_add_header(req, line);
    }
    if (!err && step == STEP_PUT && job->flag.version[0]) {
        snprintf(line, sizeof(line), "If-Match: W/\"%s\"", job->flag.version);
        err = pw_http_req_add_header(req, line);
    }
    return err;
}

/* Fail closed at the last moment: a write waiting in the HTTP core's queue goes out only while
 * the trail can record it (pw_http_req_set_gate). */
static int write_gate(void *arg)
{
    struct pw_outbox *ob = arg;

    if (ob->paused || ob->next_sink) {
        return PW_EAGAIN; /* the kill switch or a reload: a write still queued is held */
    }
    return audit_ok(ob) ? 0 : PW_EAUDIT;
}

/* The write never left: no extra attempt, no "unknown" to search for; tried again later. */
static void not_sent(struct job *job, const char *why)
{
    if (job->step == STEP_POST || job->step == STEP_PUT) {
        job->row.attempts--;
        job->row.unknown = job->was_unknown;
    }
    retry(job, 0, why, 0);
}

/*
 * Send one request for @p job. Writes are marked "unknown" on disk first: a crash or a timeout
 * after this point makes the next attempt search by identifier instead of writing blindly.
 * @return 0 (the callback will run) or an error (it will not).
 */
static int send_request(struct job *job, struct pw_http_req *req)
{
    struct pw_outbox *ob = job->ob;

    if (ob->conf.auth) {
        return pw_auth_submit_new(ob->conf.auth, req, on_response, job);
    }
    return pw_http_submit_new(ob->conf.http, req, on_response, job);
}

static int submit(struct job *job, enum step step)
{
    struct pw_outbox *ob = job->ob;
    struct pw_http_req *req = NULL;
    bool write = step == STEP_POST || step == STEP_PUT;
    int err = build_url(job, step);

    job->step = step;
    if (!err) {
        err = pw_http_req_new(&req, ob->server,
                              write ? (step == STEP_POST ? "POST" : "PUT") : "GET", job->url);
    }
    if (!err && write) {
        err = add_write_headers(job, req, step);
        pw_http_req_set_gate(req, write_gate, ob);
    }
    if (!err && write) {
        job->was_unknown = job->row.unknown;
        job->row.attempts++;
        job->row.unknown = true;
        err = save_row(job);
    }
    if (err) {
        pw_http_req_free(req);
        return err;
    }
    ob->stats.requests++;
    if (ob->hold) {
        /* The scan commits the marks of every row it starts, then sends (send_held). */
        job->held = req;
        job->held_next = NULL;
        *ob->held_tail = job;
        ob->held_tail = &job->held_next;
        return 0;
    }
    err = send_request(job, req);
    if (err == PW_EAUDIT && write) {
        /* Refused at the gate: never sent (the caller retries). */
        job->row.attempts--;
        job->row.unknown = job->was_unknown;
    }
    return err;
}

/*
 * Send what a scan held once its transaction ended: @p err is the commit's result. When the marks
 * did not commit, nothing is sent (a write must be marked unknown on disk before it can reach
 * the server) and the rows are retried.
 */
static void send_held(struct pw_outbox *ob, int err)
{
    struct job *list = ob->held;

    ob->held = NULL;
    ob->held_tail = &ob->held;
    while (list) {
        struct job *job = list;
        struct pw_http_req *req = job->held;

        list = job->held_next;
        job->held = NULL;
        if (err) {
            pw_http_req_free(req);
            not_sent(job, "cannot record the attempt");
        } else if ((err = send_request(job, req)) == PW_EAUDIT) {
            not_sent(job, "audit trail not writable: not sent");
        } else if (err == PW_EAGAIN && (ob->paused || ob->next_sink)) {
            not_sent(job, "writes paused: not sent");
        } else if (err) {
            retry(job, 0, "cannot submit the request", 0);
        }
    }
}

/* ---- jobs, scanning, lifecycle ------------------------------------------------------------- */

static void outbox_free(struct pw_outbox *ob)
{
    free(ob->server);
    free(ob->base_url);
    free(ob);
}

static void job_finish(struct job *job)
{
    struct pw_outbox *ob = job->ob;

    for (struct job **p = &ob->jobs; *p; p = &(*p)->next) {
        if (*p == job) {
            *p = job->next;
            break;
        }
    }
    ob->inflight--;
    pw_outbox_row_cleanup(&job->row);
    pw_flag_rec_cleanup(&job->flag);
    free(job);
    if (ob->closing) {
        if (ob->inflight == 0 && ob->timer_closed) {
            outbox_free(ob);
        }
        return;
    }
    settle_soon(ob);
}

static bool in_flight(const struct pw_outbox *ob, int64_t id)
{
    for (const struct job *j = ob->jobs; j; j = j->next) {
        if (j->row.id == id) {
            return true;
        }
    }
    return false;
}

/* The shadow-mode path: a synchronous, durable local write. */
static void run_local(struct job *job)
{
    struct pw_sink *sink = job->ob->conf.sink;
    struct pw_sink_written w = {0};
    int err;

    job->row.attempts++;
    err = sink->ops->write(sink, &job->row, now_ms(job->ob) / 1000, &w);
    if (err) {
        retry(job, 0, pw_strerror(err), 0);
        return;
    }
    if (!job->flag.server_id[0]) {
        snprintf(job->flag.server_id, sizeof(job->flag.server_id), "%s", w.id);
    }
    snprintf(job->flag.version, sizeof(job->flag.version), "%s", w.version);
    done(job, 0, "written to the shadow file");
}

/* Decide the first step of a row. Ends in exactly one of: a request, done, retry, dead. */
static void run_remote(struct job *job)
{
    enum step step;

    if (job->flag.server_id[0] && !pw_fhir_id_valid(job->flag.server_id)) {
        /* Mapped before ids were checked (issue 18): never put it in a URL; find it again. */
        pw_log_err(OUTBOX, "outbox row %" PRId64 ": mapped Flag id is not a FHIR id; searching",
                   job->row.id);
        job->flag.server_id[0] = '\0';
        job->flag.version[0] = '\0';
        job->row.unknown = true;
    }
    if (job->row.op == PW_OUTBOX_CREATE) {
        if (job->flag.server_id[0]) {
            /* The key -> id map says it exists: never POST twice. */
            done(job, 0, "already created");
            return;
        }
        step = job->row.unknown ? STEP_SEARCH : STEP_POST;
    } else {
        step = job->flag.server_id[0] ? STEP_PUT : STEP_SEARCH;
    }
    if (submit(job, step) != 0) {
        retry(job, 0, "cannot submit the request", 0);
    }
}

/* The resource type the row writes (its payload's), one painwatch builds; else Flag. */
static void row_type(struct job *job)
{
    if (job->row.type[0]) {
        snprintf(job->type, sizeof(job->type), "%s", job->row.type); /* the planner's */
        return;
    }
    json_t *res = job->row.payload ? json_loads(job->row.payload, 0, NULL) : NULL;
    const struct pw_sink_ops *t =
        pw_sink_for_resource(json_string_value(json_object_get(res, "resourceType")));

    snprintf(job->type, sizeof(job->type), "%s", t ? t->resource_type : "Flag");
    json_decref(res);
}

static void start_job(struct pw_outbox *ob, int64_t id)
{
    struct job *job = calloc(1, sizeof(*job));
    int err;

    if (!job) {
        return;
    }
    job->ob = ob;
    err = pw_store_outbox_get(ob->conf.store, id, &job->row);
    if (err || job->row.state != PW_OUTBOX_PENDING) {
        pw_outbox_row_cleanup(&job->row);
        free(job);
        return;
    }
    err = pw_store_flag_get(ob->conf.store, job->row.key, &job->flag);
    if (err == PW_ENOENT) {
        /* Planning always writes the flag map; rebuild a minimal row rather than stall. */
        snprintf(job->flag.key, sizeof(job->flag.key), "%s", job->row.key);
        snprintf(job->flag.patient, sizeof(job->flag.patient), "%s", job->row.patient);
        snprintf(job->flag.rule, sizeof(job->flag.rule), "%s", job->row.rule);
        job->flag.state = job->row.op == PW_OUTBOX_RESOLVE ? PW_FLAG_RESOLVED : PW_FLAG_ACTIVE;
        err = 0;
    }
    if (err) {
        pw_outbox_row_cleanup(&job->row);
        free(job);
        return;
    }
    row_type(job);
    job->next = ob->jobs;
    ob->jobs = job;
    ob->inflight++;
    if (ob->conf.sink->ops->remote) {
        run_remote(job);
    } else {
        run_local(job);
    }
}

static void idle_or_wait(struct pw_outbox *ob)
{
    int64_t next = 0;
    int64_t now = now_ms(ob);
    int err = pw_store_outbox_next_due(ob->conf.store, &next);
    uint64_t delay = ob->conf.scan_ms;

    if (err == 0 && next > now && (uint64_t)(next - now) < delay) {
        delay = (uint64_t)(next - now);
    }
    schedule(ob, delay);
    if (ob->conf.on_idle) {
        ob->conf.on_idle(ob->conf.on_idle_arg, err == 0);
    }
}

static void scan(struct pw_outbox *ob)
{
    int64_t ids[DUE_BATCH];
    size_t n = 0;
    size_t started = 0;
    size_t room;
    struct job *list = NULL;
    bool due_failed = false;

    if (ob->next_sink) {
        /* A reload: what is in flight finishes under the old sink, then the new one takes over. */
        flush_settled(ob);
        if (ob->inflight == 0) {
            struct pw_sink *old = ob->conf.sink;
            ob->conf.sink = ob->next_sink;
            ob->next_sink = NULL;
            if (ob->swapped) {
                ob->swapped(ob->swapped_arg, old);
            }
        }
    }
    if (ob->paused || ob->next_sink) {
        /* The kill switch: what is queued stays queued; in-flight exchanges finish. */
        flush_settled(ob);
        if (ob->inflight == 0) {
            idle_or_wait(ob);
        } else {
            schedule(ob, ob->conf.scan_ms);
        }
        return;
    }
    if (!audit_ok(ob) || audit_operator_actions(ob) != 0) {
        /* Fail closed: nothing goes out until the trail can record it. */
        flush_settled(ob); /* saved if their lines can be made durable, else kept pending */
        ob->stats.blocked++;
        pw_log_crit(OUTBOX, "audit trail not writable: EHR writes held back");
        schedule(ob, ob->conf.scan_ms < 1000 ? ob->conf.scan_ms : 1000);
        if (ob->inflight == 0 && ob->conf.on_idle &&
            pw_store_outbox_due(ob->conf.store, now_ms(ob), ids, 1, &n) == 0 && n == 0) {
            /* Nothing is due and nothing in flight: idle (what is queued for later stays
             * pending), so that a --once run whose trail cannot be written ends. */
            ob->conf.on_idle(ob->conf.on_idle_arg, true);
        }
        return;
    }
    /*
     * One transaction for the scan: first the rows of the deliveries settled since the last one
     * (so that the due rows read next are past them: unsaved, they would fill the read), then the
     * marks (attempts, unknown) of the rows started here, whose requests are sent once it
     * committed (send_held).
     */
    int txn = ob->settled ? settle_begin(ob, &list) : PW_EINVAL;
    /* Settled jobs stay in flight until settle_end(), but wait on nothing: they leave room. */
    unsigned busy = ob->inflight - ob->nsettled;
    room = ob->conf.inflight_max > busy ? ob->conf.inflight_max - busy : 0;
    if (room > 0 &&
        pw_store_outbox_due(ob->conf.store, now_ms(ob), ids,
                            room + busy < DUE_BATCH ? room + busy : DUE_BATCH, &n) != 0) {
        n = 0; /* the settled rows are saved all the same; the scan is tried again later */
        due_failed = true;
    }
    if (txn != 0 && n > 0) {
        txn = pw_store_begin(ob->conf.store);
    }
    ob->hold = txn == 0;
    for (size_t i = 0; i < n && started < room && !ob->closing; i++) {
        if (!in_flight(ob, ids[i])) {
            started++;
            start_job(ob, ids[i]);
        }
    }
    ob->hold = false;
    if (txn == 0) {
        txn = pw_store_commit(ob->conf.store);
        settle_end(ob, list, txn);
        send_held(ob, txn);
    }
    flush_settled(ob); /* shadow-mode writes settle synchronously: saved together */
    if (ob->closing) {
        return;
    }
    if (due_failed && ob->inflight == 0) {
        schedule(ob, ob->conf.scan_ms); /* not idle: what is due is unknown */
    } else if (ob->inflight == 0 && started == 0) {
        idle_or_wait(ob);
    } else if (ob->inflight > 0) {
        schedule(ob, ob->conf.scan_ms); /* completions re-scan sooner */
    }
    /* else: local writes finished synchronously and re-armed the timer at 0 already. */
}

static void on_timer(uv_timer_t *t)
{
    scan(container_of(t, struct pw_outbox, timer));
}

static void schedule(struct pw_outbox *ob, uint64_t delay_ms)
{
    if (!ob->started || ob->closing) {
        return;
    }
    uv_timer_start(&ob->timer, on_timer, delay_ms, 0);
}

/* schedule(), unless a scan is due sooner already. */
static void schedule_within(struct pw_outbox *ob, uint64_t delay_ms)
{
    if (uv_is_active((const uv_handle_t *)&ob->timer) &&
        uv_timer_get_due_in(&ob->timer) <= delay_ms) {
        return;
    }
    schedule(ob, delay_ms);
}

int pw_outbox_new(struct pw_outbox **out, uv_loop_t *loop, const struct pw_outbox_conf *conf)
{
    struct pw_outbox *ob;
    int err;

    if (!conf->store || !conf->sink ||
        (conf->sink->ops->remote && (!conf->http || !conf->server || !conf->base_url))) {
        return PW_EINVAL;
    }
    ob = calloc(1, sizeof(*ob));
    if (!ob) {
        return PW_ENOMEM;
    }
    ob->loop = loop;
    ob->settled_tail = &ob->settled;
    ob->held_tail = &ob->held;
    ob->conf = *conf;
    ob->conf.backoff_base_ms =
        conf->backoff_base_ms ? conf->backoff_base_ms : PW_OUTBOX_BACKOFF_BASE_MS;
    ob->conf.backoff_cap_ms =
        conf->backoff_cap_ms ? conf->backoff_cap_ms : PW_OUTBOX_BACKOFF_CAP_MS;
    ob->conf.inflight_max =
        conf->inflight_max && conf->inflight_max < DUE_BATCH ? conf->inflight_max : DUE_BATCH;
    ob->conf.scan_ms = conf->scan_ms ? conf->scan_ms : PW_OUTBOX_SCAN_MS;
    ob->conf.settle_ms = conf->settle_ms ? conf->settle_ms : PW_OUTBOX_SETTLE_MS;
    ob->server = conf->server ? strdup(conf->server) : NULL;
    ob->base_url = conf->base_url ? strdup(conf->base_url) : NULL;
    ob->conf.server = ob->server;
    ob->conf.base_url = ob->base_url;
    if ((conf->server && !ob->server) || (conf->base_url && !ob->base_url)) {
        outbox_free(ob);
        return PW_ENOMEM;
    }
    /* Trailing slashes would double up in "<base>/Flag". */
    for (size_t n = ob->base_url ? strlen(ob->base_url) : 0; n > 0 && ob->base_url[n - 1] == '/';
         n--) {
        ob->base_url[n - 1] = '\0';
    }
    err = uv_timer_init(loop, &ob->timer);
    if (err) {
        outbox_free(ob);
        return err;
    }
    *out = ob;
    return 0;
}

int pw_outbox_start(struct pw_outbox *ob)
{
    ob->started = true;
    /* Rows of an earlier run (pending, in backoff, or unknown after a crash) resume here. */
    schedule(ob, 0);
    return 0;
}

void pw_outbox_kick(struct pw_outbox *ob)
{
    schedule(ob, 0);
}

void pw_outbox_stats(const struct pw_outbox *ob, struct pw_outbox_stats *out)
{
    *out = ob->stats;
    out->inflight = ob->inflight;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct pw_outbox *ob = container_of((uv_timer_t *)(void *)h, struct pw_outbox, timer);

    ob->timer_closed = true;
    if (ob->inflight == 0) {
        outbox_free(ob);
    }
}

void pw_outbox_close(struct pw_outbox *ob)
{
    if (!ob || ob->closing) {
        return;
    }
    ob->closing = true;
    flush_settled(ob);
    uv_close((uv_handle_t *)&ob->timer, on_timer_closed);
}

void pw_outbox_set_conditional_create(struct pw_outbox *ob, bool on)
{
    ob->conf.conditional_create = on;
}

void pw_outbox_pause(struct pw_outbox *ob, bool paused)
{
    ob->paused = paused;
    /* Resumed: rows held back by the pause are due again now, not after their backoff. */
    schedule(ob, 0);
}

bool pw_outbox_paused(const struct pw_outbox *ob)
{
    return ob->paused;
}

int pw_outbox_swap_sink(struct pw_outbox *ob, struct pw_sink *sink, pw_outbox_swapped_fn *swapped,
                        void *arg)
{
    if (ob->next_sink || (sink->ops->remote && (!ob->conf.http || !ob->server || !ob->base_url))) {
        return PW_EINVAL;
    }
    ob->next_sink = sink;
    ob->swapped = swapped;
    ob->swapped_arg = arg;
    schedule(ob, 0);
    return 0;
}

void pw_outbox_set_retry(struct pw_outbox *ob, uint64_t base_ms, uint64_t cap_ms,
                         unsigned max_attempts)
{
    ob->conf.backoff_base_ms = base_ms ? base_ms : PW_OUTBOX_BACKOFF_BASE_MS;
    ob->conf.backoff_cap_ms = cap_ms ? cap_ms : PW_OUTBOX_BACKOFF_CAP_MS;
    ob->conf.max_attempts = max_attempts;
}

void pw_outbox_set_auth(struct pw_outbox *ob, struct pw_auth *auth)
{
    ob->conf.auth = auth;
}
