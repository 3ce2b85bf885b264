/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue 18 benchmark: peak memory of one search page, on the worst shapes the body cap lets in,
 * through the sync engine's own parse (page arena, parse budget, entry cap: painwatch/page_parse.h)
 * and page filter. One shape per process (peak RSS is per process); tests/bench/page_mem.sh
 * runs them all and prints the table. Not a test: nothing is asserted.
 *
 *   pw_bench_page_mem SHAPE [--unbounded]
 *
 * --unbounded parses with no budget and no entry cap (the code before issue 18).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <jansson.h>

#include "painwatch/fhir_search.h"
#include "painwatch/jarena.h"
#include "painwatch/limits.h"
#include "painwatch/page_parse.h"

#define BODY_MAX ((size_t)PW_HTTP_BODY_MAX)

struct buf {
    char *p;
    size_t n;
    size_t cap;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) {
            abort();
        }
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static const char head[] = "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"entry\":[";
static const char tail[] = "]}";

/* Entries made by @p entry(i) until the body would pass @p limit bytes. */
static size_t fill(struct buf *b, size_t limit, void (*entry)(struct buf *, size_t))
{
    size_t i = 0;
    struct buf one = {0};

    puts_(b, head);
    for (;; i++) {
        one.n = 0;
        entry(&one, i);
        if (b->n + one.n + 1 + sizeof(tail) > limit) {
            break;
        }
        if (i) {
            put(b, ",", 1);
        }
        put(b, one.p, one.n);
    }
    puts_(b, tail);
    free(one.p);
    return i;
}

static void e_empty(struct buf *b, size_t i)
{
    (void)i;
    puts_(b, "{}");
}

static void e_small(struct buf *b, size_t i)
{
    char s[160];
    snprintf(s, sizeof(s),
             "{\"resource\":{\"resourceType\":\"Observation\",\"id\":\"o%zu\",\"meta\":{"
             "\"versionId\":\"1\",\"lastUpdated\":\"2024-05-01T10:00:00Z\"}}}",
             i);
    puts_(b, s);
}

static void e_obs(struct buf *b, size_t i)
{
    char s[1024];
    snprintf(s, sizeof(s),
             "{\"fullUrl\":\"http://ehr/fhir/Observation/o%zu\",\"resource\":{\"resourceType\":"
             "\"Observation\",\"id\":\"o%zu\",\"meta\":{\"versionId\":\"1\",\"lastUpdated\":"
             "\"2024-05-01T10:00:00Z\"},\"status\":\"final\",\"category\":[{\"coding\":[{"
             "\"system\":\"http://terminology.hl7.org/CodeSystem/observation-category\","
             "\"code\":\"survey\"}]}],\"code\":{\"coding\":[{\"system\":\"http://loinc.org\","
             "\"code\":\"72514-3\",\"display\":\"Pain severity - 0-10 verbal numeric rating "
             "[Score] - Reported\"}]},\"subject\":{\"reference\":\"Patient/p%zu\"},"
             "\"effectiveDateTime\":\"2024-05-01T09:00:00Z\",\"valueQuantity\":{\"value\":5,"
             "\"unit\":\"{score}\",\"system\":\"http://unitsofmeasure.org\",\"code\":"
             "\"{score}\"}},\"search\":{\"mode\":\"match\"}}",
             i, i, i % 1000);
    puts_(b, s);
}

/* One entry whose resource holds a string of @p n bytes. */
static void huge(struct buf *b, size_t idx, size_t n)
{
    char s[256];
    snprintf(s, sizeof(s),
             "{\"resource\":{\"resourceType\":\"Observation\",\"id\":\"h%zu\",\"meta\":{"
             "\"versionId\":\"1\",\"lastUpdated\":\"2024-05-01T10:00:00Z\"},\"note\":[{"
             "\"text\":\"",
             idx);
    puts_(b, s);
    char *x = malloc(n);
    memset(x, 'x', n);
    put(b, x, n);
    free(x);
    puts_(b, "\"}]}}");
}

/* One resource with an array of @p n small numbers. */
static void numbers(struct buf *b, size_t limit)
{
    puts_(b, head);
    puts_(b, "{\"resource\":{\"resourceType\":\"Observation\",\"id\":\"n\",\"x\":[1");
    while (b->n + 2 + 8 < limit) {
        put(b, ",1", 2);
    }
    puts_(b, "]}}]}");
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
        }
    }
    if (f) {
        fclose(f);
    }
    return kb;
}

int main(int argc, char **argv)
{
    const char *shape = argc > 1 ? argv[1] : "";
    bool unbounded = argc > 2 && strcmp(argv[2], "--unbounded") == 0;
    struct buf b = {0};
    size_t entries = 0;

    if (pw_jarena_install() != 0) {
        return 1;
    }
    if (strcmp(shape, "empty-32M") == 0) {
        entries = fill(&b, BODY_MAX, e_empty);
    } else if (strcmp(shape, "empty-1M-in-3MB") == 0) {
        entries = fill(&b, 3000000, e_empty);
    } else if (strcmp(shape, "small-32M") == 0) {
        entries = fill(&b, BODY_MAX, e_small);
    } else if (strcmp(shape, "obs-1000") == 0) {
        entries = fill(&b, 1000 * 660, e_obs);
    } else if (strcmp(shape, "obs-32M") == 0) {
        entries = fill(&b, BODY_MAX, e_obs);
    } else if (strcmp(shape, "huge-4x8M") == 0) {
        puts_(&b, head);
        for (size_t i = 0; i < 4; i++) {
            if (i) {
                put(&b, ",", 1);
            }
            huge(&b, i, 8 * 1024 * 1024 - 4096);
        }
        puts_(&b, tail);
        entries = 4;
    } else if (strcmp(shape, "huge-1x31M") == 0) {
        puts_(&b, head);
        huge(&b, 0, BODY_MAX - 1024 * 1024);
        puts_(&b, tail);
        entries = 1;
    } else if (strcmp(shape, "numbers-32M") == 0) {
        numbers(&b, BODY_MAX);
        entries = 1;
    } else {
        fprintf(stderr,
                "usage: %s empty-32M|empty-1M-in-3MB|small-32M|obs-1000|obs-32M|huge-4x8M|"
                "huge-1x31M|numbers-32M [--unbounded]\n",
                argv[0]);
        return 2;
    }
    if (b.n > BODY_MAX) {
        fprintf(stderr, "body over the cap: %zu\n", b.n);
        return 1;
    }
    long before_kb = rss_kb();
    struct pw_jarena_page pg;
    struct pw_page_parsed pp;
    size_t budget = unbounded ? 0 : PW_PAGE_PARSE_BUDGET;
    size_t cap = unbounded ? 0 : PW_PAGE_ENTRIES_MAX;
    size_t delivered = 0;

    if (pw_page_parse(b.p, b.n, budget, cap, &pg, &pp) != 0) {
        return 1;
    }
    static const char *const names[] = {"parsed", "refused: not JSON", "refused: over budget",
                                        "refused: over entry cap"};
    const char *outcome = names[pp.refusal];
    if (pp.bundle) {
        struct pw_sync_state st;
        struct pw_page_stats ps;
        json_t *res = NULL;
        const char *next = NULL;
        int64_t max_ms = 0;
        pw_sync_state_init(&st);
        if (pw_sync_page_filter(&st, pp.bundle, &res, &next, &max_ms, &ps) == 0) {
            delivered = json_array_size(res);
        }
        json_decref(res);
        pw_sync_state_cleanup(&st);
        pw_jarena_page_drop(&pg, pp.bundle);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%s\t%zu\t%zu\t%s\t%zu\t%ld\t%ld\n", shape, b.n, entries, outcome, delivered,
           before_kb / 1024, ru.ru_maxrss / 1024);
    free(b.p);
    return 0;
}
