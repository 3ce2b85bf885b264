/* SPDX-License-Identifier: Apache-2.0 */
/* The "server" cohort: no patient list, one server-wide stream per resource type. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "painwatch/cohort.h"
#include "painwatch/err.h"

static int server_open(struct pw_cohort *c, const json_t *conf, char *errbuf, size_t errlen)
{
    static const char *const others[] = {"file", "group"};

    /* A patient list or a Group beside server-wide is a contradiction, not a detail. */
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        const json_t *v = json_object_get(conf, others[i]);
        if (v && !json_is_null(v)) {
            snprintf(errbuf, errlen, "cohort.%s: not a key of a server-wide cohort", others[i]);
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
    .adapter = {.name = "server-wide",
                .help = "search without a patient (only where the server allows it; Epic, "
                        "Oracle Health and athena require a patient on Observation searches)"},
    .open = server_open,
    .refresh = server_refresh,
    .close = NULL,
};
