/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A strict parser of the Prometheus text exposition format 0.0.4, for tests: it fails the test
 * on anything a Prometheus server would reject or that our conventions forbid (samples before
 * their TYPE, duplicate series, bad names, bad escapes, counters not ending in _total).
 */
#ifndef PAINWATCH_TESTS_PROMTEXT_H
#define PAINWATCH_TESTS_PROMTEXT_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/pwtest.h"

#define PROM_MAX 2048

struct prom_sample {
    char name[128];
    char labels[512]; /* canonical: name="value" joined by ',' as written */
    double value;
};

struct prom_text {
    struct prom_sample s[PROM_MAX];
    size_t n;
    char typed[64][128]; /* families with a TYPE line, in order */
    char types[64][16];
    size_t n_typed;
};

static bool prom_name_char(char c, bool first, bool label)
{
    bool alpha =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!label && c == ':');
    return alpha || (!first && c >= '0' && c <= '9');
}

/* Parse a metric or label name at *p into out; advance. */
static void prom_name(const char **p, char *out, size_t size, bool label, int line)
{
    size_t n = 0;

    if (!prom_name_char(**p, true, label)) {
        fail_msg("line %d: bad name start '%c'", line, **p);
    }
    while (prom_name_char(**p, n == 0, label)) {
        if (n + 1 >= size) {
            fail_msg("line %d: name too long", line);
        }
        out[n++] = *(*p)++;
    }
    out[n] = '\0';
}

static size_t prom_family(const struct prom_text *t, const char *name)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};

    for (size_t i = 0; i < t->n_typed; i++) {
        if (strcmp(t->typed[i], name) == 0) {
            return i;
        }
    }
    /* A histogram's samples: <family>_bucket, _sum, _count under the family's TYPE. */
    for (size_t k = 0; k < 3; k++) {
        size_t n = strlen(name);
        size_t sl = strlen(suffixes[k]);
        if (n > sl && strcmp(name + n - sl, suffixes[k]) == 0) {
            for (size_t i = 0; i < t->n_typed; i++) {
                if (strlen(t->typed[i]) == n - sl && strncmp(t->typed[i], name, n - sl) == 0 &&
                    strcmp(t->types[i], "histogram") == 0) {
                    return i;
                }
            }
        }
    }
    return (size_t)-1;
}

static void prom_parse_sample(struct prom_text *t, const char *p, const char *end, int line)
{
    struct prom_sample *s;
    char lname[128];
    char seen[8][128];
    size_t n_seen = 0;
    char *vend;

    assert_true(t->n < PROM_MAX);
    s = &t->s[t->n];
    memset(s, 0, sizeof(*s));
    prom_name(&p, s->name, sizeof(s->name), false, line);
    if (*p == '{') {
        p++;
        while (*p != '}') {
            size_t used = strlen(s->labels);
            prom_name(&p, lname, sizeof(lname), true, line);
            for (size_t i = 0; i < n_seen; i++) {
                if (strcmp(seen[i], lname) == 0) {
                    fail_msg("line %d: label %s repeated", line, lname);
                }
            }
            assert_true(n_seen < 8);
            strcpy(seen[n_seen++], lname);
            if (p[0] != '=' || p[1] != '"') {
                fail_msg("line %d: expected =\" after label %s", line, lname);
            }
            p += 2;
            used += (size_t)snprintf(s->labels + used, sizeof(s->labels) - used, "%s%s=\"",
                                     used ? "," : "", lname);
            while (*p != '"') {
                if (p >= end) {
                    fail_msg("line %d: unterminated label value", line);
                }
                if (*p == '\\') {
                    if (p[1] != '\\' && p[1] != '"' && p[1] != 'n') {
                        fail_msg("line %d: bad escape \\%c", line, p[1]);
                    }
                    s->labels[used++] = *p++;
                }
                s->labels[used++] = *p++;
                assert_true(used + 2 < sizeof(s->labels));
            }
            s->labels[used++] = '"';
            s->labels[used] = '\0';
            p++;
            if (*p == ',') {
                p++;
            } else if (*p != '}') {
                fail_msg("line %d: expected , or } in labels", line);
            }
        }
        p++;
    }
    if (*p != ' ') {
        fail_msg("line %d: expected a space before the value", line);
    }
    p++;
    if (strncmp(p, "NaN", 3) == 0 || strncmp(p, "+Inf", 4) == 0 || strncmp(p, "-Inf", 4) == 0) {
        s->value = p[0] == 'N' ? NAN : p[0] == '+' ? INFINITY : -INFINITY;
        vend = (char *)(uintptr_t)(p + (p[0] == 'N' ? 3 : 4));
    } else {
        s->value = strtod(p, &vend);
        if (vend == p) {
            fail_msg("line %d: bad value", line);
        }
    }
    if (vend != end) {
        /* An optional integer timestamp. */
        char *tend;
        if (*vend != ' ' || (strtoll(vend + 1, &tend, 10), tend != end)) {
            fail_msg("line %d: trailing garbage after the value", line);
        }
    }
    size_t fam = prom_family(t, s->name);
    if (fam == (size_t)-1) {
        fail_msg("line %d: sample %s before its # TYPE", line, s->name);
    }
    if (fam != t->n_typed - 1) {
        fail_msg("line %d: samples of %s are not grouped under its TYPE", line, s->name);
    }
    if (strcmp(t->types[fam], "counter") == 0 && (s->value < 0 || isnan(s->value))) {
        fail_msg("line %d: counter %s is negative", line, s->name);
    }
    for (size_t i = 0; i < t->n; i++) {
        if (!strcmp(t->s[i].name, s->name) && !strcmp(t->s[i].labels, s->labels)) {
            fail_msg("line %d: duplicate series %s{%s}", line, s->name, s->labels);
        }
    }
    t->n++;
}

static void prom_parse_comment(struct prom_text *t, const char *p, const char *end, int line)
{
    char name[128];
    bool type = strncmp(p, "# TYPE ", 7) == 0;

    if (!type && strncmp(p, "# HELP ", 7) != 0) {
        return; /* a plain comment */
    }
    p += 7;
    prom_name(&p, name, sizeof(name), false, line);
    if (*p != ' ') {
        fail_msg("line %d: expected a space after %s", line, name);
    }
    p++;
    if (!type) {
        return;
    }
    size_t len = (size_t)(end - p);
    if (!((len == 7 && !strncmp(p, "counter", 7)) || (len == 5 && !strncmp(p, "gauge", 5)) ||
          (len == 9 && !strncmp(p, "histogram", 9)) || (len == 7 && !strncmp(p, "summary", 7)) ||
          (len == 7 && !strncmp(p, "untyped", 7)))) {
        fail_msg("line %d: bad type", line);
    }
    if (prom_family(t, name) != (size_t)-1) {
        fail_msg("line %d: second TYPE for %s", line, name);
    }
    if (len == 7 && !strncmp(p, "counter", 7) &&
        (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total") != 0)) {
        fail_msg("line %d: counter %s does not end in _total", line, name);
    }
    assert_true(t->n_typed < 64);
    strcpy(t->typed[t->n_typed], name);
    snprintf(t->types[t->n_typed], sizeof(t->types[0]), "%.*s", (int)len, p);
    t->n_typed++;
}

/* Parse @p text strictly; fails the test on the first violation. */
static void prom_parse(struct prom_text *t, const char *text)
{
    const char *p = text;
    int line = 0;

    memset(t, 0, sizeof(*t));
    while (*p) {
        const char *end = strchr(p, '\n');
        line++;
        if (!end) {
            fail_msg("line %d: the last line does not end with a newline", line);
        }
        if (end == p) {
            p++;
            continue;
        }
        if (*p == '#') {
            prom_parse_comment(t, p, end, line);
        } else {
            prom_parse_sample(t, p, end, line);
        }
        p = end + 1;
    }
}

/* Value of one series (labels as rendered: a="x",b="y"), or NAN when absent. */
static double prom_value(const struct prom_text *t, const char *name, const char *labels)
{
    for (size_t i = 0; i < t->n; i++) {
        if (!strcmp(t->s[i].name, name) && !strcmp(t->s[i].labels, labels)) {
            return t->s[i].value;
        }
    }
    return NAN;
}

#endif
