/* SPDX-License-Identifier: Apache-2.0 */
/*
 * painwatch codesystem (issue 21): the rule CodeSystem, a FHIR R4 CodeSystem resource generated
 * from the rule registry (every rule, its display and definition), for loading into the EHR's
 * terminology server. config/codesystem-rules.json is its output with the default URL.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "cli/cmd.h"
#include "painwatch/conf.h"
#include "painwatch/finding_text.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: painwatch codesystem [--config FILE | --url URL]\n"
                 "  Print the rule CodeSystem (FHIR R4 JSON) with the canonical URL of FILE's\n"
                 "  rule_code_system, or URL, or the default. Load it into the EHR's terminology\n"
                 "  so Flag.code resolves. Exit 0, 2 usage or invalid configuration.\n");
}

static int print_cs(const char *url)
{
    json_t *cs = pw_rule_codesystem(url);
    int rc = cs ? json_dumpf(cs, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : -1;

    json_decref(cs);
    if (rc != 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
        fprintf(stderr, "painwatch codesystem: cannot write the CodeSystem\n");
        return 2;
    }
    return 0;
}

int pw_cmd_codesystem(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"url", required_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *file = NULL;
    const char *url = NULL;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:u:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            file = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc || (file && url)) {
        usage(stderr);
        return 2;
    }
    if (!file) {
        return print_cs(url);
    }
    struct pw_conf_errors errs = {0};
    struct pw_conf *conf = NULL;
    int rc = pw_conf_load_file(&conf, file, &errs);
    for (size_t i = 0; i < errs.n; i++) {
        fprintf(stderr, "%s\n", errs.lines[i]);
    }
    pw_conf_errors_cleanup(&errs);
    if (rc < 0) {
        fprintf(stderr, "%s: invalid configuration (`painwatch config check` says more)\n", file);
        pw_conf_free(conf);
        return 2;
    }
    rc = print_cs(pw_conf_daemon(conf)->rule_code_system);
    pw_conf_free(conf);
    return rc;
}
