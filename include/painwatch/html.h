/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small writer of self-contained HTML pages: escaped text, tables and inline SVG bar and line
 * charts, with no scripts and no external assets. Used by the health listener's /status page
 * and meant for the backtest report (issue 22). Every dynamic string goes through the escaper;
 * only the writer's own markup is written raw.
 *
 * Errors are sticky: after an allocation failure every call is a no-op and pw_html_finish()
 * returns NULL, so callers check once at the end.
 */
#ifndef PAINWATCH_HTML_H
#define PAINWATCH_HTML_H

#include <stdbool.h>
#include <stddef.h>

struct pw_html {
    char *buf;
    size_t len;
    size_t cap;
    bool failed;
};

/** Append @p s with & < > " ' escaped (NULL writes nothing). */
void pw_html_text(struct pw_html *h, const char *s);

/** printf, then escaped as pw_html_text(). */
void pw_html_textf(struct pw_html *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Append markup as is: only for the caller's own literal tags, never for data. */
void pw_html_raw(struct pw_html *h, const char *markup);

/**
 * "<!DOCTYPE html>" through "<body>": a UTF-8 page titled @p title with a small inline style
 * sheet (print-friendly); @p refresh_s > 0 adds <meta http-equiv="refresh">.
 */
void pw_html_begin(struct pw_html *h, const char *title, unsigned refresh_s);

/** "</body></html>". */
void pw_html_end(struct pw_html *h);

/** <hN>text</hN>, with N clamped to 1..6. */
void pw_html_heading(struct pw_html *h, int level, const char *text);

/** <p>text</p> (with class @p cls when non-NULL: "ok", "warn", "bad", "note"). */
void pw_html_para(struct pw_html *h, const char *cls, const char *text);

/** <table> with an optional <caption> and a header row of @p n cells. */
void pw_html_table_begin(struct pw_html *h, const char *caption, const char *const *headers,
                         size_t n);

/** One <tr> of @p n escaped cells; @p cls (or NULL) is the row's class ("bad" highlights it). */
void pw_html_table_row(struct pw_html *h, const char *cls, const char *const *cells, size_t n);

/** "</tbody></table>". */
void pw_html_table_end(struct pw_html *h);

/**
 * An inline SVG horizontal bar chart: one bar per label, lengths scaled to the largest value
 * (negative values drawn as 0), each bar labelled with its value and @p unit. @p title becomes
 * the chart's <title> (its accessible name).
 */
void pw_html_svg_bars(struct pw_html *h, const char *title, const char *const *labels,
                      const double *values, size_t n, const char *unit);

/**
 * An inline SVG line chart (a sparkline with axes' extremes labelled) of @p n points (x ascending);
 * fewer than 2 points draws the points alone.
 */
void pw_html_svg_line(struct pw_html *h, const char *title, const double *xs, const double *ys,
                      size_t n);

/**
 * The page written so far, NUL-terminated; caller owns it (free()). @p len gets its length.
 * NULL when any step ran out of memory. Resets @p h.
 */
char *pw_html_finish(struct pw_html *h, size_t *len);

/** Free what @p h holds without taking it. */
void pw_html_discard(struct pw_html *h);

/* ---- issue 22: the backtest report's charts ---------------------------------------------- */

/**
 * An inline SVG column chart (one column per label, x in label order, e.g. episodes per day):
 * heights scaled to the largest value, the first, middle and last labels written under the axis.
 */
void pw_html_svg_columns(struct pw_html *h, const char *title, const char *const *labels,
                         const double *values, size_t n);

/** A bar of a timeline: from x0 to x1 (same unit as the timeline's x), labelled. */
struct pw_html_span {
    double x0, x1;
    const char *label; /* bars with the same label share a lane */
    const char *cls;   /* "high", "medium", "low", "info" (colour), or NULL */
};

/** A patient's timeline chart; all x in one unit (e.g. seconds), ranging x0..x1. */
struct pw_html_timeline {
    const char *title;
    double x0, x1;
    const char *x0_label, *x1_label; /* written under the axis ends */
    const double *score_x, *score_y; /* points, y 0-10 (left axis) */
    size_t n_scores;
    const double *step_x, *step_y; /* a step line (right axis, scaled to its largest value);
                                      each rise is marked */
    size_t n_steps;
    const char *step_unit; /* "MME/day" */
    const double *tick_x;  /* marks on a row of their own (rescue doses) */
    size_t n_ticks;
    const char *tick_label;
    const struct pw_html_span *spans; /* bars under the chart, a lane per label */
    size_t n_spans;
};

/** One inline SVG of @p t: scores as points, the step line, the ticks row and the span lanes. */
void pw_html_svg_timeline(struct pw_html *h, const struct pw_html_timeline *t);

#endif
