/* SPDX-License-Identifier: Apache-2.0 */
/*
 * painwatchd's run loop. Builds every component from the configuration in dependency order,
 * starts them, handles SIGHUP (reload), SIGTERM/SIGINT (orderly stop) and `--once`, and tears
 * everything down in reverse order (STYLE.md 3.4 for the HTTP part).
 */
#include "core/daemon.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>
#include <uv.h>

#include "core/conf_server.h"
#include "core/conf_validate.h"
#include "core/control.h"
#include "core/outbox.h"
#include "core/pipeline.h"
#include "painwatch/array.h"
#include "painwatch/audit.h"
#include "painwatch/auth.h"
#include "painwatch/cds_hooks.h"
#include "painwatch/check.h"
#include "painwatch/cohort.h"
#include "painwatch/conf.h"
#include "painwatch/datetime.h"
#include "painwatch/defaults.h"
#include "painwatch/engine.h"
#include "painwatch/err.h"
#include "painwatch/evaluate.h"
#include "painwatch/health.h"
#include "painwatch/hex.h"
#include "painwatch/http.h"
#include "painwatch/jarena.h"
#include "painwatch/log.h"
#include "painwatch/metrics.h"
#include "painwatch/normalize.h"
#include "painwatch/notify.h"
#include "painwatch/rule.h"
#include "painwatch/sink.h"
#include "painwatch/source.h"
#include "painwatch/store.h"
#include "painwatch/sync.h"
#include "painwatch/terminology.h"

/* The kill switch's state in the store's meta table: "1" paused, "0" (or absent) writing. */
#define META_WRITES_PAUSED    "writes_paused"
#define META_WRITES_PAUSED_BY "writes_paused_by" /* "uid <n> at <ISO time>" */

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
    struct pw_evaluator *eval; /* engine + normalization; a reload replaces eval->engine */
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

    /* issue 19: the kill switch */
    struct pw_control *control;
    bool writes_paused;
    char paused_by[96]; /* "uid <n> at <time>" */
    bool ready_sent;

    /* issue 19: reload */
    struct pw_sink *sink_old;   /* still the outbox's until pw_outbox_swap_sink() completes */
    struct pw_conf **old_confs; /* configurations replaced by reloads: components built from */
    size_t n_old_confs;         /* them may still borrow their strings; freed at exit */
    struct pw_auth **retired;   /* auths replaced by reloads, freed once nothing in flight */
    size_t n_retired;           /* uses them (sweep_retired) */

    /* issue 19: READY waits for every server's /metadata, or the startup deadline */
    uv_timer_t check_timer;
    uv_timer_t retain_timer; /* audit.retain: hourly */
    uint64_t ready_deadline; /* uv_now() at which READY goes out with servers down */
    unsigned check_tries;
    char down[256]; /* servers without a /metadata answer at READY, "" when none */

    /* issue 21: what the first server's /metadata says about the write targets */
    struct pw_sink_caps write_caps;
    struct pw_cds_hooks *cds; /* issue 21: the CDS Hooks service, when enabled */
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
    pw_hex_encode(raw, sizeof(raw), hex);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -errno;
    }
    if (write(fd, hex, 64) != 64 || fsync(fd) != 0) {
        close(fd);
        return PW_EIO;
    }
    close(fd);
    pw_log_notice(AUDIT,
                  "created audit key %s (audit.allow_local_key: a demo; in production set "
                  "audit.key_file to a credential outside the state directory)",
                  path);
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

/* ---- audit retention (issue 19) --------------------------------------------------------------
 */

struct rotated {
    char path[4200];
    uint64_t seq;
    unsigned k;
    time_t mtime;
};

static int rotated_cmp(const void *a, const void *b)
{
    const struct rotated *x = a;
    const struct rotated *y = b;

    if (x->seq != y->seq) {
        return x->seq < y->seq ? -1 : 1;
    }
    return x->k < y->k ? -1 : x->k > y->k;
}

/* At most this many files are verified and deleted per pass (the loop is not held long). */
#define RETAIN_PER_PASS 4

/*
 * audit.retain: rotated trail files ("<path>.<seq>[.<k>]") older than the retention are deleted,
 * oldest first, only after they verify together with the file that follows them (their HMACs and
 * the link into what is kept). A file that does not verify stops the deletion and is reported:
 * evidence of tampering is never thrown away.
 */
static void audit_retain(struct daemon *d)
{
    char dir[4096];
    const char *base = strrchr(d->cd->audit.path, '/');
    size_t blen;
    struct rotated *list = NULL;
    size_t n = 0;
    size_t cap = 0;
    size_t old = 0;
    time_t cutoff = time(NULL) - (time_t)(d->cd->audit.retain_ms / 1000);
    DIR *dh;

    if (d->cd->audit.retain_ms <= 0) {
        return;
    }
    dirname_of(d->cd->audit.path, dir, sizeof(dir));
    base = base ? base + 1 : d->cd->audit.path;
    blen = strlen(base);
    dh = opendir(dir);
    if (!dh) {
        return;
    }
    for (struct dirent *e; (e = readdir(dh));) {
        struct rotated r = {0};
        struct stat st;
        char *end;

        if (strncmp(e->d_name, base, blen) != 0 || e->d_name[blen] != '.' ||
            !isdigit((unsigned char)e->d_name[blen + 1])) {
            continue;
        }
        r.seq = strtoull(e->d_name + blen + 1, &end, 10);
        if (*end == '.' && isdigit((unsigned char)end[1])) {
            r.k = (unsigned)strtoul(end + 1, &end, 10);
        }
        if (*end) {
            continue; /* e.g. a compressed copy: not ours to judge */
        }
        snprintf(r.path, sizeof(r.path), "%s/%s", dir, e->d_name);
        if (stat(r.path, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        r.mtime = st.st_mtime;
        if (pw_array_reserve_from(&list, &cap, n + 1, sizeof(*list), 16) != 0) {
            break;
        }
        list[n++] = r;
    }
    closedir(dh);
    if (n > 0) {
        qsort(list, n, sizeof(*list), rotated_cmp);
    }
    /* The newest rotated file stays: the old ones verify into it, never into the live file
     * being written. */
    while (old + 1 < n && old < RETAIN_PER_PASS && list[old].mtime < cutoff) {
        old++;
    }
    if (old > 0) {
        unsigned char *key = NULL;
        size_t key_len = 0;
        const char *files[RETAIN_PER_PASS + 1];
        struct pw_audit_verdict v;
        char keypath[4096];
        int rc;

        snprintf(keypath, sizeof(keypath), "%s/audit.key", d->cd->state_dir);
        rc = pw_audit_key_load(d->cd->audit.key_file ? d->cd->audit.key_file : keypath, &key,
                               &key_len);
        for (size_t i = 0; i < old; i++) {
            files[i] = list[i].path;
        }
        /* ...and the rotated file they link into. */
        files[old] = list[old].path;
        memset(&v, 0, sizeof(v));
        if (rc == 0) {
            rc = pw_audit_verify_files(key, key_len, files, old + 1, &v);
        }
        pw_audit_key_free(key, key_len);
        if (rc < 0) {
            pw_log_crit(AUDIT, "audit.retain: %zu old trail file(s) NOT deleted: %s:%ld: %s", old,
                        v.file[0] ? v.file : files[0], v.line, v.why[0] ? v.why : pw_strerror(rc));
        } else {
            for (size_t i = 0; i < old; i++) {
                if (unlink(list[i].path) == 0) {
                    pw_audit_event(d->audit, "trail-file-retired", 'D', PW_AUDIT_SUCCESS,
                                   "audit.retain: a rotated trail file past retention, verified",
                                   json_pack("{s:{s:s,s:I}}", "painwatch", "file", list[i].path,
                                             "seq", (json_int_t)list[i].seq));
                    pw_log_notice(AUDIT, "audit.retain: deleted %s (verified, past retention)",
                                  list[i].path);
                }
            }
        }
    }
    free(list);
}

static void on_retain_timer(uv_timer_t *t)
{
    audit_retain(container_of(t, struct daemon, retain_timer));
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
    if (rc == 0) {
        rc = pw_terminology_load_site(d->term, d->cd->mme_route_factors_file,
                                      d->cd->dose_limits_file, err, sizeof(err));
    }
    if (rc < 0) {
        pw_log_err(CLIN, "terminology %s: %s", tdir, err[0] ? err : pw_strerror(rc));
        return rc;
    }
    struct pw_eval_opts eo = {.cd = d->cd, .term = d->term};
    rc = pw_evaluator_new(&d->eval, &eo, err, sizeof(err));
    if (rc < 0) {
        pw_log_err(CONF, "%s", err[0] ? err : pw_strerror(rc));
        return rc;
    }
    return 0;
}

static int build_state(struct daemon *d)
{
    struct pw_store_opts so = {.dir = d->cd->state_dir, .section = d->cd->store.section};
    struct pw_audit_opts ao = {0};
    char keypath[4096];
    char auditdir[4096];
    char why[1024];
    int rc = pw_conf_check_audit_key(d->cd, why, sizeof(why));

    if (rc < 0) {
        pw_log_crit(AUDIT, "%s", why);
        return rc;
    }
    rc = mkdir_p(d->cd->state_dir);
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
    ao.device = json_string_value(json_object_get(d->cd->sink.section, "flag_author"));
    ao.device = ao.device ? ao.device : PW_FLAG_AUTHOR;
    ao.rotate_bytes = (uint64_t)d->cd->audit.rotate_size;
    ao.rotate_seconds = (uint64_t)(d->cd->audit.rotate_interval_ms / 1000);
    return pw_audit_open(&d->audit, &ao);
}

static int make_sink(const struct pw_conf_daemon *cd, struct pw_sink **out)
{
    int rc =
        pw_sink_from_conf(out, cd->sink.section, cd->shadow_mode ? pw_sink_shadow_type() : NULL,
                          cd->rule_code_system);

    if (rc == 0 && cd->shadow_mode) {
        pw_log_notice(SINK, "shadow mode: Flags go to %s, nothing is written to the EHR",
                      (*out)->path ? (*out)->path : "(no sink.file)");
    }
    return rc;
}

static int build_sink(struct daemon *d)
{
    return make_sink(d->cd, &d->sink);
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

/* CDS Hooks: the types the pipeline could read for @p patient (the daemon's own evaluation). */
static void cds_synced_for(void *arg, const char *patient, struct pw_synced *out)
{
    const struct daemon *d = arg;

    if (d->pipeline) {
        pw_pipeline_synced_for(d->pipeline, patient, out);
    }
}

/* The auth of server @p s into @p *out (NULL for type none). */
static int make_auth(struct pw_http *http, const struct pw_conf_server *s, const json_t *sink,
                     struct pw_auth **out)
{
    const struct pw_conf_adapter_ref *ca = &s->auth;
    char scope[512];
    struct pw_auth_conf ac = pw_conf_server_auth(s, sink, scope, sizeof(scope));
    int rc;

    if (!ca->type || strcmp(ca->type, "none") == 0) {
        return 0;
    }
    rc = pw_auth_new(out, http, &ac);
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
        struct pw_http_server hs = pw_conf_server_http(s);
        int rc = pw_http_server_add(d->http, &hs);

        if (rc < 0) {
            pw_log_err(HTTP, "server %s: %s", s->name, pw_strerror(rc));
            return rc;
        }
        rc = make_auth(d->http, s, d->cd->sink.section, &d->auths[i]);
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
        struct pw_sync_conf sc;
        struct pw_source *source = NULL;
        struct pw_cohort *cohort = NULL;
        char err[256] = "";
        int rc = pw_cohort_new(&cohort, s->cohort.section, err, sizeof(err));

        if (rc < 0) {
            pw_log_err(SYNC, "server %s cohort: %s", s->name, err[0] ? err : pw_strerror(rc));
            return rc;
        }
        rc = pw_source_from_conf(&source, json_array_get(pw_conf_get(d->conf, "servers"), i), s,
                                 &d->cd->pain_codes, d->cd->sink.section, err, sizeof(err));
        if (rc == 0) {
            pw_sync_conf_from_daemon(&sc, s);
            rc = pw_sync_add_server(d->sync, &sc, source, cohort, d->auths[i]);
        } else {
            pw_cohort_free(cohort);
        }
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
    pc.engine = d->eval->engine;
    pc.norm = &d->eval->norm;
    pc.sink = d->sink;
    pc.identifier_system = d->sink->identifier_system;
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

static bool check_audit_chain(void *arg, char *detail, size_t size)
{
    struct daemon *d = arg;
    return d->store && pw_audit_chain_ready(d->store, detail, size);
}

/*
 * One answer for /readyz and painwatch_server_up: a server is down when its cycles keep failing,
 * or when its /metadata never answered and no cycle has succeeded since.
 */
static bool server_down(const struct daemon *d, size_t i)
{
    struct pw_sync_health h;

    if (pw_sync_health(d->sync, d->cd->servers[i].name, &h) != 0) {
        return true;
    }
    return h.unhealthy || (!h.capability_known && (h.cycles == 0 || h.consecutive_failures > 0));
}

static bool check_servers(void *arg, char *detail, size_t size)
{
    struct daemon *d = arg;
    bool ok = true;
    size_t off = 0;

    detail[0] = '\0';
    for (size_t i = 0; i < d->cd->n_servers && off < size; i++) {
        const char *name = d->cd->servers[i].name;
        bool down = server_down(d, i);
        ok = ok && !down;
        pw_metric_set(PW_M_SERVER_UP, down ? 0 : 1, name, NULL);
        int w = snprintf(detail + off, size - off, "%s%s=%s", i ? " " : "", name,
                         down ? "unhealthy" : "ok");
        off += w > 0 ? (size_t)w : 0;
    }
    return ok;
}

/* ---- the kill switch (issue 19) ---------------------------------------------------------------
 */

/* The STATUS= line: what an operator must know at a glance. */
static void status_line(const struct daemon *d, const char *state, char *out, size_t cap)
{
    char head[320];

    if (d->down[0]) {
        snprintf(head, sizeof(head), "%s; servers down: %s", state, d->down);
        state = head;
    }
    if (d->writes_paused) {
        snprintf(out, cap, "%s; EHR writes PAUSED (%s): painwatch writes resume", state,
                 d->paused_by[0] ? d->paused_by : "by an operator");
    } else if (d->cd->shadow_mode) {
        snprintf(out, cap, "%s; shadow mode: Flags go to the shadow file, not the EHR", state);
    } else {
        snprintf(out, cap, "%s", state);
    }
}

static void notify_state(const struct daemon *d)
{
    char line[256];

    status_line(d, d->ready_sent ? "ready" : "starting", line, sizeof(line));
    pw_notify_status("%s", line);
    pw_metric_set(PW_M_WRITES_PAUSED, d->writes_paused ? 1 : 0, NULL);
    pw_metric_set(PW_M_SHADOW_MODE, d->cd->shadow_mode ? 1 : 0, NULL);
}

static void notify_ready(struct daemon *d)
{
    char line[256];

    d->ready_sent = true;
    status_line(d, "ready", line, sizeof(line));
    pw_notify_ready(line);
}

/* A pause survives restarts: it is read back from the store before the outbox starts. */
static void load_pause_state(struct daemon *d)
{
    char v[16] = "";

    if (pw_store_meta_get(d->store, META_WRITES_PAUSED, v, sizeof(v)) == 0 && strcmp(v, "1") == 0) {
        d->writes_paused = true;
        if (pw_store_meta_get(d->store, META_WRITES_PAUSED_BY, d->paused_by,
                              sizeof(d->paused_by)) != 0) {
            d->paused_by[0] = '\0';
        }
        pw_log_warn(MAIN, "EHR writes are PAUSED (%s); queued writes wait: painwatch writes resume",
                    d->paused_by[0] ? d->paused_by : "by an operator");
    }
}

static int set_paused(struct daemon *d, bool on, const struct pw_control_peer *peer)
{
    char by[96] = "";
    char when[32];
    int rc;

    pw_time_format((int64_t)time(NULL) * 1000, 0, when, sizeof(when));
    if (on) {
        snprintf(by, sizeof(by), "uid %ld at %s", (long)peer->uid, when);
    }
    /* Stop first, record second: a store that cannot record still gets the writes stopped. */
    d->writes_paused = on;
    snprintf(d->paused_by, sizeof(d->paused_by), "%s", by);
    pw_outbox_pause(d->outbox, on);
    rc = pw_store_meta_set(d->store, META_WRITES_PAUSED_BY, by);
    if (rc == 0) {
        rc = pw_store_meta_set(d->store, META_WRITES_PAUSED, on ? "1" : "0");
    }
    pw_audit_event(d->audit, on ? "writes-paused" : "writes-resumed", 'E',
                   rc == 0 ? PW_AUDIT_SUCCESS : PW_AUDIT_MINOR,
                   on ? "EHR writes paused by an operator" : "EHR writes resumed by an operator",
                   json_pack("{s:{s:I,s:I,s:b}}", "painwatch", "peer_uid", (json_int_t)peer->uid,
                             "peer_pid", (json_int_t)peer->pid, "persisted", rc == 0));
    pw_log_notice(MAIN, "EHR writes %s by uid %ld%s", on ? "PAUSED" : "resumed", (long)peer->uid,
                  rc == 0 ? "" : " (NOT recorded in the store: a restart forgets it)");
    notify_state(d);
    return rc;
}

static int on_control(void *arg, const char *cmd, const struct pw_control_peer *peer, bool allowed,
                      char *reply, size_t cap)
{
    struct daemon *d = arg;
    int rc = 0;

    if (!allowed) {
        pw_audit_event(d->audit, "control-refused", 'E', PW_AUDIT_MINOR,
                       "control socket: peer neither root nor in the service's group",
                       json_pack("{s:{s:I,s:I,s:s}}", "painwatch", "peer_uid",
                                 (json_int_t)peer->uid, "peer_pid", (json_int_t)peer->pid,
                                 "command", cmd));
        pw_log_warn(MAIN, "control socket: uid %ld refused", (long)peer->uid);
        return PW_EACCES;
    }
    if (strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0) {
        bool on = cmd[0] == 'p';
        if (on != d->writes_paused) {
            rc = set_paused(d, on, peer);
        }
        if (rc < 0) {
            snprintf(reply, cap, "error: writes %s, but the store could not record it: %s",
                     on ? "paused" : "resumed", pw_strerror(rc));
            return rc;
        }
    } else if (strcmp(cmd, "status") != 0) {
        snprintf(reply, cap, "error: unknown command '%.32s' (pause, resume, status)", cmd);
        return PW_EINVAL;
    }
    if (d->writes_paused) {
        snprintf(reply, cap, "paused (%s)%s", d->paused_by[0] ? d->paused_by : "by an operator",
                 d->cd->shadow_mode ? "; shadow mode" : "");
    } else {
        snprintf(reply, cap, "writing%s",
                 d->cd->shadow_mode ? " (shadow mode: to the shadow file, not the EHR)" : "");
    }
    return 0;
}

/* /readyz: a paused daemon is ready (it syncs and judges); the text says writes are held. */
static bool check_writes(void *arg, char *detail, size_t size)
{
    struct daemon *d = arg;

    if (d->writes_paused) {
        snprintf(detail, size, "PAUSED (%s): queued writes wait",
                 d->paused_by[0] ? d->paused_by : "by an operator");
    } else {
        snprintf(detail, size, "%s", d->cd->shadow_mode ? "shadow mode" : "writing");
    }
    return true;
}

static int start_control(struct daemon *d)
{
    char path[4096];
    int rc;

    pw_control_path(d->cd, false, path, sizeof(path));
    rc = pw_control_new(&d->control, &d->loop, path, on_control, d);
    if (rc < 0) {
        pw_log_err(MAIN, "control socket %s: %s", path, pw_strerror(rc));
    }
    return rc;
}

/* ---- gauges ------------------------------------------------------------------------------------
 */

static int count_row(void *arg, const struct pw_outbox_row *row)
{
    (void)row;
    (*(size_t *)arg)++;
    return 0;
}

/* Cheap gauges, computed at every scrape (pw_metrics_set_collect) and by the timer. */
static void collect_gauges(void *arg)
{
    struct daemon *d = arg;

    for (size_t i = 0; i < d->cd->n_servers; i++) {
        pw_metric_set(PW_M_SERVER_UP, server_down(d, i) ? 0 : 1, d->cd->servers[i].name, NULL);
    }
    pw_metric_set(PW_M_WRITES_PAUSED, d->writes_paused ? 1 : 0, NULL);
    pw_metric_set(PW_M_SHADOW_MODE, d->cd->shadow_mode ? 1 : 0, NULL);
}

/* Every counter whose label values are known at start exists from the start, at 0 (a rate()
 * over a series that appears with its first event misses that event). */
static void init_counters(const struct daemon *d)
{
    size_t n_rules = 0;
    const struct pw_rule *const *rules = pw_rules_all(&n_rules);

    for (size_t i = 0; i < n_rules; i++) {
        pw_metric_add(PW_M_FINDINGS, 0, rules[i]->id, NULL);
        pw_metric_add(PW_M_FLAGS_CREATED, 0, rules[i]->id, NULL);
        pw_metric_add(PW_M_FLAGS_RESOLVED, 0, rules[i]->id, NULL);
    }
    pw_metric_add(PW_M_CONFIG_RELOADS, 0, "ok", NULL);
    pw_metric_add(PW_M_CONFIG_RELOADS, 0, "error", NULL);
    pw_metric_add(PW_M_CONFIG_RELOADS, 0, "refused", NULL);
    pw_metric_add(PW_M_AUDIT_RECORDS, 0, NULL);
    for (size_t i = 0; i < d->cd->n_servers; i++) {
        const struct pw_conf_server *s = &d->cd->servers[i];
        pw_metric_add(PW_M_AUTH_FAILURES, 0, s->name, NULL);
        for (size_t r = 0; r < s->n_resources; r++) {
            pw_metric_add(PW_M_INGESTED, 0, s->name, s->resources[r], NULL);
        }
    }
}

static void refresh_gauges(struct daemon *d)
{
    size_t pending = 0;
    size_t dead = 0;

    pw_store_outbox_list(d->store, PW_OUTBOX_PENDING, count_row, &pending);
    pw_store_outbox_list(d->store, PW_OUTBOX_DEAD, count_row, &dead);
    if (d->cd->n_servers > 0) {
        /* Flags go to the first server (build_outbox): its rows are all the outbox holds. */
        pw_metric_set(PW_M_OUTBOX_DEPTH, (double)pending, d->cd->servers[0].name, NULL);
        pw_metric_set(PW_M_DEAD_LETTERS, (double)dead, d->cd->servers[0].name, NULL);
    }
    pw_metric_set(PW_M_AUDIT_WRITABLE, pw_audit_writable(d->audit) ? 1 : 0, NULL);
    collect_gauges(d);
}

/* Free the auths replaced by reloads that nothing in flight uses any more. */
static void sweep_retired(struct daemon *d)
{
    size_t kept = 0;

    for (size_t i = 0; i < d->n_retired; i++) {
        if (pw_auth_in_use(d->retired[i])) {
            d->retired[kept++] = d->retired[i];
        } else {
            pw_auth_free(d->retired[i]);
        }
    }
    d->n_retired = kept;
}

/* Issue 22: the /status page's data, from the same sources as /readyz and /metrics. */
static void fill_status(void *arg, struct pw_status *st)
{
    struct daemon *d = arg;

    refresh_gauges(d); /* the outbox counts and audit state as of now */
    st->now = (double)time(NULL);
    st->start_time = pw_metric_get(PW_M_START_TIME, NULL);
    st->version = PW_VERSION;
    for (size_t i = 0; i < d->cd->n_servers && i < PW_STATUS_SERVERS_MAX; i++) {
        struct pw_status_server *s = &st->servers[st->n_servers++];
        const char *name = d->cd->servers[i].name;
        struct pw_sync_health h = {0};
        snprintf(s->name, sizeof(s->name), "%s", name);
        s->unhealthy = server_down(d, i);
        s->last_complete = pw_metric_get(PW_M_SYNC_LAST_SUCCESS, name, NULL);
        for (size_t r = 0; r < d->cd->servers[i].n_resources; r++) {
            double t = pw_metric_get(PW_M_SYNC_LAG, name, d->cd->servers[i].resources[r], NULL);
            s->newest_data = t > s->newest_data ? t : s->newest_data;
        }
        if (d->sync && pw_sync_health(d->sync, name, &h) == 0) {
            s->cycles = h.cycles;
            s->consecutive_failures = h.consecutive_failures;
            if (h.last_status > 0) {
                snprintf(s->last_error, sizeof(s->last_error), "HTTP %ld", h.last_status);
            } else if (h.last_error) {
                snprintf(s->last_error, sizeof(s->last_error), "%s", pw_strerror(h.last_error));
            }
        }
    }
    if (d->cd->n_servers > 0) {
        st->outbox_pending = pw_metric_get(PW_M_OUTBOX_DEPTH, d->cd->servers[0].name, NULL);
        st->outbox_dead = pw_metric_get(PW_M_DEAD_LETTERS, d->cd->servers[0].name, NULL);
    }
    st->writes_paused = d->writes_paused;
    snprintf(st->paused_by, sizeof(st->paused_by), "%s", d->paused_by);
    st->shadow_mode = d->cd->shadow_mode;
    st->audit_writable = d->audit && pw_audit_writable(d->audit);
}

static void on_metrics_timer(uv_timer_t *t)
{
    struct daemon *d = container_of(t, struct daemon, metrics_timer);
    bool any_down = false;

    refresh_gauges(d);
    sweep_retired(d);
    pw_log_flush(); /* summaries of suppressed lines once their window ends */
    /* STATUS= named servers down at READY: once every one works, say so. */
    for (size_t i = 0; d->down[0] && i < d->cd->n_servers; i++) {
        any_down = any_down || server_down(d, i);
    }
    if (d->down[0] && !any_down) {
        d->down[0] = '\0';
        notify_state(d);
    }
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
 * blocks allocated late pin the top of the heap), and SQLite keeps its page cache full. Once the
 * daemon is idle after work (the outbox has nothing in flight, no sync cycle is open), the store
 * drops its cache and malloc_trim(0) hands the free pages back, inside the heap too. About a
 * millisecond once per burst of work; idle reports without new work (every outbox scan) do nothing.
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

static void on_servers_checked(void *arg, int err, unsigned failed);

/*
 * Issue 21: the writes go to the first server. `sink.type: auto` takes its target from that
 * server's /metadata (pw_sink_choose_target: DetectedIssue when advertised, else Flag), and
 * If-None-Exist is sent when every type the sink writes advertises conditional create.
 */
static void apply_write_caps(struct daemon *d, struct pw_sink *sink)
{
    struct pw_sync_health h;
    bool known = d->cd->n_servers > 0 && pw_sync_health(d->sync, d->cd->servers[0].name, &h) == 0 &&
                 h.capability_known;

    if (known) {
        d->write_caps = (struct pw_sink_caps){
            .known = true, .flag = h.flag_writable, .detected_issue = h.detected_issue_writable};
    }
    pw_sink_choose_target(sink, &d->write_caps);
    if (known) {
        bool conditional = true;

        if (pw_sink_uses(sink, "Flag")) {
            conditional = conditional && h.conditional_create;
        }
        if (pw_sink_uses(sink, "DetectedIssue")) {
            conditional = conditional && h.detected_issue_conditional_create;
        }
        pw_outbox_set_conditional_create(d->outbox, conditional);
    }
}

static void on_check_timer(uv_timer_t *t)
{
    struct daemon *d = container_of(t, struct daemon, check_timer);
    int rc;

    if (d->stopping) {
        return;
    }
    rc = pw_sync_check_servers(d->sync, on_servers_checked, d);
    if (rc < 0) {
        on_servers_checked(d, rc, 0);
    }
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
    d->down[0] = '\0';
    for (size_t i = 0, off = 0; err < 0 && i < d->cd->n_servers; i++) {
        struct pw_sync_health h;
        if (pw_sync_health(d->sync, d->cd->servers[i].name, &h) == 0 && !h.capability_known) {
            int w = snprintf(d->down + off, sizeof(d->down) - off, "%s%s", off ? ", " : "",
                             d->cd->servers[i].name);
            off += w > 0 ? (size_t)w : 0;
            off = off < sizeof(d->down) ? off : sizeof(d->down) - 1;
        }
    }
    if (err < 0 && !d->once && uv_now(&d->loop) < d->ready_deadline) {
        /* READY means ready: ask again (1, 2, 4, 5, 5 ... s) until every server answered. */
        uint64_t left = d->ready_deadline - uv_now(&d->loop);
        uint64_t delay = d->check_tries < 3 ? 1000u << d->check_tries : 5000;
        d->check_tries++;
        pw_log_warn(MAIN, "server check: %s (%s); asking again, READY waits", pw_strerror(err),
                    d->down[0] ? d->down : "?");
        pw_notify_status("starting: waiting for /metadata of %s", d->down[0] ? d->down : "?");
        uv_timer_start(&d->check_timer, on_check_timer, delay < left ? delay : left, 0);
        return;
    }
    if (err < 0) {
        /* The deadline passed: READY all the same (STATUS names the servers down); the
         * scheduler retries with backoff. */
        pw_log_warn(MAIN, "server check: %s; servers down: %s; continuing, the sync retries",
                    pw_strerror(err), d->down[0] ? d->down : "?");
    }
    apply_write_caps(d, d->sink);
    notify_ready(d);
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
    uv_timer_stop(&d->check_timer);
    uv_timer_stop(&d->retain_timer);
    /* In-flight deliveries get a bounded time to finish; whatever is left stays pending in the
     * store and resumes at the next start. */
    uv_timer_start(&d->stop_timer, on_stop_timer,
                   d->once ? 0 : (uint64_t)d->cd->shutdown_timeout_ms, 0);
    if (!d->once && d->outbox) {
        /* Its next idle report (nothing in flight) ends the drain early: on_outbox_idle. */
        pw_outbox_kick(d->outbox);
    }
}

/* ---- reload: everything or nothing (issue 19) ------------------------------------------------
 */

/*
 * Keys that cannot change while running: the store and the trail are open, the listeners bound,
 * the terminology and normalisation are baked into what the store holds. A change to any of
 * them refuses the whole reload, naming it.
 */
static const char *const fixed_keys[] = {
    "state_dir",       "store",      "audit",      "health",
    "terminology_dir", "factor_set", "pain_codes", "control_socket",
};

/* Server keys a reload applies: poll_interval and auth at once, the sync keys between cycles. */
static const char *const server_live_keys[] = {"poll_interval", "auth"};
/* The sync keys: core's, and every key of the server's source adapter (its config_map). */
static const char *const server_sync_keys[] = {"cohort", "resources", "type"};

/* Whether @p key of server section @p s is a sync key (a reload rebuilds the source for it). */
static bool is_sync_key(const json_t *s, const char *key)
{
    const struct pw_source_ops *ops = pw_source_find(json_string_value(json_object_get(s, "type")));

    for (size_t k = 0; k < PW_ARRAY_SIZE(server_sync_keys); k++) {
        if (strcmp(key, server_sync_keys[k]) == 0) {
            return true;
        }
    }
    for (const struct pw_conf_field *f = ops ? ops->adapter.config_map : NULL; f && f->name; f++) {
        if (strcmp(key, f->name) == 0) {
            return true;
        }
    }
    return false;
}

/* Whether a sync key of @p x (of server section @p a or @p b) differs in @p y. */
static bool sync_key_differs(const json_t *a, const json_t *b, const json_t *x, const json_t *y)
{
    const char *key;
    const json_t *v;

    for (void *it = json_object_iter((json_t *)(uintptr_t)x); it;
         it = json_object_iter_next((json_t *)(uintptr_t)x, it)) {
        key = json_object_iter_key(it);
        v = json_object_iter_value(it);
        if ((is_sync_key(a, key) || is_sync_key(b, key)) &&
            !json_equal(v, json_object_get(y, key))) {
            return true;
        }
    }
    return false;
}

/* Whether the sync keys of servers @p a and @p b differ. */
static bool sync_keys_differ(const json_t *a, const json_t *b)
{
    return sync_key_differs(a, b, a, b) || sync_key_differs(a, b, b, a);
}

/* Remove the sync keys of @p a and @p b from @p x. */
static void del_sync_keys(json_t *x, const json_t *a, const json_t *b)
{
    const char *key;
    json_t *v;
    void *tmp;

    json_object_foreach_safe(x, tmp, key, v)
    {
        (void)v;
        if (is_sync_key(a, key) || is_sync_key(b, key)) {
            json_object_del(x, key);
        }
    }
}

/* The first server key that differs and cannot change at run time. */
static bool servers_differ(const json_t *a, const json_t *b, char *what, size_t cap)
{
    if (json_array_size(a) != json_array_size(b)) {
        snprintf(what, cap, "servers (a server added or removed)");
        return true;
    }
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *x = json_deep_copy(json_array_get(a, i));
        json_t *y = json_deep_copy(json_array_get(b, i));
        const char *key;
        json_t *v;
        bool differ = false;

        for (size_t k = 0; k < PW_ARRAY_SIZE(server_live_keys); k++) {
            json_object_del(x, server_live_keys[k]);
            json_object_del(y, server_live_keys[k]);
        }
        del_sync_keys(x, json_array_get(a, i), json_array_get(b, i));
        del_sync_keys(y, json_array_get(a, i), json_array_get(b, i));
        if (!json_equal(x, y)) {
            differ = true;
            snprintf(what, cap, "servers[%zu]", i);
            json_object_foreach(x, key, v)
            {
                if (!json_equal(v, json_object_get(y, key))) {
                    snprintf(what, cap, "servers[%zu].%s", i, key);
                    break;
                }
            }
            json_object_foreach(y, key, v)
            {
                if (!json_object_get(x, key)) {
                    snprintf(what, cap, "servers[%zu].%s", i, key);
                    break;
                }
            }
        }
        json_decref(x);
        json_decref(y);
        if (differ) {
            return true;
        }
    }
    return false;
}

/* Why @p next cannot be applied at run time, or false when it can. */
static bool reload_blocked(const struct daemon *d, const struct pw_conf *next, char *why,
                           size_t cap)
{
    char what[128];

    for (size_t i = 0; i < PW_ARRAY_SIZE(fixed_keys); i++) {
        json_t *a = json_deep_copy(pw_conf_get(d->conf, fixed_keys[i]));
        json_t *b = json_deep_copy(pw_conf_get(next, fixed_keys[i]));
        bool same;

        /* audit.retain applies at run time (the next retention pass reads it). */
        if (strcmp(fixed_keys[i], "audit") == 0) {
            json_object_del(a, "retain");
            json_object_del(b, "retain");
        }
        same = (!a && !b) || (a && b && json_equal(a, b));
        json_decref(a);
        json_decref(b);
        if (!same) {
            snprintf(why, cap, "%s cannot change while running (restart to apply)", fixed_keys[i]);
            return true;
        }
    }
    if (servers_differ(pw_conf_get(d->conf, "servers"), pw_conf_get(next, "servers"), what,
                       sizeof(what))) {
        snprintf(why, cap,
                 "%s cannot change while running yet (of a server's keys poll_interval, auth, "
                 "dialect, cohort, resources, lookback and overlap do; restart to apply)",
                 what);
        return true;
    }
    if (d->sink_old) {
        snprintf(why, cap, "the previous reload is still finishing in-flight writes; try again");
        return true;
    }
    return false;
}

static void reload_refused(struct daemon *d, const char *why, const struct pw_conf *next,
                           const char *result)
{
    pw_log_err(CONF, "reload refused: %s; keeping the configuration in force", why);
    pw_audit_event(d->audit, "config-refused", 'E', PW_AUDIT_MINOR, why,
                   json_pack("{s:{s:s,s:s?}}", "painwatch", "config_hash", pw_conf_hash(d->conf),
                             "refused_hash", next ? pw_conf_hash(next) : NULL));
    pw_metric_inc(PW_M_CONFIG_RELOADS, result, NULL);
}

static void free_auths(struct pw_auth **auths, size_t n)
{
    for (size_t i = 0; auths && i < n; i++) {
        pw_auth_free(auths[i]);
    }
    free(auths);
}

/*
 * Every server's credentials, built anew from @p ncd: a reload re-reads token, secret and key
 * files even when their paths did not change (rotation in place). @return 0, or the error with
 * the offending key in @p why.
 */
static int make_auths(struct daemon *d, const struct pw_conf_daemon *ncd, struct pw_auth ***out,
                      char *why, size_t cap)
{
    struct pw_auth **auths = calloc(ncd->n_servers ? ncd->n_servers : 1, sizeof(*auths));

    if (!auths) {
        snprintf(why, cap, "out of memory building credentials");
        return PW_ENOMEM;
    }
    for (size_t i = 0; i < ncd->n_servers; i++) {
        int rc = make_auth(d->http, &ncd->servers[i], ncd->sink.section, &auths[i]);
        if (rc < 0) {
            snprintf(why, cap, "servers[%zu].auth (server %s): %s", i, ncd->servers[i].name,
                     pw_strerror(rc));
            free_auths(auths, ncd->n_servers);
            return rc;
        }
    }
    *out = auths;
    return 0;
}

/* A reload's new searches and cohorts, for the servers whose sync keys changed. */
struct sync_changes {
    size_t n;
    bool *changed;
    struct pw_source **srcs;
    struct pw_cohort **cohorts;
};

static void sync_changes_free(struct sync_changes *c)
{
    for (size_t i = 0; i < c->n; i++) {
        pw_source_free(c->srcs[i]);
        pw_cohort_free(c->cohorts[i]);
    }
    free(c->changed);
    free(c->srcs);
    free(c->cohorts);
    memset(c, 0, sizeof(*c));
}

static int make_sync_changes(struct daemon *d, const struct pw_conf *next,
                             const struct pw_conf_daemon *ncd, struct sync_changes *c, char *why,
                             size_t cap)
{
    const json_t *olds = pw_conf_get(d->conf, "servers");
    const json_t *news = pw_conf_get(next, "servers");
    size_t n = ncd->n_servers ? ncd->n_servers : 1;

    c->n = ncd->n_servers;
    c->changed = calloc(n, sizeof(*c->changed));
    c->srcs = calloc(n, sizeof(*c->srcs));
    c->cohorts = calloc(n, sizeof(*c->cohorts));
    if (!c->changed || !c->srcs || !c->cohorts) {
        c->n = 0;
        sync_changes_free(c);
        snprintf(why, cap, "out of memory");
        return PW_ENOMEM;
    }
    for (size_t i = 0; i < ncd->n_servers; i++) {
        const struct pw_conf_server *s = &ncd->servers[i];
        char err[256] = "";
        int rc;

        if (!sync_keys_differ(json_array_get(olds, i), json_array_get(news, i))) {
            continue;
        }
        rc = pw_cohort_new(&c->cohorts[i], s->cohort.section, err, sizeof(err));
        if (rc == 0) {
            rc = pw_source_from_conf(&c->srcs[i], json_array_get(news, i), s, &ncd->pain_codes,
                                     ncd->sink.section, err, sizeof(err));
            c->changed[i] = true;
        }
        if (rc < 0) {
            snprintf(why, cap, "servers[%zu] (server %s): %s", i, s->name,
                     err[0] ? err : pw_strerror(rc));
            sync_changes_free(c);
            return rc;
        }
    }
    return 0;
}

static bool sink_writes_equal(const struct pw_sink_writes *a, const struct pw_sink_writes *b)
{
    if (a->n != b->n || a->any != b->any) {
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->types[i], b->types[i]) != 0) {
            return false;
        }
    }
    return true;
}

static void on_sink_swapped(void *arg, struct pw_sink *old)
{
    struct daemon *d = arg;

    if (old == d->sink_old) {
        d->sink_old = NULL;
    }
    pw_sink_free(old);
    pw_log_info(SINK, "reload: the outbox now writes to %s", d->sink->ops->adapter.name);
}

/*
 * SIGHUP. Build what the new configuration needs (engine, sink) beside the running ones; if
 * anything fails or a key cannot change, nothing changes. Otherwise swap between loop turns:
 * evaluation uses the new engine and sink from the next batch on; the outbox lets what is in
 * flight finish under the old sink, then takes the new one (pw_outbox_swap_sink).
 */
static void reload(struct daemon *d)
{
    struct pw_conf *conf = NULL;
    const struct pw_conf_daemon *ncd;
    struct pw_engine *engine = NULL;
    struct pw_sink *sink = NULL;
    struct pw_conf **kept;
    struct pw_auth **auths = NULL;
    struct pw_auth **retired;
    struct sync_changes sc = {0};
    struct pw_sink_writes writes_was;
    struct pw_sink_writes writes;
    char why[256];
    bool sink_changed;
    int lvl;

    if (load_conf(d->config_path, &conf) < 0) {
        reload_refused(d, "the new configuration is invalid", NULL, "error");
        return;
    }
    /* The same validation as at start and in `painwatch config check` (adapters' own checks). */
    if (pw_conf_validate(conf, pw_conf_report_log, NULL) < 0) {
        reload_refused(d, "the new configuration fails validation", conf, "refused");
        pw_conf_free(conf);
        return;
    }
    ncd = pw_conf_daemon(conf);
    if (reload_blocked(d, conf, why, sizeof(why))) {
        reload_refused(d, why, conf, "refused");
        pw_conf_free(conf);
        return;
    }
    lvl = pw_log_level_from_name(ncd->log_level);
    if (pw_evaluator_engine_new(&engine, ncd, NULL, NULL, why, sizeof(why)) < 0) {
        pw_log_err(CONF, "%s", why);
        reload_refused(d, "rule settings refused", conf, "refused");
        pw_conf_free(conf);
        return;
    }
    if (make_sync_changes(d, conf, ncd, &sc, why, sizeof(why)) < 0) {
        pw_engine_free(engine);
        reload_refused(d, why, conf, "refused");
        pw_conf_free(conf);
        return;
    }
    if (make_auths(d, ncd, &auths, why, sizeof(why)) < 0) {
        sync_changes_free(&sc);
        pw_engine_free(engine);
        reload_refused(d, why, conf, "refused");
        pw_conf_free(conf);
        return;
    }
    /* Room for every replaced auth now, so that the commit below cannot fail. */
    retired = realloc(d->retired, (d->n_retired + d->n_auths + 1) * sizeof(*retired));
    if (!retired) {
        sync_changes_free(&sc);
        free_auths(auths, ncd->n_servers);
        pw_engine_free(engine);
        reload_refused(d, "out of memory", conf, "refused");
        pw_conf_free(conf);
        return;
    }
    d->retired = retired;
    sink_changed = ncd->shadow_mode != d->cd->shadow_mode ||
                   !json_equal(pw_conf_get(d->conf, "sink"), pw_conf_get(conf, "sink"));
    pw_sink_conf_writes(d->cd->sink.section, &writes_was);
    pw_sink_conf_writes(ncd->sink.section, &writes);
    if (sink_changed && make_sink(ncd, &sink) < 0) {
        sync_changes_free(&sc);
        free_auths(auths, ncd->n_servers);
        pw_engine_free(engine);
        reload_refused(d, "the new sink cannot be opened", conf, "refused");
        pw_conf_free(conf);
        return;
    }
    kept = realloc(d->old_confs, (d->n_old_confs + 1) * sizeof(*kept));
    if (!kept || (sink && pw_outbox_swap_sink(d->outbox, sink, on_sink_swapped, d) < 0)) {
        d->old_confs = kept ? kept : d->old_confs;
        pw_sink_free(sink);
        sync_changes_free(&sc);
        free_auths(auths, ncd->n_servers);
        pw_engine_free(engine);
        reload_refused(d, "cannot hand the new sink to the outbox", conf, "refused");
        pw_conf_free(conf);
        return;
    }
    /* Committed: from here on nothing fails. */
    d->old_confs = kept;
    d->old_confs[d->n_old_confs++] = d->conf;
    d->conf = conf;
    d->cd = ncd;
    if (sink) {
        d->sink_old = d->sink;
        d->sink = sink;
        apply_write_caps(d, sink); /* auto: as /metadata said at startup */
    }
    pw_engine_free(d->eval->engine);
    d->eval->engine = engine;
    pw_pipeline_reconfigure(d->pipeline, d->eval->engine, d->sink, d->sink->identifier_system,
                            ncd->reevaluate_interval_ms);
    pw_outbox_set_retry(d->outbox, (uint64_t)ncd->outbox.retry_base_ms,
                        (uint64_t)ncd->outbox.retry_cap_ms, (unsigned)ncd->outbox.max_attempts);
    for (size_t i = 0; i < ncd->n_servers; i++) {
        pw_sync_set_poll(d->sync, ncd->servers[i].name, (uint64_t)ncd->servers[i].poll_interval_ms);
    }
    /*
     * Credentials: requests sent from now on use the new auths; those in flight (and renewals
     * under way) finish under the old ones, freed by sweep_retired() once nothing uses them.
     */
    for (size_t i = 0; i < d->n_auths && i < ncd->n_servers; i++) {
        if (d->auths[i]) {
            d->retired[d->n_retired++] = d->auths[i];
        }
        d->auths[i] = auths[i];
        auths[i] = NULL;
        pw_sync_set_auth(d->sync, ncd->servers[i].name, d->auths[i]);
    }
    free(auths);
    pw_outbox_set_auth(d->outbox, d->n_auths ? d->auths[0] : NULL);
    sweep_retired(d);
    /* The startup check of what the sink writes, again for the new sink's types. */
    if (!sink_writes_equal(&writes_was, &writes) && pw_sync_check_writes(d->sync, &writes) < 0) {
        pw_log_warn(SYNC,
                    "reload: /metadata not read again: the new sink's writes are not checked");
    }
    /* Searches and cohorts: each server's cycle in flight finishes under the old ones. */
    for (size_t i = 0; i < sc.n; i++) {
        if (sc.changed[i]) {
            struct pw_sync_conf sched;
            pw_sync_conf_from_daemon(&sched, &ncd->servers[i]);
            int rc = pw_sync_replace_server(d->sync, &sched, sc.srcs[i], sc.cohorts[i]);
            sc.srcs[i] = NULL;
            sc.cohorts[i] = NULL; /* taken, also on failure */
            if (rc < 0) {
                pw_log_err(SYNC, "reload: server %s: searches not replaced: %s",
                           ncd->servers[i].name, pw_strerror(rc));
            }
        }
    }
    sync_changes_free(&sc);
    if (uv_is_active((uv_handle_t *)&d->reeval_timer)) {
        uint64_t every = (uint64_t)ncd->reevaluate_interval_ms;
        uv_timer_start(&d->reeval_timer, on_reeval_timer, every, every);
    }
    if (ncd->audit.retain_ms > 0 && !d->once && !uv_is_active((uv_handle_t *)&d->retain_timer)) {
        uv_timer_start(&d->retain_timer, on_retain_timer, 0, 3600 * 1000);
    } else if (ncd->audit.retain_ms <= 0) {
        uv_timer_stop(&d->retain_timer);
    }
    if (lvl >= 0) {
        pw_log_set_level(lvl);
    }
    pw_audit_event(d->audit, "config-loaded", 'E', PW_AUDIT_SUCCESS, "reload",
                   json_pack("{s:{s:s}}", "painwatch", "config_hash", pw_conf_hash(conf)));
    pw_log_notice(CONF, "reloaded: every setting applied%s",
                  sink ? (ncd->shadow_mode ? "; shadow mode: Flags go to the shadow file"
                                           : "; writing to the EHR")
                       : "");
    pw_metric_inc(PW_M_CONFIG_RELOADS, "ok", NULL);
    notify_state(d);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct daemon *d = s->data;

    if (signum == SIGHUP) {
        pw_notify_reloading();
        /* logrotate's SIGHUP: the trail is reopened whatever becomes of the configuration. */
        pw_audit_reopen(d->audit);
        reload(d);
        notify_ready(d);
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
    if (rc == 0) {
        rc = uv_timer_init(&d->loop, &d->check_timer);
    }
    if (rc == 0) {
        rc = uv_timer_init(&d->loop, &d->retain_timer);
    }
    if (rc < 0) {
        return rc;
    }
    if (!d->once) {
        uv_timer_start(&d->metrics_timer, on_metrics_timer, 0, 5000);
    }
    if (!d->once && d->cd->audit.retain_ms > 0) {
        uv_timer_start(&d->retain_timer, on_retain_timer, 3600 * 1000, 3600 * 1000);
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
    pw_cds_hooks_close(d->cds);
    pw_control_close(d->control);
    if (d->watchdog_on) {
        pw_watchdog_close(&d->watchdog);
    }
    pw_sync_free(d->sync);
    pw_outbox_close(d->outbox);
    for (size_t i = 0; i < d->n_auths; i++) {
        pw_auth_free(d->auths[i]); /* before the HTTP core: see auth.h */
    }
    free(d->auths);
    for (size_t i = 0; i < d->n_retired; i++) {
        pw_auth_free(d->retired[i]);
    }
    free(d->retired);
    pw_http_free(d->http);
    uv_walk(&d->loop, on_walk_close, NULL);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&d->loop) != 0) {
        pw_log_crit(MAIN, "loop did not close cleanly");
    }
    pw_pipeline_free(d->pipeline);
    pw_sink_free(d->sink);
    pw_sink_free(d->sink_old);
    if (d->audit) {
        pw_audit_event(d->audit, "stop", 'E', PW_AUDIT_SUCCESS, "painwatchd stopped", NULL);
        if (d->store) {
            pw_audit_store_head(d->audit, d->store); /* anchored up to the last record */
        }
    }
    pw_audit_free(d->audit);
    pw_store_close(d->store);
    pw_evaluator_free(d->eval);
    pw_terminology_free(d->term);
    pw_conf_free(d->conf);
    for (size_t i = 0; i < d->n_old_confs; i++) {
        pw_conf_free(d->old_confs[i]);
    }
    free(d->old_confs);
    free(d->config_path);
    pw_log_flush_final(); /* what the rate limiter still holds back is counted, not lost */
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
    /* The checks `painwatch config check` runs too (conf_validate.c): a configuration that
     * cannot work exits 2 before anything is opened (the unit's RestartPreventExitStatus=2). */
    if (load_conf(opts->config_path, &d.conf) < 0 ||
        pw_conf_validate(d.conf, pw_conf_report_log, NULL) < 0) {
        pw_conf_free(d.conf);
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
        /* Issue 18: every transaction anchors the trail's head; the one stored must be found. */
        pw_store_on_commit(d.store, pw_audit_store_head, d.audit);
        rc = pw_audit_chain_check(d.audit, d.store);
    }
    if (rc == 0) {
        pw_audit_event(d.audit, "start", 'E', PW_AUDIT_SUCCESS, "painwatchd started",
                       json_pack("{s:{s:s}}", "painwatch", "version", PW_VERSION));
        rc = pw_audit_event(
            d.audit, "config-loaded", 'E', PW_AUDIT_SUCCESS, pw_conf_source(d.conf),
            json_pack("{s:{s:s}}", "painwatch", "config_hash", pw_conf_hash(d.conf)));
    }
    if (rc == 0 && !d.once) {
        audit_retain(&d);
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
        load_pause_state(&d);
        pw_outbox_pause(d.outbox, d.writes_paused);
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
            pw_health_add_check(d.health, "audit-chain", check_audit_chain, &d);
            pw_health_add_check(d.health, "writes", check_writes, &d);
            pw_health_set_status(d.health, fill_status, &d);
        }
    }
    if (rc == 0 && d.cd->cds_hooks.enabled && !d.once) {
        struct pw_cds_hooks_opts co = {.loop = &d.loop,
                                       .conf = &d.cd->cds_hooks,
                                       .store = d.store,
                                       .ev = d.eval,
                                       .synced = synced_types(d.cd),
                                       .synced_for = cds_synced_for,
                                       .synced_arg = &d,
                                       .audit = d.audit,
                                       .http = d.http};
        rc = pw_cds_hooks_new(&d.cds, &co);
    }
    if (rc == 0 && !d.once) {
        rc = start_control(&d);
    }
    if (rc == 0) {
        notify_state(&d);
    }
    if (rc == 0 && !d.once && pw_watchdog_start(&d.watchdog, &d.loop) == 0) {
        d.watchdog_on = true;
    }
    if (rc == 0) {
        pw_notify_status("checking servers");
        pw_metrics_set_collect(collect_gauges, &d);
        init_counters(&d);
        d.ready_deadline = uv_now(&d.loop) + (uint64_t)d.cd->startup_timeout_ms;
        rc = pw_sync_check_servers(d.sync, on_servers_checked, &d);
    }
    if (rc < 0) {
        pw_log_crit(MAIN, "startup failed: %s", pw_strerror(rc));
        d.exit_code = rc == PW_ECONFIG ? 2 : 1;
    } else {
        uv_run(&d.loop, UV_RUN_DEFAULT);
    }
    pw_metrics_set_collect(NULL, NULL);
    teardown(&d);
    return d.exit_code;
}
