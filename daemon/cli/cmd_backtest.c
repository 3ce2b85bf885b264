/* SPDX-License-Identifier: Apache-2.0 */
/* painwatch backtest: replay a FHIR export through the engine and the daemon's reconcile. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "core/backtest.h"
#include "painwatch/conf.h"
#include "painwatch/err.h"
#include "painwatch/evaluate.h"
#include "painwatch/jarena.h"
#include "painwatch/terminology.h"

struct bt_args {
    const char *config, *from, *to, *step, *format, *out, *terminology, *scope, *synced, *lookback,
        *jobs;
    char **inputs;
    int n_inputs;
    bool exhaustive;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: painwatch backtest [--config FILE] [--from T] [--to T] [--step 1h]\n"
            "                          [--format text|json|html] [--out FILE]\n"
            "                          [--terminology DIR] [--scope problem-list|cohort]\n"
            "                          [--synced TYPE,...] [--lookback 14d|0] [--jobs N]\n"
            "                          [--exhaustive] INPUT...\n"
            "\n"
            "Replays history through the rule engine and the daemon's reconcile: INPUT is a FHIR\n"
            "Bulk Data export directory (*.ndjson, one file per resource type), NDJSON files or\n"
            "Bundles. Each patient is evaluated, as the record stood, at every event time, at the\n"
            "engine's due times and at each --step tick of the period (default: the input's\n"
            "first to last time); findings become episodes as the daemon's Flags would. Prints\n"
            "per rule: episodes, episodes per 100 patient-days, patients affected, median and\n"
            "90th-percentile duration, per severity; per patient: the episodes. --config applies\n"
            "the daemon's rules, pain_codes, factor_set, scope and terminology. A rule resting on\n"
            "the absence of a type is off unless the input holds that type (or --synced names\n"
            "it). A patient's record is what a daemon started at --from would hold: its first\n"
            "sync's --lookback (default: the first configured server's lookback, else 14d; 0:\n"
            "all history), the orders in force and active problems, and everything since.\n"
            "--jobs N: worker processes (default: the number of CPUs), each replaying its share\n"
            "of the patients; the output is the same for any N.\n"
            "An instant where no rule's outcome can change (no event, and no event time plus a\n"
            "rule's time parameter or fixed offset, since the last evaluation) is not evaluated\n"
            "again: the findings there are the last ones. --exhaustive evaluates every instant\n"
            "anyway (slower; the same output, a check of that).\n"
            "Exit 0 done, 2 on usage errors or unreadable input (file:line named).\n");
}

static int parse_args(int argc, char **argv, struct bt_args *a)
{
    static const char *const names[] = {"--config",      "--from",     "--to",    "--step",
                                        "--format",      "--out",      "--scope", "--synced",
                                        "--terminology", "--lookback", "--jobs"};
    const char **slots[] = {&a->config,      &a->from,     &a->to,    &a->step,
                            &a->format,      &a->out,      &a->scope, &a->synced,
                            &a->terminology, &a->lookback, &a->jobs};
    int i = 1;

    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *arg = argv[i];
        size_t k = 0;

        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(arg, "--help") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(arg, "--exhaustive") == 0) {
            a->exhaustive = true;
            continue;
        }
        for (; k < sizeof(names) / sizeof(names[0]); k++) {
            size_t n = strlen(names[k]);
            if (strncmp(arg, names[k], n) == 0 && (arg[n] == '\0' || arg[n] == '=')) {
                *slots[k] = arg[n] == '=' ? arg + n + 1 : i + 1 < argc ? argv[++i] : NULL;
                break;
            }
        }
        if (k == sizeof(names) / sizeof(names[0]) || !*slots[k]) {
            fprintf(stderr, "painwatch %s: %s '%s'\n", argv[0],
                    k == sizeof(names) / sizeof(names[0]) ? "unknown option" : "no value for", arg);
            return -1;
        }
    }
    a->inputs = argv + i;
    a->n_inputs = argc - i;
    if (!a->format) {
        a->format = "text";
    }
    if (strcmp(a->format, "text") && strcmp(a->format, "json") && strcmp(a->format, "html")) {
        fprintf(stderr, "painwatch %s: --format must be text, json or html\n", argv[0]);
        return -1;
    }
    if (a->n_inputs == 0) {
        fprintf(stderr, "painwatch %s: no INPUT\n", argv[0]);
        usage(stderr);
        return -1;
    }
    return 0;
}

/* --from / --to: RFC 3339 or a FHIR date; absent: PW_TIME_NONE. */
static int parse_when(const char *name, const char *text, int64_t *out)
{
    *out = PW_TIME_NONE;
    if (text && pw_fhir_parse_time(text, out) < 0) {
        fprintf(stderr, "painwatch backtest: %s '%s' is not a FHIR date or date-time\n", name,
                text);
        return -1;
    }
    return 0;
}

/* --synced TYPE,... else the types the input holds. */
static int synced_types(const char *list, unsigned in_input, struct pw_synced *out)
{
    char buf[512];

    *out = (struct pw_synced){.known = true, .synced = in_input};
    if (!list) {
        return 0;
    }
    out->synced = 0;
    pw_fhir_copy(buf, sizeof(buf), list);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (pw_res_type_bit(t) == 0) {
            fprintf(stderr, "painwatch backtest: --synced: '%s' is not a type painwatch reads\n",
                    t);
            return -1;
        }
        out->synced |= pw_res_type_bit(t);
    }
    return 0;
}

/* The configuration, terminology and evaluator. @return 0 or -1 after a message. */
static int setup(const struct bt_args *a, struct pw_conf **conf, struct pw_terminology **term,
                 struct pw_evaluator **ev)
{
    const struct pw_conf_daemon *cd = NULL;
    struct pw_conf_errors errs = {0};
    char dir[4096], err[512] = "";

    if (a->config) {
        int rc = pw_conf_load_file(conf, a->config, &errs);
        for (size_t i = 0; i < errs.n; i++) {
            fprintf(stderr, "painwatch backtest: %s\n", errs.lines[i]);
        }
        pw_conf_errors_cleanup(&errs);
        if (rc < 0) {
            fprintf(stderr, "painwatch backtest: %s: %s\n", a->config, pw_strerror(rc));
            return -1;
        }
        cd = pw_conf_daemon(*conf);
    }
    const char *tdir = a->terminology ? a->terminology : cd ? cd->terminology_dir : NULL;
    if (tdir) {
        pw_fhir_copy(dir, sizeof(dir), tdir);
    } else if (pw_terminology_default_dir(dir, sizeof(dir)) < 0) {
        fprintf(stderr, "painwatch backtest: terminology tables not found (--terminology DIR "
                        "or PAINWATCH_TERMINOLOGY_DIR)\n");
        return -1;
    }
    if (pw_terminology_load(term, dir, err, sizeof(err)) < 0 ||
        (cd && pw_terminology_load_site(*term, cd->mme_route_factors_file, cd->dose_limits_file,
                                        err, sizeof(err)) < 0)) {
        fprintf(stderr, "painwatch backtest: terminology: %s\n", err);
        return -1;
    }
    struct pw_eval_opts eo = {.cd = cd, .term = *term, .scope = a->scope};
    if (pw_evaluator_new(ev, &eo, err, sizeof(err)) < 0) {
        fprintf(stderr, "painwatch backtest: %s\n", err[0] ? err : "cannot build the engine");
        return -1;
    }
    return 0;
}

/* --jobs N (1-64); absent: the number of CPUs online. */
static int parse_jobs(const char *text, unsigned *out)
{
    char *end = NULL;
    long n;

    if (!text) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
        *out = n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
        return 0;
    }
    n = strtol(text, &end, 10);
    if (end == text || *end || n < 1 || n > 64) {
        fprintf(stderr, "painwatch backtest: --jobs '%s' is not a number from 1 to 64\n", text);
        return -1;
    }
    *out = (unsigned)n;
    return 0;
}

/* The spool, read (@p in) or gathered (@p dir: phase 2 of a --jobs run), replayed. */
static int replay(const struct bt_args *a, struct pw_bt_opts *o, const struct pw_bt_input *in,
                  const char *dir, unsigned shard, unsigned n_shards, struct pw_bt_result *res,
                  char *err, size_t errlen)
{
    struct pw_bt_spool *sp = NULL;
    int rc = pw_bt_spool_new(&sp);

    if (rc < 0) {
        snprintf(err, errlen, "cannot create the temporary spool file");
        return rc;
    }
    if (dir) {
        rc = pw_bt_spool_gather(sp, dir, shard, n_shards, err, errlen) < 0 ? PW_EIO : 0;
    } else {
        rc = pw_bt_spool_read(sp, in, err, errlen) < 0 ? PW_EINVAL : 0;
    }
    /* --synced was checked before the workers started: this cannot fail */
    if (rc == 0 && synced_types(a->synced, pw_bt_spool_types(sp), &o->synced) < 0) {
        rc = PW_EINVAL;
    }
    rc = rc ? rc : pw_backtest_run(sp, o, res, err, errlen);
    pw_bt_spool_free(sp);
    return rc;
}

/*
 * SIGINT, SIGTERM or SIGHUP while workers run: the workers are stopped and the temporary
 * directory removed, then the signal takes effect (stop_signal: the one received).
 */
static volatile sig_atomic_t stop_signal;
static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define N_STOP_SIGNALS (sizeof(stop_signals) / sizeof(stop_signals[0]))

static void on_stop(int sig)
{
    stop_signal = sig;
}

/* Catch the stop signals (not those ignored, as under nohup), the previous actions in @p old. */
static void stop_catch(struct sigaction old[N_STOP_SIGNALS])
{
    struct sigaction sa = {.sa_handler = on_stop}; /* no SA_RESTART: waitpid returns EINTR */

    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_STOP_SIGNALS; i++) {
        if (sigaction(stop_signals[i], NULL, &old[i]) == 0 && old[i].sa_handler != SIG_IGN) {
            sigaction(stop_signals[i], &sa, NULL);
        }
    }
}

static void stop_restore(const struct sigaction old[N_STOP_SIGNALS])
{
    for (size_t i = 0; i < N_STOP_SIGNALS; i++) {
        sigaction(stop_signals[i], &old[i], NULL);
    }
}

/* After a stop signal: SIGTERM to the workers from @p k on (not yet waited for). */
static void stop_workers(const pid_t *pids, unsigned k, unsigned n)
{
    for (; stop_signal && k < n; k++) {
        if (pids[k] > 0) {
            kill(pids[k], SIGTERM);
        }
    }
}

/* What a worker does: phase 1 (read its part of the input) or 2 (replay its shard). */
struct job {
    const struct sigaction *sig; /* the actions before stop_catch (a worker's own) */
    const struct bt_args *a;
    struct pw_bt_opts *o;
    const struct pw_bt_input *in;
    const char *dir;
    unsigned n;
    int phase;
};

static int job_run(const struct job *j, unsigned k, struct pw_bt_result *part, char *err,
                   size_t errlen)
{
    if (j->phase == 1) {
        return pw_bt_scatter(j->in, k, j->n, j->dir, err, errlen) < 0 ? PW_EINVAL : 0;
    }
    return replay(j->a, j->o, NULL, j->dir, k, j->n, part, err, errlen);
}

/*
 * @p j->n worker processes, worker k running job_run(k) into a temporary file; the parts are
 * merged into @p res in worker order (the first worker's error is the first in the input).
 * Processes, not threads: nothing of the engine or normalization is shared, whatever state it
 * keeps. @return 0 or an error (@p err says what).
 */
static int run_workers(const struct job *j, struct pw_bt_result *res, char *err, size_t errlen)
{
    FILE **parts = calloc(j->n, sizeof(*parts));
    pid_t *pids = calloc(j->n, sizeof(*pids));
    int rc = 0;

    if (!parts || !pids) {
        free(parts);
        free(pids);
        snprintf(err, errlen, "out of memory");
        return PW_ENOMEM;
    }
    fflush(stdout);
    fflush(stderr);
    for (unsigned k = 0; k < j->n && rc == 0; k++) {
        parts[k] = tmpfile();
        pids[k] = parts[k] ? fork() : -1;
        if (pids[k] == 0) {
            stop_restore(j->sig);
            struct pw_bt_result part = {0};
            char perr[512] = "";
            int prc = job_run(j, k, &part, perr, sizeof(perr));
            _exit(pw_bt_result_save(&part, prc, perr, parts[k]) == 0 ? 0 : 1);
        }
        if (pids[k] < 0) {
            snprintf(err, errlen, "cannot start worker %u of %u", k + 1, j->n);
            rc = PW_EIO;
        }
    }
    for (unsigned k = 0; k < j->n; k++) {
        int status = 0;
        pid_t w = 0;

        if (pids[k] > 0) {
            stop_workers(pids, k, j->n);
            while ((w = waitpid(pids[k], &status, 0)) < 0 && errno == EINTR) {
                stop_workers(pids, k, j->n);
            }
        }
        if (pids[k] > 0 && (w != pids[k] || !WIFEXITED(status) || WEXITSTATUS(status) != 0) &&
            rc == 0) {
            snprintf(err, errlen, "worker %u of %u failed", k + 1, j->n);
            rc = PW_EIO;
        }
    }
    for (unsigned k = 0; k < j->n && rc == 0; k++) {
        rc = pw_bt_result_merge(res, parts[k], err, errlen);
    }
    for (unsigned k = 0; k < j->n; k++) {
        if (parts[k]) {
            fclose(parts[k]);
        }
    }
    free(parts);
    free(pids);
    return rc;
}

/*
 * The backtest over @p jobs worker processes, in two phases (backtest.h, pw_bt_scatter): each
 * worker parses its part of the input into files of a private temporary directory, one per
 * shard of patients; then each replays its shard from all of them. The parts are merged and
 * sorted, so the result is the one of a single process. The directory is removed whatever
 * happens (a worker that fails leaves its files there). @return 0 or an error.
 */
static int run_jobs(const struct bt_args *a, struct pw_bt_opts *o, unsigned jobs,
                    struct pw_bt_result *res, char *err, size_t errlen)
{
    struct pw_bt_input *in = NULL;
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    int rc = pw_bt_input_new(&in, (const char *const *)a->inputs, (size_t)a->n_inputs);

    if (rc < 0) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    if (jobs <= 1) {
        rc = replay(a, o, in, NULL, 0, 1, res, err, errlen);
        pw_bt_input_free(in);
        return rc;
    }
    snprintf(dir, sizeof(dir), "%s/painwatch-backtest-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        snprintf(err, errlen, "cannot create a temporary directory in %s",
                 tmp && *tmp ? tmp : "/tmp");
        pw_bt_input_free(in);
        return PW_EIO;
    }
    struct sigaction old[N_STOP_SIGNALS];
    stop_catch(old);
    struct pw_bt_result scratch = {0};
    struct job j = {.sig = old, .a = a, .o = o, .in = in, .dir = dir, .n = jobs, .phase = 1};
    rc = run_workers(&j, &scratch, err, errlen);
    pw_bt_result_cleanup(&scratch);
    if (rc == 0 && !stop_signal) {
        j.phase = 2;
        rc = run_workers(&j, res, err, errlen);
    }
    pw_bt_scatter_remove(dir, jobs);
    pw_bt_input_free(in);
    stop_restore(old);
    if (stop_signal) {
        raise(stop_signal); /* the default action, now the files are gone */
    }
    res->source = "backtest";
    pw_bt_result_sort(res);
    return rc;
}

int pw_cmd_backtest(int argc, char **argv)
{
    struct bt_args a = {0};
    struct pw_conf *conf = NULL;
    struct pw_terminology *term = NULL;
    struct pw_evaluator *ev = NULL;
    struct pw_bt_result res = {0};
    unsigned jobs = 1;
    struct pw_bt_opts o = {0};
    int64_t step_ms = 3600 * 1000;
    json_t *doc = NULL;
    char err[1024] = "";
    int rc = parse_args(argc, argv, &a);

    if (rc) {
        return rc > 0 ? 0 : 2;
    }
    /* The input's trees are parsed into jansson's page arena and dropped whole (backtest.h);
     * without it (no address space) they are malloc'd as anywhere else. */
    (void)pw_jarena_install();
    rc = 2;
    if (parse_when("--from", a.from, &o.from) < 0 || parse_when("--to", a.to, &o.to) < 0) {
        return 2;
    }
    if (a.step && (pw_conf_parse_duration(a.step, &step_ms) < 0 || step_ms < 1000)) {
        fprintf(stderr, "painwatch backtest: --step '%s' is not a duration of 1s or more\n",
                a.step);
        return 2;
    }
    o.step = step_ms / 1000;
    o.exhaustive = a.exhaustive;
    if (setup(&a, &conf, &term, &ev) < 0) {
        goto out;
    }
    o.ev = ev;
    o.lookback = 14 * 86400;
    if (conf && pw_conf_daemon(conf)->n_servers > 0) {
        /* the first server's source key (issue 20: the source adapter's own config) */
        const char *lb = json_string_value(pw_conf_get(conf, "servers[0].lookback"));
        int64_t ms = 0;
        if (lb && pw_conf_parse_duration(lb, &ms) == 0) {
            o.lookback = ms / 1000;
        }
    }
    if (a.lookback) {
        int64_t ms = 0;
        if (strcmp(a.lookback, "0") != 0 && pw_conf_parse_duration(a.lookback, &ms) < 0) {
            fprintf(stderr, "painwatch backtest: --lookback '%s' is not a duration\n", a.lookback);
            goto out;
        }
        o.lookback = ms / 1000;
    }
    if (synced_types(a.synced, 0, &o.synced) < 0) {
        goto out;
    }
    if (parse_jobs(a.jobs, &jobs) < 0) {
        goto out;
    }
    if (run_jobs(&a, &o, jobs, &res, err, sizeof(err)) < 0) {
        fprintf(stderr, "painwatch backtest: %s\n", err);
        goto out;
    }
    res.factor_set = pw_engine_factor_set(ev->engine);
    doc = pw_bt_result_json(&res);
    if (!doc) {
        fprintf(stderr, "painwatch backtest: out of memory\n");
        goto out;
    }
    if (pw_bt_doc_write(doc, a.format, a.out, err, sizeof(err)) < 0) {
        fprintf(stderr, "painwatch backtest: %s\n", err);
        goto out;
    }
    rc = 0;
out:
    json_decref(doc);
    pw_bt_result_cleanup(&res);
    pw_evaluator_free(ev);
    pw_terminology_free(term);
    pw_conf_free(conf);
    return rc;
}
