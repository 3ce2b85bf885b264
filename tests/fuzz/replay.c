/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replay driver: runs every file named on the command line (directories: every regular file in
 * them, sorted) through LLVMFuzzerTestOneInput() once. Linked with each fuzz target in the normal
 * (gcc, ASan+UBSan) test build, so every corpus file, and every crash reproducer kept in
 * tests/fuzz/regressions/<target>/, is a regression test. Exit 0 when every input returned.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    long n;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        perror(path);
        if (f) {
            fclose(f);
        }
        return -1;
    }
    buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        perror(path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    /* An exact-size heap copy, as libFuzzer gives, so ASan sees reads past the end. */
    unsigned char *exact = malloc(n > 0 ? (size_t)n : 1);
    if (exact == NULL) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, (size_t)n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, (size_t)n);
    free(exact);
    return 0;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir, long *count)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (d == NULL) {
        perror(dir);
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **m = realloc(names, cap * sizeof(*names));
            if (m == NULL) {
                abort();
            }
            names = m;
        }
        if (asprintf(&names[n++], "%s/%s", dir, e->d_name) < 0) {
            abort();
        }
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(names[i]) < 0) {
                rc = -1;
            }
            (*count)++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    long count = 0;
    int rc = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            rc = 1;
        } else if (S_ISDIR(st.st_mode)) {
            if (run_dir(argv[i], &count) < 0) {
                rc = 1;
            }
        } else {
            if (run_file(argv[i]) < 0) {
                rc = 1;
            }
            count++;
        }
    }
    printf("%s: %ld inputs replayed\n", argv[0], count);
    if (count == 0) {
        fprintf(stderr, "%s: no input found: a corpus went missing\n", argv[0]);
        return 1;
    }
    return rc;
}
