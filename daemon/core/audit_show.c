/* SPDX-License-Identifier: Apache-2.0 */
/* Reading the audit trail for an auditor: filters (patient, rule, time) and a readable table or
 * the records themselves as JSON lines. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/audit_int.h"
#include "painwatch/audit.h"
#include "painwatch/datetime.h"
#include "painwatch/err.h"

int pw_audit_parse_time(const char *s, int64_t *out_ms)
{
    return pw_time_parse(s, PW_TIME_ZONE | PW_TIME_LAX, out_ms);
}

static const char *patient_of(const json_t *rec)
{
    size_t i;
    json_t *e;

    json_array_foreach(json_object_get(rec, "entity"), i, e)
    {
        const char *role = json_string_value(json_object_get(e, "role"));
        if (role && strcmp(role, "patient") == 0) {
            return json_string_value(json_object_get(e, "what"));
        }
    }
    return NULL;
}

static const char *pw_str(const json_t *rec, const char *key)
{
    return json_string_value(json_object_get(json_object_get(rec, "painwatch"), key));
}

/* "123" matches "Patient/123" as well as itself. */
static bool patient_matches(const char *have, const char *want)
{
    if (!have) {
        return false;
    }
    if (strcmp(have, want) == 0) {
        return true;
    }
    return strncmp(have, "Patient/", 8) == 0 && strcmp(have + 8, want) == 0;
}

static bool passes(const json_t *rec, const struct pw_audit_filter *flt)
{
    int64_t t;

    if (flt->patient && !patient_matches(patient_of(rec), flt->patient)) {
        return false;
    }
    if (flt->rule && (!pw_str(rec, "rule") || strcmp(pw_str(rec, "rule"), flt->rule) != 0)) {
        return false;
    }
    if (flt->since_ms != INT64_MIN || flt->until_ms != INT64_MAX) {
        if (pw_audit_parse_time(json_string_value(json_object_get(rec, "recorded")), &t) != 0) {
            return false;
        }
        if (t < flt->since_ms || t >= flt->until_ms) {
            return false;
        }
    }
    return true;
}

static void add(char *buf, size_t cap, const char *text)
{
    size_t len = strlen(buf);

    if (text && text[0] && len + 2 < cap) {
        snprintf(buf + len, cap - len, "%s%s", len ? " " : "", text);
    }
}

/* What was read or written, and why: the auditor's column. */
static void detail(const json_t *rec, char *buf, size_t cap)
{
    const json_t *pw = json_object_get(rec, "painwatch");
    const char *k;
    json_t *v;
    json_t *e;
    size_t i;
    char tmp[160];

    buf[0] = '\0';
    add(buf, cap, pw_str(rec, "method"));
    json_array_foreach(json_object_get(rec, "entity"), i, e)
    {
        const char *role = json_string_value(json_object_get(e, "role"));
        if (role && strcmp(role, "patient") != 0) {
            add(buf, cap, json_string_value(json_object_get(e, "query")));
            add(buf, cap, json_string_value(json_object_get(e, "what")));
        }
    }
    add(buf, cap, json_string_value(json_object_get(rec, "outcomeDesc")));
    if (json_is_integer(json_object_get(pw, "entries"))) {
        snprintf(tmp, sizeof(tmp), "(%" JSON_INTEGER_FORMAT " entries)",
                 json_integer_value(json_object_get(pw, "entries")));
        add(buf, cap, tmp);
    }
    if (pw_str(rec, "episode")) {
        snprintf(tmp, sizeof(tmp), "episode %.12s", pw_str(rec, "episode"));
        add(buf, cap, tmp);
    }
    json_object_foreach(json_object_get(pw, "numbers"), k, v)
    {
        snprintf(tmp, sizeof(tmp), "%s=%g", k, json_number_value(v));
        add(buf, cap, tmp);
    }
    if (pw_str(rec, "factor_set")) {
        snprintf(tmp, sizeof(tmp), "factors=%s", pw_str(rec, "factor_set"));
        add(buf, cap, tmp);
    }
    add(buf, cap, pw_str(rec, "code")); /* a data-quality event's */
    add(buf, cap, pw_str(rec, "detail"));
    if (pw_str(rec, "config_hash")) {
        snprintf(tmp, sizeof(tmp), "config %.16s", pw_str(rec, "config_hash"));
        add(buf, cap, tmp);
    }
}

static const char *outcome_word(json_int_t o)
{
    switch (o) {
    case 0:
        return "ok";
    case 4:
        return "minor";
    case 8:
        return "serious";
    case 12:
        return "major";
    default:
        return "?";
    }
}

static void print_row(FILE *out, const json_t *rec)
{
    char event[48];
    char outcome[16];
    char det[1024];
    const char *type = json_string_value(json_object_get(rec, "type"));
    const char *sub = json_string_value(json_object_get(rec, "subtype"));
    json_int_t o = json_integer_value(json_object_get(rec, "outcome"));
    const char *patient = patient_of(rec);
    const char *rule = pw_str(rec, "rule");
    const char *time = json_string_value(json_object_get(rec, "recorded"));

    snprintf(event, sizeof(event), "%s%s", type && strcmp(type, "rest") == 0 ? "fhir-" : "",
             sub ? sub : "?");
    snprintf(outcome, sizeof(outcome), "%" JSON_INTEGER_FORMAT " %s", o, outcome_word(o));
    detail(rec, det, sizeof(det));
    fprintf(out, "%-24s  %-18s  %-10s  %-20s  %-28s  %s\n", time ? time : "?", event, outcome,
            patient ? patient : "-", rule ? rule : "-", det);
}

/* A file header that records an anomaly (torn tail, removed or changed file) concerns every
 * patient: it is shown unless the auditor filters by patient or rule. */
static bool anomaly_passes(const json_t *hdr, const struct pw_audit_filter *flt)
{
    int64_t t;

    if (!json_is_object(json_object_get(hdr, "anomaly")) || flt->patient || flt->rule) {
        return false;
    }
    if (pw_audit_parse_time(json_string_value(json_object_get(hdr, "created")), &t) != 0) {
        return flt->since_ms == INT64_MIN && flt->until_ms == INT64_MAX;
    }
    return t >= flt->since_ms && t < flt->until_ms;
}

static void print_anomaly(FILE *out, const json_t *hdr, const struct pw_audit_filter *flt,
                          const char *line, size_t len)
{
    const json_t *an = json_object_get(hdr, "anomaly");
    const char *time = json_string_value(json_object_get(hdr, "created"));
    const char *problem = json_string_value(json_object_get(an, "problem"));
    const char *file = json_string_value(json_object_get(an, "file"));

    if (flt->json) {
        fprintf(out, "%.*s\n", (int)len, line);
        return;
    }
    fprintf(out, "%-24s  %-18s  %-10s  %-20s  %-28s  %s%s%s%s\n", time ? time : "?",
            "trail-anomaly", "8 serious", "-", "-", problem ? problem : "?",
            file ? " (set aside as " : "", file ? file : "", file ? ")" : "");
}

static int show_file(FILE *out, FILE *err, const char *path, const struct pw_audit_filter *flt,
                     long *printed)
{
    struct pw_audit_lines r;
    int rc = pw_audit_lines_open(&r, path);

    if (rc) {
        fprintf(err, "painwatch audit show: %s: %s\n", path, pw_strerror(rc));
        return rc;
    }
    while ((rc = pw_audit_lines_next(&r)) == 1) {
        json_t *rec = r.too_long ? NULL : json_loadb(r.buf, r.len, 0, NULL);
        const char *type = json_string_value(json_object_get(rec, "type"));
        if (!json_is_object(rec) || !type) {
            fprintf(err, "painwatch audit show: %s:%ld: not an audit record, skipped\n", path,
                    r.line);
        } else if (strcmp(type, "header") == 0) {
            if (anomaly_passes(rec, flt)) {
                print_anomaly(out, rec, flt, r.buf, r.len);
                (*printed)++;
            }
        } else if (passes(rec, flt)) {
            if (flt->json) {
                fprintf(out, "%.*s\n", (int)r.len, r.buf);
            } else {
                print_row(out, rec);
            }
            (*printed)++;
        }
        json_decref(rec);
    }
    pw_audit_lines_close(&r);
    if (rc < 0) {
        fprintf(err, "painwatch audit show: %s: read error\n", path);
    }
    return rc;
}

long pw_audit_show(FILE *out, FILE *err, const char *const *files, size_t n_files,
                   const struct pw_audit_filter *flt)
{
    long printed = 0;

    if (!flt->json) {
        fprintf(out, "%-24s  %-18s  %-10s  %-20s  %-28s  %s\n", "TIME (UTC)", "EVENT", "OUTCOME",
                "PATIENT", "RULE", "WHAT / WHY");
    }
    for (size_t i = 0; i < n_files; i++) {
        int rc = show_file(out, err, files[i], flt, &printed);
        if (rc < 0) {
            return rc;
        }
    }
    return printed;
}
