/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Auth adapter "client-secret": OAuth client_credentials with a client secret read from a file,
 * sent with HTTP Basic (RFC 6749 2.3.1, the default) or as form fields ("post").
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "painwatch/auth.h"
#include "painwatch/err.h"
#include "painwatch/http.h"
#include "painwatch/log.h"
#include "painwatch/secret.h"

struct client_secret {
    struct pw_auth_oauth oauth; /* config: token_url, client_id, scope; must stay first */
    const char *secret_file;    /* config: client_secret_file */
    const char *secret_method;  /* config: client_secret_method, basic | post */
    char *secret;
    bool post;
};

static const char *const secret_methods[] = {"basic", "post", NULL};

static const struct pw_conf_field cs_map[] = {
    PW_AUTH_OAUTH_FIELDS(struct client_secret),
    {.name = "client_secret_file",
     .type = PW_CONF_SECRET_PATH,
     .flags = PW_CONF_F_REQUIRED,
     .offset = offsetof(struct client_secret, secret_file),
     .help = "file with the secret"},
    {.name = "client_secret_method",
     .type = PW_CONF_ENUM,
     .def = "basic",
     .allowed = secret_methods,
     .offset = offsetof(struct client_secret, secret_method),
     .help = "HTTP Basic or form post"},
    {0},
};

static void cs_check(struct pw_conf_ctx *ctx, const json_t *section, const char *path)
{
    pw_conf_check_token_url(ctx, section, path);
}

static int cs_init(struct pw_auth *auth)
{
    struct client_secret *cs = pw_auth_ctx(auth);
    const struct pw_auth_conf *c = pw_auth_conf(auth);
    int err;

    if (!cs->oauth.client_id || !cs->secret_file) {
        pw_log_err(AUTH, "server %s: auth client-secret needs client_id and secret_file",
                   c->server);
        return PW_ECONFIG;
    }
    if (cs->secret_method && strcmp(cs->secret_method, "post") != 0 &&
        strcmp(cs->secret_method, "basic") != 0) {
        pw_log_err(AUTH, "server %s: secret_method must be basic or post", c->server);
        return PW_ECONFIG;
    }
    err = pw_auth_oauth_use(auth, &cs->oauth);
    if (err) {
        return err;
    }
    cs->post = cs->secret_method && strcmp(cs->secret_method, "post") == 0;
    return pw_secret_read(cs->secret_file, &cs->secret, NULL);
}

/* Authorization: Basic base64(urlencode(id) ":" urlencode(secret)), RFC 6749 2.3.1. */
static int basic_header(const char *id, const char *secret, struct pw_http_req *req)
{
    char *eid = pw_http_escape(id);
    char *esec = pw_http_escape(secret);
    char *pair = NULL;
    char *line = NULL;
    int err = PW_ENOMEM;

    if (!eid || !esec) {
        goto out;
    }
    size_t plen = strlen(eid) + strlen(esec) + 1;
    pair = malloc(plen + 1);
    line = malloc(sizeof("Authorization: Basic ") + 4 * ((plen + 2) / 3) + 1);
    if (!pair || !line) {
        goto out;
    }
    memcpy(pair, eid, strlen(eid));
    pair[strlen(eid)] = ':';
    memcpy(pair + strlen(eid) + 1, esec, strlen(esec) + 1);
    memcpy(line, "Authorization: Basic ", sizeof("Authorization: Basic ") - 1);
    EVP_EncodeBlock((unsigned char *)line + sizeof("Authorization: Basic ") - 1,
                    (const unsigned char *)pair, (int)plen);
    err = pw_http_req_add_header(req, line);
out:
    if (pair) {
        pw_secret_wipe(pair, strlen(pair));
    }
    if (line) {
        pw_secret_wipe(line, strlen(line));
    }
    if (esec) {
        pw_secret_wipe(esec, strlen(esec));
    }
    free(pair);
    free(line);
    pw_http_escape_free(eid);
    pw_http_escape_free(esec);
    return err;
}

static int cs_form(struct pw_auth *auth, const char *aud, struct pw_http_req *req, char **form)
{
    struct client_secret *cs = pw_auth_ctx(auth);
    const char *id = cs->oauth.client_id;
    int err;

    (void)aud;
    if (!cs->post) {
        return basic_header(id, cs->secret, req);
    }
    err = pw_auth_form_add(form, "client_id", id);
    return err ? err : pw_auth_form_add(form, "client_secret", cs->secret);
}

static int cs_refresh(struct pw_auth *auth, pw_auth_done_fn *done, void *arg)
{
    return pw_auth_oauth_refresh(auth, cs_form, done, arg);
}

static void cs_cleanup(struct pw_auth *auth)
{
    struct client_secret *cs = pw_auth_ctx(auth);

    pw_secret_free(cs->secret);
    cs->secret = NULL;
}

/* What `painwatch auth test` and `painwatch jwks` read of the section. */
static const struct pw_auth_keys tool_keys = {.client_id = "client_id", .token_url = "token_url"};

const struct pw_auth_ops pw_auth_client_secret = {
    .adapter = {.name = "client-secret",
                .config_map = cs_map,
                .ctx_size = sizeof(struct client_secret),
                .check = cs_check,
                .help = "OAuth client_credentials with a client secret from a file"},
    .init = cs_init,
    .apply = pw_auth_bearer_apply,
    .refresh = cs_refresh,
    .invalidate = pw_auth_token_drop,
    .cleanup = cs_cleanup,
    .keys = &tool_keys,
};
