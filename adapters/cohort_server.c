/* SPDX-License-Identifier: Apache-2.0 */
/* The "server" cohort: no patient list, one server-wide stream per resource type. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "painwatch/cohort.h"
#include "painwatch/err.h"

static int server_open(struct pw_cohort *c, const json_t *conf, char *errbuf, size_t errlen)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)(uintptr_t)conf, key, v)
    {
        if (strcmp(key, "type") != 0) {
            snprintf(errbuf, errlen, "cohort.%s: unknown key", key);
            return PW_ECONFIG;
        }
    }
    c->server_wide = true;
    return 0;
}

static int server_refresh(struct pw_cohort *c, const struct pw_cohort_env *env, int64_t now_ms,
                          pw_cohort_done_fn *done, void *arg)
{
    (void)c;
    (void)env;
    (void)now_ms;
    (void)done;
    (void)arg;
    return 1;
}

const struct pw_cohort_ops pw_cohort_server = {
    .adapter = {.name = "server"},
    .open = server_open,
    .refresh = server_refresh,
    .close = NULL,
};
