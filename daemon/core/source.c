/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Source adapters (source.h): the registry (one line per adapter) and instances built from it.
 */
#include "painwatch/source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "painwatch/conf.h"
#include "painwatch/err.h"
#include "painwatch/sink.h"

/* The registry: one line per source adapter (conf_map.h, README "Adding an adapter"). */
#define SOURCES(X) X(pw_source_fhir_search)

#define DECLARE(ops) extern const struct pw_source_ops ops;
SOURCES(DECLARE)

struct pw_adapter_kind pw_source_kind = {
    .name = "source",
    .type_help = "how resources come in from this server",
    .adapters = {SOURCES(PW_ADAPTER_ENTRY)},
};

const struct pw_source_ops *pw_source_find(const char *name)
{
    return pw_adapter_ops(pw_adapter_find(&pw_source_kind, name));
}

int pw_source_new(struct pw_source **out, const struct pw_source_ops *ops,
                  const struct pw_source_env *env, char *errbuf, size_t errlen)
{
    struct pw_source *src;

    *out = NULL;
    if (!ops || !env) {
        return PW_EINVAL;
    }
    src = calloc(1, sizeof(*src));
    if (!src || !(src->ctx = calloc(1, ops->adapter.ctx_size ? ops->adapter.ctx_size : 1))) {
        free(src);
        return PW_ENOMEM;
    }
    src->ops = ops;
    if (env->section && pw_conf_fill_scalars(ops->adapter.config_map, env->section, src->ctx)) {
        snprintf(errbuf, errlen, "servers: a value of type %s has the wrong shape",
                 ops->adapter.name);
        free(src->ctx);
        free(src);
        return PW_ECONFIG;
    }
    int err = ops->init(src->ctx, env, errbuf, errlen);
    if (err) {
        pw_source_free(src);
        return err;
    }
    *out = src;
    return 0;
}

void pw_source_free(struct pw_source *src)
{
    if (!src) {
        return;
    }
    src->ops->close(src->ctx);
    free(src->ctx);
    free(src);
}

int pw_source_from_conf(struct pw_source **out, const json_t *section,
                        const struct pw_conf_server *cs, const struct pw_conf_pain_codes *codes,
                        const json_t *sink, char *errbuf, size_t errlen)
{
    struct pw_sink_writes writes;
    struct pw_source_env env = {
        .section = section, .server = cs, .codes = codes, .writes = &writes};
    const char *type = json_string_value(json_object_get(section, "type"));
    const struct pw_source_ops *ops = pw_source_find(type);

    *out = NULL;
    pw_sink_conf_writes(sink, &writes);
    if (!ops) {
        snprintf(errbuf, errlen, "servers.%s.type: no source adapter '%s'", cs->name,
                 type ? type : "(none)");
        return PW_ECONFIG;
    }
    return pw_source_new(out, ops, &env, errbuf, errlen);
}
