/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The painwatch configuration schema: the field tables, the cross-field checks, the rules.*
 * section (validated against the rule registry) and the embedded default (the local demo).
 * config/painwatch.yaml documents every key declared here.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/conf_int.h"
#include "core/listen_addr.h"
#include "painwatch/cohort.h"
#include "painwatch/conf_map.h"
#include "painwatch/defaults.h"
#include "painwatch/engine.h"
#include "painwatch/limits.h"
#include "painwatch/localtime.h"
#include "painwatch/rule.h"
#include "painwatch/sink.h"
#include "painwatch/source.h"
#include "painwatch/store.h"

/*
 * The rule registry lives in the clinical engine. A weak reference keeps this module usable in
 * programs that do not link the engine (then rules.* is checked for shape only); every program
 * that evaluates rules links it, and there the names and ranges are checked.
 */
#pragma weak pw_rules_all

/* The auth registry (auth.h, which pulls libuv in through http.h). */
extern struct pw_adapter_kind pw_auth_kind;

static const struct pw_rule *const *catalog_override;
static size_t catalog_override_n;

void pw_conf_set_rule_catalog(const struct pw_rule *const *rules, size_t n)
{
    catalog_override = rules;
    catalog_override_n = n;
}

static const struct pw_rule *const *rule_catalog(size_t *n)
{
    if (catalog_override) {
        *n = catalog_override_n;
        return catalog_override;
    }
    if (pw_rules_all) {
        return pw_rules_all(n);
    }
    *n = 0;
    return NULL;
}

/* ---- enums --------------------------------------------------------------------------------- */

static const char *const log_levels[] = {"err", "warning", "notice", "info", "debug", NULL};
static const char *const factor_sets[] = {"cdc2022", "cdc2016", NULL};
static const char *const scopes[] = {"problem-list", "cohort", NULL};

#define SEC  1000.0
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)

/* ---- cross-field checks -------------------------------------------------------------------- */

static const char *str(const json_t *sec, const char *key)
{
    return json_string_value(json_object_get(sec, key));
}

static void check_token_url(struct pw_conf_ctx *ctx, const char *url, const char *path);

static bool loopback_host(const char *host, size_t len)
{
    char buf[64];
    unsigned char addr[16];

    if (len == 0 || len >= sizeof(buf)) {
        return false;
    }
    if (host[0] == '[' && host[len - 1] == ']') {
        memcpy(buf, host + 1, len - 2);
        buf[len - 2] = '\0';
        return inet_pton(AF_INET6, buf, addr) == 1 && !memcmp(addr, &in6addr_loopback, 16);
    }
    memcpy(buf, host, len);
    buf[len] = '\0';
    if (!strcasecmp(buf, "localhost")) {
        return true;
    }
    return inet_pton(AF_INET, buf, addr) == 1 && addr[0] == 127;
}

/* The URL rules of issue 4: https, or plain http to this machine only; no credentials in it. */
static void check_base_url(struct pw_conf_ctx *ctx, const char *url, const char *path)
{
    const char *rest;
    size_t auth_len;
    size_t host_len;

    if (!strncasecmp(url, "https://", 8)) {
        rest = url + 8;
    } else if (!strncasecmp(url, "http://", 7)) {
        rest = url + 7;
    } else {
        pw_conf_error(ctx, path, "must start with https:// (or http:// to a loopback host)");
        return;
    }
    auth_len = strcspn(rest, "/?#");
    if (memchr(rest, '@', auth_len)) {
        pw_conf_error(ctx, path,
                      "credentials in the URL are not accepted: configure auth with secret files");
        return;
    }
    if (strpbrk(rest, "?#")) {
        pw_conf_error(ctx, path, "the FHIR base URL takes no query or fragment");
        return;
    }
    host_len = rest[0] == '[' ? strcspn(rest, "]") + 1 : strcspn(rest, ":/");
    if (host_len == 0 || host_len > auth_len) {
        pw_conf_error(ctx, path, "no host in the URL");
        return;
    }
    if (url[4] != 's' && url[4] != 'S' && !loopback_host(rest, host_len)) {
        pw_conf_error(ctx, path,
                      "plain http is only allowed to a loopback host; use https (TLS is "
                      "always verified)");
    }
}

/*
 * Issue 18: the client secret or assertion goes to this URL. https, or plain http to this
 * machine; no credentials in it. (A discovered endpoint is checked at run time: only on the
 * FHIR server's own origin.)
 */
static void check_token_url(struct pw_conf_ctx *ctx, const char *url, const char *path)
{
    const char *rest;
    size_t auth_len;
    size_t host_len;

    if (!strncasecmp(url, "https://", 8)) {
        rest = url + 8;
    } else if (!strncasecmp(url, "http://", 7)) {
        rest = url + 7;
    } else {
        pw_conf_error(ctx, path, "must start with https:// (or http:// to a loopback host)");
        return;
    }
    auth_len = strcspn(rest, "/?#");
    host_len = rest[0] == '[' ? strcspn(rest, "]") + 1 : strcspn(rest, ":/?#");
    if (memchr(rest, '@', auth_len)) {
        pw_conf_error(ctx, path, "credentials in the URL are not accepted");
    } else if (host_len == 0 || host_len > auth_len) {
        pw_conf_error(ctx, path, "no host in the URL");
    } else if (url[4] != 's' && url[4] != 'S' && !loopback_host(rest, host_len)) {
        pw_conf_error(ctx, path,
                      "plain http is only allowed to a loopback host: the client secret or "
                      "assertion would travel in the clear; use https");
    }
}

void pw_conf_check_token_url(struct pw_conf_ctx *ctx, const json_t *section, const char *path)
{
    char kpath[PW_CONF_PATH_MAX];

    if (str(section, "token_url")) {
        snprintf(kpath, sizeof(kpath), "%s.token_url", path);
        check_token_url(ctx, str(section, "token_url"), kpath);
    }
}

/* Issue 18: a proxy only from this setting; no credentials in it (secrets come from files). */
static void check_proxy(struct pw_conf_ctx *ctx, const char *url, const char *path)
{
    static const char *const schemes[] = {"http://",    "https://",  "socks4://",
                                          "socks4a://", "socks5://", "socks5h://"};
    const char *rest = NULL;

    if (!url) {
        return;
    }
    for (size_t i = 0; !rest && i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        if (!strncasecmp(url, schemes[i], strlen(schemes[i]))) {
            rest = url + strlen(schemes[i]);
        }
    }
    if (!rest) {
        pw_conf_error(ctx, path, "must be a proxy URL: http://, https://, socks5h:// ...");
    } else if (memchr(rest, '@', strcspn(rest, "/?#"))) {
        pw_conf_error(ctx, path, "credentials in the proxy URL are not accepted");
    } else if (!rest[0] || rest[0] == '/' || rest[0] == ':') {
        pw_conf_error(ctx, path, "no host in the proxy URL");
    }
}

static void check_server(struct pw_conf_ctx *ctx, const json_t *sec, const char *path)
{
    char kpath[PW_CONF_PATH_MAX];
    const char *name = str(sec, "name");

    snprintf(kpath, sizeof(kpath), "%s.name", path);
    if (strlen(name) > 64 || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                          "0123456789_.-") != strlen(name)) {
        pw_conf_error(ctx, kpath, "use 1-64 letters, digits, '_', '.', '-' (it names metrics)");
    }
    snprintf(kpath, sizeof(kpath), "%s.base_url", path);
    check_base_url(ctx, str(sec, "base_url"), kpath);
    if (!str(sec, "client_cert_file") != !str(sec, "client_key_file")) {
        snprintf(kpath, sizeof(kpath), "%s.%s", path,
                 str(sec, "client_cert_file") ? "client_key_file" : "client_cert_file");
        pw_conf_error(ctx, kpath, "mTLS needs both client_cert_file and client_key_file");
    }
    if (json_integer_value(json_object_get(sec, "overlap")) < 0) {
        pw_conf_error(ctx, path, "overlap must not be negative");
    }
    snprintf(kpath, sizeof(kpath), "%s.proxy", path);
    check_proxy(ctx, str(sec, "proxy"), kpath);
}

static void check_sink(struct pw_conf_ctx *ctx, const json_t *sec, const char *path)
{
    const char *author = str(sec, "flag_author");
    char kpath[PW_CONF_PATH_MAX];

    if (strncmp(author, "Device/", 7) != 0 || !author[7] || strlen(author) > PW_REF_MAX) {
        snprintf(kpath, sizeof(kpath), "%s.flag_author", path);
        pw_conf_error(ctx, kpath, "must be a Device reference, e.g. Device/painwatch");
    }
}

static void check_health(struct pw_conf_ctx *ctx, const json_t *sec, const char *path)
{
    const char *listen = str(sec, "listen");
    const char *colon = strrchr(listen, ':');
    char kpath[PW_CONF_PATH_MAX];
    char *end;
    long port;

    snprintf(kpath, sizeof(kpath), "%s.listen", path);
    if (!colon || colon == listen) {
        pw_conf_error(ctx, kpath, "expected ADDRESS:PORT, e.g. 127.0.0.1:9187 or [::1]:9187");
        return;
    }
    port = strtol(colon + 1, &end, 10);
    if (*end || colon[1] == '\0' || port < 0 || port > 65535) {
        pw_conf_error(ctx, kpath, "invalid port '%s'", colon + 1);
        return;
    }
    unsigned char addr[16];
    char host[64];
    size_t hl = (size_t)(colon - listen);
    if (hl >= sizeof(host)) {
        pw_conf_error(ctx, kpath, "invalid address");
        return;
    }
    memcpy(host, listen, hl);
    host[hl] = '\0';
    bool v6 = host[0] == '[' && host[hl - 1] == ']';
    if (v6) {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    if (inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) != 1) {
        pw_conf_error(ctx, kpath, "'%s' is not a numeric IPv4 or [IPv6] address", host);
        return;
    }
    if (!json_is_true(json_object_get(sec, "allow_remote")) &&
        !loopback_host(listen, (size_t)(colon - listen))) {
        pw_conf_error(ctx, kpath,
                      "not a loopback address; set health.allow_remote: true to expose "
                      "metrics beyond this machine");
    }
}

void pw_conf_check_top(struct pw_conf_ctx *ctx, const json_t *top, const char *path)
{
    const json_t *servers = json_object_get(top, "servers");
    size_t i;
    const json_t *s;

    (void)path;
    json_array_foreach(servers, i, s)
    {
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(str(s, "name"), str(json_array_get(servers, j), "name"))) {
                char kpath[PW_CONF_PATH_MAX];
                snprintf(kpath, sizeof(kpath), "servers[%zu].name", i);
                pw_conf_error(ctx, kpath, "duplicate server name '%s'", str(s, "name"));
            }
        }
    }
}

/* ---- rules.<id>.<param> -------------------------------------------------------------------- */

static json_t *rule_value(struct pw_conf_ctx *ctx, const json_t *raw, const char *key,
                          const char *path, const struct pw_rule_param *p)
{
    const char *s = json_string_value(raw);
    char *end;
    double v;

    if (!s || !pw_conf_pos_plain(ctx, path)) {
        pw_conf_error(ctx, path, "expected %s",
                      strcmp(key, "enabled") ? "a number" : "true or false");
        return NULL;
    }
    if (!strcmp(key, "enabled")) {
        if (!strcmp(s, "true") || !strcmp(s, "false")) {
            return json_boolean(!strcmp(s, "true"));
        }
        pw_conf_error(ctx, path, "expected true or false, got '%s'", s);
        return NULL;
    }
    v = strtod(s, &end);
    if (end == s || *end) {
        pw_conf_error(ctx, path, "expected a number, got '%s'", s);
        return NULL;
    }
    if (p && (v < p->min || v > p->max)) {
        pw_conf_error(ctx, path, "%s is out of range: must be between %g and %g", s, p->min,
                      p->max);
        return NULL;
    }
    return json_real(v);
}

static const struct pw_rule *find_rule(const struct pw_rule *const *rules, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(rules[i]->id, id)) {
            return rules[i];
        }
    }
    return NULL;
}

/*
 * Insert @p v (possibly NULL after a reported error) under @p key. A NULL that no error explains,
 * or a failed insert, is an allocation failure and is reported as one: nothing is left out
 * silently.
 */
static void put(struct pw_conf_ctx *ctx, json_t *obj, const char *key, json_t *v, size_t before,
                const char *path)
{
    if ((!v && ctx->errs->count == before) || (v && json_object_set_new(obj, key, v))) {
        pw_conf_out_of_memory(ctx, path);
    }
}

/* One rule's section: enabled + its declared params (or any number when no registry). */
static json_t *rule_section(struct pw_conf_ctx *ctx, const struct pw_rule *rule, const json_t *raw,
                            const char *path)
{
    json_t *eff = json_object();
    const char *key;
    const json_t *val;

    if (raw && !json_is_object(raw)) {
        pw_conf_error(ctx, path, "expected a mapping of parameters");
        json_decref(eff);
        return NULL;
    }
    if (!eff) {
        return NULL; /* the caller reports it */
    }
    put(ctx, eff, "enabled", json_true(), ctx->errs->count, path);
    for (size_t i = 0; rule && i < rule->n_params; i++) {
        put(ctx, eff, rule->params[i].name, json_real(rule->params[i].def), ctx->errs->count, path);
    }
    json_object_foreach(pw_conf_mut(raw), key, val)
    {
        char kpath[PW_CONF_PATH_MAX];
        const struct pw_rule_param *p = NULL;
        snprintf(kpath, sizeof(kpath), "%s.%s", path, key);
        if (rule && strcmp(key, "enabled") != 0) {
            for (size_t i = 0; i < rule->n_params; i++) {
                if (!strcmp(rule->params[i].name, key)) {
                    p = &rule->params[i];
                }
            }
            if (!p) {
                pw_conf_error_key(ctx, kpath, "rule %s has no parameter '%s'", rule->id, key);
                continue;
            }
        }
        if (json_is_null(val)) {
            continue;
        }
        size_t before = ctx->errs->count;
        put(ctx, eff, key, rule_value(ctx, val, key, kpath, p), before, kpath);
    }
    return eff;
}

/* issue 21: `timezone`, an IANA zone name the C library's tz database holds. */
static const char *const post_severities[] = {"info", "low", "medium", "high", NULL};

static json_t *convert_timezone(struct pw_conf_ctx *ctx, const json_t *raw, const char *path)
{
    if (!raw || json_is_null(raw)) {
        return json_null();
    }
    if (!json_is_string(raw) || !pw_timezone_valid(json_string_value(raw))) {
        pw_conf_error(ctx, path,
                      "expected an IANA time zone name of the system's tz database "
                      "(e.g. Europe/Berlin)");
        return NULL;
    }
    return json_string(json_string_value(raw));
}

static json_t *convert_rules(struct pw_conf_ctx *ctx, const json_t *raw, const char *path)
{
    size_t n = 0;
    const struct pw_rule *const *rules = rule_catalog(&n);
    json_t *eff = json_object();
    const char *key;
    const json_t *val;

    if (raw && !json_is_object(raw)) {
        pw_conf_error(ctx, path, "expected a mapping of rule ids");
        json_decref(eff);
        return NULL;
    }
    if (!eff) {
        return NULL; /* check_table reports it */
    }
    /* With a registry, every rule appears in the effective config with its defaults. */
    for (size_t i = 0; rules && i < n; i++) {
        char kpath[PW_CONF_PATH_MAX];
        snprintf(kpath, sizeof(kpath), "%s.%s", path, rules[i]->id);
        size_t before = ctx->errs->count;
        put(ctx, eff, rules[i]->id,
            rule_section(ctx, rules[i], json_object_get(raw, rules[i]->id), kpath), before, kpath);
    }
    json_object_foreach(pw_conf_mut(raw), key, val)
    {
        char kpath[PW_CONF_PATH_MAX];
        snprintf(kpath, sizeof(kpath), "%s.%s", path, key);
        if (rules && !find_rule(rules, n, key)) {
            pw_conf_error_key(ctx, kpath, "no such rule (`painwatch config describe` lists them)");
        } else if (!rules) {
            size_t before = ctx->errs->count;
            put(ctx, eff, key, rule_section(ctx, NULL, val, kpath), before, kpath);
        }
    }
    return eff;
}

/* ---- tables -------------------------------------------------------------------------------- */

#define FILL(type, member) .offset = offsetof(type, member)

static const struct pw_conf_field server_fields[] = {
    {.name = "name",
     .type = PW_CONF_STRING,
     .flags = PW_CONF_F_REQUIRED,
     FILL(struct pw_conf_server, name),
     .help = "short name used in logs, metrics, audit"},
    {.name = "base_url",
     .type = PW_CONF_STRING,
     .flags = PW_CONF_F_REQUIRED,
     FILL(struct pw_conf_server, base_url),
     .help = "FHIR R4 base URL"},
    {.name = "ca_file",
     .type = PW_CONF_PATH,
     .flags = PW_CONF_F_MUST_EXIST,
     FILL(struct pw_conf_server, ca_file),
     .help = "PEM CA bundle; unset: system store"},
    {.name = "client_cert_file",
     .type = PW_CONF_PATH,
     .flags = PW_CONF_F_MUST_EXIST,
     FILL(struct pw_conf_server, client_cert_file),
     .help = "mTLS client certificate (PEM)"},
    {.name = "client_key_file",
     .type = PW_CONF_SECRET_PATH,
     FILL(struct pw_conf_server, client_key_file),
     .help = "mTLS client private key (PEM)"},
    {.name = "auth",
     .type = PW_CONF_ADAPTER,
     .def = "none",
     .kind = &pw_auth_kind,
     FILL(struct pw_conf_server, auth),
     .help = "authorization"},
    {.name = "cohort",
     .type = PW_CONF_ADAPTER,
     .kind = &pw_cohort_kind,
     FILL(struct pw_conf_server, cohort),
     .help = "whom to watch on this server"},
    {.name = "resources",
     .type = PW_CONF_STRLIST,
     .def = "Observation,MedicationRequest,MedicationAdministration,Condition,ServiceRequest,"
            "Encounter",
     .min = 1,
     .max = 8,
     FILL(struct pw_conf_server, resources),
     .count_offset = offsetof(struct pw_conf_server, n_resources),
     .help = "resource types synced: pain scores, vital signs and pain types (Observation, "
             "Condition), orders and doses given (MedicationRequest, MedicationAdministration), "
             "palliative referrals and visits (ServiceRequest, Encounter); default: every type "
             "the rules use; a rule resting on the absence of a type not listed is off; "
             "Observation or MedicationRequest not advertised by the server is a startup error, "
             "another type is then not synced"},
    {.name = "poll_interval",
     .type = PW_CONF_DURATION,
     .def = "5m",
     .min = 10 * SEC,
     .max = DAY,
     FILL(struct pw_conf_server, poll_interval_ms),
     .help = "time between syncs"},
    {.name = "connect_timeout",
     .type = PW_CONF_DURATION,
     .def = "10s",
     .min = 100,
     .max = 5 * MIN,
     FILL(struct pw_conf_server, connect_timeout_ms),
     .help = "TCP+TLS connect timeout"},
    {.name = "timeout",
     .type = PW_CONF_DURATION,
     .def = "60s",
     .min = SEC,
     .max = 30 * MIN,
     FILL(struct pw_conf_server, timeout_ms),
     .help = "whole-request timeout"},
    {.name = "max_concurrent",
     .type = PW_CONF_INT,
     .def = "4",
     .min = 1,
     .max = 64,
     FILL(struct pw_conf_server, max_concurrent),
     .help = "requests in flight to this server"},
    {.name = "body_max",
     .type = PW_CONF_SIZE,
     .def = "32MiB",
     .min = 64 * 1024,
     .max = 256.0 * 1024 * 1024,
     FILL(struct pw_conf_server, body_max),
     .help = "largest response body accepted"},
    {.name = "proxy",
     .type = PW_CONF_STRING,
     FILL(struct pw_conf_server, proxy),
     .help = "proxy URL for this server (http://, https://, socks5h://); unset: direct. The "
             "proxy environment variables (http_proxy, ALL_PROXY, no_proxy...) are ignored"},
    {0},
};

static const struct pw_conf_field health_fields[] = {
    {.name = "enabled",
     .type = PW_CONF_BOOL,
     .def = "true",
     FILL(struct pw_conf_health, enabled),
     .help = "serve /healthz, /readyz, /metrics"},
    {.name = "listen",
     .type = PW_CONF_STRING,
     .def = "127.0.0.1:9187",
     FILL(struct pw_conf_health, listen),
     .help = "ADDRESS:PORT of the listener"},
    {.name = "allow_remote",
     .type = PW_CONF_BOOL,
     .def = "false",
     .offset = PW_CONF_NOFILL,
     .help = "permit a non-loopback listen address"},
    {0},
};

static const struct pw_conf_field audit_fields[] = {
    {.name = "path",
     .type = PW_CONF_PATH,
     .def = "audit/painwatch-audit.jsonl",
     .flags = PW_CONF_F_STATE,
     FILL(struct pw_conf_audit, path),
     .help = "the audit trail file"},
    {.name = "key_file",
     .type = PW_CONF_SECRET_PATH,
     FILL(struct pw_conf_audit, key_file),
     .help = "HMAC key, outside state_dir; unset: <state_dir>/audit.key is created when "
             "allow_local_key is true (demo only)"},
    {.name = "rotate_size",
     .type = PW_CONF_SIZE,
     .def = "64MiB",
     .min = 64 * 1024,
     .max = 16.0 * 1024 * 1024 * 1024,
     FILL(struct pw_conf_audit, rotate_size),
     .help = "rotate when the file reaches this size"},
    {.name = "rotate_interval",
     .type = PW_CONF_DURATION,
     .def = "0",
     .min = 0,
     .max = 366 * DAY,
     FILL(struct pw_conf_audit, rotate_interval_ms),
     .help = "also rotate this often; 0: never"},
    /* issue 19 */
    {.name = "allow_local_key",
     .type = PW_CONF_BOOL,
     .def = "false",
     FILL(struct pw_conf_audit, allow_local_key),
     .help = "allow the HMAC key inside state_dir (created there when key_file is unset): demo"},
    {.name = "retain",
     .type = PW_CONF_DURATION,
     .def = "0",
     .min = 0,
     .max = 100.0 * 366 * DAY,
     FILL(struct pw_conf_audit, retain_ms),
     .help = "delete rotated trail files older than this once they verify; 0: keep all"},
    {0},
};

static const struct pw_conf_field outbox_fields[] = {
    {.name = "retry_base",
     .type = PW_CONF_DURATION,
     .def = "30s",
     .min = SEC,
     .max = HOUR,
     FILL(struct pw_conf_outbox, retry_base_ms),
     .help = "first retry delay (full jitter)"},
    {.name = "retry_cap",
     .type = PW_CONF_DURATION,
     .def = "1h",
     .min = SEC,
     .max = DAY,
     FILL(struct pw_conf_outbox, retry_cap_ms),
     .help = "longest retry delay"},
    {.name = "max_attempts",
     .type = PW_CONF_INT,
     .def = "0",
     .min = 0,
     .max = 100000,
     FILL(struct pw_conf_outbox, max_attempts),
     .help = "0: retry forever (never lose a write)"},
    {0},
};

static const struct pw_conf_field pain_code_fields[] = {
    {.name = "score",
     .type = PW_CONF_STRLIST,
     .def = "http://loinc.org|72514-3,http://loinc.org|38208-5,http://loinc.org|38214-3",
     FILL(struct pw_conf_pain_codes, score),
     .count_offset = offsetof(struct pw_conf_pain_codes, n_score),
     .help = "Observation codes read as a pain score (system|code): 0-10, or a 0-100 mm VAS "
             "when the value's unit is mm; system|code|max for a site scale 0-max"},
    {.name = "type",
     .type = PW_CONF_STRLIST,
     .def = "",
     FILL(struct pw_conf_pain_codes, type),
     .count_offset = offsetof(struct pw_conf_pain_codes, n_type),
     .help = "extra Observation/Condition codes for the pain type; empty: terminology tables"},
    {.name = "poss",
     .type = PW_CONF_STRLIST,
     .def = "",
     FILL(struct pw_conf_pain_codes, poss),
     .count_offset = offsetof(struct pw_conf_pain_codes, n_poss),
     .help = "site codes of Pasero Opioid-induced Sedation Scale observations (system|code); "
             "synced with the pain scores, read by opioid-sedation-risk"},
    {.name = "rass",
     .type = PW_CONF_STRLIST,
     .def = "",
     FILL(struct pw_conf_pain_codes, rass),
     .count_offset = offsetof(struct pw_conf_pain_codes, n_rass),
     .help = "site codes of Richmond Agitation-Sedation Scale observations (system|code)"},
    {0},
};

/* ---- issue 21: the CDS Hooks service --------------------------------------------------------- */

static void check_cds_issuer(struct pw_conf_ctx *ctx, const json_t *sec, const char *path)
{
    char kpath[PW_CONF_PATH_MAX];
    bool file = str(sec, "jwks_file") != NULL;
    bool url = str(sec, "jwks_url") != NULL;

    if (file == url) {
        pw_conf_error(ctx, path, "give exactly one of jwks_file and jwks_url");
    }
    if (url) {
        snprintf(kpath, sizeof(kpath), "%s.jwks_url", path);
        check_token_url(ctx, str(sec, "jwks_url"), kpath);
    }
}

/* Plain HTTP only on loopback (behind the site's reverse proxy); any other address needs TLS. */
static void check_cds_hooks(struct pw_conf_ctx *ctx, const json_t *sec, const char *path)
{
    const char *listen = str(sec, "listen");
    const char *colon = strrchr(listen, ':');
    bool tls = str(sec, "tls_cert") && str(sec, "tls_key");
    struct sockaddr_storage ss;
    char kpath[PW_CONF_PATH_MAX];
    bool v6;

    snprintf(kpath, sizeof(kpath), "%s.listen", path);
    if (pw_listen_parse(listen, &ss, &v6) < 0) {
        pw_conf_error(ctx, kpath, "expected a numeric ADDRESS:PORT, e.g. 127.0.0.1:9188");
    } else if (!tls && !loopback_host(listen, (size_t)(colon - listen))) {
        pw_conf_error(ctx, kpath,
                      "plain HTTP only on a loopback address (behind the site's TLS reverse "
                      "proxy); set tls_cert and tls_key to listen elsewhere");
    }
    if (!str(sec, "tls_cert") != !str(sec, "tls_key")) {
        pw_conf_error(ctx, path, "tls_cert and tls_key go together");
    }
    if (!json_is_true(json_object_get(sec, "enabled"))) {
        return;
    }
    pw_conf_need(ctx, sec, path, "service_url",
                 "when enabled (the URL the EHR calls: the JWT audience)");
    if (str(sec, "service_url")) {
        snprintf(kpath, sizeof(kpath), "%s.service_url", path);
        check_base_url(ctx, str(sec, "service_url"), kpath);
    }
    if (json_array_size(json_object_get(sec, "issuers")) == 0) {
        snprintf(kpath, sizeof(kpath), "%s.issuers", path);
        pw_conf_error(ctx, kpath,
                      "required when enabled: the EHRs allowed to call, with their keys");
    }
}

static const struct pw_conf_field cds_issuer_fields[] = {
    {.name = "iss",
     .type = PW_CONF_STRING,
     .flags = PW_CONF_F_REQUIRED,
     FILL(struct pw_conf_cds_issuer, iss),
     .help = "the EHR's JWT issuer, exactly as it signs it"},
    {.name = "jwks_file",
     .type = PW_CONF_PATH,
     .flags = PW_CONF_F_MUST_EXIST,
     FILL(struct pw_conf_cds_issuer, jwks_file),
     .help = "the EHR's public JWK Set (RS384 / ES384 keys), a file"},
    {.name = "jwks_url",
     .type = PW_CONF_STRING,
     FILL(struct pw_conf_cds_issuer, jwks_url),
     .help = "the EHR's public JWK Set URL (https, or http to loopback), fetched at start and "
             "every jwks_refresh"},
    {0},
};

static const struct pw_conf_field cds_hooks_fields[] = {
    {.name = "enabled",
     .type = PW_CONF_BOOL,
     .def = "false",
     FILL(struct pw_conf_cds_hooks, enabled),
     .help = "serve CDS Hooks 2.0 (discovery, patient-view, order-sign) on its own listener"},
    {.name = "listen",
     .type = PW_CONF_STRING,
     .def = "127.0.0.1:9188",
     FILL(struct pw_conf_cds_hooks, listen),
     .help = "ADDRESS:PORT; plain HTTP only on loopback behind the site's TLS reverse proxy"},
    {.name = "service_url",
     .type = PW_CONF_STRING,
     FILL(struct pw_conf_cds_hooks, service_url),
     .help = "the base URL the EHR calls (without /cds-services): the JWT audience"},
    {.name = "tls_cert",
     .type = PW_CONF_PATH,
     .flags = PW_CONF_F_MUST_EXIST,
     FILL(struct pw_conf_cds_hooks, tls_cert),
     .help = "PEM certificate chain: HTTPS on the listener itself (with tls_key)"},
    {.name = "tls_key",
     .type = PW_CONF_SECRET_PATH,
     FILL(struct pw_conf_cds_hooks, tls_key),
     .help = "PEM private key of tls_cert (a secret file or systemd credential)"},
    {.name = "issuers",
     .type = PW_CONF_SECTION_LIST,
     .sub = cds_issuer_fields,
     .check = check_cds_issuer,
     .max = 16,
     FILL(struct pw_conf_cds_hooks, issuers),
     .count_offset = offsetof(struct pw_conf_cds_hooks, n_issuers),
     .elem_size = sizeof(struct pw_conf_cds_issuer),
     .help = "EHRs allowed to call (iss allow-list), each with its keys"},
    {.name = "jwks_refresh",
     .type = PW_CONF_DURATION,
     .def = "1h",
     .min = MIN,
     .max = DAY,
     FILL(struct pw_conf_cds_hooks, jwks_refresh_ms),
     .help = "fetch jwks_url keys again this often (and at most once a minute on an unknown kid)"},
    {.name = "jti_window",
     .type = PW_CONF_DURATION,
     .def = "5m",
     .min = 10 * SEC,
     .max = HOUR,
     FILL(struct pw_conf_cds_hooks, jti_window_ms),
     .help = "longest JWT lifetime accepted; each jti is refused again for as long"},
    {.name = "clock_skew",
     .type = PW_CONF_DURATION,
     .def = "30s",
     .min = 0,
     .max = 5 * MIN,
     FILL(struct pw_conf_cds_hooks, clock_skew_ms),
     .help = "tolerance on the JWT's exp and iat"},
    {.name = "order_sign_horizon",
     .type = PW_CONF_DURATION,
     .def = "25h",
     .min = 0,
     .max = 7 * DAY,
     FILL(struct pw_conf_cds_hooks, order_sign_horizon_ms),
     .help = "order-sign judges the drafts as if signed and nothing else ordered for this long "
             "(site: past the rules' grace periods, e.g. 24 h before a bowel regimen is due)"},
    {.name = "refused_audit_per_minute",
     .type = PW_CONF_INT,
     .def = "60",
     .min = 1,
     .max = 100000,
     FILL(struct pw_conf_cds_hooks, refused_audit_per_minute),
     .help = "refused calls (401, 503) audited one by one in a minute; the rest of that minute's "
             "are counted, by status, in one record at its end (a flood of bad tokens costs "
             "one trail write a minute, not one each)"},
    {0},
};

const struct pw_conf_field pw_conf_schema[] = {
    /* Must stay first: PW_CONF_F_STATE paths resolve against it (conf.c). */
    {.name = "state_dir",
     .type = PW_CONF_PATH,
     FILL(struct pw_conf_daemon, state_dir),
     .help = "durable state; default $STATE_DIRECTORY or ./painwatch-state"},
    {.name = "log_level",
     .type = PW_CONF_ENUM,
     .def = "info",
     .allowed = log_levels,
     FILL(struct pw_conf_daemon, log_level),
     .help = "operational log threshold"},
    {.name = "shadow_mode",
     .type = PW_CONF_BOOL,
     .def = "true", /* safe by default (issue 19): a config must say false to write to charts */
     FILL(struct pw_conf_daemon, shadow_mode),
     .help = "write findings to sink.file, not the EHR (the safe default: set false to go live)"},
    {.name = "reevaluate_interval",
     .type = PW_CONF_DURATION,
     .def = "5m",
     .min = 10 * SEC,
     .max = DAY,
     FILL(struct pw_conf_daemon, reevaluate_interval_ms),
     .help = "re-run time-dependent rules from the store this often"},
    {.name = "shutdown_timeout",
     .type = PW_CONF_DURATION,
     .def = "20s",
     .min = SEC,
     .max = 10 * MIN,
     FILL(struct pw_conf_daemon, shutdown_timeout_ms),
     .help = "SIGTERM: finish or persist in-flight work within this time"},
    {.name = "health",
     .type = PW_CONF_SECTION,
     .sub = health_fields,
     .check = check_health,
     FILL(struct pw_conf_daemon, health),
     .help = "health and metrics listener"},
    {.name = "audit",
     .type = PW_CONF_SECTION,
     .sub = audit_fields,
     FILL(struct pw_conf_daemon, audit),
     .help = "the audit trail"},
    {.name = "store",
     .type = PW_CONF_ADAPTER,
     .def = "sqlite",
     .kind = &pw_store_kind,
     FILL(struct pw_conf_daemon, store),
     .help = "durable state store"},
    {.name = "outbox",
     .type = PW_CONF_SECTION,
     .sub = outbox_fields,
     FILL(struct pw_conf_daemon, outbox),
     .help = "delivery retries"},
    {.name = "sink",
     .type = PW_CONF_ADAPTER,
     .def = "fhir-flag",
     .kind = &pw_sink_kind,
     .check = check_sink,
     FILL(struct pw_conf_daemon, sink),
     .help = "where findings are written"},
    {.name = "servers",
     .type = PW_CONF_SECTION_LIST,
     .sub = server_fields,
     .kind = &pw_source_kind, /* issue 20: the source's keys sit beside these (source.h) */
     .check = check_server,
     .min = 1,
     .max = 64,
     FILL(struct pw_conf_daemon, servers),
     .count_offset = offsetof(struct pw_conf_daemon, n_servers),
     .elem_size = sizeof(struct pw_conf_server),
     .help = "FHIR servers to watch"},
    {.name = "terminology_dir",
     .type = PW_CONF_PATH,
     .flags = PW_CONF_F_MUST_EXIST | PW_CONF_F_DIR,
     FILL(struct pw_conf_daemon, terminology_dir),
     .help = "code tables (opioids, MME factors, laxatives, adjuvants); unset: the installed "
             "tables, or config/terminology of an uninstalled build"},
    {.name = "mme_route_factors_file",
     .type = PW_CONF_PATH,
     .flags = PW_CONF_F_MUST_EXIST,
     FILL(struct pw_conf_daemon, mme_route_factors_file),
     .help = "site MME factors by ingredient and route (the shape of mme-route-factors.csv); "
             "its rows replace or add to the shipped ones"},
    {.name = "dose_limits_file",
     .type = PW_CONF_PATH,
     .flags = PW_CONF_F_MUST_EXIST,
     FILL(struct pw_conf_daemon, dose_limits_file),
     .help = "site plausibility limits (the shape of dose-limits.csv); its rows replace or add "
             "to the shipped ones"},
    {.name = "factor_set",
     .type = PW_CONF_ENUM,
     .def = PW_MME_DEFAULT_SET,
     .allowed = factor_sets,
     FILL(struct pw_conf_daemon, factor_set),
     .help = "MME conversion factors"},
    {.name = "pain_codes",
     .type = PW_CONF_SECTION,
     .sub = pain_code_fields,
     FILL(struct pw_conf_daemon, pain_codes),
     .help = "codes read as pain data"},
    {.name = "scope",
     .type = PW_CONF_ENUM,
     .def = "problem-list",
     .allowed = scopes,
     FILL(struct pw_conf_daemon, scope),
     .help = "who the cancer-pain rules apply to: problem-list (an active malignant neoplasm, "
             "or a palliative / hospice context) or cohort (every cohort member, e.g. an "
             "oncology ward Group)"},
    {.name = "rules",
     .type = PW_CONF_JSON,
     .convert = convert_rules,
     FILL(struct pw_conf_daemon, rules),
     .help = "rules.<rule id>.<param> and .enabled"},
    /* issue 19 */
    {.name = "control_socket",
     .type = PW_CONF_PATH,
     FILL(struct pw_conf_daemon, control_socket),
     .help = "socket of `painwatch writes`; unset: $RUNTIME_DIRECTORY/control.sock, else "
             "<state_dir>/control.sock"},
    {.name = "startup_timeout",
     .type = PW_CONF_DURATION,
     .def = "60s",
     .min = 0,
     .max = HOUR,
     FILL(struct pw_conf_daemon, startup_timeout_ms),
     .help = "READY waits this long for every server's /metadata, then names those down"},
    /* issue 21 */
    {.name = "timezone",
     .type = PW_CONF_JSON,
     .convert = convert_timezone,
     FILL(struct pw_conf_daemon, timezone),
     .help = "IANA zone of the times in Flag narratives and texts (\"Europe/Berlin\"); unset: "
             "the system's zone"},
    {.name = "rule_code_system",
     .type = PW_CONF_STRING,
     .def = PW_FLAG_CODE_SYSTEM,
     FILL(struct pw_conf_daemon, rule_code_system),
     .help = "canonical URL of the rule CodeSystem (Flag.code.coding.system; `painwatch "
             "codesystem` prints the CodeSystem resource to load into the EHR's terminology)"},
    {.name = "post_min_severity",
     .type = PW_CONF_ENUM,
     .def = "low",
     .allowed = post_severities,
     FILL(struct pw_conf_daemon, post_min_severity),
     .help = "findings of this severity and above are posted (Flags); those below go only to "
             "the audit trail and reports (info|low|medium|high)"},
    {.name = "cds_hooks",
     .type = PW_CONF_SECTION,
     .sub = cds_hooks_fields,
     .check = check_cds_hooks,
     FILL(struct pw_conf_daemon, cds_hooks),
     .help = "the CDS Hooks 2.0 service (README \"CDS Hooks\")"},
    {0},
};

/* ---- the embedded default: the local demo -------------------------------------------------- */

static const char default_yaml[] =
    "# painwatch embedded default: the local demo (see config/painwatch.yaml for every key).\n"
    "# State goes to $STATE_DIRECTORY or ./painwatch-state; one FHIR server on loopback.\n"
    "# The demo writes its Flags to the loopback server: shadow mode (the built-in default) off.\n"
    "shadow_mode: false\n"
    "# The demo keeps its audit key beside the trail (a production key lives elsewhere).\n"
    "audit:\n"
    "  allow_local_key: true\n"
    "servers:\n"
    "  - name: local\n"
    "    base_url: http://127.0.0.1:8080/fhir\n"
    "    auth:\n"
    "      type: none\n"
    "    cohort:\n"
    "      type: server-wide\n"
    "    resources: [Observation, MedicationRequest, MedicationAdministration, Condition,\n"
    "                ServiceRequest, Encounter]\n"
    "sink:\n"
    "  type: fhir-flag\n";

const char *pw_conf_default_yaml(void)
{
    return default_yaml;
}

/* ---- description of every key --------------------------------------------------------------- */

static const char *const type_names[] = {
    [PW_CONF_BOOL] = "bool",         [PW_CONF_INT] = "int",
    [PW_CONF_DOUBLE] = "number",     [PW_CONF_STRING] = "string",
    [PW_CONF_DURATION] = "duration", [PW_CONF_SIZE] = "size",
    [PW_CONF_PATH] = "path",         [PW_CONF_SECRET_PATH] = "secret-file",
    [PW_CONF_ENUM] = "enum",         [PW_CONF_STRLIST] = "list",
    [PW_CONF_SECTION] = "section",   [PW_CONF_SECTION_LIST] = "list-of-sections",
    [PW_CONF_JSON] = "map",          [PW_CONF_ADAPTER] = "section",
};

static void describe_table(FILE *out, const struct pw_conf_field *table, const char *prefix);

/* Issue 20: "type" (one line per type with its help), the kind's keys, then each type's keys. */
static void describe_adapters(FILE *out, const struct pw_conf_field *f, const char *path)
{
    const struct pw_adapter_kind *kind = f->kind;

    /* A list of adapter sections (servers[]) defaults to the kind's first adapter. */
    const char *def = f->def ? f->def
                      : f->type == PW_CONF_SECTION_LIST && kind->adapters[0]
                          ? kind->adapters[0]->name
                          : "";

    fprintf(out, "%s.type\tenum\t%s\t%s", path, def, kind->type_help ? kind->type_help : "");
    for (size_t i = 0; i < PW_ADAPTERS_MAX && kind->adapters[i]; i++) {
        fprintf(out, "%s %s: %s", i ? ";" : ":", kind->adapters[i]->name,
                kind->adapters[i]->help ? kind->adapters[i]->help : "");
    }
    fputc('\n', out);
    if (kind->common) {
        describe_table(out, kind->common, path);
    }
    for (size_t i = 0; i < PW_ADAPTERS_MAX && kind->adapters[i]; i++) {
        const struct pw_adapter *a = kind->adapters[i];
        for (const struct pw_conf_field *c = a->config_map; c && c->name; c++) {
            fprintf(out, "%s.%s\t%s\t%s\t%s: %s%s\n", path, c->name, type_names[c->type],
                    c->def ? c->def : "", a->name, c->help ? c->help : "",
                    c->flags & PW_CONF_F_REQUIRED ? " (required)" : "");
            if (c->sub) {
                char sub[PW_CONF_PATH_MAX];
                snprintf(sub, sizeof(sub), "%s.%s", path, c->name);
                describe_table(out, c->sub, sub);
            }
        }
    }
}

static void describe_table(FILE *out, const struct pw_conf_field *table, const char *prefix)
{
    for (const struct pw_conf_field *f = table; f->name; f++) {
        char path[PW_CONF_PATH_MAX];
        snprintf(path, sizeof(path), "%s%s%s%s", prefix, prefix[0] ? "." : "", f->name,
                 f->type == PW_CONF_SECTION_LIST ? "[]" : "");
        fprintf(out, "%s\t%s\t%s\t%s\n", path, type_names[f->type], f->def ? f->def : "",
                f->help ? f->help : "");
        if (f->sub) {
            describe_table(out, f->sub, path);
        }
        if (f->type == PW_CONF_ADAPTER || f->kind) {
            describe_adapters(out, f, path);
        }
    }
}

char *pw_conf_describe(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    size_t n = 0;
    const struct pw_rule *const *rules = rule_catalog(&n);

    if (!out) {
        return NULL;
    }
    describe_table(out, pw_conf_schema, "");
    for (size_t i = 0; rules && i < n; i++) {
        fprintf(out, "rules.%s.enabled\tbool\ttrue\t%s\n", rules[i]->id, rules[i]->title);
        for (size_t j = 0; j < rules[i]->n_params; j++) {
            const struct pw_rule_param *p = &rules[i]->params[j];
            fprintf(out, "rules.%s.%s\tnumber\t%g\t%s [%g-%g]\n", rules[i]->id, p->name, p->def,
                    p->help ? p->help : "", p->min, p->max);
        }
    }
    if (fclose(out) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
