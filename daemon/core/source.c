/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Source adapters (source.h): the registry (one line per adapter) and instances built from it.
 */
#include "painwatch/source.h"

#include <stdlib.h>
#include <string.h>

#include "painwatch/conf.h"
#include "painwatch/err.h"

static const struct pw_source_ops *const registry[] = {
    &pw_source_fhir_search,
};

const struct pw_source_ops *pw_source_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof(registry) / sizeof(registry[0]); i++) {
        if (strcmp(registry[i]->name, name) == 0) {
            return registry[i];
        }
    }
    return NULL;
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
    if (!src || !(src->ctx = calloc(1, ops->ctx_size ? ops->ctx_size : 1))) {
        free(src);
        return PW_ENOMEM;
    }
    src->ops = ops;
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

int pw_source_from_daemon(struct pw_source **out, const struct pw_conf_server *cs,
                          const struct pw_conf_pain_codes *codes, char *errbuf, size_t errlen)
{
    struct pw_source_env env = {.server = cs, .codes = codes};
    /* One source type today: every server is searched (FHIR search, REST). */
    return pw_source_new(out, pw_source_find("fhir-search"), &env, errbuf, errlen);
}
