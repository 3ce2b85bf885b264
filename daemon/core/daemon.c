/* SPDX-License-Identifier: Apache-2.0 */
/*
 * painwatchd's run loop. Builds every component from the configuration in dependency order,
 * starts them, handles SIGHUP (reload), SIGTERM/SIGINT (orderly stop) and `--once`, and tears
 * everything down in reverse order (STYLE.md 3.4 for the HTTP part).
 */
#include "core/daemon.h"

#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>
#include <uv.h>

#include "core/outbox.h"
#include "core/pipeline.h"
#include "painwatch/audit.h"
#include "painwatch/auth.h"
#include "painwatch/check.h"
#include "painwatch/cohort.h"
#include "painwatch/conf.h"
#include "painwatch/engine.h"
#include "painwatch/err.h"
#include "painwatch/health.h"
#include "painwatch/http.h"
#include "painwatch/jarena.h"
#include "painwatch/log.h"
#include "painwatch/metrics.h"
#include "painwatch/normalize.h"
#include "painwatch/notify.h"
#include "painwatch/sink.h"
#include "painwatch/source.h"
#include "painwatch/store.h"
#include "painwatch/sync.h"
#include "painwatch/terminology.h"

#define DEFAULT_IDENTIFIER_SYSTEM "urn:painwatch:flag-episode"

struct daemon {
    uv_loop_t loop;
    bool once;
    bool stopping;
    bool cycle_done; /* --once: sync cycle and re-evaluation finished */
    bool sync_done;  /* --once: the sync cycle finished (its evaluation may still run) */
    int exit_code;
    char *config_path;

    struct pw_conf *conf;
    const struct pw_conf_daemon *cd;
    struct pw_terminology *term;
    struct pw_engine *engine;
    struct pw_norm_ctx norm;
    bool norm_ready;
    struct pw_store *store;
    struct pw_audit *audit;
    struct pw_http *http;
    struct pw_auth **auths; /* one per server, NULL for auth type none */
    size_t n_auths;
    struct pw_sink *sink;
    struct pw_outbox *outbox;
    struct pw_pipeline *pipeline;
    struct pw_sync *sync;
    struct pw_health *health;
    struct pw_watchdog watchdog;
    bool watchdog_on;

    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t reeval_timer;
    uv_idle_t eval_idle;      /* evaluation of due patients, a batch per loop turn */
    size_t eval_n;            /* patients evaluated in the current pass */
    bool eval_timed;          /* the pass was started by the re-evaluation timer */
    uv_timer_t stop_timer;    /* bounds the SIGTERM drain */
    uv_timer_t metrics_timer; /* gauges that are read, not pushed */
    bool handles_up;
    uint64_t trimmed_at; /* activity() when the heap was last trimmed */
};

/* ---- configuration ------------------------------------------------------------------------ */

static int load_conf(const char *path, struct pw_conf **out)
{
    struct pw_conf_errors errs = {0};
    const char *text;
    int rc;

    if (path) {
        rc = pw_conf_load_file(out, path, &errs);
    } else {
        text = pw_conf_default_yaml();
        rc = pw_conf_load_string(out, "<embedded default>", ".", text, strlen(text), &errs);
    }
    for (size_t i = 0; i < errs.n; i++) {
        fprintf(stderr, "%s\n", errs.lines[i]);
    }
    if (rc < 0 && errs.n == 0) {
        fprintf(stderr, "%s: %s\n", path ? path : "<embedded default>", pw_strerror(rc));
    }
    pw_conf_errors_cleanup(&errs);
    return rc;
}

/* Rule overrides: rules.<id>.enabled and rules.<id>.<param> (checked against the catalog). */
static int apply_rules(struct pw_engine *engine, const json_t *rules)
{
    const char *rid;
    const char *param;
    json_t *sec;
    json_t *val;
    /* jansson's iterators take a non-const tree: walk a private copy. */
    json_t *copy = json_deep_copy(rules);
    int rc = 0;

    if (!copy) {
        return PW_ENOMEM;
    }
    json_object_foreach(copy, rid, sec)
    {
        json_object_foreach(sec, param, val)
        {
            if (strcmp(param, "enabled") == 0) {
                rc = pw_engine_enable(engine, rid, json_is_true(val));
            } else {
                rc = pw_engine_set_param(engine, rid, param, json_number_value(val));
            }
            if (rc < 0) {
                pw_log_err(CONF, "rules.%s.%s: %s", rid, param, pw_strerror(rc));
                json_decref(copy);
                return PW_ECONFIG;
            }
        }
    }
    json_decref(copy);
    return rc;
}

/* "system|code" lists from the config replace normalize's defaults when given. */
static int apply_codes(struct pw_code_set *set, const char **codes, size_t n)
{
    if (n == 0) {
        return 0;
    }
    pw_code_set_clear(set);
    for (size_t i = 0; i < n; i++) {
        char sys[PW_CODE_MAX];
        const char *bar = strchr(codes[i], '|');
        const char *code = bar ? bar + 1 : codes[i];
        size_t sl = bar ? (size_t)(bar - codes[i]) : 0;

        if (sl >= sizeof(sys)) {
            return PW_ECONFIG;
        }
        memcpy(sys, codes[i], sl);
        sys[sl] = '\0';
        if (pw_code_set_add(set, sys, code) < 0) {
            return PW_ENOMEM;
        }
    }
    return 0;
}

/* ---- the audit key of the demo -------------------------------------------------------------- */

/*
 * Without audit.key_file (the embedded demo), a key is created under the state directory on
 * first start. A production site sets key_file (a systemd credential): a key beside the trail
 * protects against accidental edits, not against someone who can read the state directory.
 */
static int demo_audit_key(const char *state_dir, char *path, size_t n)
{
    unsigned char raw[32];
    char hex[65];
    struct stat st;
    int fd;

    snprintf(path, n, "%s/audit.key", state_dir);
    if (stat(path, &st) == 0) {
        return 0;
    }
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        return PW_EIO;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -errno;
    }
    if (write(fd, hex, 64) != 64 || fsync(fd) != 0) {
        close(fd);
        return PW_EIO;
    }
    close(fd);
    pw_log_notice(AUDIT, "created audit key %s (demo: set audit.key_file in production)", path);
    return 0;
}

static int mkdir_p(const char *dir)
{
    char buf[4096];
    size_t len = strlen(dir);

    if (len >= sizeof(buf)) {
        return PW_E2BIG;
    }
    memcpy(buf, dir, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0750) != 0 && errno != EEXIST) {
                return -errno;
            }
            *p = '/';
        }
    }
    if (mkdir(buf, 0750) != 0 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

static void dirname_of(const char *path, char *out, size_t n)
{
    const char *slash = strrchr(path, '/');

    if (!slash) {
        snprintf(out, n, ".");
        return;
    }
    snprintf(out, n, "%.*s", (int)(slash - path), path);
}

/* ---- building the components ---------------------------------------------------------------- */

static int build_clinical(struct daemon *d)
{
    char err[256] = "";
    char dir[4096];
    const char *tdir = d->cd->terminology_dir;
    int rc;

    if (!tdir) {
        if (pw_terminology_default_dir(dir, sizeof(dir)) < 0) {
            pw_log_err(CLIN, "no terminology directory found; set terminology_dir");
            return PW_ECONFIG;
        }
        tdir = dir;
    }
    rc = pw_terminology_load(&d->term, tdir, err, sizeof(err));
    if (rc < 0) {
        pw_log_err(CLIN, "terminology %s: %s", tdir, err[0] ? err : pw_strerror(rc));
        return rc;
    }
    rc = pw_engine_new(&d->engine, d->cd->factor_set);
    if (rc == 0 && d->cd->rules) {
        rc = apply_rules(d->engine, d->cd->rules);
    }
    if (rc == 0) {
        enum pw_scope scope = PW_SCOPE_PROBLEM_LIST;
        if (d->cd->scope && pw_scope_parse(d->cd->scope, &scope) < 0) {
            rc = PW_ECONFIG;
        }
        pw_engine_set_scope(d->engine, scope);
    }
    if (rc < 0) {
        return rc;
    }
    rc = pw_norm_ctx_init(&d->norm, d->term, d->cd->factor_set);
    if (rc < 0) {
        return rc;
    }
    d->norm_ready = true;
    rc = apply_codes(&d->norm.pain_intensity, d->cd->pain_codes.score, d->cd->pain_codes.n_score);
    if (rc == 0) {
        rc = apply_codes(&d->norm.neuropathic, d->cd->pain_codes.type, d->cd->pain_codes.n_type);
    }
    if (rc == 0) {
        rc = apply_codes(&d->norm.sedation_poss, d->cd->pain_codes.poss, d->cd->pain_codes.n_poss);
    }
    if (rc == 0) {
        rc = apply_codes(&d->norm.sedation_rass, d->cd->pain_codes.rass, d->cd->pain_codes.n_rass);
    }
    return rc;
}

static int build_state(struct daemon *d)
{
    struct pw_store_opts so = {
        .backend = d->cd->store.type, .dir = d->cd->state_dir, .path = d->cd->store.path};
    struct pw_audit_opts ao = {0};
    char keypath[4096];
    char auditdir[4096];
    int rc = mkdir_p(d->cd->state_dir);

    if (rc < 0) {
        pw_log_err(STORE, "state directory %s: %s", d->cd->state_dir, pw_strerror(rc));
        return rc;
    }
    rc = pw_store_open(&d->store, &so);
    if (rc < 0) {
        return rc;
    }
    dirname_of(d->cd->audit.path, auditdir, sizeof(auditdir));
    rc = mkdir_p(auditdir);
    if (rc == 0 && !d->cd->audit.key_file) {
        rc = demo_audit_key(d->cd->state_dir, keypath, sizeof(keypath));
    }
    if (rc < 0) {
        pw_log_err(AUDIT, "audit trail setup: %s", pw_strerror(rc));
        return rc;
    }
    ao.path = d->cd->audit.path;
    ao.key_path = d->cd->audit.key_file ? d->cd->audit.key_file : keypath;
    ao.device = d->cd->sink.flag_author ? d->cd->sink.flag_author : "Device/painwatch";
    ao.rotate_bytes = (uint64_t)d->cd->audit.rotate_size;
    ao.rotate_seconds = (uint64_t)(d->cd->audit.rotate_interval_ms / 1000);
    return pw_audit_open(&d->audit, &ao);
}

static int build_sink(struct daemon *d)
{
    struct pw_sink_conf sc = {0};
    const char *name = d->cd->shadow_mode ? "file" : d->cd->sink.type;

    sc.identifier_system =
        d->cd->sink.identifier_system ? d->cd->sink.identifier_system : DEFAULT_IDENTIFIER_SYSTEM;
    sc.author = d->cd->sink.flag_author ? d->cd->sink.flag_author : "Device/painwatch";
    sc.path = d->cd->sink.file;
    if (d->cd->shadow_mode) {
        pw_log_notice(SINK, "shadow mode: Flags go to %s, nothing is written to the EHR",
                      sc.path ? sc.path : "(no sink.file)");
    }
    return pw_sink_new(&d->sink, name, &sc);
}

/*
 * The SMART scope derived from a server's resources (issue 17): read Patient, Group, every
 * synced type and Flag, write Flag. @p buf holds the result.
 */
static const char *derived_scope(const struct pw_conf_server *s, char *buf, size_t size)
{
    size_t len = 0;
    int n = snprintf(buf, size, "system/Patient.read system/Group.read");
    len = n > 0 ? (size_t)n : 0;
    for (size_t k = 0; k < s->n_resources && len < size; k++) {
        n = snprintf(buf + len, size - len, " system/%s.read", s->resources[k]);
        len += n > 0 ? (size_t)n : 0;
    }
    if (len < size) {
        snprintf(buf + len, size - len, " system/Flag.read system/Flag.write");
    }
    return buf;
}

/* The types every server syncs (a patient may be on any of them): their intersection. */
static struct pw_synced synced_types(const struct pw_conf_daemon *cd)
{
    struct pw_synced s = {.known = true, .synced = PW_RES_ALL};
    for (size_t i = 0; i < cd->n_servers; i++) {
        unsigned bits = 0;
        for (size_t k = 0; k < cd->servers[i].n_resources; k++) {
            bits |= pw_res_type_bit(cd->servers[i].resources[k]);
        }
        s.synced &= bits;
    }
    return s;
}

static int build_auth(struct daemon *d, size_t i)
{
    const struct pw_conf_server *s = &d->cd->servers[i];
    const struct pw_conf_auth *ca = &s->auth;
    char scope[512];
    struct pw_auth_conf ac = {
        .type = ca->type,
        .server = s->name,
        .fhir_base = s->base_url,
        .token_endpoint = ca->token_url,
        .token_ca_file = s->ca_file,
        .client_id = ca->client_id,
        .scope = ca->scope ? ca->scope : derived_scope(s, scope, sizeof(scope)),
        .key_file = ca->private_key_file,
        .key_id = ca->kid,
        .alg = ca->alg,
        .secret_file = ca->client_secret_file,
        .secret_method = ca->client_secret_method,
        .token_file = ca->token_file,
    };
    int rc;

    if (!ca->type || strcmp(ca->type, "none") == 0) {
        return 0;
    }
    rc = pw_auth_new(&d->auths[i], d->http, &ac);
    if (rc < 0) {
        pw_log_err(AUTH, "server %s: %s authorization: %s", s->name, ca->type, pw_strerror(rc));
        return rc;
    }
    return 0;
}

/* The HTTP endpoints and their credentials: needed by the outbox and the sync alike. */
static int build_endpoints(struct daemon *d)
{
    d->auths = calloc(d->cd->n_servers ? d->cd->n_servers : 1, sizeof(*d->auths));
    if (!d->auths) {
        return PW_ENOMEM;
    }
    d->n_auths = d->cd->n_servers;
    for (size_t i = 0; i < d->cd->n_servers; i++) {
        const struct pw_conf_server *s = &d->cd->servers[i];
        struct pw_http_server hs = {
            .name = s->name,
            .origin = s->base_url,
            .ca_file = s->ca_file,
            .client_cert = s->client_cert_file,
            .client_key = s->client_key_file,
            .max_concurrent = (unsigned)s->max_concurrent,
            .connect_timeout_ms = s->connect_timeout_ms,
            .timeout_ms = s->timeout_ms,
            .body_max = (size_t)s->body_max,
        };
        int rc = pw_http_server_add(d->http, &hs);

        if (rc < 0) {
            pw_log_err(HTTP, "server %s: %s", s->name, pw_strerror(rc));
            return rc;
        }
        rc = build_auth(d, i);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* Each server's cohort and searches, handed to the sync engine. */
static int build_servers(struct daemon *d)
{
    for (size_t i = 0; i < d->cd->n_servers; i++) {
        const struct pw_conf_server *s = &d->cd->servers[i];
        struct pw_source_conf sc;
        struct pw_cohort *cohort = NULL;
        char err[256] = "";
        int rc = pw_cohort_from_daemon(&cohort, &s->cohort, err, sizeof(err));

        if (rc < 0) {
            pw_log_err(SYNC, "server %s cohort: %s", s->name, err[0] ? err : pw_strerror(rc));
            return rc;
        }
        rc = pw_source_conf_from_daemon(&sc, s, &d->cd->pain_codes, err, sizeof(err));
        if (rc == 0) {
            rc = pw_sync_add_server(d->sync, &sc, cohort, d->auths[i]);
        } else {
            pw_cohort_free(cohort);
        }
        pw_source_conf_cleanup(&sc);
        if (rc < 0) {
            pw_log_err(SYNC, "server %s: %s", s->name, err[0] ? err : pw_strerror(rc));
            return rc;
        }
    }
    return 0;
}

static void on_outbox_idle(void *arg, bool pending_later);

static int build_outbox(struct daemon *d)
{
    const struct pw_conf_server *s = d->cd->n_servers ? &d->cd->servers[0] : NULL;
    struct pw_outbox_conf oc = {0};

    /*
     * Flags go to the first server. Resources are kept by (type, id) and patients as
     * "Patient/<id>" whatever server they came from: servers of one instance must share their
     * patient ids (replicas, a facade over the same EHR), else run one painwatchd per EHR.
     */
    if (d->cd->n_servers > 1) {
        pw_log_warn(MAIN,
                    "%zu servers configured: patients are matched by id across them and Flags "
                    "are written to %s only; run one painwatchd per EHR unless they share "
                    "patient ids",
                    d->cd->n_servers, s->name);
    }
    oc.store = d->store;
    oc.sink = d->sink;
    oc.http = d->http;
    oc.auth = d->n_auths ? d->auths[0] : NULL;
    oc.server = s ? s->name : NULL;
    oc.base_url = s ? s->base_url : NULL;
    oc.conditional_create = false; /* set from /metadata once the servers are checked */
    oc.max_attempts = (unsigned)d->cd->outbox.max_attempts;
    oc.audit = d->audit;
    oc.backoff_base_ms = (uint64_t)d->cd->outbox.retry_base_ms;
    oc.backoff_cap_ms = (uint64_t)d->cd->outbox.retry_cap_ms;
    oc.on_idle = on_outbox_idle;
    oc.on_idle_arg = d;
    return pw_outbox_new(&d->outbox, &d->loop, &oc);
}

static void on_patients_due(void *arg);

static int build_pipeline(struct daemon *d)
{
    struct pw_pipeline_conf pc = {0};
    struct pw_sync_consumer consumer;
    int rc;

    pc.store = d->store;
    pc.engine = d->engine;
    pc.norm = &d->norm;
    pc.sink = d->sink;
    pc.identifier_system =
        d->cd->sink.identifier_system ? d->cd->sink.identifier_system : DEFAULT_IDENTIFIER_SYSTEM;
    pc.audit = d->audit;
    pc.outbox = d->outbox;
    pc.reevaluate_ms = d->cd->reevaluate_interval_ms;
    pc.on_due = on_patients_due;
    pc.on_due_arg = d;
    pc.synced = synced_types(d->cd);
    if (pc.synced.synced != PW_RES_ALL) {
        char off[256] = "";
        size_t len = 0;
        size_t nrules = 0;
        const struct pw_rule *const *rules = pw_rules_all(&nrules);
        for (size_t k = 0; k < nrules && len < sizeof(off); k++) {
            if (rules[k]->absence & ~pc.synced.synced) {
                int n =
                    snprintf(off + len, sizeof(off) - len, "%s%s", len ? ", " : "", rules[k]->id);
                len += n > 0 ? (size_t)n : 0;
            }
        }
        if (off[0]) {
            pw_log_notice(CLIN,
                          "rules off for every patient (a type they rest on is not in every "
                          "server's resources): %s",
                          off);
        }
    }
    rc = pw_pipeline_new(&d->pipeline, &pc);
    if (rc < 0) {
        return rc;
    }
    pw_pipeline_consumer(d->pipeline, &consumer);
    return pw_sync_new(&d->sync, &d->loop, d->http, &consumer);
}

/* ---- readiness --------------------------------------------------------------------------------
 */

static bool check_store(void *arg, char *detail, size_t size)
{
    struct daemon *d = arg;
    snprintf(detail, size, "%s", d->store ? "open" : "closed");
    return d->store != NULL;
}

static bool check_audit(void *arg, char *detail, size_t size)
{
    struct daemon *d = arg;
    bool ok = d->audit && pw_audit_writable(d->audit);
    snprintf(detail, size, "%s", ok ? "writable" : "NOT writable: EHR writes are held");
    return ok;
}

static bool check_servers(void *arg, char *detail, size_t size)
{
    struct daemon *d = arg;
    bool ok = true;
    size_t off = 0;

    detail[0] = '\0';
    for (size_t i = 0; i < d->cd->n_servers && off < size; i++) {
        struct pw_sync_health h;
        const char *name = d->cd->servers[i].name;
        if (pw_sync_health(d->sync, name, &h) == 0) {
            ok = ok && !h.unhealthy;
            int w = snprintf(detail + off, size - off, "%s%s=%s", i ? " " : "", name,
                             h.unhealthy ? "unhealthy" : "ok");
            off += w > 0 ? (size_t)w : 0;
        }
    }
    return ok;
}

/* ---- gauges ------------------------------------------------------------------------------------
 */

static int count_row(void *arg, const struct pw_outbox_row *row)
{
    (void)row;
    (*(size_t *)arg)++;
    return 0;
}

static void refresh_gauges(struct daemon *d)
{
    size_t pending = 0;
    size_t dead = 0;

    pw_store_outbox_list(d->store, PW_OUTBOX_PENDING, count_row, &pending);
    pw_store_outbox_list(d->store, PW_OUTBOX_DEAD, count_row, &dead);
    pw_metric_set(PW_M_OUTBOX_DEPTH, (double)pending, NULL);
    pw_metric_set(PW_M_DEAD_LETTERS, (double)dead, NULL);
    pw_metric_set(PW_M_AUDIT_WRITABLE, pw_audit_writable(d->audit) ? 1 : 0, NULL);
    for (size_t i = 0; i < d->cd->n_servers; i++) {
        struct pw_sync_health h;
        if (pw_sync_health(d->sync, d->cd->servers[i].name, &h) == 0) {
            pw_metric_set(PW_M_SERVER_UP, h.unhealthy ? 0 : 1, d->cd->servers[i].name, NULL);
        }
    }
}

static void on_metrics_timer(uv_timer_t *t)
{
    refresh_gauges(container_of(t, struct daemon, metrics_timer));
}

/* ---- run control ------------------------------------------------------------------------------
 */

static void on_walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static void begin_stop(struct daemon *d, int exit_code);
static void on_stop_timer(uv_timer_t *t);

/* Work done so far: it only grows, so a change means something ran since the last look. */
static uint64_t activity(const struct daemon *d)
{
    struct pw_pipeline_stats ps;
    const struct pw_http_stats *hs = pw_http_stats_get(d->http);

    pw_pipeline_stats(d->pipeline, &ps);
    return ps.pages + ps.patients_evaluated + hs->requests;
}

/*
 * Between polls the daemon holds nothing a cycle needs, but it stayed at the cycle's size
 * (issue 9, B3): glibc keeps what a cycle freed (page trees, HTTP bodies; a few long-lived
 * blocks allocated late pin the top of the heap: ~8 MB at 1,000 patients), and SQLite keeps its
 * page cache full (2 MB). Once the daemon is idle after work (the outbox has nothing in flight,
 * no sync cycle is open), the store drops its cache and malloc_trim(0) hands the free pages
 * back, inside the heap too. About a millisecond once per burst of work; idle reports without
 * new work (every outbox scan) do nothing.
 */
static void trim_if_idle(struct daemon *d)
{
    uint64_t now = activity(d);

    if (now == d->trimmed_at || pw_pipeline_cycle_open(d->pipeline) ||
        uv_is_active((uv_handle_t *)&d->eval_idle)) {
        return;
    }
    d->trimmed_at = now;
    pw_store_release_memory(d->store);
    pw_jarena_release();
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

static void on_outbox_idle(void *arg, bool pending_later)
{
    struct daemon *d = arg;

    if (d->stopping && !d->once) {
        /* SIGTERM: nothing in flight any more, so nothing is left to finish; what is queued
         * stays pending in the store. No need to sit out the rest of shutdown_timeout. */
        uv_timer_start(&d->stop_timer, on_stop_timer, 0, 0);
        return;
    }
    if (d->once && d->cycle_done && !d->stopping) {
        if (pending_later) {
            pw_log_notice(MAIN, "--once: rows waiting for a retry stay queued for the next run");
        }
        begin_stop(d, 0);
        return;
    }
    if (!d->stopping && !d->once) {
        trim_if_idle(d);
    }
}

/* --once: the sync cycle and its evaluation are both finished. */
static void once_cycle_done(struct daemon *d)
{
    struct pw_pipeline_stats ps;

    pw_pipeline_stats(d->pipeline, &ps);
    pw_log_notice(
        MAIN,
        "cycle done: %llu page(s), %llu resource(s), %llu evaluation(s), %llu finding(s), "
        "%llu Flag write(s) queued",
        (unsigned long long)ps.pages, (unsigned long long)ps.resources,
        (unsigned long long)ps.patients_evaluated, (unsigned long long)ps.findings,
        (unsigned long long)ps.flags_planned);
    d->cycle_done = true;
    pw_outbox_kick(d->outbox);
}

/*
 * One batch of due patients per loop turn (an idle handle keeps the loop from blocking in
 * between): the Flags of one batch are delivered while the next is judged, and a catch-up of
 * many patients never holds the loop (HTTP, the health listener, the watchdog) for its whole
 * evaluation.
 */
static void on_eval_idle(uv_idle_t *h)
{
    struct daemon *d = container_of(h, struct daemon, eval_idle);
    size_t n = 0;
    bool more = false;

    pw_pipeline_reevaluate_step(d->pipeline, &n, &more);
    d->eval_n += n;
    if (more && !d->stopping) {
        return;
    }
    uv_idle_stop(h);
    if (d->eval_n > 0) {
        pw_log_info(CLIN, "%s of %zu patient(s)",
                    d->eval_timed ? "time-driven re-evaluation" : "evaluation after a sync cycle",
                    d->eval_n);
    }
    d->eval_n = 0;
    d->eval_timed = false;
    if (d->once && d->sync_done && !d->cycle_done && !d->stopping) {
        once_cycle_done(d);
    }
}

static void eval_start(struct daemon *d, bool timed)
{
    if (d->stopping || uv_is_active((uv_handle_t *)&d->eval_idle)) {
        return;
    }
    d->eval_timed = timed;
    uv_idle_start(&d->eval_idle, on_eval_idle);
}

/* A server's cycle ended: its patients are due (pipeline on_due). */
static void on_patients_due(void *arg)
{
    eval_start(arg, false);
}

static void on_reeval_timer(uv_timer_t *t)
{
    struct daemon *d = container_of(t, struct daemon, reeval_timer);

    if (pw_pipeline_cycle_open(d->pipeline)) {
        return; /* the cycle's end evaluates, with every resource type in */
    }
    eval_start(d, true);
}

static void on_cycle_done(void *arg, int err, unsigned failed)
{
    struct daemon *d = arg;

    if (err < 0 || failed > 0) {
        pw_log_warn(SYNC, "sync cycle: %s, %u stream(s) failed", pw_strerror(err), failed);
        d->exit_code = 1;
    }
    d->sync_done = true;
    /* Each server's cycle end started the evaluation; its end reports the cycle. Without one
     * running, a pass of its own evaluates whatever is due (an earlier run's leftovers). */
    eval_start(d, false);
}

static void on_servers_checked(void *arg, int err, unsigned failed)
{
    struct daemon *d = arg;
    int rc;

    if (d->stopping) {
        return;
    }
    if (err == PW_ECONFIG) {
        pw_log_crit(MAIN, "%u server(s) cannot work with this configuration", failed);
        begin_stop(d, 2);
        return;
    }
    if (err < 0) {
        /* An unreachable EHR at start is not fatal: the scheduler retries with backoff. */
        pw_log_warn(MAIN, "server check: %s; continuing, the sync retries", pw_strerror(err));
    }
    if (d->cd->n_servers > 0) {
        struct pw_sync_health h;
        if (pw_sync_health(d->sync, d->cd->servers[0].name, &h) == 0 && h.capability_known) {
            pw_outbox_set_conditional_create(d->outbox, h.conditional_create);
        }
    }
    pw_notify_ready("ready");
    rc = pw_outbox_start(d->outbox);
    if (rc < 0) {
        pw_log_err(OUTBOX, "start: %s", pw_strerror(rc));
    }
    if (d->once) {
        rc = pw_sync_run_once(d->sync, on_cycle_done, d);
    } else {
        rc = pw_sync_start(d->sync);
        if (rc == 0) {
            uint64_t every = (uint64_t)d->cd->reevaluate_interval_ms;
            rc = uv_timer_start(&d->reeval_timer, on_reeval_timer, every, every);
        }
    }
    if (rc < 0) {
        pw_log_crit(MAIN, "cannot start the sync: %s", pw_strerror(rc));
        begin_stop(d, 1);
    }
}

static void on_stop_timer(uv_timer_t *t)
{
    struct daemon *d = container_of(t, struct daemon, stop_timer);
    uv_stop(&d->loop);
}

static void begin_stop(struct daemon *d, int exit_code)
{
    if (d->stopping) {
        return;
    }
    d->stopping = true;
    if (exit_code > d->exit_code) {
        d->exit_code = exit_code;
    }
    pw_notify_stopping();
    if (d->sync) {
        pw_sync_stop(d->sync);
    }
    uv_timer_stop(&d->reeval_timer);
    uv_idle_stop(&d->eval_idle); /* what is still due stays marked in the store */
    uv_timer_stop(&d->metrics_timer);
    /* In-flight deliveries get a bounded time to finish; whatever is left stays pending in the
     * store and resumes at the next start. */
    uv_timer_start(&d->stop_timer, on_stop_timer,
                   d->once ? 0 : (uint64_t)d->cd->shutdown_timeout_ms, 0);
    if (!d->once && d->outbox) {
        /* Its next idle report (nothing in flight) ends the drain early: on_outbox_idle. */
        pw_outbox_kick(d->outbox);
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct daemon *d = s->data;

    if (signum == SIGHUP) {
        struct pw_conf *conf = NULL;
        pw_notify_reloading();
        /* logrotate's SIGHUP: the trail is reopened whatever becomes of the configuration. */
        pw_audit_reopen(d->audit);
        if (load_conf(d->config_path, &conf) < 0) {
            pw_log_err(CONF, "reload refused: the new configuration is invalid; keeping the old");
            pw_metric_inc(PW_M_CONFIG_RELOADS, "error", NULL);
        } else {
            const struct pw_conf_daemon *ncd = pw_conf_daemon(conf);
            int lvl = pw_log_level_from_name(ncd->log_level);
            if (lvl >= 0) {
                pw_log_set_level(lvl);
            }
            if (ncd->rules) {
                if (apply_rules(d->engine, ncd->rules) < 0) {
                    pw_log_err(CONF, "reload: rule settings refused");
                }
            }
            pw_audit_event(d->audit, "config-loaded", 'E', PW_AUDIT_SUCCESS, "reload",
                           json_pack("{s:{s:s}}", "painwatch", "config_hash", pw_conf_hash(conf)));
            pw_log_notice(CONF,
                          "reloaded (log level, rule settings; server changes need a restart)");
            pw_metric_inc(PW_M_CONFIG_RELOADS, "ok", NULL);
            pw_conf_free(conf);
        }
        pw_notify_ready("ready");
        return;
    }
    pw_log_notice(MAIN, "signal %d: stopping", signum);
    begin_stop(d, 0);
}

static int start_handles(struct daemon *d)
{
    int rc = uv_signal_init(&d->loop, &d->sig_term);

    if (rc == 0) {
        rc = uv_signal_init(&d->loop, &d->sig_int);
    }
    if (rc == 0) {
        rc = uv_signal_init(&d->loop, &d->sig_hup);
    }
    if (rc == 0) {
        rc = uv_timer_init(&d->loop, &d->reeval_timer);
    }
    if (rc == 0) {
        rc = uv_idle_init(&d->loop, &d->eval_idle);
    }
    if (rc == 0) {
        rc = uv_timer_init(&d->loop, &d->stop_timer);
    }
    if (rc == 0) {
        rc = uv_timer_init(&d->loop, &d->metrics_timer);
    }
    if (rc < 0) {
        return rc;
    }
    if (!d->once) {
        uv_timer_start(&d->metrics_timer, on_metrics_timer, 0, 5000);
    }
    d->handles_up = true;
    d->sig_term.data = d->sig_int.data = d->sig_hup.data = d;
    uv_signal_start(&d->sig_term, on_signal, SIGTERM);
    uv_signal_start(&d->sig_int, on_signal, SIGINT);
    uv_signal_start(&d->sig_hup, on_signal, SIGHUP);
    return 0;
}

static void teardown(struct daemon *d)
{
    /* Producers first, then the HTTP core (cancels what is in flight; callbacks run), then the
     * loop's own handles; the store and the audit trail close last: late callbacks use them. */
    if (d->health) {
        pw_health_close(d->health);
    }
    if (d->watchdog_on) {
        pw_watchdog_close(&d->watchdog);
    }
    pw_sync_free(d->sync);
    pw_outbox_close(d->outbox);
    for (size_t i = 0; i < d->n_auths; i++) {
        pw_auth_free(d->auths[i]); /* before the HTTP core: see auth.h */
    }
    free(d->auths);
    pw_http_free(d->http);
    uv_walk(&d->loop, on_walk_close, NULL);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&d->loop) != 0) {
        pw_log_crit(MAIN, "loop did not close cleanly");
    }
    pw_pipeline_free(d->pipeline);
    pw_sink_free(d->sink);
    if (d->audit) {
        pw_audit_event(d->audit, "stop", 'E', PW_AUDIT_SUCCESS, "painwatchd stopped", NULL);
    }
    pw_audit_free(d->audit);
    pw_store_close(d->store);
    if (d->norm_ready) {
        pw_norm_ctx_cleanup(&d->norm);
    }
    pw_engine_free(d->engine);
    pw_terminology_free(d->term);
    pw_conf_free(d->conf);
    free(d->config_path);
}

int pw_daemon_run(const struct pw_daemon_opts *opts)
{
    struct daemon d;
    int lvl;
    int rc;

    memset(&d, 0, sizeof(d));
    d.once = opts->once;
    signal(SIGPIPE, SIG_IGN); /* a peer closing a socket must not kill the daemon */
    if (opts->config_path) {
        d.config_path = strdup(opts->config_path);
    }
    if (load_conf(opts->config_path, &d.conf) < 0) {
        free(d.config_path);
        return 2;
    }
    d.cd = pw_conf_daemon(d.conf);
    lvl = pw_log_level_from_name(d.cd->log_level);
    if (lvl >= 0 && !getenv("PAINWATCH_LOG_LEVEL")) {
        pw_log_set_level(lvl);
    }
    rc = uv_loop_init(&d.loop);
    if (rc < 0) {
        pw_conf_free(d.conf);
        free(d.config_path);
        return 1;
    }
    rc = build_clinical(&d);
    if (rc == 0) {
        rc = build_state(&d);
    }
    if (rc == 0) {
        pw_audit_event(d.audit, "start", 'E', PW_AUDIT_SUCCESS, "painwatchd started",
                       json_pack("{s:{s:s}}", "painwatch", "version", PW_VERSION));
        rc = pw_audit_event(
            d.audit, "config-loaded", 'E', PW_AUDIT_SUCCESS, pw_conf_source(d.conf),
            json_pack("{s:{s:s}}", "painwatch", "config_hash", pw_conf_hash(d.conf)));
    }
    if (rc == 0) {
        rc = pw_http_new(&d.http, &d.loop);
    }
    if (rc == 0) {
        rc = build_endpoints(&d);
    }
    if (rc == 0) {
        rc = build_sink(&d);
    }
    if (rc == 0) {
        rc = build_outbox(&d);
    }
    if (rc == 0) {
        rc = build_pipeline(&d);
    }
    if (rc == 0) {
        rc = build_servers(&d);
    }
    if (rc == 0) {
        rc = start_handles(&d);
    }
    if (rc == 0 && d.cd->health.enabled && !d.once) {
        rc = pw_health_new(&d.health, &d.loop, d.cd->health.listen);
        if (rc == 0) {
            pw_health_add_check(d.health, "store", check_store, &d);
            pw_health_add_check(d.health, "audit", check_audit, &d);
            pw_health_add_check(d.health, "servers", check_servers, &d);
        }
    }
    if (rc == 0 && !d.once && pw_watchdog_start(&d.watchdog, &d.loop) == 0) {
        d.watchdog_on = true;
    }
    if (rc == 0) {
        pw_notify_status("checking servers");
        rc = pw_sync_check_servers(d.sync, on_servers_checked, &d);
    }
    if (rc < 0) {
        pw_log_crit(MAIN, "startup failed: %s", pw_strerror(rc));
        d.exit_code = rc == PW_ECONFIG ? 2 : 1;
    } else {
        uv_run(&d.loop, UV_RUN_DEFAULT);
    }
    teardown(&d);
    return d.exit_code;
}
