/* SPDX-License-Identifier: Apache-2.0 */
/* painwatch audit verify|show: check the HMAC chain of a trail, or print it for an auditor. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli/cmd.h"
#include "painwatch/audit.h"
#include "painwatch/err.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: painwatch audit verify --key FILE TRAIL...\n"
        "       painwatch audit show [--patient REF] [--since T] [--until T] [--rule ID]\n"
        "                            [--format text|json] TRAIL...\n"
        "\n"
        "verify  checks every record's HMAC and its place in the chain, across rotated files\n"
        "        (any order: files are ordered by their header sequence). Prints the first\n"
        "        record that does not verify as FILE:LINE: why. Exit 0 only when all verify,\n"
        "        1 when not, 2 on usage errors or unreadable files.\n"
        "        --key FILE  the HMAC key file the daemon writes with (not world-readable)\n"
        "show    prints records for an auditor (headers skipped; does not verify: run verify).\n"
        "        --patient REF  \"Patient/123\" or \"123\"      --rule ID  rule id\n"
        "        --since T / --until T  RFC 3339 (2026-11-26T08:00:00Z) or a date; since is\n"
        "                       inclusive, until exclusive\n"
        "        --format text|json  a table (default) or the records as JSON lines\n");
}

static int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *key_path = NULL;
    struct pw_audit_verdict v;
    unsigned char *key = NULL;
    size_t key_len = 0;
    int c;
    int rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            key_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!key_path || optind >= argc) {
        fprintf(stderr, "painwatch audit verify: %s\n",
                key_path ? "no trail file given" : "--key FILE is required");
        usage(stderr);
        return 2;
    }
    rc = pw_audit_key_load(key_path, &key, &key_len);
    if (rc) {
        fprintf(stderr, "painwatch audit verify: key %s: %s\n", key_path, pw_strerror(rc));
        return 2;
    }
    rc = pw_audit_verify_files(key, key_len, (const char *const *)(argv + optind),
                               (size_t)(argc - optind), &v);
    pw_audit_key_free(key, key_len);
    if (rc == PW_EVERIFY) {
        printf("%s:%ld: %s\n", v.file, v.line, v.why);
        printf("FAILED: %llu records in %zu files verified before this point\n",
               (unsigned long long)v.records, v.files);
        return 1;
    }
    if (rc) {
        fprintf(stderr, "painwatch audit verify: %s: %s\n", v.file[0] ? v.file : "?",
                v.why[0] ? v.why : pw_strerror(rc));
        return 2;
    }
    printf("OK: %llu records in %zu files verify\n", (unsigned long long)v.records, v.files);
    if (v.torn_acknowledged) {
        printf("note: %u interrupted write(s) acknowledged by the writer; first: %s\n",
               v.torn_acknowledged, v.note);
    }
    if (strcmp(v.first_prev, "0000000000000000000000000000000000000000000000000000000000000000") !=
        0) {
        printf("note: the chain starts at file sequence %llu, which links to an earlier file "
               "not given (digest %.12s...)\n",
               (unsigned long long)v.first_seq, v.first_prev);
    }
    printf("last digest: %s\n", v.last);
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
    fprintf(stderr, "painwatch audit: unknown subcommand '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
