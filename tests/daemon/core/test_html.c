/* SPDX-License-Identifier: Apache-2.0 */
/*
 * html.c and status.c (issue 22): every dynamic string is escaped (& < > " ' in titles, headings,
 * paragraphs, classes, table captions, headers and cells, chart titles, labels and units, and in
 * every string of the status page), the output is well formed (tags balance, void elements
 * aside), the charts draw one bar per value and a polyline through the points, and an empty or
 * failed writer behaves.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "painwatch/html.h"
#include "painwatch/status.h"
#include "support/pwtest.h"

#define EVIL     "a<b>&c\"d'e"
#define EVIL_ESC "a&lt;b&gt;&amp;c&quot;d&#39;e"

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;

    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

/*
 * Tags balance: every open tag is closed in order, except the void ones, "<!DOCTYPE" and
 * self-closed "<x/>". Text never holds a raw '<' or '>' (they would open a tag here), and every
 * '&' starts an entity.
 */
static void assert_well_formed(const char *page)
{
    static const char *const voids[] = {"meta", "br", "hr", "img", "link", "input"};
    char stack[64][16];
    size_t depth = 0;

    for (const char *p = page; *p; p++) {
        if (*p == '&') {
            const char *semi = strchr(p, ';');
            assert_non_null(semi);
            assert_true(semi - p <= 6);
            for (const char *q = p + 1; q < semi; q++) {
                assert_true(isalnum((unsigned char)*q) || *q == '#');
            }
            continue;
        }
        if (*p == '>') {
            fail_msg("a raw '>' in text at offset %zu", (size_t)(p - page));
        }
        if (*p != '<') {
            continue;
        }
        const char *end = strchr(p, '>');
        char name[16] = "";
        bool closing = p[1] == '/';
        size_t n = 0;
        assert_non_null(end);
        for (const char *q = p + 1 + closing; q < end && (isalnum((unsigned char)*q)); q++) {
            if (n + 1 < sizeof(name)) {
                name[n++] = *q;
            }
        }
        name[n] = '\0';
        /* inside a tag: quotes balance and no '<' */
        for (const char *q = p + 1; q < end; q++) {
            assert_true(*q != '<');
        }
        if (p[1] == '!') {
            p = end;
            continue;
        }
        assert_true(n > 0);
        if (closing) {
            assert_true(depth > 0);
            depth--;
            assert_string_equal(stack[depth], name);
        } else if (end[-1] != '/') {
            bool is_void = false;
            for (size_t v = 0; v < sizeof(voids) / sizeof(voids[0]); v++) {
                is_void = is_void || strcmp(name, voids[v]) == 0;
            }
            if (!is_void) {
                assert_true(depth < 64);
                strcpy(stack[depth++], name);
            }
        }
        p = end;
    }
    assert_int_equal(depth, 0);
}

static void test_escapes_every_string(void **state)
{
    struct pw_html h = {0};
    const char *head[] = {EVIL, "b"};
    const char *cells[] = {EVIL, EVIL};
    const char *labels[] = {EVIL, "two"};
    double values[] = {3, 7};
    double xs[] = {1, 2, 3};
    double ys[] = {0, 5, 10};
    size_t len = 0;
    char *page;

    (void)state;
    pw_html_begin(&h, EVIL, 10);
    pw_html_heading(&h, 9, EVIL);
    pw_html_para(&h, EVIL, EVIL);
    pw_html_textf(&h, "[%s]", EVIL);
    pw_html_table_begin(&h, EVIL, head, 2);
    pw_html_table_row(&h, EVIL, cells, 2);
    pw_html_table_row(&h, NULL, cells, 2);
    pw_html_table_end(&h);
    pw_html_svg_bars(&h, EVIL, labels, values, 2, EVIL);
    pw_html_svg_line(&h, EVIL, xs, ys, 3);
    pw_html_end(&h);
    page = pw_html_finish(&h, &len);
    assert_non_null(page);
    assert_int_equal(len, strlen(page));
    assert_null(strstr(page, EVIL));
    /* title, h6, p class + text, textf, caption, th, 2x tr class... every one escaped */
    assert_int_equal(count(page, EVIL_ESC), 1 + 1 + 2 + 1 + 1 + 1 + 1 + 4 + 1 + 1 + 1 + 1 + 1);
    assert_non_null(strstr(page, "<meta http-equiv=\"refresh\" content=\"10\">"));
    assert_non_null(strstr(page, "<h6>"));
    assert_int_equal(count(page, "<svg "), 2);
    assert_int_equal(count(page, "<rect "), 2 + 1); /* two bars, the line chart's frame */
    assert_int_equal(count(page, "<polyline "), 1);
    assert_int_equal(count(page, "<circle "), 3);
    assert_int_equal(count(page, "<tr"), 3);
    assert_null(strstr(page, "<script"));
    assert_null(strstr(page, "src="));
    assert_null(strstr(page, "href="));
    assert_well_formed(page);
    free(page);
}

static void test_bars_scale_and_odd_values(void **state)
{
    struct pw_html h = {0};
    const char *labels[] = {"big", "half", "neg", "missing"};
    double values[] = {100, 50, -5, NAN};
    char *page;

    (void)state;
    pw_html_svg_bars(&h, "t", labels, values, 4, "");
    page = pw_html_finish(&h, NULL);
    assert_non_null(page);
    assert_non_null(strstr(page, "width=\"400.0\""));
    assert_non_null(strstr(page, "width=\"200.0\""));
    assert_int_equal(count(page, "width=\"0.0\""), 2);
    assert_null(strstr(page, "nan"));
    assert_well_formed(page);
    free(page);

    /* all zero: no division by zero, bars of width 0 */
    double zeros[] = {0, 0};
    pw_html_svg_bars(&h, "t", labels, zeros, 2, "s");
    page = pw_html_finish(&h, NULL);
    assert_int_equal(count(page, "width=\"0.0\""), 2);
    free(page);
}

static void test_empty_and_failed(void **state)
{
    struct pw_html h = {0};
    size_t len = 9;
    char *page;

    (void)state;
    page = pw_html_finish(&h, &len);
    assert_non_null(page);
    assert_string_equal(page, "");
    assert_int_equal(len, 0);
    free(page);

    pw_html_raw(&h, "<p>");
    h.failed = true; /* as after an allocation failure */
    pw_html_text(&h, "more");
    assert_null(pw_html_finish(&h, &len));
    assert_null(h.buf);
    pw_html_text(&h, "x");
    pw_html_discard(&h);
    assert_null(h.buf);
}

static void test_status_page(void **state)
{
    struct pw_status *st = calloc(1, sizeof(*st));
    char *page;
    size_t len;

    (void)state;
    st->now = 1800000000;
    st->start_time = st->now - 3 * 3600 - 120;
    st->version = EVIL;
    snprintf(st->servers[0].name, sizeof(st->servers[0].name), "%s", EVIL);
    st->servers[0].last_complete = st->now - 42;
    st->servers[0].cycles = 17;
    st->servers[0].newest_data = st->now - 3600;
    snprintf(st->servers[1].name, sizeof(st->servers[1].name), "lab");
    st->servers[1].unhealthy = true;
    st->servers[1].consecutive_failures = 5;
    snprintf(st->servers[1].last_error, sizeof(st->servers[1].last_error), "%s", EVIL);
    st->n_servers = 2;
    st->outbox_pending = 3;
    st->outbox_dead = 2;
    st->writes_paused = true;
    snprintf(st->paused_by, sizeof(st->paused_by), "%s", EVIL);
    st->audit_writable = true;
    snprintf(st->checks[0].name, sizeof(st->checks[0].name), "%s", EVIL);
    st->checks[0].ok = true;
    snprintf(st->checks[0].detail, sizeof(st->checks[0].detail), "%s", EVIL);
    snprintf(st->checks[1].name, sizeof(st->checks[1].name), "audit-chain");
    snprintf(st->checks[1].detail, sizeof(st->checks[1].detail), "%s", EVIL);
    st->n_checks = 2;

    page = pw_status_render(st, &len);
    assert_non_null(page);
    assert_null(strstr(page, EVIL));
    /* version, server name in row and bar, last error, paused by, check name, 2 details, chain */
    assert_int_equal(count(page, EVIL_ESC), 9);
    assert_non_null(strstr(page, "content=\"10\""));
    assert_non_null(strstr(page, "NOT ready"));
    assert_non_null(strstr(page, "up 3h 02m"));
    assert_non_null(strstr(page, "<td>2027-01-15T08:00:00Z</td>") ||
                    strstr(page, "<td>2027-01-15T07:59:18Z</td>"));
    assert_non_null(strstr(page, "<td>42s</td>"));
    assert_non_null(strstr(page, "<td>1h 00m</td>"));
    assert_non_null(strstr(page, "<td>no cycle yet</td>"));
    assert_non_null(strstr(page, "<tr class=\"bad\"><td>lab</td><td>UNHEALTHY</td>"));
    assert_non_null(strstr(page, "<td>dead letters</td><td>2</td>"));
    assert_non_null(strstr(page, "<td>pending (outbox depth)</td><td>3</td>"));
    assert_non_null(strstr(page, "EHR writes PAUSED"));
    assert_non_null(strstr(page, "Audit chain: BROKEN"));
    assert_int_equal(count(page, "<svg "), 1);
    assert_well_formed(page);
    free(page);

    /* shadow mode, no servers, nothing paused */
    memset(st, 0, sizeof(*st));
    st->shadow_mode = true;
    page = pw_status_render(st, NULL);
    assert_non_null(page);
    assert_non_null(strstr(page, "Shadow mode"));
    assert_non_null(strstr(page, "No FHIR server is configured"));
    assert_non_null(strstr(page, "Audit trail NOT writable"));
    assert_well_formed(page);
    free(page);
    free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escapes_every_string),
        cmocka_unit_test(test_bars_scale_and_odd_values),
        cmocka_unit_test(test_empty_and_failed),
        cmocka_unit_test(test_status_page),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
