/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fhir-flag sink: a finding as a FHIR R4 Flag (identifier = episode key, category, code =
 * rule, priority and evidence extensions, a narrative with the numbers). Pure formatting.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "painwatch/engine.h"
#include "painwatch/err.h"
#include "painwatch/log.h"
#include "painwatch/sink.h"
#include "painwatch/sink_fhir.h"
#include "painwatch/timeline.h"

/*
 * Rule titles come from the engine's registry. A weak reference keeps the sink registry, and so
 * the configuration schema that lists the sinks (conf_map.h), linkable without the engine, as
 * conf_schema.c does with pw_rules_all; without the engine a Flag's code has no display.
 */
#pragma weak pw_rule_find

#define EXT_PRIORITY "http://hl7.org/fhir/StructureDefinition/flag-priority"
#define EXT_DETAIL   "http://hl7.org/fhir/StructureDefinition/flag-detail"
/* issue 21: the published system of the flag-priority extension (PN/PL/PM/PH) */
#define CS_PRIORITY "http://hl7.org/fhir/flag-priority-code"
#define CS_CATEGORY "http://terminology.hl7.org/CodeSystem/flag-category"

static void priority_of(enum pw_severity s, const char **code, const char **display)
{
    switch (s) {
    case PW_SEV_HIGH:
        *code = "PH";
        *display = "High priority";
        return;
    case PW_SEV_MEDIUM:
        *code = "PM";
        *display = "Medium priority";
        return;
    case PW_SEV_LOW:
        *code = "PL";
        *display = "Low priority";
        return;
    case PW_SEV_INFO:
        break;
    }
    *code = "PN";
    *display = "No alarm";
}

static json_t *extensions(const struct pw_finding *f)
{
    const char *code;
    const char *display;
    json_t *ext;

    priority_of(f->severity, &code, &display);
    ext = json_pack("[{s:s, s:{s:[o]}}]", "url", EXT_PRIORITY, "valueCodeableConcept", "coding",
                    pw_sink_coding(CS_PRIORITY, code, display));
    for (size_t i = 0; ext && i < f->n_evidence && i < PW_EVIDENCE_MAX; i++) {
        char ref[PW_REF_MAX + 64];

        pw_sink_ref_string(&f->evidence[i], ref, sizeof(ref));
        if (json_array_append_new(ext, json_pack("{s:s, s:{s:s}}", "url", EXT_DETAIL,
                                                 "valueReference", "reference", ref)) != 0) {
            json_decref(ext);
            return NULL;
        }
    }
    return ext;
}

/* Flag.code.text, what banners show: the summary (<= 140 characters), else the rule's title. */
static const char *banner_text(const struct pw_finding *f, const struct pw_rule *rule)
{
    if (f->summary[0]) {
        return f->summary;
    }
    if (rule && rule->title) {
        return rule->title;
    }
    return f->text[0] && strlen(f->text) < PW_SUMMARY_MAX ? f->text : f->rule;
}

static int flag_format(const struct pw_sink *sink, const struct pw_finding *f, json_t **out)
{
    const char *cat;
    json_t *flag;
    json_t *author;
    json_t *text;
    char start[32];
    const struct pw_rule *rule = pw_rule_find ? pw_rule_find(f->rule) : NULL;

    if (!f->rule || !f->rule[0] || !f->key[0] || !f->patient[0]) {
        return PW_EINVAL;
    }
    cat = f->category && strcmp(f->category, "drug") == 0 ? "drug" : "clinical";
    if (!f->category || strcmp(f->category, cat) != 0) {
        pw_log_warn(SINK, "rule %s: category '%s' is not drug|clinical, using clinical", f->rule,
                    f->category ? f->category : "");
    }
    text = pw_sink_narrative(f);
    if (!text) {
        return PW_ENOMEM;
    }
    author = pw_sink_author(sink);
    flag = json_pack(
        "{s:s, s:o, s:o, s:[{s:s, s:s}], s:s, s:[{s:[o]}],"
        " s:{s:[o], s:s}, s:{s:s}, s:o}",
        "resourceType", "Flag", "text", text, "extension", extensions(f), "identifier", "system",
        sink->identifier_system, "value", f->key, "status", "active", "category", "coding",
        pw_sink_coding(CS_CATEGORY, cat, strcmp(cat, "drug") == 0 ? "Drug" : "Clinical"), "code",
        "coding", pw_sink_coding(sink->code_system, f->rule, rule ? rule->title : NULL), "text",
        banner_text(f, rule), "subject", "reference", f->patient, "author", author);
    if (!flag) {
        return PW_ENOMEM;
    }
    if (f->since != PW_TIME_NONE) {
        pw_fhir_instant(f->since, start);
        json_object_set_new(flag, "period", json_pack("{s:s}", "start", start));
    }
    if (f->encounter[0]) { /* issue 21: an inpatient or emergency encounter in progress */
        json_object_set_new(flag, "encounter", json_pack("{s:s}", "reference", f->encounter));
    }
    *out = flag;
    return 0;
}

static int flag_update(const struct pw_sink *sink, const json_t *created, enum pw_outbox_op op,
                       int64_t at, json_t **out)
{
    json_t *flag;
    json_t *period;
    char end[32];
    int err = 0;

    (void)sink;
    if (!json_is_object(created) || op == PW_OUTBOX_CREATE) {
        return PW_EINVAL;
    }
    flag = pw_sink_update_copy(created);
    if (!flag) {
        return PW_ENOMEM;
    }
    period = json_object_get(flag, "period");
    if (op == PW_OUTBOX_RESOLVE) {
        const char *start = json_string_value(json_object_get(period, "start"));

        pw_sink_end_instant(at, start, end);
        if (!period) {
            period = json_object();
            json_object_set_new(flag, "period", period);
        }
        err = json_object_set_new(flag, "status", json_string("inactive"));
        if (!err) {
            err = json_object_set_new(period, "end", json_string(end));
        }
        if (!err) {
            err = pw_sink_narrative_state(flag, true, at);
        }
    } else {
        err = json_object_set_new(flag, "status", json_string("active"));
        json_object_del(period, "end");
        if (!err) {
            err = pw_sink_narrative_state(flag, false, at);
        }
    }
    if (err) {
        json_decref(flag);
        return PW_ENOMEM;
    }
    *out = flag;
    return 0;
}

/* Read back: Flag.status is already in the terms reconcile uses. */
static const char *flag_episode_status(const json_t *res)
{
    return json_string_value(json_object_get(res, "status"));
}

const struct pw_sink_ops pw_sink_fhir_flag = {
    .adapter = {.name = "fhir-flag",
                .help = "FHIR Flag resources created, resolved and reactivated on the server"},
    .remote = true,
    .format = flag_format,
    .update = flag_update,
    .classify = pw_sink_classify_fhir,
    .resource_type = "Flag",
    .episode_status = flag_episode_status,
};
