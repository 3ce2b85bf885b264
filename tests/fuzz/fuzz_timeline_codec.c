/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Stored timeline bytes as a damaged or hostile store holds them: decoded (the codec must refuse
 * what it cannot read, never read past the buffer), then every rule evaluated on whatever was
 * accepted (decoded times and numbers reach the rules' arithmetic: issue 18 finding 11), then
 * re-encoded and decoded again (must be accepted and give the same bytes).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "painwatch/engine.h"
#include "painwatch/err.h"
#include "painwatch/finding.h"
#include "painwatch/timeline.h"

static struct pw_engine *engine;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pwf_init();
    if (engine == NULL && pw_engine_new(&engine, "cdc2022") < 0) {
        abort();
    }
    struct pw_timeline tl;
    pw_timeline_init(&tl, "Patient/fuzz");
    (void)pw_timeline_is_encoded(data, size);
    int rc = pw_timeline_decode(&tl, data, size);
    if (rc == 0 || rc == PW_E2BIG) {
        struct pw_findings fs = {0};
        struct pw_bytes a = {0}, b = {0};
        pw_timeline_sort(&tl);
        (void)pw_engine_eval(engine, &tl, PWF_NOW, &fs);
        (void)pw_timeline_baseline_mme_at(&tl, PWF_NOW);
        pw_findings_cleanup(&fs);
        if (pw_timeline_encode(&tl, &a) == 0) {
            struct pw_timeline back;
            pw_timeline_init(&back, "Patient/fuzz");
            int rc2 = pw_timeline_decode(&back, a.v, a.n);
            if (rc2 == PW_EJSON) {
                abort(); /* the codec cannot read what it just wrote */
            }
            pw_timeline_sort(&back);
            if (rc2 == 0 && pw_timeline_encode(&back, &b) == 0 &&
                (a.n != b.n || (a.n > 0 && memcmp(a.v, b.v, a.n) != 0))) {
                abort(); /* decode(encode(t)) is not t */
            }
            pw_timeline_cleanup(&back);
        }
        pw_bytes_cleanup(&a);
        pw_bytes_cleanup(&b);
    }
    pw_timeline_cleanup(&tl);
    return 0;
}
