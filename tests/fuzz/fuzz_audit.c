/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `painwatch audit verify` and `audit show` over a trail file of arbitrary bytes. The input's
 * first byte chooses the layout: one file, or the input cut in two at the first form feed
 * (two files of one trail, given in reverse order, as the verifier sorts them). The key is the
 * key of tests/fixtures/audit (the seeds are those fixtures: they verify, so mutations reach the
 * checks past the HMAC).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "painwatch/audit.h"

static const char key[] = "fixture key for painwatch audit tests - not a secret";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pwf_init();
    char a[512], b[512];
    const char *files[2];
    size_t n_files = 1;
    snprintf(a, sizeof(a), "%s/trail.jsonl", pwf_tmpdir());
    snprintf(b, sizeof(b), "%s/trail.1.jsonl", pwf_tmpdir());
    const uint8_t *ff = size > 1 && (data[0] & 1) ? memchr(data + 1, '\f', size - 1) : NULL;
    if (ff != NULL) {
        size_t first = (size_t)(ff - data);
        pwf_write_file(b, data + 1, first - 1);
        pwf_write_file(a, ff + 1, size - first - 1);
        files[0] = a;
        files[1] = b;
        n_files = 2;
    } else {
        pwf_write_file(a, size > 0 ? data + 1 : data, size > 0 ? size - 1 : 0);
        files[0] = a;
    }
    struct pw_audit_verdict v;
    memset(&v, 0, sizeof(v));
    (void)pw_audit_verify_files((const unsigned char *)key, sizeof(key) - 1, files, n_files, &v);
    FILE *out = fopen("/dev/null", "w");
    if (out == NULL) {
        abort();
    }
    struct pw_audit_filter flt = {.since_ms = INT64_MIN, .until_ms = INT64_MAX, .json = true};
    (void)pw_audit_show(out, out, files, n_files, &flt);
    struct pw_audit_filter flt2 = {.patient = "Patient/p1",
                                   .rule = "reassessment_overdue",
                                   .since_ms = 0,
                                   .until_ms = INT64_MAX,
                                   .json = false};
    (void)pw_audit_show(out, out, files, n_files, &flt2);
    fclose(out);
    return 0;
}
