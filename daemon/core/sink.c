/* SPDX-License-Identifier: Apache-2.0 */
/* The sink registry and what every sink shares (HTTP classification, FHIR instants). */
#include "painwatch/sink.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "painwatch/check.h"
#include "painwatch/err.h"
#include "painwatch/log.h"

/* One line per sink adapter. */
static const struct pw_sink_ops *const sinks[] = {
    &pw_sink_fhir_flag,
    &pw_sink_file,
    &pw_sink_detected_issue,
    &pw_sink_auto,
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
    for (size_t i = 0; name && i < PW_ARRAY_SIZE(sinks); i++) {
        if (sinks[i]->resource_type && strcmp(sinks[i]->name, name) == 0) {
            return sinks[i];
        }
    }
    return NULL;
}

/* The sink's own target and the per-rule ones (issue 21). */
static int set_targets(struct pw_sink *sink, const struct pw_sink_conf *conf)
{
    if (sink->ops->resource_type) {
        sink->target = sink->ops;
    } else if (conf->target && strcmp(conf->target, "auto") == 0) {
        sink->target = NULL; /* chosen from /metadata: pw_sink_choose_target() */
    } else if (sink->ops == &pw_sink_auto) {
        sink->target = NULL;
    } else {
        sink->target = builder(conf->target ? conf->target : "fhir-flag");
        if (!sink->target) {
            pw_log_err(SINK, "sink: unknown write target '%s'", conf->target);
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
    if (!err) {
        err = dup_or(&sink->closed_status, conf->closed_status, PW_DI_CLOSED_STATUS_DEFAULT);
    }
    if (!err) {
        err = set_targets(sink, conf);
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
    time_t tt = (time_t)t;
    struct tm tm;

    if (!gmtime_r(&tt, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        out[0] = '\0';
    }
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
    for (size_t i = 0; type && i < PW_ARRAY_SIZE(sinks); i++) {
        if (sinks[i]->resource_type && strcmp(sinks[i]->resource_type, type) == 0) {
            return sinks[i];
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

bool pw_sink_uses(const struct pw_sink *sink, const struct pw_sink_ops *ops)
{
    if (sink->target == ops) {
        return true;
    }
    for (size_t i = 0; i < sink->n_rule_targets; i++) {
        if (sink->rule_targets[i].ops == ops) {
            return true;
        }
    }
    return false;
}

/* `sink.type: auto`: a remote sink whose resources are built by the target /metadata chose. */
static int auto_format(const struct pw_sink *sink, const struct pw_finding *f, json_t **out)
{
    return pw_sink_format(sink, f, out);
}

static enum pw_outcome auto_classify(const struct pw_sink *sink, int err, long status)
{
    (void)sink;
    return pw_sink_classify_http(err, status);
}

const struct pw_sink_ops pw_sink_auto = {
    .name = "auto",
    .remote = true,
    .format = auto_format,
    .update = pw_sink_update,
    .classify = auto_classify,
};
