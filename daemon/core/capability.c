/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CapabilityStatement (/metadata): what a server advertises (search parameters per type,
 * Flag create/update, conditional create), fetched and parsed (capability.h), and whether it
 * takes what the sink writes (run by the source's startup check and again by a reload that
 * changes the sink's types). How the rest compares with a source's configuration is the
 * source's (adapters/source_fhir_search_capability.c).
 */
#include "painwatch/capability.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "painwatch/auth.h"
#include "painwatch/err.h"
#include "painwatch/http.h"
#include "painwatch/json_err.h"
#include "painwatch/log.h"
#include "painwatch/sink.h"
#include "painwatch/sync.h"

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

/* The interaction of @p type painwatch needs and /metadata leaves out ("create", "update"), or
 * NULL when both are advertised. */
static const char *write_missing(const struct pw_capability *cap, const char *type)
{
    const json_t *t = json_object_get(cap->types, type);
    bool create = json_is_true(json_object_get(t, "write"));
    bool update = create;

    if (strcmp(type, "Flag") == 0) { /* parsed apart, with conditional create */
        create = cap->flag_create;
        update = cap->flag_update;
    }
    return !create ? "create" : !update ? "update" : NULL;
}

unsigned pw_capability_check_writes(const struct pw_capability *cap, const char *server,
                                    const struct pw_sink_writes *w)
{
    unsigned warnings = 0;
    char names[128] = "";
    size_t len = 0;
    size_t missing = 0;
    const char *what = NULL;

    for (size_t i = 0; i < w->n; i++) {
        const char *m = write_missing(cap, w->types[i]);
        if (m && !w->any) {
            pw_log_warn(SYNC,
                        "%s: %s %s not advertised: posting %s resources here will fail (shadow "
                        "mode works)",
                        server, w->types[i], m, w->types[i]);
            warnings++;
        } else if (m && len < sizeof(names)) {
            int n = snprintf(names + len, sizeof(names) - len, "%s%s", missing ? " or " : "",
                             w->types[i]);
            len += n > 0 ? (size_t)n : 0;
            what = missing++ ? "create and update" : m;
        }
    }
    if (w->any && w->n > 0 && missing == w->n) {
        pw_log_warn(SYNC,
                    "%s: %s %s not advertised: posting findings here will fail (shadow mode "
                    "works)",
                    server, names, what);
        warnings++;
    }
    return warnings;
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
