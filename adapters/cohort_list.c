/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "list" cohort: a text file with one Patient id or reference per line ('#' comments).
 * The file is re-read when its modification time changes; a broken edit keeps the old list.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "painwatch/array.h"
#include "painwatch/cohort.h"
#include "painwatch/err.h"
#include "painwatch/limits.h"
#include "painwatch/log.h"

struct list_ctx {
    const char *path; /* config: file */
    struct timespec mtime;
};

static const struct pw_conf_field list_map[] = {
    {.name = "file",
     .type = PW_CONF_PATH,
     .flags = PW_CONF_F_MUST_EXIST,
     .offset = offsetof(struct list_ctx, path),
     .help = "patient references, one per line ('#' starts a comment), re-read when it changes"},
    {0},
};

static void list_check(struct pw_conf_ctx *ctx, const json_t *section, const char *path)
{
    pw_conf_need(ctx, section, path, "file", "with type list (one patient reference per line)");
}

static void ids_free(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ids[i]);
    }
    free(ids);
}

/* Trim comments and blanks; returns the token (in place) or NULL for an empty line. */
static char *line_token(char *line)
{
    char *hash = strchr(line, '#');
    if (hash) {
        *hash = '\0';
    }
    while (*line == ' ' || *line == '\t') {
        line++;
    }
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r' ||
                     line[n - 1] == '\n')) {
        line[--n] = '\0';
    }
    return n ? line : NULL;
}

int pw_cohort_list_parse(const char *path, char ***out_ids, size_t *out_n, char *errbuf,
                         size_t errlen)
{
    char line[PW_COHORT_LINE_MAX + 2];
    char **ids = NULL;
    size_t n = 0;
    size_t cap = 0;
    unsigned lineno = 0;
    int err = 0;
    FILE *f = fopen(path, "r");

    if (!f) {
        snprintf(errbuf, errlen, "%s: cannot open", path);
        return PW_ENOENT;
    }
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof(line) - 1 && line[len - 1] != '\n' && !feof(f)) {
            snprintf(errbuf, errlen, "%s:%u: line longer than %u bytes", path, lineno,
                     PW_COHORT_LINE_MAX);
            err = PW_ECONFIG;
            goto fail;
        }
        char *tok = line_token(line);
        if (!tok) {
            continue;
        }
        char id[PW_ID_MAX];
        if (strpbrk(tok, " \t") || pw_patient_ref_id(tok, id, sizeof(id)) != 0) {
            snprintf(errbuf, errlen, "%s:%u: not a Patient id or reference", path, lineno);
            err = PW_ECONFIG;
            goto fail;
        }
        if (n == PW_COHORT_MAX) {
            snprintf(errbuf, errlen, "%s:%u: more than %u patients", path, lineno, PW_COHORT_MAX);
            err = PW_E2BIG;
            goto fail;
        }
        if (pw_array_reserve_from(&ids, &cap, n + 1, sizeof(*ids), 64) != 0) {
            err = PW_ENOMEM;
            goto fail;
        }
        ids[n] = strdup(id);
        if (!ids[n]) {
            err = PW_ENOMEM;
            goto fail;
        }
        n++;
    }
    if (ferror(f)) {
        snprintf(errbuf, errlen, "%s:%u: read error", path, lineno);
        err = PW_EIO;
        goto fail;
    }
    fclose(f);
    *out_ids = ids;
    *out_n = n;
    return 0;
fail:
    fclose(f);
    ids_free(ids, n);
    return err;
}

static int list_load(struct pw_cohort *c, char *errbuf, size_t errlen)
{
    struct list_ctx *ctx = c->ctx;
    struct stat sb;
    char **ids = NULL;
    size_t n = 0;

    if (stat(ctx->path, &sb) != 0) {
        snprintf(errbuf, errlen, "%s: cannot open", ctx->path);
        return PW_ENOENT;
    }
    int err = pw_cohort_list_parse(ctx->path, &ids, &n, errbuf, errlen);
    if (err) {
        return err;
    }
    ctx->mtime = sb.st_mtim;
    return pw_cohort_set_members(c, ids, n);
}

static int list_open(struct pw_cohort *c, const json_t *conf, char *errbuf, size_t errlen)
{
    const struct list_ctx *ctx = c->ctx;

    (void)conf;
    if (!ctx->path || !ctx->path[0]) {
        snprintf(errbuf, errlen, "cohort.file: required for a list cohort");
        return PW_ECONFIG;
    }
    return list_load(c, errbuf, errlen);
}

static int list_refresh(struct pw_cohort *c, const struct pw_cohort_env *env, int64_t now_ms,
                        pw_cohort_done_fn *done, void *arg)
{
    struct list_ctx *ctx = c->ctx;
    struct stat sb;
    char errbuf[256] = "";

    (void)env;
    (void)now_ms;
    (void)done;
    (void)arg;
    if (stat(ctx->path, &sb) != 0) {
        pw_log_err(SYNC, "%s: cannot stat, keeping %zu patients", ctx->path, c->nmembers);
        return 1;
    }
    if (sb.st_mtim.tv_sec == ctx->mtime.tv_sec && sb.st_mtim.tv_nsec == ctx->mtime.tv_nsec) {
        return 1;
    }
    int err = list_load(c, errbuf, sizeof(errbuf));
    if (err) {
        /* A half-saved edit must not drop the whole cohort. */
        pw_log_err(SYNC, "%s (keeping the previous %zu patients)", errbuf, c->nmembers);
    } else {
        pw_log_notice(SYNC, "%s: reloaded, %zu patients", ctx->path, c->nmembers);
    }
    return 1;
}

static void list_advise(const json_t *section, const char *path, pw_adapter_warn_fn *warn,
                        void *arg)
{
    const char *file = json_string_value(json_object_get(section, "file"));
    char text[4200];

    snprintf(text, sizeof(text),
             "a list cohort is not refreshed from the EHR: patients admitted later are not "
             "watched until someone edits %s; prefer type: group (a census Group re-read "
             "every refresh)",
             file ? file : "the file");
    warn(arg, path, text);
}

const struct pw_cohort_ops pw_cohort_list = {
    .adapter = {.name = "list",
                .config_map = list_map,
                .ctx_size = sizeof(struct list_ctx),
                .check = list_check,
                .help = "a file of patient references",
                .advise = list_advise},
    .open = list_open,
    .refresh = list_refresh,
    .close = NULL,
};
