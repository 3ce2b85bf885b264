/* SPDX-License-Identifier: Apache-2.0 */
/* Audit record builders: the AuditEvent/BALP shape for FHIR interactions, findings, flags and
 * painwatch's own events. They only build JSON; pw_audit_append_new() seals and writes. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "painwatch/audit.h"
#include "painwatch/datetime.h"
#include "painwatch/err.h"

/* Borrowed strings that may be NULL become absent fields, never "null". */
static void set_str(json_t *obj, const char *key, const char *val)
{
    if (val && val[0]) {
        json_object_set_new(obj, key, json_string(val));
    }
}

static json_t *entity(const char *role, const char *key, const char *val)
{
    return json_pack("{s:s,s:s}", "role", role, key, val);
}

static json_t *record_new(const char *type, const char *subtype, char action,
                          enum pw_audit_outcome outcome, const char *desc)
{
    char act[2] = {action, '\0'};
    json_t *rec;

    if (!strchr("CRUDE", action) || action == '\0') {
        return NULL;
    }
    rec = json_pack("{s:s,s:s,s:s,s:i}", "type", type, "subtype", subtype, "action", act, "outcome",
                    (int)outcome);
    if (rec) {
        set_str(rec, "outcomeDesc", desc);
    }
    return rec;
}

/* BALP agents: the writer adds painwatch itself (requestor, its Device) in front of these. */
static json_t *agents(const char *server)
{
    json_t *list = json_array();

    if (list && server && server[0]) {
        json_array_append_new(
            list, json_pack("{s:s,s:s,s:b}", "role", "destination", "who", server, "requestor", 0));
    }
    return list;
}

static json_t *painwatch_obj(json_t *rec)
{
    json_t *pw = json_object_get(rec, "painwatch");

    if (!pw) {
        pw = json_object();
        json_object_set_new(rec, "painwatch", pw);
    }
    return pw;
}

int pw_audit_event(struct pw_audit *a, const char *subtype, char action,
                   enum pw_audit_outcome outcome, const char *desc, json_t *extra)
{
    json_t *rec;

    if (!subtype || (extra && !json_is_object(extra))) {
        json_decref(extra);
        return PW_EINVAL;
    }
    rec = record_new("painwatch", subtype, action, outcome, desc);
    if (!rec) {
        json_decref(extra);
        return PW_EINVAL;
    }
    if (extra) {
        json_object_update(rec, extra);
        json_decref(extra);
    }
    return pw_audit_append_new(a, rec);
}

static char interaction_action(const char *interaction)
{
    if (strcmp(interaction, "search") == 0) {
        return 'E';
    }
    if (strcmp(interaction, "read") == 0) {
        return 'R';
    }
    if (strcmp(interaction, "create") == 0) {
        return 'C';
    }
    if (strcmp(interaction, "update") == 0) {
        return 'U';
    }
    return '\0';
}

static enum pw_audit_outcome status_outcome(int err, long status)
{
    if (err || status <= 0 || status >= 500) {
        return PW_AUDIT_SERIOUS;
    }
    return status >= 400 ? PW_AUDIT_MINOR : PW_AUDIT_SUCCESS;
}

/* "Flag/9/_history/2" -> entity {role:resource, what:..., type:"Flag"}. */
static json_t *resource_entity(const char *ref)
{
    char type[64];
    const char *slash = strchr(ref, '/');
    size_t n = slash ? (size_t)(slash - ref) : strlen(ref);
    json_t *e = entity("resource", "what", ref);

    if (e && n > 0 && n < sizeof(type)) {
        memcpy(type, ref, n);
        type[n] = '\0';
        json_object_set_new(e, "type", json_string(type));
    }
    return e;
}

int pw_audit_fhir_interaction(struct pw_audit *a, const struct pw_audit_fhir *ix)
{
    char desc[96];
    json_t *rec;
    json_t *ent;
    json_t *pw;
    char action;

    if (!ix || !ix->interaction || !ix->url) {
        return PW_EINVAL;
    }
    action = interaction_action(ix->interaction);
    if (ix->err) {
        snprintf(desc, sizeof(desc), "no response: %s", pw_strerror(ix->err));
    } else {
        snprintf(desc, sizeof(desc), "HTTP %ld", ix->status);
    }
    rec = record_new("rest", ix->interaction, action, status_outcome(ix->err, ix->status), desc);
    if (!rec) {
        return PW_EINVAL;
    }
    ent = json_array();
    json_object_set_new(rec, "entity", ent);
    if (ix->patient && ix->patient[0]) {
        json_array_append_new(ent, entity("patient", "what", ix->patient));
    }
    /* BALP: a search records its query; a read or write records the resource. */
    json_array_append_new(ent, entity(action == 'E' ? "query" : "request", "query", ix->url));
    if (ix->resource && ix->resource[0]) {
        json_array_append_new(ent, resource_entity(ix->resource));
    }
    if (ix->server && ix->server[0]) {
        json_object_set_new(rec, "agent", agents(ix->server));
    }
    pw = painwatch_obj(rec);
    set_str(pw, "method", ix->method);
    set_str(pw, "correlation", ix->correlation);
    if (ix->status > 0) {
        json_object_set_new(pw, "server_status", json_integer(ix->status));
    }
    if (ix->entries >= 0) {
        json_object_set_new(pw, "entries", json_integer(ix->entries));
    }
    return pw_audit_append_new(a, rec);
}

/* Local on purpose: the audit module must not depend on the clinical library being linked. */
static const char *severity_name(enum pw_severity s)
{
    static const char *const names[] = {"info", "low", "medium", "high"};

    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

int pw_audit_finding(struct pw_audit *a, const char *subtype, const struct pw_finding *f,
                     const char *correlation)
{
    return pw_audit_finding_via(a, subtype, f, correlation, NULL);
}

int pw_audit_finding_via(struct pw_audit *a, const char *subtype, const struct pw_finding *f,
                         const char *correlation, const char *carrier)
{
    json_t *rec;
    json_t *ent;
    json_t *pw;
    json_t *nums;

    if (!subtype || !f || !f->rule ||
        (strcmp(subtype, "finding-raised") != 0 && strcmp(subtype, "finding-resolved") != 0 &&
         strcmp(subtype, "finding-not-posted") != 0 && strcmp(subtype, "finding-carded") != 0)) {
        return PW_EINVAL;
    }
    rec = record_new("painwatch", subtype, 'E', PW_AUDIT_SUCCESS, NULL);
    if (!rec) {
        return PW_ENOMEM;
    }
    ent = json_array();
    json_object_set_new(rec, "entity", ent);
    if (f->patient[0]) {
        json_array_append_new(ent, entity("patient", "what", f->patient));
    }
    for (size_t i = 0; i < f->n_evidence && i < PW_EVIDENCE_MAX; i++) {
        const struct pw_ref *r = &f->evidence[i];
        char ref[sizeof(r->type) + sizeof(r->id) + sizeof(r->version) + 16];
        if (r->version[0]) {
            snprintf(ref, sizeof(ref), "%s/%s/_history/%s", r->type, r->id, r->version);
        } else {
            snprintf(ref, sizeof(ref), "%s/%s", r->type, r->id);
        }
        json_t *e = resource_entity(ref);
        json_object_set_new(e, "role", json_string("evidence"));
        json_array_append_new(ent, e);
    }
    pw = painwatch_obj(rec);
    set_str(pw, "rule", f->rule);
    set_str(pw, "episode", f->key);
    set_str(pw, "factor_set", f->factor_set);
    set_str(pw, "category", f->category);
    set_str(pw, "severity", severity_name(f->severity));
    set_str(pw, "text", f->text);
    set_str(pw, "situation", f->situation);
    set_str(pw, "correlation", correlation);
    if (f->since != PW_TIME_NONE && f->since > 0) {
        /* When the situation began (Flag.period.start), RFC 3339 UTC. */
        char since[PW_TIME_FMT_LEN];
        pw_time_format(f->since * 1000, 0, since, sizeof(since));
        set_str(pw, "since", since);
    }
    nums = json_object();
    for (size_t i = 0; i < f->n_numbers && i < PW_NUMBERS_MAX; i++) {
        if (f->numbers[i].name) {
            json_object_set_new(nums, f->numbers[i].name, json_real(f->numbers[i].value));
        }
    }
    json_object_set_new(pw, "numbers", nums);
    /* issue 21: what carried the finding ("fhir-flag", "file", ...; "audit-only": nothing) */
    set_str(pw, "carrier", carrier);
    set_str(pw, "summary", f->summary[0] ? f->summary : NULL);
    set_str(pw, "encounter", f->encounter[0] ? f->encounter : NULL);
    return pw_audit_append_new(a, rec);
}

int pw_audit_flag(struct pw_audit *a, const struct pw_audit_flag *fl)
{
    enum pw_audit_outcome outcome;
    json_t *rec;
    json_t *ent;
    json_t *pw;
    char desc[64];

    if (!fl || !fl->subtype) {
        return PW_EINVAL;
    }
    if (strcmp(fl->subtype, "flag-delivered") == 0) {
        outcome = PW_AUDIT_SUCCESS;
    } else if (strcmp(fl->subtype, "flag-rejected") == 0) {
        outcome = PW_AUDIT_MINOR;
    } else if (strcmp(fl->subtype, "flag-dead-lettered") == 0) {
        outcome = PW_AUDIT_SERIOUS;
    } else {
        return PW_EINVAL;
    }
    if (fl->status > 0) {
        snprintf(desc, sizeof(desc), "HTTP %ld", fl->status);
    } else {
        snprintf(desc, sizeof(desc), "no response");
    }
    rec = record_new("painwatch", fl->subtype, fl->action ? fl->action : 'C', outcome, desc);
    if (!rec) {
        return PW_EINVAL;
    }
    ent = json_array();
    json_object_set_new(rec, "entity", ent);
    if (fl->patient && fl->patient[0]) {
        json_array_append_new(ent, entity("patient", "what", fl->patient));
    }
    if (fl->flag && fl->flag[0]) {
        json_array_append_new(ent, resource_entity(fl->flag));
    }
    if (fl->server && fl->server[0]) {
        json_object_set_new(rec, "agent", agents(fl->server));
    }
    pw = painwatch_obj(rec);
    set_str(pw, "rule", fl->rule);
    set_str(pw, "episode", fl->episode);
    set_str(pw, "detail", fl->detail);
    set_str(pw, "correlation", fl->correlation);
    if (fl->status > 0) {
        json_object_set_new(pw, "server_status", json_integer(fl->status));
    }
    return pw_audit_append_new(a, rec);
}

int pw_audit_search_cycle(struct pw_audit *a, const char *server, json_t *queries, json_t *patients,
                          json_t *ids, long pages, long entries, int err)
{
    char desc[128];
    long searches = 0;
    const char *shape;
    json_t *q;
    json_t *rec;
    json_t *ent;
    json_t *pw;
    size_t i;

    json_object_foreach(queries, shape, q)
    {
        searches += (long)json_integer_value(json_object_get(q, "searches"));
    }
    snprintf(desc, sizeof(desc), "%ld search(es), %ld page(s), %ld entries%s%s", searches, pages,
             entries, err ? ": cycle ended: " : "", err ? pw_strerror(err) : "");
    rec = record_new("rest", "search", 'E', err ? PW_AUDIT_MINOR : PW_AUDIT_SUCCESS, desc);
    ent = json_array();
    if (!rec || !ent || !json_is_object(queries) || !json_is_array(patients) ||
        !json_is_array(ids)) {
        json_decref(rec);
        json_decref(ent);
        json_decref(queries);
        json_decref(patients);
        json_decref(ids);
        return PW_EINVAL;
    }
    json_object_set_new(rec, "entity", ent);
    json_object_foreach(queries, shape, q)
    {
        json_array_append_new(ent, entity("query", "query", shape));
    }
    for (i = 0; i < json_array_size(patients); i++) {
        json_array_append_new(
            ent, entity("patient", "what", json_string_value(json_array_get(patients, i))));
    }
    if (server && server[0]) {
        json_object_set_new(rec, "agent", agents(server));
    }
    pw = painwatch_obj(rec);
    json_object_set_new(pw, "cycle", json_true());
    json_object_set_new(pw, "searches", json_integer(searches));
    json_object_set_new(pw, "pages", json_integer(pages));
    json_object_set_new(pw, "entries", json_integer(entries));
    json_object_set_new(pw, "queries", queries);
    json_object_set_new(pw, "read", ids);
    json_decref(patients);
    return pw_audit_append_new(a, rec);
}

int pw_audit_data_quality(struct pw_audit *a, const char *patient, const struct pw_dq_event *ev)
{
    json_t *rec;
    json_t *ent;
    json_t *pw;

    if (!patient || !patient[0] || !ev || !ev->code[0]) {
        return PW_EINVAL;
    }
    rec = record_new("painwatch", "data-quality", 'E', PW_AUDIT_SUCCESS,
                     "a data-quality event: the data named was not used as advice");
    if (!rec) {
        return PW_ENOMEM;
    }
    ent = json_array();
    json_object_set_new(rec, "entity", ent);
    json_array_append_new(ent, entity("patient", "what", patient));
    if (ev->src.type[0] && ev->src.id[0] && strcmp(ev->src.type, "Patient") != 0) {
        char ref[sizeof(ev->src.type) + sizeof(ev->src.id) + sizeof(ev->src.version) + 16];
        if (ev->src.version[0]) {
            snprintf(ref, sizeof(ref), "%s/%s/_history/%s", ev->src.type, ev->src.id,
                     ev->src.version);
        } else {
            snprintf(ref, sizeof(ref), "%s/%s", ev->src.type, ev->src.id);
        }
        json_array_append_new(ent, resource_entity(ref));
    }
    pw = painwatch_obj(rec);
    set_str(pw, "code", ev->code);
    set_str(pw, "detail", ev->detail);
    return pw_audit_append_new(a, rec);
}
