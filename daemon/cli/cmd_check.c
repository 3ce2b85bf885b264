/* SPDX-License-Identifier: Apache-2.0 */
/* painwatch check: evaluate FHIR files offline (bundles, resources, NDJSON) and print findings. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/cmd.h"
#include "painwatch/array.h"
#include "painwatch/conf.h"
#include "painwatch/engine.h"
#include "painwatch/err.h"
#include "painwatch/evaluate.h"
#include "painwatch/fhir.h"
#include "painwatch/limits.h"
#include "painwatch/mme.h"
#include "painwatch/normalize.h"
#include "painwatch/terminology.h"

/* Bundles nested in bundles (a searchset of transactions) are unpacked this deep. */
#define CHECK_BUNDLE_DEPTH_MAX 4

struct check_opts {
    int64_t at;
    const char *factors; /* NULL until --factors or the configuration sets it */
    const char *config;
    const struct pw_conf_daemon *cd; /* the loaded --config, or NULL */
    const char *format;
    const char *terminology;
    char **files;
    int n_files;
    const char *scope;  /* issue 17: --scope, else the configuration's, else problem-list */
    const char *synced; /* issue 17: --synced TYPE,... (else the types present in the input) */
};

struct check_input {
    json_t *resources; /* array of every resource read, in input order */
    struct pw_fhir_index *index;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: painwatch check [--at RFC3339] [--factors cdc2022|cdc2016] [--config FILE]\n"
            "                       [--format json|text] [--terminology DIR]\n"
            "                       [--scope problem-list|cohort] [--synced TYPE,...] FILE...\n"
            "\n"
            "Reads FHIR R4 Bundles (any type), single resources or NDJSON ('-' is stdin), groups\n"
            "them by patient and prints baseline MME/day, opioid orders, findings and\n"
            "data-quality events. Exit 0 when evaluated, 2 on usage errors or unreadable input.\n"
            "A rule resting on the absence of a resource type is off unless that type is in the\n"
            "input or named by --synced (the types the export was taken from); out-of-scope\n"
            "patients (no active cancer, palliative or hospice context) get no findings.\n");
}

static int parse_args(int argc, char **argv, struct check_opts *o)
{
    o->at = PW_TIME_NONE;
    o->format = "json";
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *names[] = {"--at",          "--factors", "--config", "--format",
                               "--terminology", "--scope",   "--synced"};
        const char *val = NULL;
        size_t which = 0;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            break;
        }
        for (which = 0; which < 7; which++) {
            size_t n = strlen(names[which]);
            if (strncmp(a, names[which], n) == 0 && (a[n] == '\0' || a[n] == '=')) {
                val = a[n] == '=' ? a + n + 1 : (i + 1 < argc ? argv[++i] : NULL);
                break;
            }
        }
        if (which == 7) {
            fprintf(stderr, "painwatch check: unknown option '%s'\n", a);
            return -1;
        }
        if (val == NULL) {
            fprintf(stderr, "painwatch check: %s needs a value\n", names[which]);
            return -1;
        }
        if (which == 0 && pw_fhir_parse_time(val, &o->at) < 0) {
            fprintf(stderr, "painwatch check: --at '%s' is not an RFC 3339 date-time\n", val);
            return -1;
        }
        o->factors = which == 1 ? val : o->factors;
        o->config = which == 2 ? val : o->config;
        o->format = which == 3 ? val : o->format;
        o->terminology = which == 4 ? val : o->terminology;
        o->scope = which == 5 ? val : o->scope;
        o->synced = which == 6 ? val : o->synced;
    }
    enum pw_scope scope;
    if (o->scope && pw_scope_parse(o->scope, &scope) < 0) {
        fprintf(stderr, "painwatch check: --scope must be problem-list or cohort\n");
        return -1;
    }
    if (strcmp(o->format, "json") != 0 && strcmp(o->format, "text") != 0) {
        fprintf(stderr, "painwatch check: --format must be json or text\n");
        return -1;
    }
    o->files = argv + i;
    o->n_files = argc - i;
    if (o->n_files == 0) {
        fprintf(stderr, "painwatch check: no input FILE\n");
        usage(stderr);
        return -1;
    }
    return 0;
}

static int read_input(const char *path, char **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "painwatch check: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = (size_t)64 * 1024, n = 0;
    char *buf = malloc(cap);
    int rc = buf ? 0 : -1;
    while (rc == 0) {
        if (n == cap) {
            if (cap >= (size_t)PW_INPUT_FILE_MAX) {
                fprintf(stderr, "painwatch check: %s: larger than %u bytes\n", path,
                        PW_INPUT_FILE_MAX);
                rc = -1;
                break;
            }
            if (pw_array_reserve(&buf, &cap, cap * 2, 1) != 0) {
                rc = -1;
                break;
            }
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                fprintf(stderr, "painwatch check: %s: read error\n", path);
                rc = -1;
            }
            break;
        }
    }
    if (f != stdin) {
        fclose(f);
    }
    if (rc < 0) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* Add a resource, unpacking bundles. @p where names the place for error messages. */
static int add_resource(struct check_input *in, json_t *res, const char *full_url, const char *file,
                        const char *where, int depth)
{
    const char *type = pw_fhir_str(res, "resourceType");
    if (type == NULL) {
        const char *id = pw_fhir_str(res, "id");
        fprintf(stderr, "painwatch check: %s: %s%s%s%s: not a FHIR resource (no resourceType)\n",
                file, where, id ? " (id " : "", id ? id : "", id ? ")" : "");
        return -1;
    }
    if (strcmp(type, "Bundle") != 0) {
        if (json_array_append(in->resources, res) < 0 ||
            pw_fhir_index_add(in->index, full_url, res) < 0) {
            fprintf(stderr, "painwatch check: out of memory\n");
            return -1;
        }
        return 0;
    }
    if (depth >= CHECK_BUNDLE_DEPTH_MAX) {
        fprintf(stderr, "painwatch check: %s: %s: bundles nested deeper than %d\n", file, where,
                CHECK_BUNDLE_DEPTH_MAX);
        return -1;
    }
    const json_t *entries = json_object_get(res, "entry");
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e)
    {
        json_t *r = json_object_get(e, "resource");
        if (r == NULL) {
            continue; /* request-only or response-only entries carry no resource */
        }
        char here[PW_REF_MAX + 64];
        const char *id = pw_fhir_str(res, "id");
        snprintf(here, sizeof(here), "Bundle/%s entry %zu", id ? id : "(no id)", i);
        if (add_resource(in, r, pw_fhir_str(e, "fullUrl"), file, here, depth + 1) < 0) {
            return -1;
        }
    }
    return 0;
}

static bool only_space(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n') {
            return false;
        }
    }
    return true;
}

/* NDJSON: one resource per line; errors name the line and column. */
static int load_ndjson(struct check_input *in, const char *file, const char *buf, size_t len)
{
    size_t line = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        line++;
        if (!only_space(buf + pos, end - pos)) {
            json_error_t err;
            json_t *r = json_loadb(buf + pos, end - pos, 0, &err);
            if (r == NULL) {
                fprintf(stderr, "painwatch check: %s:%zu:%d: %s\n", file, line, err.column,
                        err.text);
                return -1;
            }
            char where[32];
            snprintf(where, sizeof(where), "line %zu", line);
            int rc = add_resource(in, r, NULL, file, where, 0);
            json_decref(r);
            if (rc < 0) {
                return -1;
            }
        }
        pos = end + 1;
    }
    return 0;
}

static int load_file(struct check_input *in, const char *file)
{
    char *buf;
    size_t len;
    if (read_input(file, &buf, &len) < 0) {
        return -1;
    }
    int rc;
    json_error_t err;
    /* A UTF-8 byte order mark (some exports write one) is not JSON. */
    size_t skip = len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
    /* One JSON document, or several (NDJSON) when more follows the first value. */
    json_t *root = json_loadb(buf + skip, len - skip, JSON_DISABLE_EOF_CHECK, &err);
    if (root == NULL) {
        fprintf(stderr, "painwatch check: %s:%d:%d: %s\n", file, err.line, err.column, err.text);
        rc = -1;
    } else if ((size_t)err.position <= len - skip &&
               only_space(buf + skip + err.position, len - skip - (size_t)err.position)) {
        rc = add_resource(in, root, NULL, file, "top level", 0);
    } else {
        rc = load_ndjson(in, file, buf + skip, len - skip);
    }
    json_decref(root);
    free(buf);
    return rc;
}

static const char *role_name(enum pw_order_role r)
{
    return r == PW_ROLE_BASELINE ? "baseline" : r == PW_ROLE_RESCUE ? "rescue" : "other";
}

/* Numbers: rounded to 1e-6 so output is stable across platforms; unknown -> null. */
static json_t *num(double v)
{
    return isfinite(v) ? json_real(round(v * 1e6) / 1e6) : json_null();
}

static void ref_string(const struct pw_ref *r, char *buf, size_t n)
{
    if (r->version[0]) {
        snprintf(buf, n, "%s/%s/_history/%s", r->type, r->id, r->version);
    } else {
        snprintf(buf, n, "%s/%s", r->type, r->id);
    }
}

/*
 * One patient in the documented shape. @p text adds "active" to each order for the text view
 * (the JSON document keeps exactly the documented keys).
 */
static json_t *patient_json(const struct pw_timeline *tl, int64_t at, const struct pw_findings *fs,
                            bool text)
{
    json_t *p = json_object(), *orders = json_array(), *findings = json_array(), *dq = json_array();
    char ref[PW_REF_MAX + 80];
    json_object_set_new(p, "patient", json_string(tl->patient));
    json_object_set_new(p, "baseline_mme_per_day", num(pw_timeline_baseline_mme_at(tl, at)));
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if (!(o->classes & PW_MED_OPIOID)) {
            continue;
        }
        ref_string(&o->src, ref, sizeof(ref));
        json_t *oj = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "resource", ref, "ingredient",
                               o->ingredient, "role", role_name(o->role), "mg_per_day",
                               num(o->mg_per_day), "mme_per_day", num(o->mme_per_day),
                               "mme_per_dose", num(o->mme_per_dose), "factor", num(o->mme_factor));
        if (oj != NULL) {
            /* issue 16: the order's route, which part it is and the factor row used */
            json_object_set_new(oj, "route", json_string(o->route[0] ? o->route : "unknown"));
            json_object_set_new(oj, "part", json_string(o->prn ? "prn" : "scheduled"));
            json_object_set_new(oj, "part_index", json_integer(o->part));
            json_object_set_new(oj, "factor_row",
                                o->factor_row[0] ? json_string(o->factor_row) : json_null());
        }
        if (text && oj != NULL) {
            json_object_set_new(oj, "active", json_boolean(pw_order_active_at(o, at)));
        }
        json_array_append_new(orders, oj);
    }
    for (size_t i = 0; i < fs->n; i++) {
        const struct pw_finding *f = &fs->v[i];
        json_t *ev = json_array();
        for (size_t k = 0; k < f->n_evidence; k++) {
            ref_string(&f->evidence[k], ref, sizeof(ref));
            json_array_append_new(ev, json_string(ref));
        }
        json_array_append_new(findings, json_pack("{s:s, s:s, s:s, s:s, s:o}", "rule", f->rule,
                                                  "severity", pw_severity_name(f->severity), "key",
                                                  f->key, "text", f->text, "evidence", ev));
    }
    for (size_t i = 0; i < tl->dq.n; i++) {
        const struct pw_dq_event *d = &tl->dq.v[i];
        ref_string(&d->src, ref, sizeof(ref));
        json_array_append_new(dq, json_pack("{s:s, s:s, s:s}", "code", d->code, "resource", ref,
                                            "detail", d->detail));
    }
    json_object_set_new(p, "orders", orders);
    json_object_set_new(p, "findings", findings);
    json_object_set_new(p, "data_quality", dq);
    return p;
}

/* A JSON number member, NAN when null or absent. */
static double jnum(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void print_num(FILE *out, double v, const char *unit)
{
    if (isfinite(v)) {
        fprintf(out, "%g %s", round(v * 100) / 100, unit);
    } else {
        fprintf(out, "not computed %s", unit);
    }
}

/* The pharmacist's view: one block per patient, aligned, worst findings first in the list. */
static void print_text(FILE *out, const json_t *doc)
{
    fprintf(out, "painwatch check at %s, MME factors %s, rules %s\n",
            pw_fhir_str(doc, "evaluated_at"), pw_fhir_str(doc, "factor_set"),
            pw_fhir_str(doc, "ruleset"));
    size_t i, k;
    const json_t *p, *e;
    json_array_foreach(json_object_get(doc, "patients"), i, p)
    {
        fprintf(out, "\n%s\n  Baseline opioid: ", pw_fhir_str(p, "patient"));
        if (isfinite(jnum(p, "baseline_mme_per_day"))) {
            print_num(out, jnum(p, "baseline_mme_per_day"), "MME/day\n");
        } else {
            fprintf(out, "unknown (an active baseline order has no MME; see data quality)\n");
        }
        if (json_array_size(json_object_get(p, "orders")) > 0) {
            fprintf(out, "  Opioid orders:\n");
        }
        json_array_foreach(json_object_get(p, "orders"), k, e)
        {
            fprintf(out, "    %-8s %-14s %-12s ", pw_fhir_str(e, "role"),
                    pw_fhir_str(e, "ingredient"), pw_fhir_str(e, "route"));
            print_num(out, jnum(e, "mg_per_day"), "mg/day, ");
            print_num(out, jnum(e, "mme_per_day"), "MME/day");
            if (isfinite(jnum(e, "mme_per_dose"))) {
                fprintf(out, ", %g MME/dose", round(jnum(e, "mme_per_dose") * 100) / 100);
            }
            if (pw_fhir_str(e, "factor_row") != NULL) {
                fprintf(out, " (factor %s)", pw_fhir_str(e, "factor_row"));
            }
            fprintf(out, "  [%s]%s\n", pw_fhir_str(e, "resource"),
                    json_is_false(json_object_get(e, "active")) ? " (not active)" : "");
        }
        static const char *const worst_first[] = {"high", "medium", "low", "info"};
        for (size_t sev = 0; sev < 4; sev++) {
            json_array_foreach(json_object_get(p, "findings"), k, e)
            {
                if (strcmp(pw_fhir_str(e, "severity"), worst_first[sev]) != 0) {
                    continue;
                }
                fprintf(out, "  %-6s %s\n         %s\n", worst_first[sev], pw_fhir_str(e, "rule"),
                        pw_fhir_str(e, "text"));
            }
        }
        json_array_foreach(json_object_get(p, "data_quality"), k, e)
        {
            fprintf(out, "  data   %s %s: %s\n", pw_fhir_str(e, "code"), pw_fhir_str(e, "resource"),
                    pw_fhir_str(e, "detail"));
        }
        if (json_array_size(json_object_get(p, "findings")) == 0) {
            fprintf(out, "  No findings.\n");
        }
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* True when @p b is a later version of the same resource than @p a. */
static bool later_version(const json_t *a, const json_t *b)
{
    const char *va = pw_fhir_str(json_object_get(a, "meta"), "versionId");
    const char *vb = pw_fhir_str(json_object_get(b, "meta"), "versionId");
    int64_t ta, tb;
    if (va && vb) {
        char *ea, *eb;
        long long na = strtoll(va, &ea, 10), nb = strtoll(vb, &eb, 10);
        if (*va && *vb && !*ea && !*eb) {
            return nb > na;
        }
    }
    if (pw_fhir_parse_time(pw_fhir_str(json_object_get(a, "meta"), "lastUpdated"), &ta) == 0 &&
        pw_fhir_parse_time(pw_fhir_str(json_object_get(b, "meta"), "lastUpdated"), &tb) == 0) {
        return tb > ta;
    }
    return true; /* nothing to compare: the later input wins */
}

/* Map "Type/id" -> the latest version in the input (several files may hold several). */
static json_t *latest_versions(const struct check_input *in)
{
    json_t *latest = json_object();
    size_t i;
    json_t *r;
    json_array_foreach(in->resources, i, r)
    {
        char key[PW_REF_MAX];
        const char *type = pw_fhir_str(r, "resourceType"), *id = pw_fhir_str(r, "id");
        if (latest == NULL || id == NULL) {
            continue;
        }
        snprintf(key, sizeof(key), "%s/%s", type, id);
        json_t *cur = json_object_get(latest, key);
        if (cur == NULL || later_version(cur, r)) {
            json_object_set(latest, key, r);
        }
    }
    return latest;
}

/* Group the resources normalize reads by patient: @p set maps "Patient/id" -> array. */
static int group_patients(const struct check_input *in, const struct pw_resolver *refs, json_t *set)
{
    size_t i;
    json_t *r;
    json_t *latest = latest_versions(in);
    if (latest == NULL) {
        return -1;
    }
    json_array_foreach(in->resources, i, r)
    {
        char patient[PW_REF_MAX], key[PW_REF_MAX];
        const char *type = pw_fhir_str(r, "resourceType");
        const char *id = pw_fhir_str(r, "id");
        if (id != NULL) {
            snprintf(key, sizeof(key), "%s/%s", type, id);
            if (json_object_get(latest, key) != r) {
                continue; /* an older copy of a resource given again */
            }
        }
        /* Only resources normalize reads make a patient appear (not Claims, GuidanceResponses). */
        if (!pw_normalize_reads_type(type) ||
            pw_normalize_patient(r, refs, patient, sizeof(patient)) < 0) {
            continue;
        }
        json_t *list = json_object_get(set, patient);
        if (list == NULL) {
            list = json_array();
            if (list == NULL || json_object_set_new(set, patient, list) < 0) {
                json_decref(latest);
                return -1;
            }
        }
        if (json_array_append(list, r) < 0) {
            json_decref(latest);
            return -1;
        }
    }
    json_decref(latest);
    return 0;
}

static int evaluate_patient(const struct pw_evaluator *ev, const char *patient, const json_t *list,
                            const struct pw_resolver *refs, int64_t at, bool text, json_t *out,
                            const struct pw_synced *synced)
{
    struct pw_timeline tl;
    struct pw_findings fs = {0};
    int rule_err = 0;
    pw_timeline_init(&tl, patient);
    if (pw_eval_timeline_add_resources(ev, list, refs, &tl) < 0 ||
        pw_evaluate(ev->engine, &tl, synced, at, &fs, &rule_err) < 0) {
        pw_findings_cleanup(&fs);
        pw_timeline_cleanup(&tl);
        return -1;
    }
    if (rule_err < 0) {
        fprintf(stderr, "painwatch check: %s: a rule failed: %s\n", patient, pw_strerror(rule_err));
    }
    json_array_append_new(out, patient_json(&tl, at, &fs, text));
    pw_findings_cleanup(&fs);
    pw_timeline_cleanup(&tl);
    return 0;
}

/*
 * The types the input counts as synced (issue 17): --synced, else every type present in the
 * input (an export holds what it was taken from).
 */
static int input_synced(const struct check_opts *o, const struct check_input *in,
                        struct pw_synced *out)
{
    if (o->synced) {
        char buf[512];
        pw_fhir_copy(buf, sizeof(buf), o->synced);
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            unsigned bit = pw_res_type_bit(t);
            if (bit == 0) {
                fprintf(stderr, "painwatch check: --synced: '%s' is not a type painwatch reads\n",
                        t);
                return -1;
            }
            out->synced |= bit;
        }
        return 0;
    }
    size_t i;
    const json_t *r;
    json_array_foreach(in->resources, i, r)
    {
        out->synced |= pw_res_type_bit(pw_fhir_str(r, "resourceType"));
    }
    return 0;
}

static int evaluate(const struct check_opts *o, const struct check_input *in,
                    const struct pw_terminology *term, json_t **doc_out)
{
    struct pw_evaluator *ev = NULL;
    struct pw_eval_opts eo = {
        .cd = o->cd, .term = term, .factor_set = o->factors, .scope = o->scope};
    struct pw_resolver refs;
    json_t *set = json_object(), *patients = json_array();
    const char **keys = NULL;
    char err[512] = "";
    int rc = pw_evaluator_new(&ev, &eo, err, sizeof(err));
    pw_fhir_index_resolver(in->index, &refs);
    if (rc < 0) {
        fprintf(stderr, "painwatch check: %s%s\n", err[0] ? err : pw_strerror(rc),
                rc == PW_EINVAL ? " (cdc2022, cdc2016)" : "");
        json_decref(set);
        json_decref(patients);
        return -1;
    }
    rc = -1;
    if (group_patients(in, &refs, set) < 0) {
        fprintf(stderr, "painwatch check: out of memory\n");
        goto fail;
    }
    struct pw_synced synced = {.known = true};
    if (input_synced(o, in, &synced) < 0) {
        goto fail;
    }
    size_t n = json_object_size(set), k = 0;
    keys = calloc(n ? n : 1, sizeof(*keys));
    if (keys == NULL) {
        goto fail;
    }
    const char *key;
    json_t *list;
    json_object_foreach(set, key, list)
    {
        keys[k++] = key;
    }
    qsort(keys, n, sizeof(*keys), cmp_str);
    for (k = 0; k < n; k++) {
        if (evaluate_patient(ev, keys[k], json_object_get(set, keys[k]), &refs, o->at,
                             strcmp(o->format, "text") == 0, patients, &synced) < 0) {
            fprintf(stderr, "painwatch check: out of memory\n");
            goto fail;
        }
    }
    char at[32];
    pw_fhir_format_time(o->at, at, sizeof(at));
    *doc_out = json_pack("{s:s, s:s, s:s, s:O}", "evaluated_at", at, "factor_set", o->factors,
                         "ruleset", PW_RULESET_VERSION, "patients", patients);
    rc = *doc_out ? 0 : -1;
fail:
    free(keys);
    json_decref(set);
    json_decref(patients);
    pw_evaluator_free(ev);
    return rc;
}

/* --config: the daemon's file; terminology_dir, factor_set, rules and pain_codes apply. */
static int load_config(struct check_opts *o, struct pw_conf **conf)
{
    struct pw_conf_errors errs = {0};
    int rc = pw_conf_load_file(conf, o->config, &errs);
    for (size_t i = 0; i < errs.n; i++) {
        fprintf(stderr, "painwatch check: %s\n", errs.lines[i]);
    }
    if (rc < 0 && errs.n == 0) {
        fprintf(stderr, "painwatch check: %s: %s\n", o->config, pw_strerror(rc));
    }
    pw_conf_errors_cleanup(&errs);
    if (rc < 0) {
        return rc;
    }
    o->cd = pw_conf_daemon(*conf);
    if (o->factors == NULL) {
        o->factors = o->cd->factor_set;
    }
    if (o->terminology == NULL) {
        o->terminology = o->cd->terminology_dir;
    }
    return 0;
}

int pw_cmd_check(int argc, char **argv)
{
    struct check_opts o = {0};
    int prc = parse_args(argc, argv, &o);
    if (prc != 0) {
        return prc > 0 ? 0 : 2;
    }
    struct pw_conf *conf = NULL;
    if (o.config != NULL && load_config(&o, &conf) < 0) {
        return 2;
    }
    if (o.factors == NULL) {
        o.factors = PW_MME_DEFAULT_SET;
    }
    if (o.at == PW_TIME_NONE) {
        o.at = (int64_t)time(NULL);
    }
    char dir[4096], err[512] = "";
    struct pw_terminology *term = NULL;
    struct check_input in = {.resources = json_array()};
    json_t *doc = NULL;
    int rc = 2;
    if (o.terminology != NULL) {
        pw_fhir_copy(dir, sizeof(dir), o.terminology);
    } else if (pw_terminology_default_dir(dir, sizeof(dir)) < 0) {
        fprintf(stderr, "painwatch check: terminology tables not found (use --terminology DIR "
                        "or PAINWATCH_TERMINOLOGY_DIR)\n");
        goto out;
    }
    if (pw_terminology_load(&term, dir, err, sizeof(err)) < 0 ||
        (o.cd != NULL && pw_terminology_load_site(term, o.cd->mme_route_factors_file,
                                                  o.cd->dose_limits_file, err, sizeof(err)) < 0)) {
        fprintf(stderr, "painwatch check: terminology: %s\n", err);
        goto out;
    }
    if (in.resources == NULL || pw_fhir_index_new(&in.index) < 0) {
        goto out;
    }
    for (int i = 0; i < o.n_files; i++) {
        if (load_file(&in, o.files[i]) < 0) {
            goto out;
        }
    }
    if (evaluate(&o, &in, term, &doc) < 0) {
        goto out;
    }
    if (strcmp(o.format, "json") == 0) {
        json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
        fputc('\n', stdout);
    } else {
        print_text(stdout, doc);
    }
    rc = fflush(stdout) == 0 ? 0 : 2;
out:
    json_decref(doc);
    json_decref(in.resources);
    pw_fhir_index_free(in.index);
    pw_terminology_free(term);
    pw_conf_free(conf);
    return rc;
}
