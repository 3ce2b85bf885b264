/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The startup validation (conf_validate.h): the components painwatchd builds from a
 * configuration, built once here without network and without writing anything, then released.
 * painwatchd runs it before it opens the store; `painwatch config check` runs it after loading.
 */
#include "core/conf_validate.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "core/conf_server.h"
#include "painwatch/audit.h"
#include "painwatch/auth.h"
#include "painwatch/cohort.h"
#include "painwatch/engine.h"
#include "painwatch/err.h"
#include "painwatch/http.h"
#include "painwatch/limits.h"
#include "painwatch/log.h"
#include "painwatch/normalize.h"
#include "painwatch/secret.h"
#include "painwatch/sink.h"
#include "painwatch/source.h"
#include "painwatch/terminology.h"

/*
 * Rules that can produce info-severity findings (Flag.priority "No alarm"): with writes on they
 * put Flags in charts that ask nothing of anyone. Keep in step with the rules' pw_ru_finding_init.
 */
static const char *const info_rules[] = {"pain-type-undocumented"};

#define KEY_MAX 256 /* a configuration key path */

struct run {
    pw_conf_report_fn *report;
    void *arg;
    int errors;
    const json_t *servers; /* the effective servers[] (each server's source reads its keys) */
};

static void say(struct run *r, bool error, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void say(struct run *r, bool error, const char *key, const char *fmt, ...)
{
    char text[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (error) {
        r->errors++;
    }
    if (r->report) {
        r->report(r->arg, error, key, text);
    }
}

/* Terminology, engine and rule settings, normalize's code sets: daemon.c build_clinical(). */
static void check_clinical(struct run *r, const struct pw_conf_daemon *cd)
{
    struct pw_terminology *term = NULL;
    struct pw_engine *engine = NULL;
    struct pw_norm_ctx norm;
    char err[256] = "";
    char dir[4096];
    const char *tdir = cd->terminology_dir;
    int rc;

    if (!tdir) {
        if (pw_terminology_default_dir(dir, sizeof(dir)) < 0) {
            say(r, true, "terminology_dir", "no terminology directory found; set terminology_dir");
            return;
        }
        tdir = dir;
    }
    rc = pw_terminology_load(&term, tdir, err, sizeof(err));
    if (rc < 0) {
        say(r, true, "terminology_dir", "%s: %s", tdir, err[0] ? err : pw_strerror(rc));
        return;
    }
    rc = pw_engine_new(&engine, cd->factor_set);
    if (rc < 0) {
        say(r, true, "factor_set", "%s: %s", cd->factor_set ? cd->factor_set : "(default)",
            pw_strerror(rc));
    }
    if (rc == 0 && cd->rules) {
        const char *rid;
        const char *param;
        json_t *sec;
        json_t *val;
        json_t *copy = json_deep_copy(cd->rules); /* jansson iterates non-const trees */

        json_object_foreach(copy, rid, sec)
        {
            json_object_foreach(sec, param, val)
            {
                int prc = strcmp(param, "enabled") == 0
                              ? pw_engine_enable(engine, rid, json_is_true(val))
                              : pw_engine_set_param(engine, rid, param, json_number_value(val));
                if (prc < 0) {
                    char key[KEY_MAX];
                    snprintf(key, sizeof(key), "rules.%s.%s", rid, param);
                    say(r, true, key, "refused by the rule engine: %s", pw_strerror(prc));
                }
            }
        }
        json_decref(copy);
    }
    rc = pw_norm_ctx_init(&norm, term, cd->factor_set);
    if (rc < 0) {
        say(r, true, "factor_set", "normalization: %s", pw_strerror(rc));
    } else {
        const struct {
            const char *key;
            const char **codes;
            size_t n;
        } lists[] = {{"pain_codes.score", cd->pain_codes.score, cd->pain_codes.n_score},
                     {"pain_codes.type", cd->pain_codes.type, cd->pain_codes.n_type}};
        for (size_t l = 0; l < sizeof(lists) / sizeof(lists[0]); l++) {
            for (size_t i = 0; i < lists[l].n; i++) {
                const char *bar = strchr(lists[l].codes[i], '|');
                size_t sl = bar ? (size_t)(bar - lists[l].codes[i]) : 0;
                if (sl >= PW_CODE_MAX) {
                    say(r, true, lists[l].key, "'%s': the system is longer than %d characters",
                        lists[l].codes[i], PW_CODE_MAX - 1);
                }
            }
        }
        pw_norm_ctx_cleanup(&norm);
    }
    pw_engine_free(engine);
    pw_terminology_free(term);
}

/* One server: HTTP settings, authorization adapter, cohort, searches (daemon.c build_*). */
static void check_server(struct run *r, const struct pw_conf_daemon *cd, size_t i,
                         struct pw_http *http)
{
    const struct pw_conf_server *s = &cd->servers[i];
    const struct pw_conf_adapter_ref *ca = &s->auth;
    struct pw_http_server hs = pw_conf_server_http(s);
    char scope[512];
    struct pw_auth_conf ac = pw_conf_server_auth(s, cd->sink.section, scope, sizeof(scope));
    struct pw_cohort *cohort = NULL;
    struct pw_source *source = NULL;
    char key[KEY_MAX];
    char err[256] = "";
    int rc = pw_http_server_add(http, &hs);

    snprintf(key, sizeof(key), "servers[%zu]", i);
    if (rc < 0) {
        say(r, true, key, "server %s: %s", s->name, pw_strerror(rc));
        return;
    }
    if (ca->type && strcmp(ca->type, "none") != 0) {
        struct pw_auth *auth = NULL;

        rc = pw_auth_new(&auth, http, &ac);
        if (rc < 0) {
            snprintf(key, sizeof(key), "servers[%zu].auth", i);
            say(r, true, key, "server %s: %s authorization cannot start: %s", s->name, ca->type,
                pw_strerror(rc));
        }
        pw_auth_free(auth);
    }
    rc = pw_cohort_new(&cohort, s->cohort.section, err, sizeof(err));
    pw_cohort_free(cohort);
    if (rc < 0) {
        snprintf(key, sizeof(key), "servers[%zu].cohort", i);
        say(r, true, key, "server %s: %s", s->name, err[0] ? err : pw_strerror(rc));
    }
    err[0] = '\0';
    rc = pw_source_from_conf(&source, json_array_get(r->servers, i), s, &cd->pain_codes,
                             cd->sink.section, err, sizeof(err));
    pw_source_free(source);
    if (rc < 0) {
        say(r, true, key, "server %s: %s", s->name, err[0] ? err : pw_strerror(rc));
    }
}

static void on_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static void check_servers(struct run *r, const struct pw_conf_daemon *cd)
{
    uv_loop_t loop;
    struct pw_http *http = NULL;
    int rc = uv_loop_init(&loop);

    if (rc < 0) {
        say(r, true, "servers", "event loop: %s", uv_strerror(rc));
        return;
    }
    rc = pw_http_new(&http, &loop);
    if (rc < 0) {
        say(r, true, "servers", "HTTP core: %s", pw_strerror(rc));
    } else {
        for (size_t i = 0; i < cd->n_servers; i++) {
            check_server(r, cd, i, http);
        }
    }
    pw_http_free(http);
    uv_walk(&loop, on_close, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

/* The sink painwatchd would build (daemon.c build_sink()), without creating its file. */
static void check_sink(struct run *r, const struct pw_conf_daemon *cd)
{
    const char *name = cd->shadow_mode ? pw_sink_shadow_type() : cd->sink.type;
    const struct pw_adapter *a = pw_adapter_find(&pw_sink_kind, name);
    char key[KEY_MAX];

    if (!a) {
        say(r, true, "sink.type", "unknown sink '%s'", name ? name : "(none)");
        return;
    }
    /* The files a local sink writes: a path set empty has nowhere to go. */
    for (const struct pw_conf_field *f = a->config_map; f && f->name; f++) {
        const char *v = json_string_value(json_object_get(cd->sink.section, f->name));
        if (f->type == PW_CONF_PATH && (!v || !v[0])) {
            snprintf(key, sizeof(key), "sink.%s", f->name);
            say(r, true, key, "required: %s writes to this file (%s)",
                cd->shadow_mode ? "shadow mode" : "the sink", f->help ? f->help : f->name);
            return;
        }
    }
    if (((const struct pw_sink_ops *)pw_adapter_ops(a))->remote && cd->n_servers == 0) {
        say(r, true, "servers", "the %s sink writes to the first server: none is set", name);
    }
}

static bool path_under(const char *path, const char *dir)
{
    size_t n = dir ? strlen(dir) : 0;

    while (n > 1 && dir[n - 1] == '/') {
        n--;
    }
    return n > 0 && strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* The audit key: it loads (daemon: pw_audit_open), and where it lives. */
static void check_audit(struct run *r, const struct pw_conf_daemon *cd)
{
    char audit_dir[4096];
    char keypath[4096];
    const char *slash = cd->audit.path ? strrchr(cd->audit.path, '/') : NULL;

    snprintf(audit_dir, sizeof(audit_dir), "%.*s", slash ? (int)(slash - cd->audit.path) : 1,
             slash ? cd->audit.path : ".");
    /* Where the key may live at all (unless audit.allow_local_key): the daemon refuses the same. */
    char why[1024];
    if (pw_conf_check_audit_key(cd, why, sizeof(why)) < 0) {
        say(r, true, "audit.key_file", "%s", why);
        return;
    }
    if (!cd->audit.key_file) {
        say(r, false, "audit.key_file",
            "unset: the HMAC key is created as %s/audit.key, beside the trail; whoever can "
            "write the state directory can then rewrite the trail and its MACs undetected. Keep "
            "the key outside it (LoadCredential=audit-key:/etc/painwatch/credentials/audit-key "
            "and key_file: audit-key)",
            cd->state_dir);
        return;
    }
    unsigned char *key = NULL;
    size_t key_len = 0;
    int rc = pw_secret_path(cd->audit.key_file, keypath, sizeof(keypath));

    if (rc == 0) {
        rc = pw_audit_key_load(keypath, &key, &key_len);
    }
    pw_audit_key_free(key, key_len);
    if (rc < 0) {
        say(r, true, "audit.key_file", "%s: %s", cd->audit.key_file, pw_strerror(rc));
        return;
    }
    if (path_under(keypath, cd->state_dir) || path_under(keypath, audit_dir)) {
        say(r, false, "audit.key_file",
            "%s is inside the state directory, beside the trail; whoever can write there can "
            "rewrite the trail and its MACs undetected. Keep the key outside it",
            keypath);
    }
}

static bool rule_enabled(const struct pw_conf_daemon *cd, const char *rid)
{
    const json_t *sec = cd->rules ? json_object_get(cd->rules, rid) : NULL;
    const json_t *en = sec ? json_object_get(sec, "enabled") : NULL;

    return !en || json_is_true(en);
}

static void warn_of_adapter(void *arg, const char *key, const char *text)
{
    say(arg, false, key, "%s", text);
}

/* The production risks the adapter configured at @p key says its section carries. */
static void advise(struct run *r, const struct pw_adapter_kind *kind,
                   const struct pw_conf_adapter_ref *ref, const char *key)
{
    const struct pw_adapter *a = pw_adapter_find(kind, ref->type);

    if (a && a->advise) {
        a->advise(ref->section, key, warn_of_adapter, r);
    }
}

static void check_risks(struct run *r, const struct pw_conf_daemon *cd)
{
    char key[KEY_MAX];

    const struct pw_adapter *sa = pw_adapter_find(&pw_sink_kind, cd->sink.type);
    const struct pw_sink_ops *sink = sa ? pw_adapter_ops(sa) : NULL;
    struct pw_sink_writes w;
    bool flags = false;

    /* Flags written to charts: by a sink that writes them for certain (not auto's choice). */
    pw_sink_conf_writes(cd->sink.section, &w);
    for (size_t i = 0; i < w.n && !w.any; i++) {
        flags = flags || strcmp(w.types[i], "Flag") == 0;
    }
    if (!cd->shadow_mode && sink && sink->remote && flags) {
        for (size_t i = 0; i < sizeof(info_rules) / sizeof(info_rules[0]); i++) {
            if (rule_enabled(cd, info_rules[i])) {
                snprintf(key, sizeof(key), "rules.%s.enabled", info_rules[i]);
                say(r, false, key,
                    "this rule's findings are informational; with shadow_mode false each one "
                    "is written to the chart as a Flag (priority \"No alarm\"). Review the burden "
                    "in shadow mode, or set %s: false",
                    key);
            }
        }
    }
    for (size_t i = 0; i < cd->n_servers; i++) {
        snprintf(key, sizeof(key), "servers[%zu].auth", i);
        advise(r, &pw_auth_kind, &cd->servers[i].auth, key);
        snprintf(key, sizeof(key), "servers[%zu].cohort", i);
        advise(r, &pw_cohort_kind, &cd->servers[i].cohort, key);
    }
    advise(r, &pw_sink_kind, &cd->sink, "sink");
}

int pw_conf_validate(const struct pw_conf *conf, pw_conf_report_fn *report, void *arg)
{
    const struct pw_conf_daemon *cd = conf ? pw_conf_daemon(conf) : NULL;
    struct run r = {.report = report, .arg = arg, .servers = pw_conf_get(conf, "servers")};

    if (!cd) {
        return PW_EINVAL;
    }
    check_clinical(&r, cd);
    check_audit(&r, cd);
    check_sink(&r, cd);
    check_servers(&r, cd);
    check_risks(&r, cd);
    return r.errors ? PW_ECONFIG : 0;
}

void pw_conf_report_log(void *arg, bool error, const char *key, const char *text)
{
    (void)arg;
    if (error) {
        pw_log_err(CONF, "%s: %s", key, text);
    } else {
        pw_log_warn(CONF, "%s: %s", key, text);
    }
}
