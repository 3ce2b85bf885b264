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

/* One line per cohort adapter (STYLE 1.6, conf_map.h). */
struct pw_adapter_kind pw_cohort_kind = {
    .name = "cohort",
    .type_help = "whom to watch",
    .adapters =
        {
            &pw_cohort_list.adapter,
            &pw_cohort_group.adapter,
            &pw_cohort_server.adapter,
        },
};

int pw_cohort_new(struct pw_cohort **out, const json_t *conf, char *errbuf, size_t errlen)
{
    const char *type = json_string_value(json_object_get(conf, "type"));
    const struct pw_cohort_ops *ops = NULL;

    if (type && strcmp(type, "server-wide") == 0) {
        type = "server"; /* the name conf.h uses */
    }
    ops = pw_adapter_ops(pw_adapter_find(&pw_cohort_kind, type));
    if (!ops) {
        snprintf(errbuf, errlen, "cohort.type: expected list, group or server");
        return PW_ECONFIG;
    }
    struct pw_cohort *c = calloc(1, sizeof(*c));
    if (!c) {
        return PW_ENOMEM;
    }
    c->ops = ops;
    int err = ops->open(c, conf, errbuf, errlen);
    if (err) {
        pw_cohort_free(c);
        return err;
    }
    *out = c;
    return 0;
}

int pw_cohort_from_daemon(struct pw_cohort **out, const struct pw_conf_cohort *cc, char *errbuf,
                          size_t errlen)
{
    json_t *j = json_pack("{s:s}", "type", cc->type ? cc->type : "");
    int err = j ? 0 : PW_ENOMEM;

    if (!err && cc->type && strcmp(cc->type, "list") == 0 && cc->file) {
        err = json_object_set_new(j, "file", json_string(cc->file)) ? PW_ENOMEM : 0;
    }
    if (!err && cc->type && strcmp(cc->type, "group") == 0) {
        if (cc->group) {
            err = json_object_set_new(j, "group", json_string(cc->group)) ? PW_ENOMEM : 0;
        }
        if (!err && cc->refresh_ms > 0) {
            err = json_object_set_new(j, "refresh_s", json_integer(cc->refresh_ms / 1000))
                      ? PW_ENOMEM
                      : 0;
        }
    }
    if (!err) {
        err = pw_cohort_new(out, j, errbuf, errlen);
    }
    json_decref(j);
    return err;
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
