/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CapabilityStatement (/metadata): what a server advertises (search parameters per type,
 * Flag create/update, conditional create), and how that compares with the configured dialect.
 * A search that cannot work is a startup error; a feature that is merely not advertised is a
 * warning (many servers under-declare, e.g. _lastUpdated).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "painwatch/auth.h"
#include "painwatch/err.h"
#include "painwatch/http.h"
#include "painwatch/json_err.h"
#include "painwatch/log.h"
#include "painwatch/source.h"

static const char *str_at(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static bool has_interaction(const json_t *res, const char *code)
{
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(res, "interaction"), i, it)
    {
        const char *c = str_at(it, "code");
        if (c && strcmp(c, code) == 0) {
            return true;
        }
    }
    return false;
}

static json_t *param_names(const json_t *holder)
{
    json_t *names = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(holder, "searchParam"), i, p)
    {
        const char *n = str_at(p, "name");
        if (n && json_array_append_new(names, json_string(n))) {
            json_decref(names);
            return NULL;
        }
    }
    return names;
}

static const json_t *server_rest(const json_t *statement)
{
    size_t i;
    json_t *rest;
    json_array_foreach(json_object_get(statement, "rest"), i, rest)
    {
        const char *mode = str_at(rest, "mode");
        if (mode && strcmp(mode, "server") == 0) {
            return rest;
        }
    }
    return NULL;
}

static int parse_resources(struct pw_capability *cap, const json_t *rest)
{
    size_t i;
    json_t *res;
    json_array_foreach(json_object_get(rest, "resource"), i, res)
    {
        const char *type = str_at(res, "type");
        if (!type) {
            continue;
        }
        json_t *params = param_names(res);
        json_t *entry =
            params ? json_pack("{s:b, s:o, s:b, s:b}", "search",
                               has_interaction(res, "search-type"), "params", params, "write",
                               has_interaction(res, "create") && has_interaction(res, "update"),
                               "conditionalCreate",
                               json_is_true(json_object_get(res, "conditionalCreate")))
                   : NULL;
        if (!entry || json_object_set_new(cap->types, type, entry)) {
            return PW_ENOMEM;
        }
        if (strcmp(type, "Flag") == 0) {
            cap->flag_create = has_interaction(res, "create");
            cap->flag_update = has_interaction(res, "update");
            cap->flag_conditional_create = json_is_true(json_object_get(res, "conditionalCreate"));
        }
    }
    return 0;
}

int pw_capability_parse(struct pw_capability *cap, const json_t *statement)
{
    const char *rt = str_at(statement, "resourceType");
    const json_t *rest = server_rest(statement);
    int err = PW_ENOMEM;

    memset(cap, 0, sizeof(*cap));
    if (!rt || strcmp(rt, "CapabilityStatement") != 0 || !rest) {
        return PW_EFHIR;
    }
    const char *ver = str_at(statement, "fhirVersion");
    const json_t *sw = json_object_get(statement, "software");
    if (ver && !(cap->fhir_version = strdup(ver))) {
        goto fail;
    }
    if (str_at(sw, "name")) {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s%s%s", str_at(sw, "name"), str_at(sw, "version") ? " " : "",
                 str_at(sw, "version") ? str_at(sw, "version") : "");
        if (!(cap->software = strdup(buf))) {
            goto fail;
        }
    }
    cap->types = json_object();
    cap->common = param_names(rest);
    if (!cap->types || !cap->common || (err = parse_resources(cap, rest)) != 0) {
        goto fail;
    }
    return 0;
fail:
    pw_capability_cleanup(cap);
    return err;
}

void pw_capability_cleanup(struct pw_capability *cap)
{
    if (!cap) {
        return;
    }
    free(cap->fhir_version);
    free(cap->software);
    json_decref(cap->types);
    json_decref(cap->common);
    memset(cap, 0, sizeof(*cap));
}

static bool in_names(const json_t *names, const char *param)
{
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n)
    {
        if (strcmp(json_string_value(n), param) == 0) {
            return true;
        }
    }
    return false;
}

bool pw_capability_has_param(const struct pw_capability *cap, const char *type, const char *param)
{
    const json_t *t = json_object_get(cap->types, type);
    return in_names(json_object_get(t, "params"), param) || in_names(cap->common, param);
}

bool pw_capability_writable(const struct pw_capability *cap, const char *type,
                            bool *conditional_create)
{
    const json_t *t = json_object_get(cap->types, type);

    if (conditional_create) {
        *conditional_create = json_is_true(json_object_get(t, "conditionalCreate"));
    }
    return json_is_true(json_object_get(t, "write"));
}

static const char *clinical_date_param(const char *type)
{
    if (strcmp(type, "Observation") == 0) {
        return "date";
    }
    if (strcmp(type, "MedicationRequest") == 0) {
        return "authoredon";
    }
    return NULL;
}

/* What one searched type relies on. Errors: the search cannot work as configured. */
static void check_type(const struct pw_capability *cap, const struct pw_source_conf *conf,
                       const struct pw_search_type *st, unsigned *errors, unsigned *warnings)
{
    const char *name = conf->name;
    const char *type = st->type;
    const json_t *t = json_object_get(cap->types, type);
    const struct pw_fhir_dialect *d = &conf->dialect;

    if (!t || !json_is_true(json_object_get(t, "search"))) {
        pw_log_err(SYNC, "%s: /metadata does not advertise %s search", name, type);
        (*errors)++;
        return;
    }
    if (json_array_size(json_object_get(t, "params")) == 0) {
        pw_log_warn(SYNC, "%s: /metadata lists no search parameters for %s, cannot check", name,
                    type);
        (*warnings)++;
        return;
    }
    const char *pp = d->subject ? "subject" : "patient";
    if (!pw_capability_has_param(cap, type, pp)) {
        const char *other = d->subject ? "patient" : "subject";
        pw_log_err(SYNC, "%s: %s search by '%s' not advertised%s%s%s", name, type, pp,
                   pw_capability_has_param(cap, type, other) ? " (it advertises '" : "",
                   pw_capability_has_param(cap, type, other) ? other : "",
                   pw_capability_has_param(cap, type, other) ? "': set dialect.patient_param)"
                                                             : "");
        (*errors)++;
    }
    static const struct {
        const char *param;
        size_t flag;
    } optional[] = {
        {"_lastUpdated", offsetof(struct pw_fhir_dialect, last_updated)},
        {"_sort", offsetof(struct pw_fhir_dialect, sort)},
        {"_include", offsetof(struct pw_fhir_dialect, include)},
    };
    for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++) {
        bool used = *(const bool *)(const void *)((const char *)d + optional[i].flag);
        if (used && !pw_capability_has_param(cap, type, optional[i].param)) {
            pw_log_warn(SYNC, "%s: %s '%s' is configured but not advertised", name, type,
                        optional[i].param);
            (*warnings)++;
        }
    }
    const char *dp = clinical_date_param(type);
    if (d->date_params && dp && !pw_capability_has_param(cap, type, dp)) {
        pw_log_warn(SYNC,
                    "%s: %s '%s' not advertised; set dialect.date_params: false if the "
                    "lookback fails",
                    name, type, dp);
        (*warnings)++;
    }
    if ((st->codes || st->valueset) && !pw_capability_has_param(cap, type, "code")) {
        pw_log_warn(SYNC, "%s: %s 'code' not advertised: the code filter may be ignored", name,
                    type);
        (*warnings)++;
    }
}

int pw_capability_check(const struct pw_capability *cap, const struct pw_source_conf *conf,
                        unsigned *errors, unsigned *warnings)
{
    *errors = 0;
    *warnings = 0;
    pw_log_info(SYNC, "%s: FHIR %s, %s; Flag create %s, update %s, conditional create %s",
                conf->name, cap->fhir_version ? cap->fhir_version : "(version not stated)",
                cap->software ? cap->software : "software not stated",
                cap->flag_create ? "yes" : "no", cap->flag_update ? "yes" : "no",
                cap->flag_conditional_create ? "yes" : "no");
    if (cap->fhir_version && strncmp(cap->fhir_version, "4.0", 3) != 0) {
        pw_log_warn(SYNC, "%s: FHIR %s is not R4", conf->name, cap->fhir_version);
        (*warnings)++;
    }
    for (size_t i = 0; i < conf->ntypes; i++) {
        check_type(cap, conf, &conf->types[i], errors, warnings);
    }
    if (!cap->flag_create || !cap->flag_update) {
        pw_log_warn(SYNC,
                    "%s: Flag %s not advertised: posting flags here will fail (shadow "
                    "mode works)",
                    conf->name, !cap->flag_create ? "create" : "update");
        (*warnings)++;
    }
    return *errors ? PW_ECONFIG : 0;
}

/*
 * The fetch.
 */

struct fetch {
    pw_capability_fn *done;
    void *arg;
    char server[64];
};

static int fetch_parse(struct fetch *f, int err, const struct pw_http_resp *resp,
                       struct pw_capability *cap)
{
    json_error_t jerr;

    if (err) {
        pw_log_err(SYNC, "%s: /metadata: %s (%s)", f->server, pw_strerror(err),
                   resp->error && *resp->error ? resp->error : "no response");
        return err;
    }
    if (resp->status != 200) {
        pw_log_err(SYNC, "%s: /metadata: HTTP %ld", f->server, resp->status);
        return PW_EHTTP;
    }
    json_t *j = json_loadb(resp->body, resp->body_len, 0, &jerr);
    if (!j) {
        char why[160];
        pw_log_err(SYNC, "%s: /metadata: malformed JSON (%s)", f->server,
                   pw_json_error_describe(&jerr, why, sizeof(why)));
        return PW_EJSON;
    }
    err = pw_capability_parse(cap, j);
    json_decref(j);
    if (err) {
        pw_log_err(SYNC, "%s: /metadata: not a server CapabilityStatement", f->server);
    }
    return err;
}

static void on_metadata(void *arg, int err, const struct pw_http_resp *resp)
{
    struct fetch *f = arg;
    struct pw_capability cap;

    memset(&cap, 0, sizeof(cap));
    pw_log_context(f->server, NULL, NULL); /* journal field PW_SERVER (issue 19) */
    err = fetch_parse(f, err, resp, &cap);
    pw_log_context(NULL, NULL, NULL);
    f->done(f->arg, err, err ? NULL : &cap);
    pw_capability_cleanup(&cap);
    free(f);
}

int pw_capability_fetch(struct pw_http *http, const char *server, const char *base,
                        struct pw_auth *auth, pw_capability_fn *done, void *arg)
{
    char url[PW_SYNC_URL_MAX];
    struct pw_http_req *req = NULL;
    int n = snprintf(url, sizeof(url), "%s/metadata", base);

    if (n < 0 || (size_t)n >= sizeof(url) || !done) {
        return PW_EINVAL;
    }
    struct fetch *f = calloc(1, sizeof(*f));
    if (!f) {
        return PW_ENOMEM;
    }
    f->done = done;
    f->arg = arg;
    snprintf(f->server, sizeof(f->server), "%s", server);
    int err = pw_http_req_new(&req, server, "GET", url);
    if (err) {
        free(f);
        return err;
    }
    err = auth ? pw_auth_submit_new(auth, req, on_metadata, f)
               : pw_http_submit_new(http, req, on_metadata, f);
    if (err) {
        free(f);
    }
    return err;
}
