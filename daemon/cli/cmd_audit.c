/* SPDX-License-Identifier: Apache-2.0 */
/*
 * painwatch audit verify|show|acknowledge: check the HMAC chain of a trail (and the chain head a
 * store anchored), print it for an auditor, or acknowledge a chain discontinuity.
 */
#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "painwatch/array.h"
#include "painwatch/audit.h"
#include "painwatch/conf.h"
#include "painwatch/err.h"
#include "painwatch/store.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: painwatch audit verify (--key FILE | --config FILE) [--state-dir DIR] [TRAIL...]\n"
        "       painwatch audit show [--patient REF] [--since T] [--until T] [--rule ID]\n"
        "                            [--format text|json] TRAIL...\n"
        "       painwatch audit acknowledge (--state-dir DIR | --config FILE) [--key FILE]\n"
        "                            [--reason TEXT] [TRAIL...]\n"
        "\n"
        "verify  checks every record's HMAC and its place in the chain, across rotated files\n"
        "        (any order: files are ordered by their header sequence). Prints the first\n"
        "        record that does not verify as FILE:LINE: why. Exit 0 only when all verify,\n"
        "        1 when not, 2 on usage errors or unreadable files.\n"
        "        --key FILE     the HMAC key file the daemon writes with (not world-readable)\n"
        "        --config FILE  take the key (audit.key_file, else <state_dir>/audit.key) and,\n"
        "                       when no TRAIL is given, the trail (audit.path and every file\n"
        "                       next to it whose name starts with it: rotations) from there,\n"
        "                       and check the store in its state directory as --state-dir does\n"
        "        --state-dir DIR  also check the chain head painwatchd anchors in the store\n"
        "                       there: the trail must hold that record and go on from it (a\n"
        "                       trail cut back, deleted or forked fails), and no discontinuity\n"
        "                       painwatchd found may be waiting for acknowledgement\n"
        "show    prints records for an auditor (headers skipped; does not verify: run verify).\n"
        "        --patient REF  \"Patient/123\" or \"123\"      --rule ID  rule id\n"
        "        --since T / --until T  RFC 3339 (2026-11-26T08:00:00Z) or a date; since is\n"
        "                       inclusive, until exclusive\n"
        "        --format text|json  a table (default) or the records as JSON lines\n"
        "acknowledge  after review, accept a chain discontinuity painwatchd recorded (or that\n"
        "        the store's chain head shows, with the key and trail of --config/--key): clears\n"
        "        it (readiness recovers, also of a running daemon) and journals who and when,\n"
        "        which painwatchd writes into the trail. Works while painwatchd is stopped.\n"
        "        --reason TEXT  recorded with it (no patient data)\n");
}

/* The trail files named by a configuration: the live file and its rotations beside it. */
struct file_list {
    char **v;
    size_t n, cap;
};

static void file_list_cleanup(struct file_list *fl)
{
    for (size_t i = 0; i < fl->n; i++) {
        free(fl->v[i]);
    }
    free(fl->v);
    memset(fl, 0, sizeof(*fl));
}

static int add_file(struct file_list *fl, const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    if (PW_ARRAY_GROW(fl) < 0) {
        return -1;
    }
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
        return -2;
    }
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        char sep = name[blen];
        if (strncmp(name, base, blen) != 0 || (sep && sep != '.' && sep != '-' && sep != '_')) {
            continue;
        }
        if (pw_audit_file_compressed(name)) {
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
        return -2;
    }
    return 0;
}

/* Where the store of a configuration is (the state directory, or store.path). */
struct store_at {
    char dir[4096];
    char path[4096]; /* store.path when set */
    char backend[32];
};

/* The key path (unless --key gave one), when @p fl is not NULL the trail files, and when @p sa
 * is not NULL the store. @return 0, -2 no trail file (the rest filled), -1 other errors. */
static int from_config(const char *conf_path, char *key, size_t key_len, struct file_list *fl,
                       struct store_at *sa)
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
    if (sa) {
        snprintf(sa->dir, sizeof(sa->dir), "%s", cd->state_dir ? cd->state_dir : "");
        const char *path = json_string_value(json_object_get(cd->store.section, "path"));
        snprintf(sa->path, sizeof(sa->path), "%s", path ? path : "");
        snprintf(sa->backend, sizeof(sa->backend), "%s", cd->store.type ? cd->store.type : "");
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

/* Open the store at @p sa (read-only unless @p rw). @return 0 or PW_E* (message printed). */
static int open_store(const char *cmd, const struct store_at *sa, bool rw, struct pw_store **out)
{
    struct pw_store_opts so = {.backend = sa->backend[0] ? sa->backend : NULL,
                               .dir = sa->dir,
                               .path = sa->path[0] ? sa->path : NULL,
                               .read_only = !rw};
    int rc = pw_store_open(out, &so);

    if (rc) {
        fprintf(stderr, "painwatch audit %s: cannot open the store %s%s: %s\n", cmd,
                so.path ? so.path : sa->dir, so.path ? "" : "/painwatch.db", pw_strerror(rc));
    }
    return rc;
}

/* Whether a store file exists where @p sa says (a configuration may name one not made yet). */
static bool store_exists(const struct store_at *sa)
{
    char p[4200];
    struct stat st;

    snprintf(p, sizeof(p), "%s%s", sa->path[0] ? sa->path : sa->dir,
             sa->path[0] ? "" : "/painwatch.db");
    return stat(p, &st) == 0;
}

/* What the store says about the chain: the head it anchored and an open discontinuity. */
struct store_chain {
    char head[256];  /* "" when none */
    char disc[4096]; /* JSON, "" when none */
};

static int read_chain(struct pw_store *st, struct store_chain *sc)
{
    int rc = pw_store_meta_get(st, PW_AUDIT_META_HEAD, sc->head, sizeof(sc->head));

    if (rc == PW_ENOENT) {
        sc->head[0] = '\0';
        rc = 0;
    }
    if (rc == 0) {
        rc = pw_store_meta_get(st, PW_AUDIT_META_DISCONTINUITY, sc->disc, sizeof(sc->disc));
        if (rc == PW_ENOENT) {
            sc->disc[0] = '\0';
            rc = 0;
        }
    }
    return rc;
}

/* The "problem" of a discontinuity's JSON (into @p out). */
static void disc_text(const char *disc, char *out, size_t cap)
{
    json_t *j = json_loads(disc, 0, NULL);
    const char *since = json_string_value(json_object_get(j, "detected"));
    const char *problem = json_string_value(json_object_get(j, "problem"));

    snprintf(out, cap, "found by painwatchd at %s: %s", since ? since : "?",
             problem ? problem : "?");
    json_decref(j);
}

/*
 * The store's side of verify: @return 0 the chain head is in the trail and nothing waits for
 * acknowledgement, 1 not (printed), 2 the store cannot be read.
 */
static int verify_store(const struct store_at *sa, const unsigned char *key, size_t key_len,
                        const char *const *files, size_t n, const char *end_digest)
{
    struct pw_store *st = NULL;
    struct store_chain sc;
    struct pw_audit_head h;
    char why[1024];
    int bad = 0;
    int rc = open_store("verify", sa, false, &st);

    if (rc) {
        return 2;
    }
    rc = read_chain(st, &sc);
    pw_store_close(st);
    if (rc) {
        fprintf(stderr, "painwatch audit verify: store: %s\n", pw_strerror(rc));
        return 2;
    }
    if (sc.disc[0]) {
        disc_text(sc.disc, why, sizeof(why));
        printf("FAILED: chain discontinuity not acknowledged (painwatch audit acknowledge), %s\n",
               why);
        bad = 1;
    }
    if (!sc.head[0]) {
        printf("note: the store holds no chain head yet (painwatchd anchors one at start)\n");
        return bad;
    }
    if (pw_audit_head_parse(sc.head, &h) != 0) {
        printf("FAILED: chain head in the store is not readable\n");
        return 1;
    }
    rc = pw_audit_head_check(key, key_len, files, n, &h, end_digest, why, sizeof(why));
    if (rc == PW_ENOMEM) {
        fprintf(stderr, "painwatch audit verify: %s\n", pw_strerror(rc));
        return 2;
    }
    if (rc) {
        printf("FAILED: chain discontinuity: %s\n", why);
        return 1;
    }
    printf("chain head in the store: record %" PRIu64 " (file %" PRIu64
           ") is in the trail and the chain goes on from it\n",
           h.n, h.seq);
    return bad;
}

static int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"config", required_argument, NULL, 'c'},
        {"state-dir", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *conf_path = NULL;
    const char *state_dir = NULL;
    char key_path[4096] = "";
    struct file_list fl = {0};
    struct store_at sa = {0};
    struct pw_audit_verdict v;
    unsigned char *key = NULL;
    size_t key_len = 0;
    const char *const *files;
    size_t n_files;
    int c;
    int rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "k:c:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            snprintf(key_path, sizeof(key_path), "%s", optarg);
            break;
        case 'c':
            conf_path = optarg;
            break;
        case 's':
            state_dir = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    rc = conf_path
             ? from_config(conf_path, key_path, sizeof(key_path), optind >= argc ? &fl : NULL, &sa)
             : 0;
    if (state_dir) {
        memset(&sa, 0, sizeof(sa));
        snprintf(sa.dir, sizeof(sa.dir), "%s", state_dir);
    }
    if (rc == -2 && (state_dir || store_exists(&sa))) {
        /* No trail at all: the store can still say one was there (no key needed for that). */
        printf("FAILED: no trail file\n");
        rc = verify_store(&sa, NULL, 0, NULL, 0, NULL);
        file_list_cleanup(&fl);
        return rc == 0 ? 1 : rc;
    }
    if (rc != 0) {
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
    files = fl.n ? (const char *const *)fl.v : (const char *const *)(argv + optind);
    n_files = fl.n ? fl.n : (size_t)(argc - optind);
    rc = report(pw_audit_verify_files(key, key_len, files, n_files, &v), &v);
    /* The store: named, or the configuration's when it has one. */
    if (rc != 2 && (state_dir || (conf_path && store_exists(&sa)))) {
        int src = verify_store(&sa, key, key_len, files, n_files, rc == 0 ? v.last : NULL);
        rc = src > rc ? src : rc;
    } else if (rc != 2 && conf_path) {
        printf("note: no store at %s: the chain head was not checked\n",
               sa.path[0] ? sa.path : sa.dir);
    }
    pw_audit_key_free(key, key_len);
    file_list_cleanup(&fl);
    return rc;
}

/*
 * The discontinuity the store's head shows against the trail (when the key and trail are
 * known): into @p why, "" when none or when it cannot be checked here.
 */
static void head_problem(const struct store_chain *sc, const char *key_path,
                         const char *const *files, size_t n, char *why, size_t cap)
{
    struct pw_audit_head h;
    unsigned char *key = NULL;
    size_t key_len = 0;

    why[0] = '\0';
    if (!sc->head[0] || !key_path[0] || n == 0) {
        return;
    }
    if (pw_audit_head_parse(sc->head, &h) != 0) {
        snprintf(why, cap, "the chain head the store holds is not readable");
        return;
    }
    if (pw_audit_key_load(key_path, &key, &key_len) != 0) {
        snprintf(why, cap,
                 "no audit key at %s (deleted with the trail?); the chain head could "
                 "not be checked",
                 key_path);
        return;
    }
    if (pw_audit_head_check(key, key_len, files, n, &h, NULL, why, cap) == 0) {
        why[0] = '\0';
    }
    pw_audit_key_free(key, key_len);
}

static int cmd_acknowledge(int argc, char **argv)
{
    static const struct option opts[] = {
        {"state-dir", required_argument, NULL, 's'},
        {"config", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},
        {"reason", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *state_dir = NULL;
    const char *conf_path = NULL;
    const char *reason = NULL;
    char key_path[4096] = "";
    struct file_list fl = {0};
    struct store_at sa = {0};
    struct store_chain sc;
    struct pw_operator_action act = {.outbox_id = 0};
    struct pw_store *st = NULL;
    struct timespec ts;
    char problem[1024];
    char found[1024];
    int c;
    int rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "s:c:k:r:h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            state_dir = optarg;
            break;
        case 'c':
            conf_path = optarg;
            break;
        case 'k':
            snprintf(key_path, sizeof(key_path), "%s", optarg);
            break;
        case 'r':
            reason = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!state_dir == !conf_path) {
        fprintf(stderr, "painwatch audit acknowledge: give exactly one of --state-dir or "
                        "--config\n");
        return 2;
    }
    if (conf_path &&
        from_config(conf_path, key_path, sizeof(key_path), optind >= argc ? &fl : NULL, &sa) != 0) {
        file_list_cleanup(&fl);
        return 2;
    }
    if (state_dir) {
        snprintf(sa.dir, sizeof(sa.dir), "%s", state_dir);
    }
    if (open_store("acknowledge", &sa, true, &st) != 0) {
        file_list_cleanup(&fl);
        return 2;
    }
    rc = read_chain(st, &sc);
    if (rc) {
        fprintf(stderr, "painwatch audit acknowledge: store: %s\n", pw_strerror(rc));
        pw_store_close(st);
        file_list_cleanup(&fl);
        return 2;
    }
    /* A discontinuity painwatchd recorded, else one this command sees (painwatchd stopped). */
    problem[0] = found[0] = '\0';
    if (sc.disc[0]) {
        disc_text(sc.disc, problem, sizeof(problem));
    } else {
        head_problem(&sc, key_path,
                     fl.n ? (const char *const *)fl.v : (const char *const *)(argv + optind),
                     fl.n ? fl.n : (size_t)(argc - optind), found, sizeof(found));
        snprintf(problem, sizeof(problem), "%s", found);
    }
    file_list_cleanup(&fl);
    if (!problem[0]) {
        printf("nothing to acknowledge: no chain discontinuity recorded in the store\n");
        pw_store_close(st);
        return 0;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    act.at = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    pw_cmd_operator_name(act.who, sizeof(act.who));
    snprintf(act.action, sizeof(act.action), "audit-acknowledge");
    snprintf(act.detail, sizeof(act.detail), "chain discontinuity acknowledged%s%s%s: %s",
             reason ? " (" : "", reason ? reason : "", reason ? ")" : "", problem);
    rc = pw_store_begin(st);
    if (rc == 0) {
        rc = pw_store_meta_set(st, PW_AUDIT_META_DISCONTINUITY, "");
    }
    if (rc == 0 && found[0]) {
        /* The old anchor is not in the trail: painwatchd anchors anew at its next start. */
        rc = pw_store_meta_set(st, PW_AUDIT_META_HEAD, "");
    }
    if (rc == 0) {
        rc = pw_store_operator_log(st, &act);
    }
    rc = rc == 0 ? pw_store_commit(st) : (pw_store_rollback(st), rc);
    pw_store_close(st);
    if (rc) {
        fprintf(stderr, "painwatch audit acknowledge: %s\n", pw_strerror(rc));
        return 2;
    }
    printf("chain discontinuity acknowledged by %s (recorded for the audit trail): %s\n", act.who,
           problem);
    return 0;
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
    if (strcmp(argv[1], "acknowledge") == 0) {
        return cmd_acknowledge(argc - 1, argv + 1);
    }
    fprintf(stderr, "painwatch audit: unknown subcommand '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
