/* SPDX-License-Identifier: Apache-2.0 */
/* painwatch audit verify|show: check the HMAC chain of a trail, or print it for an auditor. */
#include <dirent.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "painwatch/audit.h"
#include "painwatch/conf.h"
#include "painwatch/err.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: painwatch audit verify (--key FILE | --config FILE) [TRAIL...]\n"
        "       painwatch audit show [--patient REF] [--since T] [--until T] [--rule ID]\n"
        "                            [--format text|json] TRAIL...\n"
        "\n"
        "verify  checks every record's HMAC and its place in the chain, across rotated files\n"
        "        (any order: files are ordered by their header sequence). Prints the first\n"
        "        record that does not verify as FILE:LINE: why. Exit 0 only when all verify,\n"
        "        1 when not, 2 on usage errors or unreadable files.\n"
        "        --key FILE     the HMAC key file the daemon writes with (not world-readable)\n"
        "        --config FILE  take the key (audit.key_file, else <state_dir>/audit.key) and,\n"
        "                       when no TRAIL is given, the trail (audit.path and every file\n"
        "                       next to it whose name starts with it: rotations) from there\n"
        "show    prints records for an auditor (headers skipped; does not verify: run verify).\n"
        "        --patient REF  \"Patient/123\" or \"123\"      --rule ID  rule id\n"
        "        --since T / --until T  RFC 3339 (2026-11-26T08:00:00Z) or a date; since is\n"
        "                       inclusive, until exclusive\n"
        "        --format text|json  a table (default) or the records as JSON lines\n");
}

/* The trail files named by a configuration: the live file and its rotations beside it. */
struct file_list {
    char **v;
    size_t n;
};

static void file_list_cleanup(struct file_list *fl)
{
    for (size_t i = 0; i < fl->n; i++) {
        free(fl->v[i]);
    }
    free(fl->v);
    memset(fl, 0, sizeof(*fl));
}

static bool compressed(const char *name)
{
    static const char *const ext[] = {".gz", ".xz", ".bz2", ".zst", ".lz4"};
    size_t len = strlen(name);

    for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
        size_t el = strlen(ext[i]);
        if (len > el && strcmp(name + len - el, ext[i]) == 0) {
            return true;
        }
    }
    return false;
}

static int add_file(struct file_list *fl, const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char **grown = realloc(fl->v, (fl->n + 1) * sizeof(*fl->v));

    if (!grown) {
        return -1;
    }
    fl->v = grown;
    fl->v[fl->n] = malloc(len);
    if (!fl->v[fl->n]) {
        return -1;
    }
    snprintf(fl->v[fl->n++], len, "%s/%s", dir, name);
    return 0;
}

/* Every file beside @p path whose name is its name plus ".", "-" or "_" and a suffix (painwatch
 * rotations <name>.<seq>, logrotate's <name>.1 or <name>-20261126). Compressed ones are named and
 * skipped: verify them after decompressing. */
static int trail_files(const char *path, struct file_list *fl)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t blen = strlen(base);
    char dir[4096];
    struct dirent *de;
    DIR *d;

    if (slash == path) {
        snprintf(dir, sizeof(dir), "/");
    } else if (slash) {
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    } else {
        snprintf(dir, sizeof(dir), ".");
    }
    d = opendir(dir);
    if (!d) {
        fprintf(stderr, "painwatch audit verify: %s: cannot open the trail directory\n", dir);
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        char sep = name[blen];
        if (strncmp(name, base, blen) != 0 || (sep && sep != '.' && sep != '-' && sep != '_')) {
            continue;
        }
        if (compressed(name)) {
            fprintf(stderr, "painwatch audit verify: %s/%s: compressed, not checked\n", dir, name);
            continue;
        }
        if (add_file(fl, dir, name) != 0) {
            closedir(d);
            return -1;
        }
    }
    closedir(d);
    if (fl->n == 0) {
        fprintf(stderr, "painwatch audit verify: no trail file at %s\n", path);
        return -1;
    }
    return 0;
}

/* The key path (unless --key gave one) and, when @p fl is not NULL, the trail files. */
static int from_config(const char *conf_path, char *key, size_t key_len, struct file_list *fl)
{
    struct pw_conf_errors errs = {0};
    struct pw_conf *conf = NULL;
    const struct pw_conf_daemon *cd;
    int rc = pw_conf_load_file(&conf, conf_path, &errs);

    for (size_t i = 0; rc && i < errs.n; i++) {
        fprintf(stderr, "%s\n", errs.lines[i]);
    }
    pw_conf_errors_cleanup(&errs);
    if (rc) {
        fprintf(stderr, "painwatch audit verify: %s: %s\n", conf_path, pw_strerror(rc));
        return -1;
    }
    cd = pw_conf_daemon(conf);
    if (key[0] == '\0') {
        if (cd->audit.key_file) {
            snprintf(key, key_len, "%s", cd->audit.key_file);
        } else {
            snprintf(key, key_len, "%s/audit.key", cd->state_dir);
        }
    }
    rc = fl ? trail_files(cd->audit.path, fl) : 0;
    pw_conf_free(conf);
    return rc;
}

static int report(int rc, const struct pw_audit_verdict *v)
{
    if (rc == PW_EVERIFY) {
        printf("%s:%ld: %s\n", v->file, v->line, v->why);
        printf("FAILED: %llu records in %zu files verified before this point\n",
               (unsigned long long)v->records, v->files);
        return 1;
    }
    if (rc) {
        fprintf(stderr, "painwatch audit verify: %s: %s\n", v->file[0] ? v->file : "?",
                v->why[0] ? v->why : pw_strerror(rc));
        return 2;
    }
    printf("OK: %llu records in %zu files verify\n", (unsigned long long)v->records, v->files);
    if (v->torn_acknowledged) {
        printf("note: %u interrupted write(s) acknowledged by the writer; first: %s\n",
               v->torn_acknowledged, v->note);
    }
    if (strcmp(v->first_prev, "0000000000000000000000000000000000000000000000000000000000000000") !=
        0) {
        printf("note: the chain starts at file sequence %llu, which links to an earlier file "
               "not given (digest %.12s...)\n",
               (unsigned long long)v->first_seq, v->first_prev);
    }
    printf("last digest: %s\n", v->last);
    return 0;
}

static int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *conf_path = NULL;
    char key_path[4096] = "";
    struct file_list fl = {0};
    struct pw_audit_verdict v;
    unsigned char *key = NULL;
    size_t key_len = 0;
    int c;
    int rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "k:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            snprintf(key_path, sizeof(key_path), "%s", optarg);
            break;
        case 'c':
            conf_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (conf_path &&
        from_config(conf_path, key_path, sizeof(key_path), optind >= argc ? &fl : NULL) != 0) {
        file_list_cleanup(&fl);
        return 2;
    }
    if (!key_path[0] || (optind >= argc && fl.n == 0)) {
        fprintf(stderr, "painwatch audit verify: %s\n",
                key_path[0] ? "no trail file given" : "--key FILE or --config FILE is required");
        usage(stderr);
        return 2;
    }
    rc = pw_audit_key_load(key_path, &key, &key_len);
    if (rc) {
        fprintf(stderr, "painwatch audit verify: key %s: %s\n", key_path, pw_strerror(rc));
        file_list_cleanup(&fl);
        return 2;
    }
    if (fl.n) {
        rc = pw_audit_verify_files(key, key_len, (const char *const *)fl.v, fl.n, &v);
    } else {
        rc = pw_audit_verify_files(key, key_len, (const char *const *)(argv + optind),
                                   (size_t)(argc - optind), &v);
    }
    pw_audit_key_free(key, key_len);
    file_list_cleanup(&fl);
    return report(rc, &v);
}

static int parse_bound(const char *opt, const char *val, int64_t *out)
{
    if (pw_audit_parse_time(val, out) != 0) {
        fprintf(stderr,
                "painwatch audit show: %s '%s': expected RFC 3339 (2026-11-26T08:00:00Z) "
                "or a date (2026-11-26)\n",
                opt, val);
        return -1;
    }
    return 0;
}

static int cmd_show(int argc, char **argv)
{
    static const struct option opts[] = {
        {"patient", required_argument, NULL, 'p'},
        {"since", required_argument, NULL, 's'},
        {"until", required_argument, NULL, 'u'},
        {"rule", required_argument, NULL, 'r'},
        {"format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct pw_audit_filter flt = {.since_ms = INT64_MIN, .until_ms = INT64_MAX};
    long n;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "p:s:u:r:f:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            flt.patient = optarg;
            break;
        case 'r':
            flt.rule = optarg;
            break;
        case 's':
            if (parse_bound("--since", optarg, &flt.since_ms)) {
                return 2;
            }
            break;
        case 'u':
            if (parse_bound("--until", optarg, &flt.until_ms)) {
                return 2;
            }
            break;
        case 'f':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0) {
                fprintf(stderr, "painwatch audit show: --format must be text or json\n");
                return 2;
            }
            flt.json = strcmp(optarg, "json") == 0;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "painwatch audit show: no trail file given\n");
        usage(stderr);
        return 2;
    }
    n = pw_audit_show(stdout, stderr, (const char *const *)(argv + optind), (size_t)(argc - optind),
                      &flt);
    return n < 0 ? 2 : 0;
}

int pw_cmd_audit(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "verify") == 0) {
        return cmd_verify(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "show") == 0) {
        return cmd_show(argc - 1, argv + 1);
    }
    fprintf(stderr, "painwatch audit: unknown subcommand '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
