/* SPDX-License-Identifier: Apache-2.0 */
/*
 * painwatch auth test: for go-live day. With the configured credentials, obtain a token from
 * each server's token endpoint and read the server's /metadata with it, as painwatchd does at
 * start, and say in words what worked and what did not.
 */
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "cli/cmd.h"
#include "core/conf_server.h"
#include "core/conf_validate.h"
#include "painwatch/auth.h"
#include "painwatch/conf.h"
#include "painwatch/defaults.h"
#include "painwatch/err.h"
#include "painwatch/http.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: painwatch auth test [--config FILE] [--server NAME]\n"
            "  For each server (or only NAME): obtain an access token with the configured\n"
            "  credentials (smart-backend, client-secret; bearer uses its token file), then\n"
            "  GET <base_url>/metadata with it, and report each step. Nothing is written.\n"
            "  --config FILE  default " PW_DEFAULT_CONFIG_FILE "\n"
            "  Secrets named as credentials are read as `painwatch --credentials-dir DIR`\n"
            "  says. Exit 0 every server answered, 1 a step failed, 2 invalid configuration.\n");
}

struct probe {
    bool done;
    int err;
    long status;
    char error[256];
    json_t *body; /* parsed /metadata, or NULL */
};

static void run_until(uv_loop_t *loop, const struct probe *p)
{
    while (!p->done && uv_run(loop, UV_RUN_ONCE) != 0) {
    }
}

static void on_token(void *arg, int err)
{
    struct probe *p = arg;

    p->err = err;
    p->done = true;
}

static void on_metadata(void *arg, int err, const struct pw_http_resp *resp)
{
    struct probe *p = arg;

    p->err = err;
    p->status = resp->status;
    snprintf(p->error, sizeof(p->error), "%s", resp->error ? resp->error : "");
    if (err == 0 && resp->body_len) {
        p->body = json_loadb(resp->body, resp->body_len, 0, NULL);
    }
    p->done = true;
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "?";
}

/* The key of the auth section its adapter declares at @p member of struct pw_auth_keys, as
 * configured (NULL when unset or not the adapter's). */
static const char *akey(const struct pw_conf_server *s, size_t member)
{
    const struct pw_auth_keys *ak = pw_auth_keys_of(s->auth.type);
    const char *key = ak ? *(const char *const *)(const void *)((const char *)ak + member) : NULL;

    return key ? json_string_value(json_object_get(s->auth.section, key)) : NULL;
}

/* Step 1: a token. @return true when the server can be asked with credentials. */
static bool test_token(uv_loop_t *loop, const struct pw_conf_server *s, struct pw_auth *auth)
{
    const char *client_id = akey(s, offsetof(struct pw_auth_keys, client_id));
    const char *token_url = akey(s, offsetof(struct pw_auth_keys, token_url));
    const char *token_file = akey(s, offsetof(struct pw_auth_keys, token_file));
    const char *kid = akey(s, offsetof(struct pw_auth_keys, kid));
    struct probe p = {0};
    int rc;

    if (!auth) {
        printf("%s: auth: none (requests carry no credentials)\n", s->name);
        return true;
    }
    if (!pw_auth_can_refresh(auth)) {
        printf("%s: auth: %s: the token in %s is sent as is (nothing to obtain)\n", s->name,
               s->auth.type, token_file ? token_file : "token_file");
        return true;
    }
    rc = pw_auth_refresh(auth, on_token, &p);
    if (rc == 0) {
        run_until(loop, &p);
        rc = p.err;
    }
    if (rc < 0) {
        printf("%s: token: FAILED: %s (client_id %s, token endpoint %s); the line above says "
               "what the endpoint answered\n",
               s->name, pw_strerror(rc), client_id ? client_id : "?",
               token_url ? token_url : "discovered from .well-known/smart-configuration");
        return false;
    }
    printf("%s: token: obtained (%s, client_id %s%s%s)\n", s->name, s->auth.type,
           client_id ? client_id : "?", kid ? ", kid " : "", kid ? kid : "");
    return true;
}

/* Step 2: GET /metadata with the credentials. @return true on a CapabilityStatement. */
static bool test_metadata(uv_loop_t *loop, struct pw_http *http, const struct pw_conf_server *s,
                          struct pw_auth *auth)
{
    struct pw_http_req *req = NULL;
    struct probe p = {0};
    char url[4096];
    bool ok = false;
    int rc;

    snprintf(url, sizeof(url), "%s%smetadata", s->base_url,
             s->base_url[strlen(s->base_url) - 1] == '/' ? "" : "/");
    rc = pw_http_req_new(&req, s->name, "GET", url);
    if (rc == 0) {
        rc = pw_http_req_add_header(req, "Accept: application/fhir+json");
    }
    if (rc == 0) {
        rc = auth ? pw_auth_submit_new(auth, req, on_metadata, &p)
                  : pw_http_submit_new(http, req, on_metadata, &p);
        req = NULL; /* submitted: owned by the HTTP core on every path */
    }
    pw_http_req_free(req);
    if (rc == 0) {
        run_until(loop, &p);
        rc = p.err;
    }
    if (rc < 0) {
        printf("%s: GET %s: FAILED: no answer: %s%s%s\n", s->name, url, pw_strerror(rc),
               p.error[0] ? ": " : "", p.error);
    } else if (p.status == 401 || p.status == 403) {
        printf("%s: GET %s: FAILED: HTTP %ld: the server refuses these credentials (check the "
               "client registration, the JWKS and kid, and the granted scopes)\n",
               s->name, url, p.status);
    } else if (p.status != 200) {
        printf("%s: GET %s: FAILED: HTTP %ld\n", s->name, url, p.status);
    } else if (!p.body || strcmp(jstr(p.body, "resourceType"), "CapabilityStatement") != 0) {
        printf("%s: GET %s: FAILED: HTTP 200 but not a FHIR CapabilityStatement (is base_url "
               "the FHIR base?)\n",
               s->name, url);
    } else {
        const json_t *sw = json_object_get(p.body, "software");
        printf("%s: GET %s: HTTP 200, CapabilityStatement, FHIR %s, software %s %s\n", s->name, url,
               jstr(p.body, "fhirVersion"), jstr(sw, "name"), jstr(sw, "version"));
        ok = true;
    }
    json_decref(p.body);
    return ok;
}

static int auth_test(const char *file, const char *only)
{
    struct pw_conf_errors errs = {0};
    struct pw_conf *conf = NULL;
    const struct pw_conf_daemon *cd;
    uv_loop_t loop;
    struct pw_http *http = NULL;
    unsigned tested = 0;
    unsigned failed = 0;
    int rc = pw_conf_load_file(&conf, file, &errs);

    for (size_t i = 0; i < errs.n; i++) {
        fprintf(stderr, "%s\n", errs.lines[i]);
    }
    pw_conf_errors_cleanup(&errs);
    if (rc < 0) {
        fprintf(stderr, "%s: invalid configuration (`painwatch config check` says more)\n", file);
        pw_conf_free(conf);
        return 2;
    }
    if (pw_conf_validate(conf, NULL, NULL) < 0) {
        fprintf(stderr, "%s: invalid configuration: run `painwatch config check %s`\n", file, file);
        pw_conf_free(conf);
        return 2;
    }
    cd = pw_conf_daemon(conf);
    if (uv_loop_init(&loop) != 0) {
        pw_conf_free(conf);
        return 1;
    }
    rc = pw_http_new(&http, &loop);
    for (size_t i = 0; rc == 0 && i < cd->n_servers; i++) {
        const struct pw_conf_server *s = &cd->servers[i];
        const struct pw_conf_adapter_ref *ca = &s->auth;
        struct pw_http_server hs = pw_conf_server_http(s);
        char scope[512];
        struct pw_auth_conf ac = pw_conf_server_auth(s, cd->sink.section, scope, sizeof(scope));
        struct pw_auth *auth = NULL;

        if (only && strcmp(only, s->name) != 0) {
            continue;
        }
        tested++;
        if (pw_http_server_add(http, &hs) < 0 ||
            (ca->type && strcmp(ca->type, "none") != 0 && pw_auth_new(&auth, http, &ac) < 0)) {
            printf("%s: FAILED: the %s settings cannot be used\n", s->name, ca->type);
            failed++;
            continue;
        }
        if (!test_token(&loop, s, auth)) {
            printf("%s: GET metadata: skipped (no token)\n", s->name);
            failed++;
        } else if (!test_metadata(&loop, http, s, auth)) {
            failed++;
        }
        pw_auth_free(auth);
    }
    pw_http_free(http);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    pw_conf_free(conf);
    if (rc < 0) {
        fprintf(stderr, "painwatch auth: HTTP core: %s\n", pw_strerror(rc));
        return 1;
    }
    if (tested == 0) {
        fprintf(stderr, "painwatch auth: no server named '%s' in %s\n", only ? only : "", file);
        return 2;
    }
    printf("auth test: %u of %u server(s) OK\n", tested - failed, tested);
    return failed ? 1 : 0;
}

int pw_cmd_auth(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"server", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *file = PW_DEFAULT_CONFIG_FILE;
    const char *only = NULL;

    if (argc < 2 || strcmp(argv[1], "test") != 0) {
        bool help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help"));
        usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    argc--;
    argv++;
    int rc = pw_cmd_opts_cs(argc, argv, opts, usage, &file, &only, 0);
    return rc >= 0 ? rc : auth_test(file, only);
}
