/* SPDX-License-Identifier: Apache-2.0 */
/*
 * painwatch outbox list|show|replay|drop: what is waiting to be written to the EHR, what the
 * server refused (dead letters with their OperationOutcome), and the operator's remedies.
 * replay and drop are journaled in the store with the change; the daemon audits them.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cmd.h"
#include "painwatch/conf.h"
#include "painwatch/err.h"
#include "painwatch/sink.h"
#include "painwatch/store.h"

struct opts {
    const char *verb;
    const char *state_dir;
    const char *config;
    bool all;
    bool json;
    int64_t id;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: painwatch outbox list [--all] [--json]   (--state-dir DIR | --config FILE)\n"
            "       painwatch outbox show ID                  (--state-dir DIR | --config FILE)\n"
            "       painwatch outbox replay ID                (--state-dir DIR | --config FILE)\n"
            "       painwatch outbox drop ID                  (--state-dir DIR | --config FILE)\n"
            "\n"
            "list     rows waiting (pending) and refused (dead); --all adds done and dropped\n"
            "show     one row: attempts, last status, payload, the server's OperationOutcome\n"
            "replay   send a dead or dropped row again (after fixing what the server refused)\n"
            "drop     never send a pending or dead row (kept in the store, marked dropped)\n"
            "replay and drop are recorded; the daemon writes them to the audit trail.\n");
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {
        {"state-dir", required_argument, NULL, 's'},
        {"config", required_argument, NULL, 'c'},
        {"all", no_argument, NULL, 'a'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "s:c:ajh", longs, NULL)) != -1) {
        switch (c) {
        case 's':
            o->state_dir = optarg;
            break;
        case 'c':
            o->config = optarg;
            break;
        case 'a':
            o->all = true;
            break;
        case 'j':
            o->json = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return 2;
        }
    }
    if (optind >= argc) {
        return 2;
    }
    o->verb = argv[optind++];
    if (strcmp(o->verb, "list") != 0) {
        char *end = NULL;

        if (optind >= argc) {
            fprintf(stderr, "painwatch outbox %s: which row? (an ID from 'outbox list')\n",
                    o->verb);
            return 2;
        }
        o->id = strtoll(argv[optind], &end, 10);
        if (!end || *end || o->id <= 0) {
            fprintf(stderr, "painwatch outbox %s: '%s' is not a row ID\n", o->verb, argv[optind]);
            return 2;
        }
        optind++;
    }
    if (optind < argc) {
        fprintf(stderr, "painwatch outbox: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!o->state_dir == !o->config) {
        fprintf(stderr, "painwatch outbox: give exactly one of --state-dir or --config\n");
        return 2;
    }
    return 0;
}

/* Open the store named by the options. @return 0 or 2 (message printed). */
static int open_store(const struct opts *o, bool read_only, struct pw_store **out)
{
    struct pw_store_opts so = {.dir = o->state_dir, .read_only = read_only};
    struct pw_conf *conf = NULL;
    struct pw_conf_errors errs = {0};
    const char *where = NULL;
    int err;

    if (o->config) {
        err = pw_conf_load_file(&conf, o->config, &errs);
        if (err) {
            for (size_t i = 0; i < errs.n; i++) {
                fprintf(stderr, "%s\n", errs.lines[i]);
            }
            fprintf(stderr, "painwatch outbox: %s: %s\n", o->config, pw_strerror(err));
            pw_conf_errors_cleanup(&errs);
            return 2;
        }
        pw_conf_errors_cleanup(&errs);
        so.section = pw_conf_daemon(conf)->store.section;
        so.dir = NULL;
        where = json_string_value(json_object_get(so.section, "path"));
    }
    err = pw_store_open(out, &so);
    if (err) {
        fprintf(stderr, "painwatch outbox: cannot open the store %s%s: %s\n",
                where ? where : (so.dir ? so.dir : "(unset)"), where ? "" : "/painwatch.db",
                pw_strerror(err));
    }
    pw_conf_free(conf);
    return err ? 2 : 0;
}

static void when(int64_t ms, char out[32])
{
    if (ms <= 0) {
        snprintf(out, 32, "now");
        return;
    }
    pw_fhir_instant(ms / 1000, out);
}

static json_t *row_json(const struct pw_outbox_row *r, bool full)
{
    json_t *j =
        json_pack("{s:I, s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:b, s:i, s:s}", "id",
                  (json_int_t)r->id, "state", pw_outbox_state_name(r->state), "op",
                  pw_outbox_op_name(r->op), "rule", r->rule, "episode", r->key, "attempts",
                  (int)r->attempts, "next_try_ms", (json_int_t)r->next_try, "created_ms",
                  (json_int_t)r->created, "updated_ms", (json_int_t)r->updated, "outcome_unknown",
                  r->unknown, "last_status", (int)r->last_status, "last_error", r->last_error);

    if (j && full) {
        json_object_set_new(j, "patient", json_string(r->patient));
        json_object_set_new(j, "payload", r->payload ? json_loads(r->payload, 0, NULL) : NULL);
        if (r->outcome) {
            json_t *oo = json_loads(r->outcome, 0, NULL);
            json_object_set_new(j, "server_outcome", oo ? oo : json_string(r->outcome));
        }
    }
    return j;
}

static int print_row(void *arg, const struct pw_outbox_row *r)
{
    const struct opts *o = arg;
    char next[32];

    if (!o->all && r->state != PW_OUTBOX_PENDING && r->state != PW_OUTBOX_DEAD) {
        return 0;
    }
    if (o->json) {
        json_t *j = row_json(r, false);
        json_dumpf(j, stdout, JSON_COMPACT | JSON_SORT_KEYS);
        fputc('\n', stdout);
        json_decref(j);
        return 0;
    }
    when(r->next_try, next);
    printf("%-6" PRId64 " %-8s %-10s %5u %4ld  %-20s %-28.28s %-12.12s %s\n", r->id,
           pw_outbox_state_name(r->state), pw_outbox_op_name(r->op), r->attempts, r->last_status,
           r->state == PW_OUTBOX_PENDING ? next : "-", r->rule, r->key, r->last_error);
    return 0;
}

static int do_list(struct pw_store *st, struct opts *o)
{
    int err;

    if (!o->json) {
        printf("%-6s %-8s %-10s %5s %4s  %-20s %-28s %-12s %s\n", "ID", "STATE", "OP", "TRIES",
               "HTTP", "NEXT TRY", "RULE", "EPISODE", "LAST ERROR");
    }
    err = pw_store_outbox_list(st, -1, print_row, o);
    if (err) {
        fprintf(stderr, "painwatch outbox list: %s\n", pw_strerror(err));
        return 2;
    }
    return 0;
}

static int do_show(struct pw_store *st, const struct opts *o)
{
    struct pw_outbox_row r = {0};
    int err = pw_store_outbox_get(st, o->id, &r);
    json_t *j;

    if (err) {
        fprintf(stderr, "painwatch outbox show: row %" PRId64 ": %s\n", o->id,
                err == PW_ENOENT ? "no such row" : pw_strerror(err));
        return err == PW_ENOENT ? 1 : 2;
    }
    j = row_json(&r, true);
    json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
    fputc('\n', stdout);
    json_decref(j);
    pw_outbox_row_cleanup(&r);
    return 0;
}

/* replay / drop: change the row and journal the action, one transaction. */
static int do_change(struct pw_store *st, const struct opts *o, bool replay)
{
    struct pw_outbox_row r = {0};
    struct pw_operator_action act = {.outbox_id = o->id};
    enum pw_outbox_state before;
    struct timespec ts;
    int err = pw_store_begin(st);

    if (!err) {
        err = pw_store_outbox_get(st, o->id, &r);
    }
    if (err) {
        pw_store_rollback(st);
        fprintf(stderr, "painwatch outbox %s: row %" PRId64 ": %s\n", o->verb, o->id,
                err == PW_ENOENT ? "no such row" : pw_strerror(err));
        return err == PW_ENOENT ? 1 : 2;
    }
    before = r.state;
    if (replay ? (before != PW_OUTBOX_DEAD && before != PW_OUTBOX_DROPPED)
               : (before != PW_OUTBOX_PENDING && before != PW_OUTBOX_DEAD)) {
        pw_store_rollback(st);
        fprintf(stderr, "painwatch outbox %s: row %" PRId64 " is %s; only %s rows can be %s\n",
                o->verb, o->id, pw_outbox_state_name(before),
                replay ? "dead or dropped" : "pending or dead", replay ? "replayed" : "dropped");
        pw_outbox_row_cleanup(&r);
        return 1;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    act.at = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    pw_cmd_operator_name(act.who, sizeof(act.who));
    snprintf(act.action, sizeof(act.action), "outbox-%s", o->verb);
    snprintf(act.detail, sizeof(act.detail),
             "outbox row %" PRId64 " (%s, rule %s, episode %.16s): %s -> %s", o->id,
             pw_outbox_op_name(r.op), r.rule, r.key, pw_outbox_state_name(before),
             replay ? "pending" : "dropped");
    r.state = replay ? PW_OUTBOX_PENDING : PW_OUTBOX_DROPPED;
    r.updated = act.at;
    if (replay) {
        r.attempts = 0;
        r.next_try = 0;
        snprintf(r.last_error, sizeof(r.last_error), "replayed by %s", act.who);
    }
    err = pw_store_outbox_update(st, &r);
    if (!err) {
        err = pw_store_operator_log(st, &act);
    }
    if (!err) {
        err = pw_store_commit(st);
    } else {
        pw_store_rollback(st);
    }
    pw_outbox_row_cleanup(&r);
    if (err) {
        fprintf(stderr, "painwatch outbox %s: row %" PRId64 ": %s\n", o->verb, o->id,
                pw_strerror(err));
        return 2;
    }
    printf("outbox row %" PRId64 ": %s -> %s (recorded for the audit trail)\n", o->id,
           pw_outbox_state_name(before), replay ? "pending" : "dropped");
    return 0;
}

int pw_cmd_outbox(int argc, char **argv)
{
    struct opts o = {0};
    struct pw_store *st = NULL;
    bool write;
    int rc = parse_args(argc, argv, &o);

    if (rc) {
        usage(stderr);
        return rc;
    }
    write = strcmp(o.verb, "replay") == 0 || strcmp(o.verb, "drop") == 0;
    if (!write && strcmp(o.verb, "list") != 0 && strcmp(o.verb, "show") != 0) {
        fprintf(stderr, "painwatch outbox: unknown action '%s'\n", o.verb);
        usage(stderr);
        return 2;
    }
    rc = open_store(&o, !write, &st);
    if (rc) {
        return rc;
    }
    if (strcmp(o.verb, "list") == 0) {
        rc = do_list(st, &o);
    } else if (strcmp(o.verb, "show") == 0) {
        rc = do_show(st, &o);
    } else {
        rc = do_change(st, &o, strcmp(o.verb, "replay") == 0);
    }
    pw_store_close(st);
    return rc;
}
