/* SPDX-License-Identifier: Apache-2.0 */
/* The sink registry and what every sink shares (HTTP classification, FHIR instants). */
#include "painwatch/sink.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "painwatch/check.h"
#include "painwatch/datetime.h"
#include "painwatch/engine.h"
#include "painwatch/err.h"
#include "painwatch/log.h"

/* sink.rules (issue 21): {"<rule id>": "fhir-flag" | "detected-issue"}. */
static json_t *convert_rules(struct pw_conf_ctx *ctx, const json_t *raw, const char *path);

static const char *const closed_statuses[] = {"cancelled", "amended", "corrected", NULL};

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
    /* issue 21: write targets (whichever sink builds DetectedIssues) */
    {.name = "closed_status",
     .type = PW_CONF_ENUM,
     .def = PW_DI_CLOSED_STATUS_DEFAULT,
     .allowed = closed_statuses,
     .offset = offsetof(struct pw_sink_conf, closed_status),
     .help = "DetectedIssue.status when painwatch closes one (a dated mitigation entry says why)"},
    {.name = "rules",
     .type = PW_CONF_JSON,
     .convert = convert_rules,
     .offset = PW_CONF_NOFILL,
     .help = "per-rule write target, <rule id>: fhir-flag | detected-issue (else the type's)"},
    {0},
};

/* The registry: one line per sink adapter (conf_map.h, README "Adding an adapter"). */
#define SINKS(X)              \
    X(pw_sink_fhir_flag)      \
    X(pw_sink_file)           \
    X(pw_sink_detected_issue) \
    X(pw_sink_auto)

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

/* A sink that builds resources ("fhir-flag", "detected-issue"), by name, or NULL. */
static const struct pw_sink_ops *builder(const char *name)
{
    const struct pw_adapter *a = pw_adapter_find(&pw_sink_kind, name);
    const struct pw_sink_ops *ops = a ? pw_adapter_ops(a) : NULL;

    return ops && ops->resource_type ? ops : NULL;
}

/* The resource builder a local sink carries when it names none of its own. */
static const struct pw_sink_ops *default_target(void)
{
    return builder("fhir-flag");
}

/* The sink's own target and the per-rule ones (issue 21). */
static int set_targets(struct pw_sink *sink, const struct pw_sink_conf *conf)
{
    const struct pw_adapter *ta = pw_adapter_find(&pw_sink_kind, conf->target);
    const struct pw_sink_ops *tops = ta ? pw_adapter_ops(ta) : NULL;
    /* A target naming a local sink (the section's own type in shadow mode) builds nothing. */
    const char *t = tops && !tops->remote ? NULL : conf->target;

    if (sink->ops->resource_type) {
        sink->target = sink->ops;
    } else if (sink->ops->remote || (tops && tops->remote && !tops->resource_type)) {
        sink->target = NULL; /* auto: chosen from /metadata, pw_sink_choose_target() */
    } else {
        /* A local sink configured as itself (file, a test sink) writes what the default target
         * builds; shadow mode's file sink writes what the configured type would. */
        if (t && strcmp(t, sink->ops->adapter.name) == 0 && !builder(t)) {
            t = NULL;
        }
        sink->target = t ? builder(t) : default_target();
        if (!sink->target) {
            pw_log_err(SINK, "sink: unknown write target '%s'", t);
            return PW_ECONFIG;
        }
    }
    if (!pw_sink_closed_status_valid(sink->closed_status)) {
        pw_log_err(SINK, "sink: '%s' is not a status painwatch can close a DetectedIssue with",
                   sink->closed_status);
        return PW_ECONFIG;
    }
    if (conf->n_rule_targets == 0) {
        return 0;
    }
    sink->rule_targets = calloc(conf->n_rule_targets, sizeof(*sink->rule_targets));
    if (!sink->rule_targets) {
        return PW_ENOMEM;
    }
    for (size_t i = 0; i < conf->n_rule_targets; i++) {
        const struct pw_sink_rule_target *rt = &conf->rule_targets[i];
        struct pw_sink_rule_ops *ro = &sink->rule_targets[sink->n_rule_targets];

        ro->ops = builder(rt->target);
        if (!rt->rule || !ro->ops) {
            pw_log_err(SINK, "sink.rules: rule '%s': unknown write target '%s'",
                       rt->rule ? rt->rule : "", rt->target ? rt->target : "");
            return PW_ECONFIG;
        }
        ro->rule = strdup(rt->rule);
        if (!ro->rule) {
            return PW_ENOMEM;
        }
        sink->n_rule_targets++;
    }
    return 0;
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
    if (!err) {
        err = dup_or(&sink->closed_status, conf->closed_status, PW_DI_CLOSED_STATUS_DEFAULT);
    }
    if (!err) {
        err = set_targets(sink, conf);
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
    struct pw_sink_rule_target rt[PW_SINK_RULE_TARGETS_MAX];
    const json_t *raw = json_object_get(section, "rules");
    json_t *rules = raw ? json_deep_copy(raw) : NULL; /* jansson iterates non-const trees */
    const char *rule;
    json_t *target;
    int rc;

    if (raw && !rules) {
        return PW_ENOMEM;
    }
    if (pw_conf_fill_scalars(sink_common, section, &sc) != 0) {
        pw_log_err(SINK, "sink: a setting has the wrong shape");
        json_decref(rules);
        return PW_ECONFIG;
    }
    sc.section = section;
    /* issue 21: what the shadow file carries is what the configured type would write */
    sc.target = json_string_value(json_object_get(section, "type"));
    sc.rule_targets = rt;
    sc.code_system = code_system; /* issue 21: the top-level rule_code_system */
    json_object_foreach(rules, rule, target)
    {
        if (sc.n_rule_targets == PW_ARRAY_SIZE(rt)) {
            pw_log_err(SINK, "sink.rules: more than %zu rules", PW_ARRAY_SIZE(rt));
            json_decref(rules);
            return PW_ECONFIG;
        }
        rt[sc.n_rule_targets++] =
            (struct pw_sink_rule_target){.rule = rule, .target = json_string_value(target)};
    }
    rc = pw_sink_new(out, type, &sc);
    json_decref(rules);
    return rc;
}

/*
 * Rule ids come from the engine's registry; a weak reference keeps the sink registry (and the
 * configuration schema listing it) linkable without the engine, as sink_fhir_flag.c does. Without
 * the engine any id is accepted here and pw_sink_new() takes it as written.
 */
#pragma weak pw_rule_find

static json_t *convert_rules(struct pw_conf_ctx *ctx, const json_t *raw, const char *path)
{
    json_t *eff = json_object();
    /* jansson iterates non-const trees; json_deep_copy(NULL) allocates too (and may fail) */
    json_t *copy = raw ? json_deep_copy(raw) : NULL;
    const char *key;
    json_t *val;

    if (raw && !json_is_object(raw)) {
        pw_conf_error(ctx, path, "expected a mapping of rule ids to fhir-flag | detected-issue");
        json_decref(eff);
        json_decref(copy);
        return NULL;
    }
    if (!eff || (raw && !copy)) {
        json_decref(eff);
        json_decref(copy);
        return NULL; /* out of memory: the caller reports it */
    }
    json_object_foreach(copy, key, val)
    {
        char kpath[256];
        const char *v = json_string_value(val);

        snprintf(kpath, sizeof(kpath), "%s.%s", path, key);
        if (pw_rule_find && !pw_rule_find(key)) {
            pw_conf_error(ctx, kpath, "no such rule (`painwatch config describe` lists them)");
        } else if (!builder(v)) {
            pw_conf_error(ctx, kpath, "expected fhir-flag | detected-issue");
        } else if (json_object_set_new(eff, key, json_string(v)) != 0) {
            json_decref(eff);
            json_decref(copy);
            return NULL; /* out of memory */
        }
    }
    json_decref(copy);
    return eff;
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
    free(sink->closed_status);
    for (size_t i = 0; i < sink->n_rule_targets; i++) {
        free(sink->rule_targets[i].rule);
    }
    free(sink->rule_targets);
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

enum pw_outcome pw_sink_classify_fhir(const struct pw_sink *sink, int err, long status)
{
    (void)sink;
    return pw_sink_classify_http(err, status);
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

/* ---- issue 21: write targets ---------------------------------------------------------------- */

bool pw_sink_closed_status_valid(const char *status)
{
    /* Statuses saying the issue is no longer current; never an open one or entered-in-error. */
    static const char *const closed[] = {"cancelled", "amended", "corrected"};

    for (size_t i = 0; status && i < PW_ARRAY_SIZE(closed); i++) {
        if (strcmp(status, closed[i]) == 0) {
            return true;
        }
    }
    return false;
}

static const struct pw_sink_ops *target_of(const struct pw_sink *sink, const char *rule)
{
    for (size_t i = 0; rule && i < sink->n_rule_targets; i++) {
        if (strcmp(sink->rule_targets[i].rule, rule) == 0) {
            return sink->rule_targets[i].ops;
        }
    }
    return sink->target;
}

int pw_sink_format(const struct pw_sink *sink, const struct pw_finding *f, json_t **out)
{
    const struct pw_sink_ops *t = target_of(sink, f->rule);

    return t ? t->format(sink, f, out) : PW_EAGAIN;
}

const struct pw_sink_ops *pw_sink_for_resource(const char *type)
{
    for (size_t i = 0; type && i < PW_ADAPTERS_MAX && pw_sink_kind.adapters[i]; i++) {
        const struct pw_sink_ops *ops = pw_adapter_ops(pw_sink_kind.adapters[i]);

        if (ops->resource_type && strcmp(ops->resource_type, type) == 0) {
            return ops;
        }
    }
    return NULL;
}

int pw_sink_update(const struct pw_sink *sink, const json_t *created, enum pw_outbox_op op,
                   int64_t at, json_t **out)
{
    const struct pw_sink_ops *t =
        pw_sink_for_resource(json_string_value(json_object_get(created, "resourceType")));

    return t ? t->update(sink, created, op, at, out) : PW_EINVAL;
}

const char *pw_sink_episode_status(const json_t *res)
{
    const struct pw_sink_ops *t =
        pw_sink_for_resource(json_string_value(json_object_get(res, "resourceType")));

    return t && t->episode_status ? t->episode_status(res) : NULL;
}

const struct pw_sink_ops *pw_sink_choose_target(struct pw_sink *sink,
                                                const struct pw_sink_caps *caps)
{
    if (sink->target) {
        return sink->target;
    }
    if (caps && caps->known && caps->detected_issue) {
        sink->target = &pw_sink_detected_issue;
    } else {
        if (!caps || !caps->known || !caps->flag) {
            pw_log_warn(SINK, "sink auto: /metadata %s: writing Flags",
                        caps && caps->known ? "advertises neither Flag nor DetectedIssue writes"
                                            : "not read");
        }
        sink->target = &pw_sink_fhir_flag;
    }
    pw_log_notice(SINK, "sink auto: writing %s resources", sink->target->resource_type);
    return sink->target;
}

static bool writes_type(const struct pw_sink_ops *ops, const char *type)
{
    return ops && ops->resource_type && strcmp(ops->resource_type, type) == 0;
}

bool pw_sink_uses(const struct pw_sink *sink, const char *resource_type)
{
    if (writes_type(sink->target, resource_type)) {
        return true;
    }
    for (size_t i = 0; i < sink->n_rule_targets; i++) {
        if (writes_type(sink->rule_targets[i].ops, resource_type)) {
            return true;
        }
    }
    return false;
}

static void writes_add(struct pw_sink_writes *w, const struct pw_sink_ops *ops)
{
    if (!ops || !ops->resource_type) {
        return;
    }
    for (size_t i = 0; i < w->n; i++) {
        if (strcmp(w->types[i], ops->resource_type) == 0) {
            return;
        }
    }
    if (w->n < PW_SINK_WRITES_MAX) {
        w->types[w->n++] = ops->resource_type;
    }
}

void pw_sink_conf_writes(const json_t *section, struct pw_sink_writes *out)
{
    const char *type = json_string_value(json_object_get(section, "type"));
    const struct pw_adapter *a = type ? pw_adapter_find(&pw_sink_kind, type) : NULL;
    const struct pw_sink_ops *ops = a ? pw_adapter_ops(a) : NULL;
    const json_t *rules = json_object_get(section, "rules");

    memset(out, 0, sizeof(*out));
    if (ops && ops->resource_type) {
        writes_add(out, ops);
    } else if (ops && ops->remote) {
        /* It chooses a builder from /metadata (pw_sink_choose_target()): any of them. */
        out->any = true;
        for (size_t i = 0; i < PW_ADAPTERS_MAX && pw_sink_kind.adapters[i]; i++) {
            const struct pw_sink_ops *b = pw_adapter_ops(pw_sink_kind.adapters[i]);
            writes_add(out, b->remote ? b : NULL);
        }
    } else {
        writes_add(out, default_target());
    }
    /* sink.rules: {"<rule id>": "<builder>"}; jansson iterates only non-const objects. */
    json_t *copy = json_is_object(rules) ? json_deep_copy(rules) : NULL;
    const char *rule;
    json_t *target;
    json_object_foreach(copy, rule, target)
    {
        (void)rule;
        writes_add(out, builder(json_string_value(target)));
    }
    json_decref(copy);
}

const char *pw_sink_shadow_type(void)
{
    for (size_t i = 0; i < PW_ADAPTERS_MAX && pw_sink_kind.adapters[i]; i++) {
        const struct pw_sink_ops *ops = pw_adapter_ops(pw_sink_kind.adapters[i]);
        if (ops->shadow) {
            return ops->adapter.name;
        }
    }
    return NULL;
}
