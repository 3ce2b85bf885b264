/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cohort plumbing shared by the cohort adapters: the registry of kinds, construction from
 * config, Patient reference normalization and the sorted member set.
 */
#include "painwatch/cohort.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "painwatch/conf.h"
#include "painwatch/err.h"
#include "painwatch/limits.h"

/* The registry: one line per cohort adapter (STYLE 1.6, conf_map.h, README "Adding an adapter"). */
#define COHORTS(X)     \
    X(pw_cohort_list)  \
    X(pw_cohort_group) \
    X(pw_cohort_server)

#define DECLARE(ops) extern const struct pw_cohort_ops ops;
COHORTS(DECLARE)

struct pw_adapter_kind pw_cohort_kind = {
    .name = "cohort",
    .type_help = "whom to watch",
    .adapters = {COHORTS(PW_ADAPTER_ENTRY)},
};

/* Whether some adapter of the kind declares @p key (the config engine accepts those). */
static bool declared(const char *key)
{
    for (size_t i = 0; i < PW_ADAPTERS_MAX && pw_cohort_kind.adapters[i]; i++) {
        for (const struct pw_conf_field *f = pw_cohort_kind.adapters[i]->config_map; f && f->name;
             f++) {
            if (strcmp(f->name, key) == 0) {
                return true;
            }
        }
    }
    return false;
}

int pw_cohort_new(struct pw_cohort **out, const json_t *conf, char *errbuf, size_t errlen)
{
    const char *type = json_string_value(json_object_get(conf, "type"));
    const struct pw_adapter *adapter;
    const char *key;
    json_t *v;
    void *ctx;

    if (type && strcmp(type, "server") == 0) {
        type = "server-wide"; /* the name of the JSON API before issue 20 */
    }
    json_object_foreach(pw_conf_mut_json(conf), key, v)
    {
        if (strcmp(key, "type") != 0 && !json_is_null(v) && !declared(key)) {
            snprintf(errbuf, errlen, "cohort.%s: unknown key or bad value", key);
            return PW_ECONFIG;
        }
    }
    int err = pw_adapter_instantiate(&pw_cohort_kind, conf, type, &adapter, &ctx, errbuf, errlen);
    if (err) {
        return err;
    }
    struct pw_cohort *c = calloc(1, sizeof(*c));
    if (!c) {
        free(ctx);
        return PW_ENOMEM;
    }
    c->ops = pw_adapter_ops(adapter);
    c->ctx = ctx;
    c->section = pw_conf_ref(conf);
    err = c->ops->open(c, conf, errbuf, errlen);
    if (err) {
        c->ops = NULL; /* open failed: nothing to close */
        pw_cohort_free(c);
        return err;
    }
    *out = c;
    return 0;
}

static void members_free(char **ids, size_t n)
{
    for (size_t i = 0; ids && i < n; i++) {
        free(ids[i]);
    }
    free(ids);
}

void pw_cohort_free(struct pw_cohort *c)
{
    if (!c) {
        return;
    }
    if (c->ops && c->ops->close) {
        c->ops->close(c);
    }
    members_free(c->members, c->nmembers);
    free(c->ctx);
    json_decref(c->section);
    free(c);
}

static bool is_id(const char *s, size_t n)
{
    return n >= 1 && n < PW_ID_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.") >= n;
}

int pw_patient_ref_id(const char *ref, char *out, size_t len)
{
    const char *id = ref;
    const char *p;

    if (!ref || !*ref) {
        return PW_EINVAL;
    }
    /* "<base>/Patient/<id>[/_history/<v>]" or "Patient/<id>": the id follows the last
     * "Patient/" segment; any other resource type is not a member. */
    p = strstr(ref, "Patient/");
    while (p && (p == ref || p[-1] == '/')) {
        id = p + 8;
        p = strstr(id, "Patient/");
    }
    if (id == ref && strchr(ref, '/')) {
        return PW_EINVAL;
    }
    size_t n = strcspn(id, "/");
    if (id[n] == '/' && strncmp(id + n, "/_history/", 10) != 0) {
        return PW_EINVAL;
    }
    if (!is_id(id, n) || n >= len) {
        return PW_EINVAL;
    }
    memcpy(out, id, n);
    out[n] = '\0';
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int pw_cohort_set_members(struct pw_cohort *c, char **ids, size_t n)
{
    size_t w = 0;

    if (n > 1) {
        qsort(ids, n, sizeof(*ids), cmp_str);
    }
    for (size_t r = 0; r < n; r++) {
        if (w > 0 && strcmp(ids[w - 1], ids[r]) == 0) {
            free(ids[r]);
            continue;
        }
        ids[w++] = ids[r];
    }
    bool same = w == c->nmembers;
    for (size_t i = 0; same && i < w; i++) {
        same = strcmp(ids[i], c->members[i]) == 0;
    }
    members_free(c->members, c->nmembers);
    c->members = ids;
    c->nmembers = w;
    if (!same) {
        c->generation++;
    }
    return 0;
}
