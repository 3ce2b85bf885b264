/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "group" cohort: the active Patient members of a FHIR Group, re-read from the server every
 * refresh interval. A failed re-read keeps the previous members (a server hiccup must not stop
 * the watch of every patient).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "painwatch/auth.h"
#include "painwatch/cohort.h"
#include "painwatch/err.h"
#include "painwatch/fhir.h"
#include "painwatch/http.h"
#include "painwatch/json_err.h"
#include "painwatch/limits.h"
#include "painwatch/log.h"
#include "painwatch/sync.h"

struct group_ctx {
    const char *group;  /* config: "Group/<id>" or "<id>" */
    int64_t refresh_ms; /* config: refresh; 0: the source's group_refresh_ms, else 1 h */
    char id[PW_ID_MAX];
    int64_t next_ms;      /* next re-read; 0 = never read */
    uint64_t interval_ms; /* the interval in force for the read in flight */
    bool loaded;
    bool busy;
    struct pw_cohort *cohort;
    int64_t now_ms;
    pw_cohort_done_fn *done;
    void *arg;
};

static const struct pw_conf_field group_map[] = {
    {.name = "group",
     .type = PW_CONF_STRING,
     .offset = offsetof(struct group_ctx, group),
     .help = "the Group whose members are watched (Group/<id>)"},
    {.name = "refresh",
     .type = PW_CONF_DURATION,
     .def = "1h",
     .min = 60 * 1000.0,
     .max = 7 * 24 * 3600 * 1000.0,
     .offset = offsetof(struct group_ctx, refresh_ms),
     .help = "how often the Group is re-read"},
    {0},
};

static void group_check(struct pw_conf_ctx *ctx, const json_t *section, const char *path)
{
    pw_conf_need(ctx, section, path, "group",
                 "with type group (a Group id, e.g. Group/pain-cohort)");
}

static void ids_free(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ids[i]);
    }
    free(ids);
}

/* A member counts unless it is flagged inactive or its period has ended. */
static bool member_active(const json_t *m, int64_t now_ms)
{
    int64_t end;
    const char *pe = json_string_value(json_object_get(json_object_get(m, "period"), "end"));

    if (json_is_true(json_object_get(m, "inactive"))) {
        return false;
    }
    return !(pe && pw_fhir_instant_parse(pe, &end) == 0 && end <= now_ms);
}

int pw_cohort_group_members(const json_t *group, int64_t now_ms, char ***out_ids, size_t *out_n)
{
    const char *rt = json_string_value(json_object_get(group, "resourceType"));
    const json_t *members = json_object_get(group, "member");
    char **ids = NULL;
    size_t n = 0;
    size_t i;
    json_t *m;

    if (!rt || strcmp(rt, "Group") != 0 || (members && !json_is_array(members))) {
        return PW_EFHIR;
    }
    if (json_array_size(members) > PW_COHORT_MAX) {
        return PW_E2BIG;
    }
    /* At least one slot, so the array is never NULL while members are walked. */
    ids = calloc(json_array_size(members) + 1, sizeof(*ids));
    if (!ids) {
        return PW_ENOMEM;
    }
    json_array_foreach(members, i, m)
    {
        const char *ref =
            json_string_value(json_object_get(json_object_get(m, "entity"), "reference"));
        char id[PW_ID_MAX];

        if (!member_active(m, now_ms)) {
            continue;
        }
        if (!ref || pw_patient_ref_id(ref, id, sizeof(id)) != 0) {
            /* Groups may hold Practitioners or Devices: skip, say so once per member. */
            pw_log_debug(SYNC, "Group member %zu is not a Patient reference, skipped", i);
            continue;
        }
        ids[n] = strdup(id);
        if (!ids[n]) {
            ids_free(ids, n);
            return PW_ENOMEM;
        }
        n++;
    }
    *out_ids = ids;
    *out_n = n;
    return 0;
}

static int group_open(struct pw_cohort *c, const json_t *conf, char *errbuf, size_t errlen)
{
    struct group_ctx *ctx = c->ctx;
    const char *g = ctx->group;

    (void)conf;
    ctx->cohort = c;
    if (!g) {
        snprintf(errbuf, errlen, "cohort.group: required for a group cohort");
        return PW_ECONFIG;
    }
    if (strncmp(g, "Group/", 6) == 0) {
        g += 6;
    }
    size_t len = strlen(g);
    if (len == 0 || len >= sizeof(ctx->id) ||
        strspn(g, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.") != len) {
        snprintf(errbuf, errlen, "cohort.group: expected Group/<id>");
        return PW_ECONFIG;
    }
    memcpy(ctx->id, g, len + 1);
    if (ctx->refresh_ms < 0) {
        snprintf(errbuf, errlen, "cohort.refresh: must not be negative");
        return PW_ECONFIG;
    }
    return 0;
}

static int group_apply(struct group_ctx *ctx, int err, const struct pw_http_resp *resp)
{
    json_error_t jerr;
    char **ids = NULL;
    size_t n = 0;

    if (err) {
        return err;
    }
    if (resp->status != 200) {
        pw_log_err(SYNC, "Group/%s: HTTP %ld", ctx->id, resp->status);
        return resp->status == 401 || resp->status == 403 ? PW_EAUTH : PW_EHTTP;
    }
    json_t *group = json_loadb(resp->body, resp->body_len, 0, &jerr);
    if (!group) {
        char why[160];
        pw_log_err(SYNC, "Group/%s: malformed JSON (%s)", ctx->id,
                   pw_json_error_describe(&jerr, why, sizeof(why)));
        return PW_EJSON;
    }
    err = pw_cohort_group_members(group, ctx->now_ms, &ids, &n);
    json_decref(group);
    if (err) {
        pw_log_err(SYNC, "Group/%s: %s", ctx->id, pw_strerror(err));
        return err;
    }
    uint64_t before = ctx->cohort->generation;
    err = pw_cohort_set_members(ctx->cohort, ids, n);
    if (!err && ctx->cohort->generation != before) {
        pw_log_notice(SYNC, "Group/%s: %zu patients", ctx->id, ctx->cohort->nmembers);
    }
    return err;
}

static void on_group(void *arg, int err, const struct pw_http_resp *resp)
{
    struct group_ctx *ctx = arg;

    err = group_apply(ctx, err, resp);
    ctx->busy = false;
    if (!err) {
        ctx->loaded = true;
        ctx->next_ms = ctx->now_ms + (int64_t)ctx->interval_ms;
    } else if (ctx->loaded) {
        pw_log_warn(SYNC, "Group/%s: re-read failed (%s), keeping %zu patients", ctx->id,
                    pw_strerror(err), ctx->cohort->nmembers);
        err = 0;
    }
    ctx->done(ctx->arg, err);
}

static int group_refresh(struct pw_cohort *c, const struct pw_cohort_env *env, int64_t now_ms,
                         pw_cohort_done_fn *done, void *arg)
{
    struct group_ctx *ctx = c->ctx;
    struct pw_http_req *req = NULL;
    char url[PW_SYNC_URL_MAX];

    if (ctx->busy) {
        return PW_EAGAIN;
    }
    if (ctx->loaded && now_ms < ctx->next_ms) {
        return 1;
    }
    int n = snprintf(url, sizeof(url), "%s/Group/%s", env->base, ctx->id);
    if (n < 0 || (size_t)n >= sizeof(url)) {
        return PW_E2BIG;
    }
    int err = pw_http_req_new(&req, env->server, "GET", url);
    if (err) {
        return err;
    }
    ctx->now_ms = now_ms;
    ctx->interval_ms = ctx->refresh_ms   ? (uint64_t)ctx->refresh_ms
                       : env->refresh_ms ? env->refresh_ms
                                         : 3600u * 1000u;
    ctx->done = done;
    ctx->arg = arg;
    err = env->auth ? pw_auth_submit_new(env->auth, req, on_group, ctx)
                    : pw_http_submit_new(env->http, req, on_group, ctx);
    if (!err) {
        ctx->busy = true;
    }
    return err;
}

/* A group re-read less often than this leaves new admissions unwatched for too long. */
#define GROUP_REFRESH_WARN_MS (24 * 3600 * 1000LL)

static void group_advise(const json_t *section, const char *path, pw_adapter_warn_fn *warn,
                         void *arg)
{
    const char *refresh = json_string_value(json_object_get(section, "refresh"));
    int64_t refresh_ms = 0;
    char text[256];

    if (refresh && pw_conf_parse_duration(refresh, &refresh_ms) == 0 &&
        refresh_ms > GROUP_REFRESH_WARN_MS) {
        snprintf(text, sizeof(text),
                 "the Group is re-read only every %lld h: new patients wait that long to be "
                 "watched",
                 (long long)(refresh_ms / 3600000));
        warn(arg, path, text);
    }
}

const struct pw_cohort_ops pw_cohort_group = {
    .adapter = {.name = "group",
                .config_map = group_map,
                .ctx_size = sizeof(struct group_ctx),
                .check = group_check,
                .help = "the members of a FHIR Group, re-read every `refresh`",
                .advise = group_advise},
    .open = group_open,
    .refresh = group_refresh,
    .close = NULL,
};
