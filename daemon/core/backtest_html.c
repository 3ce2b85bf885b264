/* SPDX-License-Identifier: Apache-2.0 */
/* The alert-burden report as one self-contained HTML page (backtest.h, written by html.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backtest.h"
#include "painwatch/html.h"

/* Print: A4 landscape (html.c's @page), each patient's timeline kept on one page. */
static const char print_css[] =
    "<style>\n"
    "@media print{body{margin:0;font-size:10pt}section.patient{break-inside:avoid}"
    "h2{break-after:avoid}svg{max-width:100%;height:auto}}\n"
    "section.patient{margin-bottom:1em}\n"
    "</style>\n";

static const char *s_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static void fmt_int(char *buf, size_t n, const json_t *v)
{
    snprintf(buf, n, "%lld", (long long)json_integer_value(v));
}

static void fmt_num(char *buf, size_t n, const json_t *v)
{
    if (json_is_number(v)) {
        snprintf(buf, n, "%.2f", json_number_value(v));
    } else {
        snprintf(buf, n, "-");
    }
}

static void burden_table(struct pw_html *h, const json_t *doc)
{
    static const char *const head[] = {"rule",
                                       "episodes",
                                       "per 100 patient-days",
                                       "patients",
                                       "median duration h",
                                       "p90 duration h",
                                       "open at end",
                                       "high",
                                       "medium",
                                       "low",
                                       "info"};
    size_t i;
    const json_t *row;

    pw_html_table_begin(h, "Alert burden per rule", head, sizeof(head) / sizeof(head[0]));
    json_array_foreach(json_object_get(doc, "rules"), i, row)
    {
        char c[10][32];
        const json_t *sev = json_object_get(row, "by_severity");
        const char *cells[11] = {s_of(row, "rule")};

        fmt_int(c[0], sizeof(c[0]), json_object_get(row, "episodes"));
        fmt_num(c[1], sizeof(c[1]), json_object_get(row, "per_100_patient_days"));
        fmt_int(c[2], sizeof(c[2]), json_object_get(row, "patients_affected"));
        fmt_num(c[3], sizeof(c[3]), json_object_get(row, "median_duration_h"));
        fmt_num(c[4], sizeof(c[4]), json_object_get(row, "p90_duration_h"));
        fmt_int(c[5], sizeof(c[5]), json_object_get(row, "open_at_end"));
        fmt_int(c[6], sizeof(c[6]), json_object_get(sev, "high"));
        fmt_int(c[7], sizeof(c[7]), json_object_get(sev, "medium"));
        fmt_int(c[8], sizeof(c[8]), json_object_get(sev, "low"));
        fmt_int(c[9], sizeof(c[9]), json_object_get(sev, "info"));
        for (int k = 0; k < 10; k++) {
            cells[k + 1] = c[k];
        }
        pw_html_table_row(h, json_integer_value(json_object_get(sev, "high")) > 0 ? "warn" : NULL,
                          cells, 11);
    }
    pw_html_table_end(h);
}

static void per_day_chart(struct pw_html *h, const json_t *doc)
{
    const json_t *days = json_object_get(doc, "episodes_per_day");
    size_t n = json_array_size(days), i;
    const char **labels = calloc(n ? n : 1, sizeof(*labels));
    double *values = calloc(n ? n : 1, sizeof(*values));
    const json_t *d;

    if (!labels || !values) {
        h->failed = true;
    } else {
        json_array_foreach(days, i, d)
        {
            labels[i] = s_of(d, "day");
            values[i] = (double)json_integer_value(json_object_get(d, "episodes"));
        }
        pw_html_svg_columns(h, "Episodes opened per day", labels, values, n);
    }
    free(labels);
    free(values);
}

/* Seconds since the epoch of an RFC 3339 member, as a double (0 when absent). */
static double t_of(const json_t *o, const char *key)
{
    int64_t t;

    return pw_fhir_parse_time(json_string_value(json_object_get(o, key)), &t) == 0 ? (double)t : 0;
}

static const json_t *episodes_of(const json_t *doc, const char *patient)
{
    size_t i;
    const json_t *p;

    json_array_foreach(json_object_get(doc, "patient_episodes"), i, p)
    {
        if (strcmp(s_of(p, "patient"), patient) == 0) {
            return json_object_get(p, "episodes");
        }
    }
    return NULL;
}

static void points(const json_t *arr, double *xs, double *ys)
{
    size_t i;
    const json_t *p;

    json_array_foreach(arr, i, p)
    {
        xs[i] = t_of(p, "at");
        ys[i] = json_number_value(json_object_get(p, "value"));
    }
}

static void patient_timeline(struct pw_html *h, const json_t *doc, const json_t *top)
{
    const json_t *scores = json_object_get(top, "pain_scores");
    const json_t *mme = json_object_get(top, "baseline_mme");
    const json_t *rescue = json_object_get(top, "rescue_doses");
    const json_t *eps = episodes_of(doc, s_of(top, "patient"));
    size_t ns = json_array_size(scores), nm = json_array_size(mme), nr = json_array_size(rescue);
    size_t ne = json_array_size(eps), i;
    double *buf = calloc(2 * ns + 2 * nm + nr + 1, sizeof(*buf));
    struct pw_html_span *spans = calloc(ne ? ne : 1, sizeof(*spans));
    const json_t *e;
    char title[PW_REF_MAX + 64];

    if (!buf || !spans) {
        h->failed = true;
        free(buf);
        free(spans);
        return;
    }
    struct pw_html_timeline t = {
        .title = title,
        .x0 = t_of(doc, "from"),
        .x1 = t_of(doc, "to"),
        .x0_label = s_of(doc, "from"),
        .x1_label = s_of(doc, "to"),
        .score_x = buf,
        .score_y = buf + ns,
        .n_scores = ns,
        .step_x = buf + 2 * ns,
        .step_y = buf + 2 * ns + nm,
        .n_steps = nm,
        .step_unit = "MME/day",
        .tick_x = buf + 2 * ns + 2 * nm,
        .n_ticks = nr,
        .tick_label = "rescue",
        .spans = spans,
        .n_spans = ne,
    };
    snprintf(title, sizeof(title), "%s: pain scores, baseline MME/day, rescue doses, episodes",
             s_of(top, "patient"));
    points(scores, buf, buf + ns);
    points(mme, buf + 2 * ns, buf + 2 * ns + nm);
    json_array_foreach(rescue, i, e)
    {
        int64_t at;
        buf[2 * ns + 2 * nm + i] =
            pw_fhir_parse_time(json_string_value(e), &at) == 0 ? (double)at : 0;
    }
    json_array_foreach(eps, i, e)
    {
        spans[i].x0 = t_of(e, "start");
        spans[i].x1 = json_is_string(json_object_get(e, "end")) ? t_of(e, "end") : t.x1;
        spans[i].label = s_of(e, "rule");
        spans[i].cls = s_of(e, "severity");
    }
    pw_html_raw(h, "<section class=\"patient\">\n");
    pw_html_heading(h, 3, s_of(top, "patient"));
    pw_html_svg_timeline(h, &t);
    pw_html_raw(h, "</section>\n");
    free(buf);
    free(spans);
}

char *pw_bt_doc_html(const json_t *doc, size_t *len)
{
    struct pw_html h = {0};
    const json_t *tops = json_object_get(doc, "top_patients");
    size_t i;
    const json_t *top;
    char line[512];

    pw_html_begin(&h, "painwatch alert burden", 0);
    pw_html_raw(&h, print_css);
    pw_html_heading(&h, 1, "painwatch alert burden");
    snprintf(line, sizeof(line),
             "%s of %s to %s: %lld patients, %.2f patient-days, %lld episodes (%lld still open "
             "at the end), rules %s, MME factors %s.",
             strcmp(s_of(doc, "source"), "report") == 0 ? "Shadow-mode period" : "Backtest",
             s_of(doc, "from"), s_of(doc, "to"),
             (long long)json_integer_value(json_object_get(doc, "patients")),
             json_number_value(json_object_get(doc, "patient_days")),
             (long long)json_integer_value(json_object_get(doc, "episodes")),
             (long long)json_integer_value(json_object_get(doc, "open_at_end")),
             s_of(doc, "ruleset"), s_of(doc, "factor_set"));
    pw_html_para(&h, NULL, line);
    pw_html_para(&h, "note",
                 "An episode is a Flag painwatch would post (or re-activate) and keep active until "
                 "its finding no longer holds; durations are of the episodes that closed within "
                 "the period (median and 90th percentile).");
    burden_table(&h, doc);
    pw_html_heading(&h, 2, "Episodes opened per day");
    per_day_chart(&h, doc);
    pw_html_heading(&h, 2, "Top patients");
    static const char *const head[] = {"patient", "episodes", "pain scores", "rescue doses"};
    pw_html_table_begin(&h, "Patients with the most episodes", head, 4);
    json_array_foreach(tops, i, top)
    {
        char c[3][32];
        const char *cells[4] = {s_of(top, "patient"), c[0], c[1], c[2]};
        fmt_int(c[0], sizeof(c[0]), json_object_get(top, "episodes"));
        snprintf(c[1], sizeof(c[1]), "%zu", json_array_size(json_object_get(top, "pain_scores")));
        snprintf(c[2], sizeof(c[2]), "%zu", json_array_size(json_object_get(top, "rescue_doses")));
        pw_html_table_row(&h, NULL, cells, 4);
    }
    pw_html_table_end(&h);
    pw_html_para(&h, "note",
                 "Timelines: pain scores as points (0-10, left), baseline MME/day as a step line "
                 "(right) with titration steps marked, rescue doses as ticks, and each episode "
                 "as a bar in its rule's lane (colour: severity).");
    json_array_foreach(tops, i, top)
    {
        patient_timeline(&h, doc, top);
    }
    pw_html_end(&h);
    return pw_html_finish(&h, len);
}
