/* SPDX-License-Identifier: Apache-2.0 */
/* The sink registry and what every sink shares (HTTP classification, FHIR instants). */
#include "painwatch/sink.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "painwatch/check.h"
#include "painwatch/datetime.h"
#include "painwatch/err.h"
#include "painwatch/log.h"

/* One line per sink adapter. */
static const struct pw_sink_ops *const sinks[] = {
    &pw_sink_fhir_flag,
    &pw_sink_file,
};

static int dup_or(char **dst, const char *src, const char *def)
{
    const char *s = src ? src : def;

    *dst = NULL;
    if (!s) {
        return 0;
    }
    *dst = strdup(s);
    return *dst ? 0 : PW_ENOMEM;
}

int pw_sink_new(struct pw_sink **out, const char *name, const struct pw_sink_conf *conf)
{
    static const struct pw_sink_conf none;
    const struct pw_sink_ops *ops = NULL;
    struct pw_sink *sink;
    int err;

    conf = conf ? conf : &none;
    for (size_t i = 0; name && i < PW_ARRAY_SIZE(sinks); i++) {
        if (strcmp(sinks[i]->name, name) == 0) {
            ops = sinks[i];
        }
    }
    if (!ops) {
        pw_log_err(SINK, "unknown sink '%s'", name ? name : "(null)");
        return PW_ECONFIG;
    }
    sink = calloc(1, sizeof(*sink));
    if (!sink) {
        return PW_ENOMEM;
    }
    sink->ops = ops;
    err = dup_or(&sink->identifier_system, conf->identifier_system, PW_FLAG_IDENTIFIER_SYSTEM);
    if (!err) {
        err = dup_or(&sink->code_system, conf->code_system, PW_FLAG_CODE_SYSTEM);
    }
    if (!err) {
        err = dup_or(&sink->author, conf->author, PW_FLAG_AUTHOR);
    }
    if (!err) {
        err = dup_or(&sink->author_display, conf->author_display, NULL);
    }
    if (!err) {
        err = dup_or(&sink->path, conf->path, NULL);
    }
    if (!err && ops->init) {
        err = ops->init(sink);
        if (err) {
            sink->ops = NULL; /* init failed: no cleanup */
        }
    }
    if (err) {
        pw_sink_free(sink);
        return err;
    }
    *out = sink;
    return 0;
}

void pw_sink_free(struct pw_sink *sink)
{
    if (!sink) {
        return;
    }
    if (sink->ops && sink->ops->cleanup) {
        sink->ops->cleanup(sink);
    }
    free(sink->identifier_system);
    free(sink->code_system);
    free(sink->author);
    free(sink->author_display);
    free(sink->path);
    free(sink);
}

enum pw_outcome pw_sink_classify_http(int err, long status)
{
    if (err || status <= 0) {
        return PW_RETRY; /* timeout, reset, refused: the server may come back */
    }
    if (status >= 200 && status < 300) {
        return PW_DELIVERED;
    }
    if (status == 408 || status == 429 || status >= 500) {
        return PW_RETRY;
    }
    /* Anything else the server refused on purpose: retrying the same bytes would not help. */
    return PW_REJECTED;
}

const char *pw_outcome_name(enum pw_outcome o)
{
    switch (o) {
    case PW_DELIVERED:
        return "delivered";
    case PW_RETRY:
        return "retry";
    case PW_REJECTED:
        return "rejected";
    }
    return "?";
}

void pw_fhir_instant(int64_t t, char out[32])
{
    pw_time_format(t * 1000, 0, out, 32);
}
