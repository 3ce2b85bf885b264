/* SPDX-License-Identifier: Apache-2.0 */
/* Adapters declare themselves: registry lookup and generic instantiation (conf_map.h). */
#include "painwatch/conf_map.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "painwatch/err.h"

const struct pw_adapter *pw_adapter_find(const struct pw_adapter_kind *kind, const char *type)
{
    for (size_t i = 0; type && i < PW_ADAPTERS_MAX && kind->adapters[i]; i++) {
        if (strcmp(kind->adapters[i]->name, type) == 0) {
            return kind->adapters[i];
        }
    }
    return NULL;
}

int pw_adapter_register(struct pw_adapter_kind *kind, const struct pw_adapter *adapter)
{
    size_t i = 0;

    if (pw_adapter_find(kind, adapter->name)) {
        return PW_EEXIST;
    }
    while (i < PW_ADAPTERS_MAX && kind->adapters[i]) {
        i++;
    }
    if (i + 1 >= PW_ADAPTERS_MAX) {
        return PW_E2BIG; /* the last slot stays NULL: the registry's terminator */
    }
    kind->adapters[i] = adapter;
    return 0;
}

/* A table default (config syntax) as the effective value the config engine would have made. */
static int fill_default(const struct pw_conf_field *f, char *dst)
{
    int64_t ms = 0;
    char *end;

    switch (f->type) {
    case PW_CONF_BOOL:
        *(bool *)(void *)dst = f->def && strcmp(f->def, "true") == 0;
        return 0;
    case PW_CONF_INT:
    case PW_CONF_SIZE:
        *(int64_t *)(void *)dst = f->def ? strtoll(f->def, &end, 10) : 0;
        return f->def && *end ? PW_EINVAL : 0;
    case PW_CONF_DOUBLE:
        *(double *)(void *)dst = f->def ? strtod(f->def, &end) : 0;
        return f->def && *end ? PW_EINVAL : 0;
    case PW_CONF_DURATION:
        if (f->def && pw_conf_parse_duration(f->def, &ms) != 0) {
            return PW_EINVAL;
        }
        *(int64_t *)(void *)dst = ms;
        return 0;
    case PW_CONF_PATH:
    case PW_CONF_SECRET_PATH:
        *(const char **)(void *)dst = NULL; /* relative to what only the configuration knows */
        return 0;
    default:
        *(const char **)(void *)dst = f->def;
        return 0;
    }
}

int pw_conf_fill_scalars(const struct pw_conf_field *table, const json_t *section, void *out)
{
    char *base = out;

    for (const struct pw_conf_field *f = table; f && f->name; f++) {
        const json_t *v = json_object_get(section, f->name);
        char *dst = base + f->offset;
        int64_t ms = 0;

        if (f->offset == PW_CONF_NOFILL) {
            continue;
        }
        if (f->type == PW_CONF_STRLIST || f->type == PW_CONF_SECTION ||
            f->type == PW_CONF_SECTION_LIST || f->type == PW_CONF_ADAPTER) {
            return PW_EINVAL;
        }
        if (!v || json_is_null(v)) {
            if (fill_default(f, dst) != 0) {
                return PW_EINVAL;
            }
            continue;
        }
        switch (f->type) {
        case PW_CONF_BOOL:
            if (!json_is_boolean(v)) {
                return PW_EINVAL;
            }
            *(bool *)(void *)dst = json_is_true(v);
            break;
        case PW_CONF_INT:
        case PW_CONF_SIZE:
            if (!json_is_integer(v)) {
                return PW_EINVAL;
            }
            *(int64_t *)(void *)dst = json_integer_value(v);
            break;
        case PW_CONF_DOUBLE:
            if (!json_is_number(v)) {
                return PW_EINVAL;
            }
            *(double *)(void *)dst = json_number_value(v);
            break;
        case PW_CONF_DURATION:
            if (!json_is_string(v) || pw_conf_parse_duration(json_string_value(v), &ms) != 0) {
                return PW_EINVAL;
            }
            *(int64_t *)(void *)dst = ms;
            break;
        case PW_CONF_JSON:
            *(const json_t **)(void *)dst = v;
            break;
        default:
            if (!json_is_string(v)) {
                return PW_EINVAL;
            }
            *(const char **)(void *)dst = json_string_value(v);
            break;
        }
    }
    return 0;
}

int pw_adapter_instantiate(const struct pw_adapter_kind *kind, const json_t *section,
                           const char *type, const struct pw_adapter **out_adapter, void **out_ctx,
                           char *errbuf, size_t errlen)
{
    const struct pw_adapter *a;
    void *ctx = NULL;

    if (!type) {
        type = json_string_value(json_object_get(section, "type"));
    }
    a = pw_adapter_find(kind, type);

    *out_adapter = NULL;
    *out_ctx = NULL;
    if (!a) {
        char list[256] = "";
        for (size_t i = 0; i < PW_ADAPTERS_MAX && kind->adapters[i]; i++) {
            size_t used = strlen(list);
            snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "",
                     kind->adapters[i]->name);
        }
        snprintf(errbuf, errlen, "%s.type: '%s' is not one of: %s", kind->name,
                 type ? type : "(unset)", list);
        return PW_ECONFIG;
    }
    if (a->ctx_size) {
        ctx = calloc(1, a->ctx_size);
        if (!ctx) {
            return PW_ENOMEM;
        }
    }
    if (ctx && pw_conf_fill_scalars(a->config_map, section, ctx) != 0) {
        snprintf(errbuf, errlen, "%s: a value of type %s has the wrong shape", kind->name, a->name);
        free(ctx);
        return PW_ECONFIG;
    }
    *out_adapter = a;
    *out_ctx = ctx;
    return 0;
}
