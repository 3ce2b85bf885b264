/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `painwatch report`: the alert-burden summary of a shadow-mode period, from the file sink's
 * NDJSON (every write painwatch would have sent: create / resolve / reactivate of an episode,
 * with its time) and the audit trail (finding-raised with the severity, finding-resolved, and
 * every patient painwatch read or evaluated, for the patient-days).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backtest.h"
#include "painwatch/err.h"

struct shadow {
    struct pw_bt_result *out;
    json_t *severity; /* episode key -> severity name (audit finding-raised) */
    json_t *first;    /* patient -> first time seen (integer) */
    json_t *ops;      /* array of [time, op, key, patient, rule] from the sink or the audit */
    bool sink_given;  /* the sink's ops are the episodes; the audit's are then only context */
    int64_t lo, hi;   /* times seen */
};

static void seen(struct shadow *s, const char *patient, int64_t t)
{
    if (t < s->lo || s->lo == PW_TIME_NONE) {
        s->lo = t;
    }
    if (t > s->hi || s->hi == PW_TIME_NONE) {
        s->hi = t;
    }
    if (patient && patient[0]) {
        const json_t *cur = json_object_get(s->first, patient);
        if (!cur || json_integer_value(cur) > t) {
            json_object_set_new(s->first, patient, json_integer(t));
        }
    }
}

static int add_op(struct shadow *s, int64_t t, const char *op, const char *key, const char *patient,
                  const char *rule)
{
    return json_array_append_new(
        s->ops, json_pack("[I, s, s, s, s]", (json_int_t)t, op, key, patient, rule ? rule : "?"));
}

/* One line of the file sink: {time, op, key, patient, rule, ...}. */
static int sink_line(struct shadow *s, const json_t *line, const char *file, size_t n, char *err,
                     size_t errlen)
{
    const char *op = pw_fhir_str(line, "op"), *key = pw_fhir_str(line, "key");
    const char *patient = pw_fhir_str(line, "patient");
    int64_t t;

    if (!op || !key || !patient || pw_fhir_parse_time(pw_fhir_str(line, "time"), &t) < 0) {
        snprintf(err, errlen, "%s:%zu: not a file sink line (needs time, op, key, patient, rule)",
                 file, n);
        return -1;
    }
    seen(s, patient, t);
    return add_op(s, t, op, key, patient, pw_fhir_str(line, "rule")) < 0 ? PW_ENOMEM : 0;
}

/* The patient an audit record names (entity role patient), or NULL. */
static const char *audit_patient(const json_t *rec)
{
    size_t i;
    const json_t *e;

    json_array_foreach(json_object_get(rec, "entity"), i, e)
    {
        const char *role = pw_fhir_str(e, "role"), *what = pw_fhir_str(e, "what");
        if (role && what && strcmp(role, "patient") == 0) {
            return what;
        }
    }
    return pw_fhir_str(json_object_get(rec, "painwatch"), "patient");
}

static int audit_line(struct shadow *s, const json_t *rec, const char *file, size_t n, char *err,
                      size_t errlen)
{
    const char *subtype = pw_fhir_str(rec, "subtype");
    const json_t *pw = json_object_get(rec, "painwatch");
    const char *patient = audit_patient(rec);
    int64_t t;

    if (pw_fhir_str(rec, "format") || !subtype) {
        return 0; /* a header record, or not a record painwatch reads here */
    }
    if (pw_fhir_parse_time(pw_fhir_str(rec, "recorded"), &t) < 0) {
        snprintf(err, errlen, "%s:%zu: an audit record without its time (recorded)", file, n);
        return -1;
    }
    /* Every patient a record names (a search cycle names all it read) was looked at. */
    size_t i;
    const json_t *e;
    seen(s, patient, t);
    json_array_foreach(json_object_get(rec, "entity"), i, e)
    {
        const char *role = pw_fhir_str(e, "role"), *what = pw_fhir_str(e, "what");
        if (role && what && strcmp(role, "patient") == 0) {
            seen(s, what, t);
        }
    }
    const char *key = pw_fhir_str(pw, "episode");
    if (strcmp(subtype, "finding-raised") == 0 && key) {
        const char *sev = pw_fhir_str(pw, "severity");
        json_object_set_new(s->severity, key, json_string(sev ? sev : "info"));
        if (!s->sink_given && patient) {
            return add_op(s, t, "create", key, patient, pw_fhir_str(pw, "rule"));
        }
    } else if (strcmp(subtype, "finding-resolved") == 0 && !s->sink_given) {
        key = pw_fhir_str(pw, "episode_key");
        if (key && patient) {
            return add_op(s, t, "resolve", key, patient, pw_fhir_str(pw, "rule"));
        }
    }
    return 0;
}

typedef int line_fn(struct shadow *s, const json_t *line, const char *file, size_t n, char *err,
                    size_t errlen);

static int read_lines(struct shadow *s, const char *file, line_fn *fn, char *err, size_t errlen)
{
    FILE *f = fopen(file, "r");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    ssize_t got;
    int rc = 0;

    if (!f) {
        snprintf(err, errlen, "%s: %s", file, strerror(errno));
        return -1;
    }
    while (rc == 0 && (got = getline(&buf, &cap, f)) >= 0) {
        json_error_t jerr;
        json_t *line;

        n++;
        if (strspn(buf, " \t\r\n") == (size_t)got) {
            continue;
        }
        line = json_loadb(buf, (size_t)got, 0, &jerr);
        if (!json_is_object(line)) {
            snprintf(err, errlen, "%s:%zu:%d: %s", file, n, jerr.column,
                     line ? "not a JSON object" : jerr.text);
            rc = -1;
        } else {
            rc = fn(s, line, file, n, err, errlen);
            if (rc > 0 || (rc < 0 && !err[0])) {
                snprintf(err, errlen, "%s:%zu: %s", file, n, pw_strerror(rc));
                rc = -1;
            }
        }
        json_decref(line);
    }
    free(buf);
    fclose(f);
    return rc < 0 ? -1 : 0;
}

static enum pw_severity severity_of(const char *name)
{
    static const char *const names[] = {"info", "low", "medium", "high"};

    for (int i = 3; i > 0; i--) {
        if (name && strcmp(name, names[i]) == 0) {
            return (enum pw_severity)i;
        }
    }
    return PW_SEV_INFO;
}

static int cmp_op(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t tx = json_integer_value(json_array_get(x, 0));
    json_int_t ty = json_integer_value(json_array_get(y, 0));

    if (tx != ty) {
        return tx < ty ? -1 : 1;
    }
    return strcmp(json_string_value(json_array_get(x, 2)), json_string_value(json_array_get(y, 2)));
}

/* The writes, in time order, as episodes: create/reactivate opens, resolve closes. */
static int episodes(struct shadow *s, int64_t from, int64_t to)
{
    size_t n = json_array_size(s->ops);
    json_t **v = calloc(n ? n : 1, sizeof(*v));
    int rc = 0;

    if (!v) {
        return PW_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        v[i] = json_array_get(s->ops, i);
    }
    qsort(v, n, sizeof(*v), cmp_op); /* stable enough: ties broken by key, equal ops kept */
    for (size_t i = 0; i < n && rc == 0; i++) {
        int64_t t = json_integer_value(json_array_get(v[i], 0));
        const char *op = json_string_value(json_array_get(v[i], 1));
        const char *key = json_string_value(json_array_get(v[i], 2));
        struct pw_bt_episode e = {.start = t, .end = PW_TIME_NONE};

        if (t < from || t > to) {
            continue;
        }
        if (strcmp(op, "create") == 0 || strcmp(op, "reactivate") == 0) {
            pw_fhir_copy(e.key, sizeof(e.key), key);
            pw_fhir_copy(e.patient, sizeof(e.patient), json_string_value(json_array_get(v[i], 3)));
            pw_fhir_copy(e.rule, sizeof(e.rule), json_string_value(json_array_get(v[i], 4)));
            e.severity = severity_of(json_string_value(json_object_get(s->severity, key)));
            rc = pw_bt_result_add_episode(s->out, &e);
        } else if (strcmp(op, "resolve") == 0) {
            for (size_t k = s->out->n_ep; k-- > 0;) {
                if (s->out->ep[k].end == PW_TIME_NONE && strcmp(s->out->ep[k].key, key) == 0) {
                    s->out->ep[k].end = t;
                    break;
                }
            }
        }
    }
    free(v);
    return rc;
}

int pw_bt_shadow_report(const char *const *sinks, size_t n_sinks, const char *const *audits,
                        size_t n_audits, int64_t from, int64_t to, struct pw_bt_result *out,
                        char *err, size_t errlen)
{
    struct shadow s = {.out = out,
                       .severity = json_object(),
                       .first = json_object(),
                       .ops = json_array(),
                       .sink_given = n_sinks > 0,
                       .lo = PW_TIME_NONE,
                       .hi = PW_TIME_NONE};
    int rc = s.severity && s.first && s.ops ? 0 : PW_ENOMEM;

    err[0] = '\0';
    for (size_t i = 0; i < n_audits && rc == 0; i++) {
        rc = read_lines(&s, audits[i], audit_line, err, errlen);
    }
    for (size_t i = 0; i < n_sinks && rc == 0; i++) {
        rc = read_lines(&s, sinks[i], sink_line, err, errlen);
    }
    out->source = "report";
    out->from = from != PW_TIME_NONE ? from : s.lo;
    out->to = to != PW_TIME_NONE ? to : s.hi;
    if (rc == 0 && out->from != PW_TIME_NONE && out->to != PW_TIME_NONE) {
        const char *patient;
        json_t *t;
        json_object_foreach(s.first, patient, t)
        {
            int64_t lo = json_integer_value(t) > out->from ? json_integer_value(t) : out->from;
            if (lo <= out->to) {
                out->n_patients++;
                out->patient_days += (double)(out->to - lo) / 86400.0;
            }
        }
        rc = episodes(&s, out->from, out->to);
    }
    if (rc && !err[0]) {
        snprintf(err, errlen, "%s", pw_strerror(rc));
    }
    pw_bt_result_sort(out);
    json_decref(s.severity);
    json_decref(s.first);
    json_decref(s.ops);
    return rc < 0 ? -1 : 0;
}
