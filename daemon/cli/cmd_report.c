/* SPDX-License-Identifier: Apache-2.0 */
/* painwatch report: the alert burden of a shadow-mode period (file sink NDJSON + audit trail). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "core/backtest.h"
#include "painwatch/err.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: painwatch report [--audit TRAIL]... [--from T] [--to T]\n"
            "                        [--format text|json|html] [--out FILE] [SHADOW.ndjson...]\n"
            "\n"
            "The alert-burden summary of a shadow-mode period, as `painwatch backtest` prints it:\n"
            "episodes from the file sink's NDJSON (sink.file: every create, resolve and\n"
            "reactivate painwatch would have sent), severities and the patients evaluated from\n"
            "the audit trail (--audit, repeatable: rotated files too). Without a sink file the\n"
            "audit trail's finding-raised / finding-resolved records are the episodes. Verify the\n"
            "trail first with `painwatch audit verify`. Exit 0 done, 2 on usage errors or\n"
            "unreadable input (file:line named).\n");
}

int pw_cmd_report(int argc, char **argv)
{
    const char **audits = calloc((size_t)argc, sizeof(*audits));
    const char **sinks = calloc((size_t)argc, sizeof(*sinks));
    const char *from = NULL, *to = NULL, *format = "text", *out = NULL;
    size_t na = 0, ns = 0;
    struct pw_bt_result res = {0};
    int64_t t_from = PW_TIME_NONE, t_to = PW_TIME_NONE;
    json_t *doc = NULL;
    char err[1024] = "";
    int rc = 2;

    if (!audits || !sinks) {
        goto done;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = strcmp(a, "--audit") == 0    ? &audits[na]
                            : strcmp(a, "--from") == 0   ? &from
                            : strcmp(a, "--to") == 0     ? &to
                            : strcmp(a, "--format") == 0 ? &format
                            : strcmp(a, "--out") == 0    ? &out
                                                         : NULL;
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            rc = 0;
            goto done;
        }
        if (!slot && a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "painwatch report: unknown option '%s'\n", a);
            goto done;
        }
        if (!slot) {
            sinks[ns++] = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "painwatch report: %s needs a value\n", a);
            goto done;
        }
        *slot = argv[++i];
        na += slot == &audits[na];
    }
    if (strcmp(format, "text") && strcmp(format, "json") && strcmp(format, "html")) {
        fprintf(stderr, "painwatch report: --format must be text, json or html\n");
        goto done;
    }
    if (ns + na == 0) {
        fprintf(stderr, "painwatch report: no shadow file and no --audit trail\n");
        usage(stderr);
        goto done;
    }
    if ((from && pw_fhir_parse_time(from, &t_from) < 0) ||
        (to && pw_fhir_parse_time(to, &t_to) < 0)) {
        fprintf(stderr, "painwatch report: --from/--to must be FHIR dates or date-times\n");
        goto done;
    }
    if (pw_bt_shadow_report(sinks, ns, audits, na, t_from, t_to, &res, err, sizeof(err)) < 0) {
        fprintf(stderr, "painwatch report: %s\n", err);
        goto done;
    }
    doc = pw_bt_result_json(&res);
    if (!doc || pw_bt_doc_write(doc, format, out, err, sizeof(err)) < 0) {
        fprintf(stderr, "painwatch report: %s\n", doc ? err : "out of memory");
        goto done;
    }
    rc = 0;
done:
    json_decref(doc);
    pw_bt_result_cleanup(&res);
    free(audits);
    free(sinks);
    return rc;
}
