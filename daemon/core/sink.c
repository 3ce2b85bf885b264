/* SPDX-License-Identifier: Apache-2.0 */
/* The sink registry and what every sink shares (HTTP classification, FHIR instants). */
#include "painwatch/sink.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "painwatch/check.h"
#include "painwatch/datetime.h"
#include "painwatch/err.h"
#include "painwatch/log.h"

/* The keys every sink takes, filled into struct pw_sink_conf (the rest is the adapter's). */
static const struct pw_conf_field sink_common[] = {
    {.name = "flag_author",
     .type = PW_CONF_STRING,
     .def = PW_FLAG_AUTHOR,
     .offset = offsetof(struct pw_sink_conf, author),
     .help = "Flag.author: the gateway's Device"},
    {.name = "identifier_system",
     .type = PW_CONF_STRING,
     .def = PW_FLAG_IDENTIFIER_SYSTEM,
     .offset = offsetof(struct pw_sink_conf, identifier_system),
     .help = "Flag.identifier.system for episode keys"},
    {0},
};

/* The registry: one line per sink adapter (conf_map.h, README "Adding an adapter"). */
#define SINKS(X)         \
    X(pw_sink_fhir_flag) \
    X(pw_sink_file)

#define DECLARE(ops) extern const struct pw_sink_ops ops;
SINKS(DECLARE)

struct pw_adapter_kind pw_sink_kind = {
    .name = "sink",
    .type_help = "where findings go",
    .common = sink_common,
    .adapters = {SINKS(PW_ADAPTER_ENTRY)},
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
    const struct pw_adapter *adapter;
    struct pw_sink *sink;
    char why[256];
    void *ctx;
    int err;

    conf = conf ? conf : &none;
    err = pw_adapter_instantiate(&pw_sink_kind, conf->section, name, &adapter, &ctx, why,
                                 sizeof(why));
    if (err == PW_ECONFIG) {
        pw_log_err(SINK, "%s", why);
    }
    if (err) {
        return err;
    }
    sink = calloc(1, sizeof(*sink));
    if (!sink) {
        free(ctx);
        return PW_ENOMEM;
    }
    sink->ops = pw_adapter_ops(adapter);
    sink->ctx = ctx;
    sink->section = pw_conf_ref(conf->section);
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
    if (!err && sink->ops->init) {
        err = sink->ops->init(sink);
    }
    if (err) {
        sink->ops = NULL; /* init failed (or never ran): no cleanup */
        pw_sink_free(sink);
        return err;
    }
    *out = sink;
    return 0;
}

int pw_sink_from_conf(struct pw_sink **out, const json_t *section, const char *type,
                      const char *code_system)
{
    struct pw_sink_conf sc = {0};

    if (pw_conf_fill_scalars(sink_common, section, &sc) != 0) {
        pw_log_err(SINK, "sink: a setting has the wrong shape");
        return PW_ECONFIG;
    }
    sc.section = section;
    sc.code_system = code_system; /* issue 21: the top-level rule_code_system */
    return pw_sink_new(out, type, &sc);
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
    free(sink->ctx);
    json_decref(sink->section);
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
