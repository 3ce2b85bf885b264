/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Auth adapter "bearer": a static access token read from a file (token_file). After a 401 the
 * file is read again, so a token rotated by another process is picked up and retried once.
 */
#include <string.h>

#include "painwatch/auth.h"
#include "painwatch/err.h"
#include "painwatch/log.h"
#include "painwatch/secret.h"

struct bearer {
    const char *token_file; /* config */
    char *current;          /* the token in use, to tell a rotated file from an unchanged one */
};

static const struct pw_conf_field bearer_map[] = {
    {.name = "token_file",
     .type = PW_CONF_SECRET_PATH,
     .flags = PW_CONF_F_REQUIRED,
     .offset = offsetof(struct bearer, token_file),
     .help = "file holding a static access token (re-read after a 401)"},
    {0},
};

static int load(struct pw_auth *auth)
{
    struct bearer *b = pw_auth_ctx(auth);
    const struct pw_auth_conf *c = pw_auth_conf(auth);
    char *tok = NULL;
    int err = pw_secret_read(b->token_file, &tok, NULL);

    if (err) {
        return err;
    }
    if (strpbrk(tok, " \t\r\n")) {
        pw_log_err(AUTH, "server %s: token_file holds more than one token", c->server);
        pw_secret_free(tok);
        return PW_ESECRET;
    }
    if (b->current && strcmp(b->current, tok) == 0) {
        pw_secret_free(tok); /* unchanged: keep the generation, so no pointless retry */
        return 0;
    }
    err = pw_auth_token_set(auth, tok, 0);
    if (err) {
        pw_secret_free(tok);
        return err;
    }
    pw_secret_free(b->current);
    b->current = tok;
    return 0;
}

static int bearer_init(struct pw_auth *auth)
{
    const struct bearer *b = pw_auth_ctx(auth);

    if (!b->token_file) {
        pw_log_err(AUTH, "server %s: auth bearer needs token_file", pw_auth_conf(auth)->server);
        return PW_ECONFIG;
    }
    return load(auth);
}

static void bearer_invalidate(struct pw_auth *auth)
{
    int err = load(auth);

    if (err) {
        pw_log_warn(AUTH, "server %s: cannot re-read token_file: %s", pw_auth_conf(auth)->server,
                    pw_strerror(err));
    }
}

static void bearer_cleanup(struct pw_auth *auth)
{
    struct bearer *b = pw_auth_ctx(auth);

    pw_secret_free(b->current);
    b->current = NULL;
}

/* What `painwatch auth test` and `painwatch jwks` read of the section. */
static const struct pw_auth_keys tool_keys = {.token_file = "token_file"};

const struct pw_auth_ops pw_auth_bearer = {
    .adapter = {.name = "bearer",
                .config_map = bearer_map,
                .ctx_size = sizeof(struct bearer),
                .help = "a static access token from a file"},
    .init = bearer_init,
    .apply = pw_auth_bearer_apply,
    .refresh = NULL,
    .invalidate = bearer_invalidate,
    .cleanup = bearer_cleanup,
    .keys = &tool_keys,
};
