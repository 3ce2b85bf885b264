/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Benchmark baselines on the same bytes the daemon reads: jansson parse+free rate of the search
 * pages (plain malloc: the ceiling; and through the daemon's page arena, jarena.h), and a libcurl
 * keep-alive GET rate against the fake FHIR server. Prints one JSON line.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "painwatch/jarena.h"

struct page {
    char *buf;
    size_t len;
    char *name;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int read_file(const char *path, struct page *p)
{
    FILE *f = fopen(path, "rb");
    long n;

    if (!f) {
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return -1;
    }
    p->buf = malloc((size_t)n + 1);
    p->len = (size_t)n;
    if (!p->buf || fread(p->buf, 1, p->len, f) != p->len) {
        fclose(f);
        return -1;
    }
    fclose(f);
    return 0;
}

/*
 * The measured work: parse every page, count its entries, free the tree. Kept out of line so
 * that callgrind can count it alone (--toggle-collect=parse_all).
 */
__attribute__((noinline)) size_t parse_all(const struct page *pages, size_t n);
__attribute__((noinline)) size_t parse_all(const struct page *pages, size_t n)
{
    size_t resources = 0;

    for (size_t i = 0; i < n; i++) {
        json_error_t err;
        json_t *b = json_loadb(pages[i].buf, pages[i].len, 0, &err);
        if (!b) {
            fprintf(stderr, "%s: %s\n", pages[i].name, err.text);
            exit(1);
        }
        resources += json_array_size(json_object_get(b, "entry"));
        json_decref(b);
    }
    return resources;
}

/*
 * The same work as parse_all, each page parsed the way the daemon's scheduler does it: inside
 * pw_jarena_begin..end (main() installed the arena). Counted alone under callgrind with
 * --toggle-collect=parse_all_arena.
 */
__attribute__((noinline)) size_t parse_all_arena(const struct page *pages, size_t n);
__attribute__((noinline)) size_t parse_all_arena(const struct page *pages, size_t n)
{
    size_t resources = 0;

    for (size_t i = 0; i < n; i++) {
        json_error_t err;
        bool arena = pw_jarena_begin() == 0;
        json_t *b = json_loadb(pages[i].buf, pages[i].len, 0, &err);
        if (arena) {
            pw_jarena_end();
        }
        if (!b) {
            fprintf(stderr, "%s: %s\n", pages[i].name, err.text);
            exit(1);
        }
        resources += json_array_size(json_object_get(b, "entry"));
        json_decref(b);
    }
    return resources;
}

static size_t sink(char *ptr, size_t size, size_t nmemb, void *arg)
{
    (void)ptr;
    *(size_t *)arg += size * nmemb;
    return size * nmemb;
}

/* GET every URL in turn on one easy handle (keep-alive), @p reps times. */
static int curl_rate(const char *base, struct page *pages, size_t n, int reps)
{
    CURL *c = curl_easy_init();
    size_t bytes = 0;
    long conns = 0;
    size_t reqs = 0;
    double t0;
    char url[4096];

    if (!c) {
        return 1;
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &bytes);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    t0 = now_s();
    for (int r = 0; r < reps; r++) {
        for (size_t i = 0; i < n; i++) {
            long code = 0;
            long nc = 0;
            snprintf(url, sizeof(url), "%s/%s", base, pages[i].name);
            curl_easy_setopt(c, CURLOPT_URL, url);
            if (curl_easy_perform(c) != CURLE_OK) {
                fprintf(stderr, "GET %s failed\n", url);
                curl_easy_cleanup(c);
                return 1;
            }
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
            curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &nc);
            conns += nc;
            reqs++;
            if (code != 200) {
                fprintf(stderr, "GET %s: HTTP %ld\n", url, code);
                curl_easy_cleanup(c);
                return 1;
            }
        }
    }
    double dt = now_s() - t0;
    printf("{\"requests\":%zu,\"seconds\":%.4f,\"requests_per_s\":%.1f,\"mb_per_s\":%.1f,"
           "\"connections\":%ld}\n",
           reqs, dt, (double)reqs / dt, (double)bytes / dt / 1e6, conns);
    curl_easy_cleanup(c);
    return 0;
}

/* The storage ceiling: 4 KiB appended and fdatasync'd @p n times in @p dir (what a commit costs).
 */
static int fsync_rate(const char *dir, int n)
{
    char path[4096];
    char block[4096];
    double t0;
    int fd;

    memset(block, 'x', sizeof(block));
    snprintf(path, sizeof(path), "%s/pw-bench-fsync.tmp", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    t0 = now_s();
    for (int i = 0; i < n; i++) {
        if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block) || fdatasync(fd) != 0) {
            perror(path);
            close(fd);
            return 1;
        }
    }
    double dt = now_s() - t0;
    close(fd);
    unlink(path);
    printf("{\"syncs\":%d,\"seconds\":%.4f,\"syncs_per_s\":%.1f}\n", n, dt, (double)n / dt);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: pw_bench_base parse|parse-arena REPS FILE... |\n"
                    "       pw_bench_base curl BASEURL REPS PATH... | pw_bench_base fsync DIR N\n"
                    "  parse: jansson parse+free of the pages (parse-arena: through the daemon's\n"
                    "  page arena); curl: keep-alive GET rate;\n"
                    "  fsync: 4 KiB write + fdatasync rate in DIR\n");
}

int main(int argc, char **argv)
{
    struct page *pages;
    size_t n;
    int reps;
    int first;

    if (argc < 4) {
        usage();
        return 2;
    }
    if (strcmp(argv[1], "fsync") == 0) {
        return fsync_rate(argv[2], atoi(argv[3]));
    }
    first = strcmp(argv[1], "curl") == 0 ? 4 : 3;
    reps = atoi(argv[first - 1]);
    n = (size_t)(argc - first);
    pages = calloc(n ? n : 1, sizeof(*pages));
    if (!pages || reps <= 0 || n == 0) {
        usage();
        return 2;
    }
    for (size_t i = 0; i < n; i++) {
        pages[i].name = argv[first + (int)i];
    }
    if (strcmp(argv[1], "curl") == 0) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        int rc = curl_rate(argv[2], pages, n, reps);
        curl_global_cleanup();
        free(pages);
        return rc;
    }
    bool arena = strcmp(argv[1], "parse-arena") == 0;
    if (strcmp(argv[1], "parse") != 0 && !arena) {
        usage();
        return 2;
    }
    if (arena && pw_jarena_install() != 0) {
        fprintf(stderr, "page arena: cannot reserve address space\n");
        return 1;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (read_file(pages[i].name, &pages[i]) != 0) {
            fprintf(stderr, "%s: cannot read\n", pages[i].name);
            return 1;
        }
        bytes += pages[i].len;
    }
    size_t resources = 0;
    double t0 = now_s();
    double c0 = cpu_s();
    for (int r = 0; r < reps; r++) {
        resources += arena ? parse_all_arena(pages, n) : parse_all(pages, n);
    }
    double dt = now_s() - t0;
    double dc = cpu_s() - c0;
    /* CPU time too: on a shared machine the wall clock measures the neighbours as well. */
    printf("{\"resources\":%zu,\"seconds\":%.4f,\"cpu_seconds\":%.4f,\"resources_per_s\":%.0f,"
           "\"resources_per_cpu_s\":%.0f,\"mb_per_s\":%.1f}\n",
           resources, dt, dc, (double)resources / dt, (double)resources / dc,
           (double)bytes * reps / dt / 1e6);
    for (size_t i = 0; i < n; i++) {
        free(pages[i].buf);
    }
    free(pages);
    return 0;
}
