/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fhir-flag sink: a finding as a FHIR R4 Flag (identifier = episode key, category, code =
 * rule, priority and evidence extensions, a narrative with the numbers). Pure formatting.
 */
#include <math.h>
#include <stdarg.h>
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

#define EXT_PRIORITY  "http://hl7.org/fhir/StructureDefinition/flag-priority"
#define EXT_DETAIL    "http://hl7.org/fhir/StructureDefinition/flag-detail"
#define CS_PRIORITY   "http://terminology.hl7.org/CodeSystem/flag-priority-code"
#define CS_CATEGORY   "http://terminology.hl7.org/CodeSystem/flag-category"
#define XHTML_NS      "http://www.w3.org/1999/xhtml"
#define NARRATIVE_MAX (16u * 1024u)
#define RESOLVED_PARA "<p>Resolved by painwatch at %s: the finding no longer holds.</p>"

/* A bounded text buffer for the narrative: appends past the cap are cut, never overflow. */
struct buf {
    char *s;
    size_t n;
    size_t cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int k;

    if (b->n + 1 >= b->cap) {
        return;
    }
    va_start(ap, fmt);
    k = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (k > 0) {
        b->n += (size_t)k < b->cap - b->n ? (size_t)k : b->cap - b->n - 1;
    }
}

/* Append the @p n bytes at @p s as they are (cut at the cap, like put()). */
static void put_n(struct buf *b, const char *s, size_t n)
{
    if (b->n + 1 >= b->cap) {
        return;
    }
    if (n > b->cap - b->n - 1) {
        n = b->cap - b->n - 1;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

/* Append @p s with the five XML special characters escaped (plain runs copied whole). */
static void put_esc(struct buf *b, const char *s)
{
    while (s && *s) {
        size_t run = strcspn(s, "&<>\"'");
        put_n(b, s, run);
        s += run;
        switch (*s) {
        case '&':
            put_n(b, "&amp;", 5);
            break;
        case '<':
            put_n(b, "&lt;", 4);
            break;
        case '>':
            put_n(b, "&gt;", 4);
            break;
        case '"':
            put_n(b, "&quot;", 6);
            break;
        case '\'':
            put_n(b, "&#39;", 5);
            break;
        default:
            continue; /* the end of @p s */
        }
        s++;
    }
}

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

static const char *severity_word(enum pw_severity s)
{
    static const char *const words[] = {"info", "low", "medium", "high"};

    return (size_t)s < sizeof(words) / sizeof(words[0]) ? words[s] : "?";
}

/* The narrative: what a clinician reads in the chart, with every number and the factor set. */
static char *narrative(const struct pw_finding *f)
{
    struct buf b = {.s = malloc(NARRATIVE_MAX), .cap = NARRATIVE_MAX};
    char when[32];

    if (!b.s) {
        return NULL;
    }
    b.s[0] = '\0';
    put(&b, "<div xmlns=\"" XHTML_NS "\"><p><b>painwatch: ");
    put_esc(&b, f->rule);
    put(&b, "</b> (%s)</p><p>", severity_word(f->severity));
    put_esc(&b, f->text[0] ? f->text : f->rule);
    put(&b, "</p>");
    if (f->n_numbers > 0) {
        put(&b, "<ul>");
        for (size_t i = 0; i < f->n_numbers && i < PW_NUMBERS_MAX; i++) {
            put(&b, "<li>");
            put_esc(&b, f->numbers[i].name);
            if (isfinite(f->numbers[i].value)) {
                put(&b, ": %.6g</li>", f->numbers[i].value);
            } else {
                put(&b, ": unknown</li>");
            }
        }
        put(&b, "</ul>");
    }
    put(&b, "<p>MME factor set: ");
    put_esc(&b, f->factor_set ? f->factor_set : "none");
    if (f->since != PW_TIME_NONE) {
        pw_fhir_instant(f->since, when);
        put(&b, ". Since %s", when);
    }
    put(&b, ".</p>");
    if (f->n_evidence > 0) {
        put(&b, "<p>Evidence:");
        for (size_t i = 0; i < f->n_evidence && i < PW_EVIDENCE_MAX; i++) {
            char ref[PW_REF_MAX + 64];

            pw_sink_ref_string(&f->evidence[i], ref, sizeof(ref));
            put(&b, i ? ", " : " ");
            put_esc(&b, ref);
        }
        put(&b, "</p>");
    }
    /* Keep room for the closing tag even when the body was cut. */
    if (b.n + sizeof("</div>") > b.cap) {
        b.n = b.cap - sizeof("</div>");
    }
    b.s[b.n] = '\0';
    put(&b, "</div>");
    return b.s;
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

static int flag_format(const struct pw_sink *sink, const struct pw_finding *f, json_t **out)
{
    const char *cat;
    json_t *flag;
    json_t *author;
    char *div;
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
    div = narrative(f);
    if (!div) {
        return PW_ENOMEM;
    }
    author = pw_sink_author(sink);
    flag = json_pack(
        "{s:s, s:{s:s, s:s}, s:o, s:[{s:s, s:s}], s:s, s:[{s:[o]}],"
        " s:{s:[o], s:s}, s:{s:s}, s:o}",
        "resourceType", "Flag", "text", "status", "generated", "div", div, "extension",
        extensions(f), "identifier", "system", sink->identifier_system, "value", f->key, "status",
        "active", "category", "coding",
        pw_sink_coding(CS_CATEGORY, cat, strcmp(cat, "drug") == 0 ? "Drug" : "Clinical"), "code",
        "coding", pw_sink_coding(sink->code_system, f->rule, rule ? rule->title : NULL), "text",
        f->text[0] ? f->text : f->rule, "subject", "reference", f->patient, "author", author);
    free(div);
    if (!flag) {
        return PW_ENOMEM;
    }
    if (f->since != PW_TIME_NONE) {
        pw_fhir_instant(f->since, start);
        json_object_set_new(flag, "period", json_pack("{s:s}", "start", start));
    }
    *out = flag;
    return 0;
}

/* The resolved narrative: the created one plus a closing line saying when and why. */
static int resolved_div(json_t *flag, const char *when)
{
    json_t *text = json_object_get(flag, "text");
    const char *div = json_string_value(json_object_get(text, "div"));
    size_t len;
    char *s;
    int err;

    if (!div || (len = strlen(div)) < 6 || strcmp(div + len - 6, "</div>") != 0) {
        return 0; /* not ours to edit: leave it */
    }
    s = malloc(len + sizeof(RESOLVED_PARA) + 32);
    if (!s) {
        return PW_ENOMEM;
    }
    memcpy(s, div, len - 6);
    sprintf(s + len - 6, RESOLVED_PARA "</div>", when);
    err = json_object_set_new(text, "div", json_string(s)) ? PW_ENOMEM : 0;
    free(s);
    return err;
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
            err = resolved_div(flag, end);
        }
    } else {
        err = json_object_set_new(flag, "status", json_string("active"));
        json_object_del(period, "end");
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
