/* SPDX-License-Identifier: Apache-2.0 */
/* The alert-burden summary shared by the backtest and `painwatch report` (backtest.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backtest.h"
#include "painwatch/engine.h"
#include "painwatch/err.h"

#define DAY_S 86400

void pw_bt_chart_cleanup(struct pw_bt_chart *c)
{
    free(c->scores);
    free(c->mme);
    free(c->rescue);
    memset(c, 0, sizeof(*c));
}

void pw_bt_result_cleanup(struct pw_bt_result *r)
{
    free(r->ep);
    for (size_t i = 0; i < r->n_charts; i++) {
        pw_bt_chart_cleanup(&r->charts[i]);
    }
    free(r->charts);
    memset(r, 0, sizeof(*r));
}

int pw_bt_result_add_episode(struct pw_bt_result *r, const struct pw_bt_episode *e)
{
    if (r->n_ep == r->cap_ep) {
        size_t cap = r->cap_ep ? r->cap_ep * 2 : 64;
        struct pw_bt_episode *grown = realloc(r->ep, cap * sizeof(*grown));
        if (!grown) {
            return PW_ENOMEM;
        }
        r->ep = grown;
        r->cap_ep = cap;
    }
    r->ep[r->n_ep++] = *e;
    return 0;
}

/* Top patients: most episodes first, then patient order. */
static int cmp_chart(const void *a, const void *b)
{
    const struct pw_bt_chart *x = a, *y = b;

    if (x->n_episodes != y->n_episodes) {
        return x->n_episodes < y->n_episodes ? 1 : -1;
    }
    return strcmp(x->patient, y->patient);
}

int pw_bt_result_offer_chart(struct pw_bt_result *r, struct pw_bt_chart *c)
{
    if (!r->charts) {
        r->charts = calloc(PW_BT_TOP + 1, sizeof(*r->charts));
        if (!r->charts) {
            return PW_ENOMEM;
        }
    }
    r->charts[r->n_charts++] = *c;
    memset(c, 0, sizeof(*c));
    qsort(r->charts, r->n_charts, sizeof(*r->charts), cmp_chart);
    if (r->n_charts > PW_BT_TOP) {
        pw_bt_chart_cleanup(&r->charts[--r->n_charts]);
    }
    return 0;
}

/* ---- a worker's part (--jobs) ------------------------------------------------------------ */

/* What precedes a part's episodes and charts (the same binary writes and reads it). */
struct part_head {
    int rc;
    char err[512];
    int64_t from, to, step, live_s;
    size_t n_patients, n_evaluations, n_dq, n_ep, n_charts;
};

static bool put(FILE *f, const void *p, size_t size, size_t n)
{
    return n == 0 || fwrite(p, size, n, f) == n;
}

int pw_bt_result_save(const struct pw_bt_result *r, int rc, const char *err, FILE *f)
{
    struct part_head h = {.rc = rc,
                          .from = r->from,
                          .to = r->to,
                          .step = r->step,
                          .live_s = r->live_s,
                          .n_patients = r->n_patients,
                          .n_evaluations = r->n_evaluations,
                          .n_dq = r->n_dq,
                          .n_ep = r->n_ep,
                          .n_charts = r->n_charts};
    bool ok;

    snprintf(h.err, sizeof(h.err), "%s", err ? err : "");
    ok = put(f, &h, sizeof(h), 1) && put(f, r->ep, sizeof(*r->ep), r->n_ep);
    for (size_t i = 0; ok && i < r->n_charts; i++) {
        const struct pw_bt_chart *c = &r->charts[i];
        ok = put(f, c, sizeof(*c), 1) && put(f, c->scores, sizeof(*c->scores), c->n_scores) &&
             put(f, c->mme, sizeof(*c->mme), c->n_mme) &&
             put(f, c->rescue, sizeof(*c->rescue), c->n_rescue);
    }
    return ok && fflush(f) == 0 ? 0 : PW_EIO;
}

/* Read @p n elements of @p size into a new array *@p out (NULL when n is 0). */
static int get_array(FILE *f, void **out, size_t size, size_t n)
{
    *out = NULL;
    if (n == 0) {
        return 0;
    }
    *out = calloc(n, size);
    if (!*out) {
        return PW_ENOMEM;
    }
    return fread(*out, size, n, f) == n ? 0 : PW_EIO;
}

int pw_bt_result_merge(struct pw_bt_result *into, FILE *f, char *err, size_t errlen)
{
    struct part_head h;
    int rc = 0;

    if (fseek(f, 0, SEEK_SET) != 0 || fread(&h, sizeof(h), 1, f) != 1) {
        snprintf(err, errlen, "a worker's result is unreadable");
        return PW_EIO;
    }
    if (h.rc) {
        snprintf(err, errlen, "%s", h.err);
        return h.rc;
    }
    into->from = h.from;
    into->to = h.to;
    into->step = h.step;
    into->live_s += h.live_s;
    into->patient_days = (double)into->live_s / DAY_S;
    into->n_patients += h.n_patients;
    into->n_evaluations += h.n_evaluations;
    into->n_dq += h.n_dq;
    for (size_t i = 0; i < h.n_ep && rc == 0; i++) {
        struct pw_bt_episode e;
        rc = fread(&e, sizeof(e), 1, f) == 1 ? pw_bt_result_add_episode(into, &e) : PW_EIO;
    }
    for (size_t i = 0; i < h.n_charts && rc == 0; i++) {
        struct pw_bt_chart c;
        if (fread(&c, sizeof(c), 1, f) != 1) {
            rc = PW_EIO;
            break;
        }
        c.scores = c.mme = NULL; /* the writer's pointers */
        c.rescue = NULL;
        rc = get_array(f, (void **)&c.scores, sizeof(*c.scores), c.n_scores);
        rc = rc ? rc : get_array(f, (void **)&c.mme, sizeof(*c.mme), c.n_mme);
        rc = rc ? rc : get_array(f, (void **)&c.rescue, sizeof(*c.rescue), c.n_rescue);
        rc = rc ? rc : pw_bt_result_offer_chart(into, &c);
        pw_bt_chart_cleanup(&c);
    }
    if (rc) {
        snprintf(err, errlen, "merging a worker's result: %s", pw_strerror(rc));
    }
    return rc;
}

static int cmp_episode(const void *a, const void *b)
{
    const struct pw_bt_episode *x = a, *y = b;
    int c = strcmp(x->patient, y->patient);

    if (c == 0) {
        c = (x->start > y->start) - (x->start < y->start);
    }
    if (c == 0) {
        c = strcmp(x->rule, y->rule);
    }
    return c ? c : strcmp(x->key, y->key);
}

void pw_bt_result_sort(struct pw_bt_result *r)
{
    if (r->n_ep > 1) {
        qsort(r->ep, r->n_ep, sizeof(*r->ep), cmp_episode);
    }
}

/* ---- JSON ------------------------------------------------------------------------------- */

static json_t *num2(double v)
{
    return isfinite(v) ? json_real(round(v * 100) / 100) : json_null();
}

static json_t *when(int64_t t)
{
    char buf[32];

    if (t == PW_TIME_NONE) {
        return json_null();
    }
    pw_fhir_format_time(t, buf, sizeof(buf));
    return json_string(buf);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile @p p (0-1] of @p v (sorted), NAN when empty. */
static double percentile(const double *v, size_t n, double p)
{
    if (n == 0) {
        return NAN;
    }
    size_t rank = (size_t)ceil(p * (double)n);
    return v[rank ? rank - 1 : 0];
}

static json_t *severity_counts(const size_t counts[4])
{
    json_t *o = json_object();

    for (int s = PW_SEV_HIGH; s >= PW_SEV_INFO; s--) {
        json_object_set_new(o, pw_severity_name((enum pw_severity)s),
                            json_integer((json_int_t)counts[s]));
    }
    return o;
}

static double hours(const struct pw_bt_episode *e)
{
    return (double)(e->end - e->start) / 3600.0;
}

/* One rule's row; NULL on ENOMEM. */
static json_t *rule_row(const struct pw_bt_result *r, const char *rule)
{
    size_t n = 0, open = 0, patients = 0, sev[4] = {0}, nd = 0;
    double *d = malloc((r->n_ep ? r->n_ep : 1) * sizeof(*d));
    const char *last_patient = "";

    if (!d) {
        return NULL;
    }
    for (size_t i = 0; i < r->n_ep; i++) {
        const struct pw_bt_episode *e = &r->ep[i];
        if (strcmp(e->rule, rule) != 0) {
            continue;
        }
        n++;
        sev[e->severity & 3]++;
        if (strcmp(e->patient, last_patient) != 0) {
            patients++; /* episodes are in patient order */
            last_patient = e->patient;
        }
        if (e->end == PW_TIME_NONE) {
            open++;
        } else {
            d[nd++] = hours(e);
        }
    }
    qsort(d, nd, sizeof(*d), cmp_double);
    json_t *row = json_pack(
        "{s:s, s:I, s:o, s:I, s:I, s:o, s:o, s:o}", "rule", rule, "episodes", (json_int_t)n,
        "per_100_patient_days", num2(r->patient_days > 0 ? 100.0 * (double)n / r->patient_days : 0),
        "patients_affected", (json_int_t)patients, "open_at_end", (json_int_t)open,
        "median_duration_h", num2(percentile(d, nd, 0.5)), "p90_duration_h",
        num2(percentile(d, nd, 0.9)), "by_severity", severity_counts(sev));
    free(d);
    return row;
}

static bool seen_rule(const struct pw_bt_result *r, const char *rule)
{
    for (size_t i = 0; i < r->n_ep; i++) {
        if (strcmp(r->ep[i].rule, rule) == 0) {
            return true;
        }
    }
    return false;
}

static int cmp_rule_rows(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t nx = json_integer_value(json_object_get(x, "episodes"));
    json_int_t ny = json_integer_value(json_object_get(y, "episodes"));

    if (nx != ny) {
        return nx < ny ? 1 : -1;
    }
    return strcmp(json_string_value(json_object_get(x, "rule")),
                  json_string_value(json_object_get(y, "rule")));
}

/* Every registered rule (zero rows tell governance a rule was quiet), then any other seen. */
static json_t *rules_json(const struct pw_bt_result *r)
{
    size_t n_rules;
    const struct pw_rule *const *all = pw_rules_all(&n_rules);
    json_t **rows = calloc(n_rules + r->n_ep + 1, sizeof(*rows));
    json_t *arr = json_array();
    size_t n = 0;

    if (!rows || !arr) {
        free(rows);
        json_decref(arr);
        return NULL;
    }
    for (size_t i = 0; i < n_rules; i++) {
        rows[n++] = rule_row(r, all[i]->id);
    }
    for (size_t i = 0; i < r->n_ep; i++) {
        bool known = pw_rule_find(r->ep[i].rule) != NULL;
        for (size_t k = 0; k < i && !known; k++) {
            known = strcmp(r->ep[k].rule, r->ep[i].rule) == 0;
        }
        if (!known && seen_rule(r, r->ep[i].rule)) {
            rows[n++] = rule_row(r, r->ep[i].rule);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!rows[i]) {
            for (size_t k = 0; k < n; k++) {
                json_decref(rows[k]);
            }
            free(rows);
            json_decref(arr);
            return NULL;
        }
    }
    qsort(rows, n, sizeof(*rows), cmp_rule_rows);
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, rows[i]);
    }
    free(rows);
    return arr;
}

/* Episodes opened per day of the period (UTC days), every day listed. */
static json_t *per_day_json(const struct pw_bt_result *r)
{
    json_t *arr = json_array();

    if (r->from == PW_TIME_NONE || r->to == PW_TIME_NONE || r->to < r->from) {
        return arr;
    }
    int64_t d0 = r->from - ((r->from % DAY_S) + DAY_S) % DAY_S;
    size_t days = (size_t)((r->to - d0) / DAY_S) + 1;
    size_t *count = calloc(days, sizeof(*count));
    if (!count) {
        json_decref(arr);
        return NULL;
    }
    for (size_t i = 0; i < r->n_ep; i++) {
        int64_t s = r->ep[i].start;
        if (s >= d0 && s <= r->to) {
            count[(s - d0) / DAY_S]++;
        }
    }
    for (size_t i = 0; i < days; i++) {
        char day[32];
        pw_fhir_format_time(d0 + (int64_t)i * DAY_S, day, sizeof(day));
        day[10] = '\0';
        json_array_append_new(
            arr, json_pack("{s:s, s:I}", "day", day, "episodes", (json_int_t)count[i]));
    }
    free(count);
    return arr;
}

static json_t *episode_json(const struct pw_bt_episode *e)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "rule", e->rule, "key", e->key, "severity",
                     pw_severity_name(e->severity), "start", when(e->start), "end", when(e->end),
                     "duration_h", e->end == PW_TIME_NONE ? json_null() : num2(hours(e)));
}

static json_t *patients_json(const struct pw_bt_result *r)
{
    json_t *arr = json_array(), *cur = NULL;

    for (size_t i = 0; arr && i < r->n_ep; i++) {
        if (!cur || strcmp(json_string_value(json_object_get(cur, "patient")), r->ep[i].patient)) {
            cur = json_pack("{s:s, s:[]}", "patient", r->ep[i].patient, "episodes");
            json_array_append_new(arr, cur);
        }
        json_array_append_new(json_object_get(cur, "episodes"), episode_json(&r->ep[i]));
    }
    return arr;
}

static json_t *points_json(const struct pw_bt_point *v, size_t n)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < n; i++) {
        json_array_append_new(
            arr, json_pack("{s:o, s:o}", "at", when(v[i].at), "value", num2(v[i].value)));
    }
    return arr;
}

static json_t *charts_json(const struct pw_bt_result *r)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < r->n_charts; i++) {
        const struct pw_bt_chart *c = &r->charts[i];
        json_t *rescue = json_array();
        for (size_t k = 0; k < c->n_rescue; k++) {
            json_array_append_new(rescue, when(c->rescue[k]));
        }
        json_array_append_new(arr,
                              json_pack("{s:s, s:I, s:o, s:o, s:o}", "patient", c->patient,
                                        "episodes", (json_int_t)c->n_episodes, "pain_scores",
                                        points_json(c->scores, c->n_scores), "baseline_mme",
                                        points_json(c->mme, c->n_mme), "rescue_doses", rescue));
    }
    return arr;
}

json_t *pw_bt_result_json(const struct pw_bt_result *r)
{
    size_t sev[4] = {0}, open = 0;

    for (size_t i = 0; i < r->n_ep; i++) {
        sev[r->ep[i].severity & 3]++;
        open += r->ep[i].end == PW_TIME_NONE;
    }
    json_t *doc = json_pack("{s:s, s:s, s:o, s:o, s:I, s:s, s:I, s:o, s:I, s:I, s:I, s:o, s:I}",
                            "source", r->source, "ruleset", PW_RULESET_VERSION, "from",
                            when(r->from), "to", when(r->to), "step_s", (json_int_t)r->step,
                            "factor_set", r->factor_set ? r->factor_set : "", "patients",
                            (json_int_t)r->n_patients, "patient_days", num2(r->patient_days),
                            "evaluations", (json_int_t)r->n_evaluations, "episodes",
                            (json_int_t)r->n_ep, "open_at_end", (json_int_t)open, "by_severity",
                            severity_counts(sev), "data_quality_events", (json_int_t)r->n_dq);
    json_t *rules = rules_json(r), *days = per_day_json(r), *pats = patients_json(r),
           *charts = charts_json(r);

    if (!doc || !rules || !days || !pats || !charts) {
        json_decref(doc);
        json_decref(rules);
        json_decref(days);
        json_decref(pats);
        json_decref(charts);
        return NULL;
    }
    json_object_set_new(doc, "rules", rules);
    json_object_set_new(doc, "episodes_per_day", days);
    json_object_set_new(doc, "patient_episodes", pats);
    json_object_set_new(doc, "top_patients", charts);
    return doc;
}

/* ---- text ------------------------------------------------------------------------------- */

static void print_hours(FILE *out, const json_t *v)
{
    if (json_is_number(v)) {
        fprintf(out, " %8.1f", json_number_value(v));
    } else {
        fprintf(out, " %8s", "-");
    }
}

static const char *str_or(const json_t *obj, const char *key, const char *otherwise)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : otherwise;
}

void pw_bt_doc_text(const json_t *doc, FILE *out)
{
    size_t i;
    const json_t *row;

    fprintf(out, "painwatch %s %s .. %s: %lld patients, %.2f patient-days, %lld episodes",
            json_string_value(json_object_get(doc, "source")), str_or(doc, "from", "-"),
            str_or(doc, "to", "-"), (long long)json_integer_value(json_object_get(doc, "patients")),
            json_number_value(json_object_get(doc, "patient_days")),
            (long long)json_integer_value(json_object_get(doc, "episodes")));
    fprintf(out, " (%lld open at the end)\n\n",
            (long long)json_integer_value(json_object_get(doc, "open_at_end")));
    fprintf(out, "%-40s %8s %8s %8s %8s %8s  %s\n", "rule", "episodes", "/100pd", "patients",
            "median_h", "p90_h", "high/medium/low/info");
    json_array_foreach(json_object_get(doc, "rules"), i, row)
    {
        const json_t *sev = json_object_get(row, "by_severity");
        fprintf(out, "%-40s %8lld %8.2f %8lld", json_string_value(json_object_get(row, "rule")),
                (long long)json_integer_value(json_object_get(row, "episodes")),
                json_number_value(json_object_get(row, "per_100_patient_days")),
                (long long)json_integer_value(json_object_get(row, "patients_affected")));
        print_hours(out, json_object_get(row, "median_duration_h"));
        print_hours(out, json_object_get(row, "p90_duration_h"));
        fprintf(out, "  %lld/%lld/%lld/%lld\n",
                (long long)json_integer_value(json_object_get(sev, "high")),
                (long long)json_integer_value(json_object_get(sev, "medium")),
                (long long)json_integer_value(json_object_get(sev, "low")),
                (long long)json_integer_value(json_object_get(sev, "info")));
    }
    json_array_foreach(json_object_get(doc, "patient_episodes"), i, row)
    {
        size_t k;
        const json_t *e;
        fprintf(out, "\n%s\n", json_string_value(json_object_get(row, "patient")));
        json_array_foreach(json_object_get(row, "episodes"), k, e)
        {
            fprintf(out, "  %-6s %-40s %s .. %s\n",
                    json_string_value(json_object_get(e, "severity")),
                    json_string_value(json_object_get(e, "rule")),
                    json_string_value(json_object_get(e, "start")), str_or(e, "end", "(open)"));
        }
    }
}

/* ---- output ----------------------------------------------------------------------------- */

int pw_bt_doc_write(const json_t *doc, const char *format, const char *path, char *err,
                    size_t errlen)
{
    FILE *out = path && strcmp(path, "-") != 0 ? fopen(path, "w") : stdout;
    int rc = 0;

    if (!out) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (strcmp(format, "json") == 0) {
        rc = json_dumpf(doc, out, JSON_INDENT(2) | JSON_REAL_PRECISION(12)) == 0 ? 0 : -1;
        fputc('\n', out);
    } else if (strcmp(format, "html") == 0) {
        size_t len = 0;
        char *page = pw_bt_doc_html(doc, &len);
        rc = page && fwrite(page, 1, len, out) == len ? 0 : -1;
        free(page);
    } else {
        pw_bt_doc_text(doc, out);
    }
    if (fflush(out) != 0 || ferror(out)) {
        rc = -1;
    }
    if (out != stdout && fclose(out) != 0) {
        rc = -1;
    }
    if (rc) {
        snprintf(err, errlen, "%s: write failed", path && strcmp(path, "-") ? path : "stdout");
    }
    return rc;
}
