/* SPDX-License-Identifier: Apache-2.0 */
/* The HTML/SVG page writer (see painwatch/html.h). */
#include "painwatch/html.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "painwatch/array.h"

static bool reserve(struct pw_html *h, size_t more)
{
    if (h->failed) {
        return false;
    }
    if (pw_array_reserve_from(&h->buf, &h->cap, h->len + more + 1, 1, 1024) != 0) {
        h->failed = true;
        return false;
    }
    return true;
}

static void put(struct pw_html *h, const char *s, size_t n)
{
    if (!reserve(h, n)) {
        return;
    }
    memcpy(h->buf + h->len, s, n);
    h->len += n;
    h->buf[h->len] = '\0';
}

void pw_html_raw(struct pw_html *h, const char *markup)
{
    put(h, markup, strlen(markup));
}

__attribute__((format(printf, 2, 3))) static void rawf(struct pw_html *h, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(h, (size_t)n)) {
        h->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(h->buf + h->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    h->len += (size_t)n;
}

void pw_html_text(struct pw_html *h, const char *s)
{
    if (!s) {
        return;
    }
    for (const char *p = s; *p; p++) {
        const char *start = p;
        while (*p && !strchr("&<>\"'", *p)) {
            p++;
        }
        put(h, start, (size_t)(p - start));
        switch (*p) {
        case '&':
            pw_html_raw(h, "&amp;");
            break;
        case '<':
            pw_html_raw(h, "&lt;");
            break;
        case '>':
            pw_html_raw(h, "&gt;");
            break;
        case '"':
            pw_html_raw(h, "&quot;");
            break;
        case '\'':
            pw_html_raw(h, "&#39;");
            break;
        default:
            return; /* the end of the string */
        }
    }
}

void pw_html_textf(struct pw_html *h, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    char *text = small;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        h->failed = true;
        return;
    }
    if ((size_t)n >= sizeof(small)) {
        text = malloc((size_t)n + 1);
        if (!text) {
            h->failed = true;
            return;
        }
        va_start(ap, fmt);
        vsnprintf(text, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    pw_html_text(h, text);
    if (text != small) {
        free(text);
    }
}

void pw_html_begin(struct pw_html *h, const char *title, unsigned refresh_s)
{
    pw_html_raw(h, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    if (refresh_s > 0) {
        rawf(h, "<meta http-equiv=\"refresh\" content=\"%u\">\n", refresh_s);
    }
    pw_html_raw(h, "<title>");
    pw_html_text(h, title);
    pw_html_raw(h, "</title>\n<style>\n"
                   "body{font-family:sans-serif;margin:1.5em;color:#111}\n"
                   "table{border-collapse:collapse;margin:0.5em 0 1.5em}\n"
                   "th,td{border:1px solid #999;padding:0.25em 0.6em;text-align:left}\n"
                   "th{background:#eee}caption{text-align:left;font-weight:bold;padding:0.3em 0}\n"
                   "tr.bad td{background:#fdd}tr.warn td{background:#ffd}\n"
                   "p.ok{color:#060}p.warn{color:#850}p.bad{color:#a00;font-weight:bold}\n"
                   "p.note{color:#555;font-size:small}svg{display:block;margin:0.5em 0 1.5em}\n"
                   "@page{size:A4 landscape}\n"
                   "</style>\n</head>\n<body>\n");
}

void pw_html_end(struct pw_html *h)
{
    pw_html_raw(h, "</body>\n</html>\n");
}

void pw_html_heading(struct pw_html *h, int level, const char *text)
{
    level = level < 1 ? 1 : level > 6 ? 6 : level;
    rawf(h, "<h%d>", level);
    pw_html_text(h, text);
    rawf(h, "</h%d>\n", level);
}

static void open_tag(struct pw_html *h, const char *tag, const char *cls)
{
    rawf(h, "<%s", tag);
    if (cls) {
        pw_html_raw(h, " class=\"");
        pw_html_text(h, cls);
        pw_html_raw(h, "\"");
    }
    pw_html_raw(h, ">");
}

void pw_html_para(struct pw_html *h, const char *cls, const char *text)
{
    open_tag(h, "p", cls);
    pw_html_text(h, text);
    pw_html_raw(h, "</p>\n");
}

void pw_html_table_begin(struct pw_html *h, const char *caption, const char *const *headers,
                         size_t n)
{
    pw_html_raw(h, "<table>\n");
    if (caption) {
        pw_html_raw(h, "<caption>");
        pw_html_text(h, caption);
        pw_html_raw(h, "</caption>\n");
    }
    pw_html_raw(h, "<thead><tr>");
    for (size_t i = 0; i < n; i++) {
        pw_html_raw(h, "<th>");
        pw_html_text(h, headers[i]);
        pw_html_raw(h, "</th>");
    }
    pw_html_raw(h, "</tr></thead>\n<tbody>\n");
}

void pw_html_table_row(struct pw_html *h, const char *cls, const char *const *cells, size_t n)
{
    open_tag(h, "tr", cls);
    for (size_t i = 0; i < n; i++) {
        pw_html_raw(h, "<td>");
        pw_html_text(h, cells[i]);
        pw_html_raw(h, "</td>");
    }
    pw_html_raw(h, "</tr>\n");
}

void pw_html_table_end(struct pw_html *h)
{
    pw_html_raw(h, "</tbody></table>\n");
}

/* A finite, non-negative number for drawing. */
static double drawable(double v)
{
    return isfinite(v) && v > 0 ? v : 0;
}

#define BAR_LABEL_W 160
#define BAR_W       400
#define BAR_H       18
#define BAR_GAP     6

void pw_html_svg_bars(struct pw_html *h, const char *title, const char *const *labels,
                      const double *values, size_t n, const char *unit)
{
    double max = 0;
    unsigned height = (unsigned)(n * (BAR_H + BAR_GAP) + BAR_GAP);
    unsigned width = BAR_LABEL_W + BAR_W + 140;

    for (size_t i = 0; i < n; i++) {
        max = fmax(max, drawable(values[i]));
    }
    rawf(h,
         "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%u\" height=\"%u\" "
         "viewBox=\"0 0 %u %u\" role=\"img\">\n<title>",
         width, height, width, height);
    pw_html_text(h, title);
    pw_html_raw(h, "</title>\n");
    for (size_t i = 0; i < n; i++) {
        unsigned y = (unsigned)(BAR_GAP + i * (BAR_H + BAR_GAP));
        double w = max > 0 ? drawable(values[i]) / max * BAR_W : 0;
        rawf(h, "<text x=\"%u\" y=\"%u\" font-size=\"12\" text-anchor=\"end\">", BAR_LABEL_W - 6,
             y + BAR_H - 5);
        pw_html_text(h, labels[i]);
        pw_html_raw(h, "</text>");
        rawf(h, "<rect x=\"%u\" y=\"%u\" width=\"%.1f\" height=\"%u\" fill=\"#4a7ab5\"/>",
             BAR_LABEL_W, y, w, BAR_H);
        rawf(h, "<text x=\"%.1f\" y=\"%u\" font-size=\"12\">", BAR_LABEL_W + w + 6, y + BAR_H - 5);
        pw_html_textf(h, "%.0f", isfinite(values[i]) ? values[i] : 0);
        if (unit && *unit) {
            pw_html_raw(h, " ");
            pw_html_text(h, unit);
        }
        pw_html_raw(h, "</text>\n");
    }
    pw_html_raw(h, "</svg>\n");
}

#define LINE_W   480
#define LINE_H   120
#define LINE_PAD 30

void pw_html_svg_line(struct pw_html *h, const char *title, const double *xs, const double *ys,
                      size_t n)
{
    double x0 = 0, x1 = 1, y0 = 0, y1 = 1;

    for (size_t i = 0; i < n; i++) {
        if (i == 0 || xs[i] < x0) {
            x0 = xs[i];
        }
        if (i == 0 || xs[i] > x1) {
            x1 = xs[i];
        }
        if (i == 0 || ys[i] < y0) {
            y0 = ys[i];
        }
        if (i == 0 || ys[i] > y1) {
            y1 = ys[i];
        }
    }
    if (!(x1 > x0)) {
        x1 = x0 + 1;
    }
    if (!(y1 > y0)) {
        y1 = y0 + 1;
    }
    rawf(h,
         "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%u\" height=\"%u\" "
         "viewBox=\"0 0 %u %u\" role=\"img\">\n<title>",
         LINE_W + 2 * LINE_PAD, LINE_H + 2 * LINE_PAD, LINE_W + 2 * LINE_PAD,
         LINE_H + 2 * LINE_PAD);
    pw_html_text(h, title);
    pw_html_raw(h, "</title>\n");
    rawf(h, "<rect x=\"%u\" y=\"%u\" width=\"%u\" height=\"%u\" fill=\"none\" stroke=\"#999\"/>\n",
         LINE_PAD, LINE_PAD, LINE_W, LINE_H);
    rawf(h, "<text x=\"2\" y=\"%u\" font-size=\"11\">", LINE_PAD + 4);
    pw_html_textf(h, "%g", y1);
    rawf(h, "</text><text x=\"2\" y=\"%u\" font-size=\"11\">", LINE_PAD + LINE_H);
    pw_html_textf(h, "%g", y0);
    pw_html_raw(h, "</text>\n");
    if (n >= 2) {
        pw_html_raw(h, "<polyline fill=\"none\" stroke=\"#4a7ab5\" stroke-width=\"2\" points=\"");
    }
    for (size_t i = 0; n >= 2 && i < n; i++) {
        rawf(h, "%s%.1f,%.1f", i ? " " : "", LINE_PAD + (xs[i] - x0) / (x1 - x0) * LINE_W,
             LINE_PAD + LINE_H - (ys[i] - y0) / (y1 - y0) * LINE_H);
    }
    if (n >= 2) {
        pw_html_raw(h, "\"/>\n");
    }
    for (size_t i = 0; i < n; i++) {
        rawf(h, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"#4a7ab5\"/>\n",
             LINE_PAD + (xs[i] - x0) / (x1 - x0) * LINE_W,
             LINE_PAD + LINE_H - (ys[i] - y0) / (y1 - y0) * LINE_H);
    }
    pw_html_raw(h, "</svg>\n");
}

char *pw_html_finish(struct pw_html *h, size_t *len)
{
    char *out = h->failed ? NULL : h->buf ? h->buf : calloc(1, 1);

    if (!out) {
        free(h->buf);
    } else if (len) {
        *len = h->len;
    }
    memset(h, 0, sizeof(*h));
    return out;
}

void pw_html_discard(struct pw_html *h)
{
    free(h->buf);
    memset(h, 0, sizeof(*h));
}

/* ---- issue 22: the backtest report's charts ---------------------------------------------- */

#define COL_W   760
#define COL_H   140
#define COL_PAD 34

static void svg_open(struct pw_html *h, unsigned width, unsigned height, const char *title)
{
    rawf(h,
         "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%u\" height=\"%u\" "
         "viewBox=\"0 0 %u %u\" role=\"img\">\n<title>",
         width, height, width, height);
    pw_html_text(h, title);
    pw_html_raw(h, "</title>\n");
}

static void svg_text(struct pw_html *h, double x, double y, const char *anchor, const char *s)
{
    rawf(h, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"%s\">", x, y, anchor);
    pw_html_text(h, s);
    pw_html_raw(h, "</text>\n");
}

void pw_html_svg_columns(struct pw_html *h, const char *title, const char *const *labels,
                         const double *values, size_t n)
{
    double max = 0;
    double cw = n ? (double)COL_W / (double)n : COL_W;
    char top[32];

    for (size_t i = 0; i < n; i++) {
        max = fmax(max, drawable(values[i]));
    }
    svg_open(h, COL_W + 2 * COL_PAD, COL_H + 2 * COL_PAD, title);
    rawf(h, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\"/>\n", COL_PAD,
         COL_PAD + COL_H, COL_PAD + COL_W, COL_PAD + COL_H);
    snprintf(top, sizeof(top), "%g", max);
    svg_text(h, COL_PAD - 4, COL_PAD + 4, "end", top);
    svg_text(h, COL_PAD - 4, COL_PAD + COL_H, "end", "0");
    for (size_t i = 0; i < n; i++) {
        double hgt = max > 0 ? drawable(values[i]) / max * COL_H : 0;
        rawf(h,
             "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4a7ab5\">"
             "<title>",
             COL_PAD + (double)i * cw + cw * 0.1, COL_PAD + COL_H - hgt, cw * 0.8, hgt);
        pw_html_text(h, labels[i]);
        pw_html_textf(h, ": %g", drawable(values[i]));
        pw_html_raw(h, "</title></rect>\n");
    }
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || i == n - 1 || i == n / 2) {
            svg_text(h, COL_PAD + ((double)i + 0.5) * cw, COL_PAD + COL_H + 14, "middle",
                     labels[i]);
        }
    }
    pw_html_raw(h, "</svg>\n");
}

#define TL_W     860
#define TL_H     150
#define TL_PAD   46
#define TL_LANE  16
#define TL_TICKS 18

static const char *span_fill(const char *cls)
{
    if (cls && strcmp(cls, "high") == 0) {
        return "#c0392b";
    }
    if (cls && strcmp(cls, "medium") == 0) {
        return "#e67e22";
    }
    if (cls && strcmp(cls, "low") == 0) {
        return "#d4ac0d";
    }
    return "#7f8c8d";
}

void pw_html_svg_timeline(struct pw_html *h, const struct pw_html_timeline *t)
{
    double x0 = t->x0, x1 = t->x1 > t->x0 ? t->x1 : t->x0 + 1, ymax = 0;
    const char *lanes[64];
    size_t n_lanes = 0;
    char buf[64];

    for (size_t i = 0; i < t->n_spans && n_lanes < 64; i++) {
        size_t k = 0;
        while (k < n_lanes && strcmp(lanes[k], t->spans[i].label) != 0) {
            k++;
        }
        if (k == n_lanes) {
            lanes[n_lanes++] = t->spans[i].label;
        }
    }
    for (size_t i = 0; i < t->n_steps; i++) {
        ymax = fmax(ymax, drawable(t->step_y[i]));
    }
    ymax = ymax > 0 ? ymax : 1;
    double chart_bottom = TL_PAD + TL_H;
    double tick_row = chart_bottom + 26;
    double lanes_top = tick_row + TL_TICKS;
    unsigned height = (unsigned)(lanes_top + (double)n_lanes * (TL_LANE + 4) + 10);
#define X(v) (TL_PAD + ((v)-x0) / (x1 - x0) * TL_W)
    svg_open(h, TL_W + 2 * TL_PAD + 260, height, t->title);
    rawf(h, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>\n",
         TL_PAD, TL_PAD, TL_W, TL_H);
    svg_text(h, TL_PAD - 4, TL_PAD + 4, "end", "10");
    svg_text(h, TL_PAD - 4, chart_bottom, "end", "0");
    svg_text(h, TL_PAD - 4, TL_PAD - 12, "start", "pain score");
    snprintf(buf, sizeof(buf), "%g %s", ymax, t->step_unit ? t->step_unit : "");
    svg_text(h, TL_PAD + TL_W + 4, TL_PAD + 4, "start", buf);
    svg_text(h, TL_PAD, chart_bottom + 14, "start", t->x0_label);
    svg_text(h, TL_PAD + TL_W, chart_bottom + 14, "end", t->x1_label);
    /* The step line: horizontal to the next change, then vertical; rises marked. */
    if (t->n_steps) {
        pw_html_raw(h, "<path fill=\"none\" stroke=\"#8e44ad\" stroke-width=\"2\" d=\"");
        rawf(h, "M%.1f,%.1f", X(t->step_x[0]), chart_bottom - drawable(t->step_y[0]) / ymax * TL_H);
        for (size_t i = 0; i < t->n_steps; i++) {
            rawf(h, " H%.1f", i + 1 < t->n_steps ? X(t->step_x[i + 1]) : X(x1));
            if (i + 1 < t->n_steps) {
                rawf(h, " V%.1f", chart_bottom - drawable(t->step_y[i + 1]) / ymax * TL_H);
            }
        }
        pw_html_raw(h, "\"/>\n");
        for (size_t i = 1; i < t->n_steps; i++) {
            if (drawable(t->step_y[i]) > drawable(t->step_y[i - 1])) {
                double x = X(t->step_x[i]);
                double y = chart_bottom - drawable(t->step_y[i]) / ymax * TL_H;
                rawf(h,
                     "<path d=\"M%.1f,%.1f l-5,-9 h10 z\" fill=\"#8e44ad\"><title>titration "
                     "step</title></path>\n",
                     x, y - 2);
            }
        }
    }
    for (size_t i = 0; i < t->n_scores; i++) {
        double y = t->score_y[i] < 0 ? 0 : t->score_y[i] > 10 ? 10 : t->score_y[i];
        rawf(h, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"#2471a3\"/>\n", X(t->score_x[i]),
             chart_bottom - y / 10 * TL_H);
    }
    svg_text(h, TL_PAD - 4, tick_row + 10, "end", t->tick_label ? t->tick_label : "");
    for (size_t i = 0; i < t->n_ticks; i++) {
        rawf(h,
             "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#16a085\" "
             "stroke-width=\"2\"/>\n",
             X(t->tick_x[i]), tick_row, X(t->tick_x[i]), tick_row + 12);
    }
    for (size_t k = 0; k < n_lanes; k++) {
        double y = lanes_top + (double)k * (TL_LANE + 4);
        svg_text(h, TL_PAD + TL_W + 6, y + TL_LANE - 4, "start", lanes[k]);
        for (size_t i = 0; i < t->n_spans; i++) {
            const struct pw_html_span *s = &t->spans[i];
            double a = s->x0 < x0 ? x0 : s->x0, b = s->x1 > x1 ? x1 : s->x1;
            if (strcmp(s->label, lanes[k]) != 0 || b < a) {
                continue;
            }
            rawf(h,
                 "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"%s\">"
                 "<title>",
                 X(a), y, fmax(X(b) - X(a), 2), TL_LANE, span_fill(s->cls));
            pw_html_text(h, s->label);
            pw_html_raw(h, "</title></rect>\n");
        }
    }
#undef X
    pw_html_raw(h, "</svg>\n");
}
