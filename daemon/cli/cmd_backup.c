/* SPDX-License-Identifier: Apache-2.0 */
/*
 * painwatch backup: a consistent copy of what painwatchd keeps, taken while it runs: the store
 * through the store's backup (SQLite's online backup API) and the audit trail files (append-only:
 * a copy ends at a record boundary or is verified to). The audit key is named, not copied: kept
 * beside the trail it copies, it would no longer prove anything about it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "painwatch/conf.h"
#include "painwatch/defaults.h"
#include "painwatch/err.h"
#include "painwatch/store.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: painwatch backup [--config FILE] DIR\n"
            "  Copy the store (a consistent copy, taken while painwatchd runs) and the audit\n"
            "  trail files named by FILE (default " PW_DEFAULT_CONFIG_FILE ") into DIR (created;\n"
            "  refused if it holds a previous backup). The audit key is not copied: back it\n"
            "  up separately (see the operator's guide). Verify the copy with\n"
            "  `painwatch audit verify --key KEY DIR/audit/*`.\n"
            "  Exit 0 done, 1 a copy failed, 2 usage or configuration error.\n");
}

/* Copy the regular file @p src to the new file @p dst (mode 0600), whole lines only. */
static int copy_file(const char *src, const char *dst, unsigned long long *bytes)
{
    char buf[65536];
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int out = in < 0 ? -1 : open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    off_t last_nl = 0;
    off_t total = 0;
    ssize_t n = 0;
    int err = 0;

    if (in < 0 || out < 0) {
        err = -errno;
    }
    while (!err && (n = read(in, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n') {
                last_nl = total + i + 1;
            }
        }
        if (write(out, buf, (size_t)n) != n) {
            err = errno ? -errno : PW_EIO;
        }
        total += n;
    }
    if (!err && n < 0) {
        err = -errno;
    }
    /* The daemon may be writing a record right now: end at the last complete line. */
    if (!err && last_nl < total && ftruncate(out, last_nl) != 0) {
        err = -errno;
    }
    if (!err && fsync(out) != 0) {
        err = -errno;
    }
    if (in >= 0) {
        close(in);
    }
    if (out >= 0 && close(out) != 0 && !err) {
        err = -errno;
    }
    *bytes = (unsigned long long)last_nl;
    return err;
}

/* The trail files: audit.path and every file beside it whose name starts with its name. */
static int copy_trail(const char *trail, const char *dest, unsigned *files)
{
    char dir[4096];
    char src[8192];
    char dst[8192];
    const char *slash = strrchr(trail, '/');
    const char *base = slash ? slash + 1 : trail;
    DIR *d;
    struct dirent *e;
    int err = 0;

    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - trail) : 1, slash ? trail : ".");
    d = opendir(dir);
    if (!d) {
        fprintf(stderr, "painwatch backup: %s: %s\n", dir, strerror(errno));
        return -errno;
    }
    while (!err && (e = readdir(d)) != NULL) {
        unsigned long long bytes = 0;
        struct stat st;

        if (strncmp(e->d_name, base, strlen(base)) != 0) {
            continue;
        }
        snprintf(src, sizeof(src), "%s/%s", dir, e->d_name);
        if (stat(src, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        snprintf(dst, sizeof(dst), "%s/%s", dest, e->d_name);
        err = copy_file(src, dst, &bytes);
        if (err) {
            fprintf(stderr, "painwatch backup: %s -> %s: %s\n", src, dst, pw_strerror(err));
        } else {
            printf("audit: %s (%llu bytes)\n", dst, bytes);
            (*files)++;
        }
    }
    closedir(d);
    return err;
}

static int backup(const char *file, const char *dest)
{
    struct pw_conf_errors errs = {0};
    struct pw_conf *conf = NULL;
    struct pw_store *st = NULL;
    char path[8192];
    unsigned files = 0;
    int version = 0;
    int err = pw_conf_load_file(&conf, file, &errs);

    for (size_t i = 0; i < errs.n; i++) {
        fprintf(stderr, "%s\n", errs.lines[i]);
    }
    pw_conf_errors_cleanup(&errs);
    if (err) {
        fprintf(stderr, "painwatch backup: %s: %s\n", file, pw_strerror(err));
        pw_conf_free(conf);
        return 2;
    }
    const struct pw_conf_daemon *cd = pw_conf_daemon(conf);
    struct pw_store_opts so = {.section = cd->store.section, .read_only = true};
    const char *where = json_string_value(json_object_get(cd->store.section, "path"));
    snprintf(path, sizeof(path), "%s/audit", dest);
    if ((mkdir(dest, 0700) != 0 && errno != EEXIST) ||
        (mkdir(path, 0700) != 0 && errno != EEXIST)) {
        fprintf(stderr, "painwatch backup: %s: %s\n", path, strerror(errno));
        pw_conf_free(conf);
        return 2;
    }
    err = pw_store_open(&st, &so);
    if (!err) {
        snprintf(path, sizeof(path), "%s/painwatch.db", dest);
        err = pw_store_backup(st, path);
        if (!err) {
            pw_store_schema_version(st, &version);
        }
        pw_store_close(st);
    }
    if (err) {
        fprintf(stderr, "painwatch backup: the store %s -> %s/painwatch.db: %s%s\n",
                where ? where : cd->store.type, dest, pw_strerror(err),
                err == PW_EEXIST ? " (a previous backup: choose a new DIR)" : "");
        pw_conf_free(conf);
        return err == PW_EEXIST ? 2 : 1;
    }
    printf("store: %s (schema version %d, a consistent copy)\n", path, version);
    snprintf(path, sizeof(path), "%s/audit", dest);
    err = copy_trail(cd->audit.path, path, &files);
    printf("audit key: %s is not copied; keep a copy apart from the trail backups (the trail "
           "verifies only with it)\n",
           cd->audit.key_file ? cd->audit.key_file : "<state_dir>/audit.key");
    pw_conf_free(conf);
    if (err) {
        return 1;
    }
    printf("backup: done (%u audit file%s)\n", files, files == 1 ? "" : "s");
    return 0;
}

int pw_cmd_backup(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *file = PW_DEFAULT_CONFIG_FILE;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            file = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    return backup(file, argv[optind]);
}
