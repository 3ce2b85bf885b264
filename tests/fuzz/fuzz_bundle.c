/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A search page as painwatchd meets it: parsed, filtered against a sync state (entries, ids,
 * lastUpdated, the next link), each resource normalized alone into a scratch timeline and
 * stored as the pipeline stores it (timeline codec), the patient's timeline rebuilt from the
 * stored bytes, then every rule evaluated at several instants. Invariant checked: the codec
 * round-trips (decode(encode(t)) encodes to the same bytes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "painwatch/engine.h"
#include "painwatch/err.h"
#include "painwatch/fhir.h"
#include "painwatch/fhir_search.h"
#include "painwatch/finding.h"
#include "painwatch/normalize.h"
#include "painwatch/timeline.h"

static struct pw_engine *engine;
static struct pw_norm_ctx ctx;

static void setup(void)
{
    pwf_init();
    if (engine != NULL) {
        return;
    }
    if (pw_norm_ctx_init(&ctx, pwf_terminology(), "cdc2022") < 0 ||
        pw_engine_new(&engine, "cdc2022") < 0) {
        abort();
    }
}

static void eval_at(const struct pw_timeline *tl, int64_t at)
{
    struct pw_findings fs = {0};
    (void)pw_engine_eval(engine, tl, at, &fs);
    (void)pw_timeline_baseline_mme_at(tl, at);
    pw_findings_cleanup(&fs);
}

static void check_roundtrip(const struct pw_timeline *tl)
{
    struct pw_bytes a = {0}, b = {0};
    struct pw_timeline back;
    pw_timeline_init(&back, tl->patient);
    if (pw_timeline_encode(tl, &a) == 0) {
        int rc = pw_timeline_decode(&back, a.v, a.n);
        if (rc == 0) {
            pw_timeline_sort(&back);
            if (pw_timeline_encode(&back, &b) == 0 &&
                (a.n != b.n || (a.n > 0 && memcmp(a.v, b.v, a.n) != 0))) {
                abort(); /* the codec lost or changed an event */
            }
        }
    }
    pw_bytes_cleanup(&a);
    pw_bytes_cleanup(&b);
    pw_timeline_cleanup(&back);
}

/* PWF_DUMP_CODEC=DIR: keep every stored form made (how corpus/timeline_codec was seeded). */
static void dump_codec(const struct pw_bytes *enc)
{
    static unsigned n;
    const char *dir = getenv("PWF_DUMP_CODEC");
    char path[512];
    if (dir != NULL && enc->n > 16) {
        snprintf(path, sizeof(path), "%s/codec-%04u", dir, n++);
        pwf_write_file(path, enc->v, enc->n);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    json_t *page = json_loadb((const char *)data, size, 0, NULL);
    if (page == NULL) {
        return 0;
    }
    struct pw_sync_state st;
    json_t *resources = NULL;
    const char *next = NULL;
    int64_t max_ms = PW_SYNC_NO_CURSOR;
    struct pw_page_stats stats;
    if (pw_sync_state_init(&st) < 0) {
        abort();
    }
    if (pw_sync_page_filter(&st, page, &resources, &next, &max_ms, &stats) == 0) {
        char *state = NULL;
        if (next != NULL) {
            (void)pw_url_same_origin(next, "https://ehr.example.org/fhir");
        }
        if (pw_sync_state_dump(&st, 1000, &state) == 0) {
            struct pw_sync_state again;
            if (pw_sync_state_init(&again) == 0) {
                (void)pw_sync_state_load(&again, state);
                pw_sync_state_cleanup(&again);
            }
        }
        free(state);
    }
    /* Everything in the page goes to one patient's timeline (grouping is not the point here). */
    json_t *list = resources ? resources : json_object_get(page, "entry");
    struct pw_fhir_index *idx = NULL;
    struct pw_resolver refs;
    struct pw_timeline tl, scratch;
    struct pw_bytes enc = {0};
    char patient[256] = "Patient/fuzz";
    if (pw_fhir_index_new(&idx) < 0) {
        abort();
    }
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item)
    {
        json_t *res = json_object_get(item, "resource") ? json_object_get(item, "resource") : item;
        const char *full = json_string_value(json_object_get(item, "fullUrl"));
        (void)pw_fhir_index_add(idx, full, res);
    }
    pw_fhir_index_resolver(idx, &refs);
    json_array_foreach(list, i, item)
    {
        json_t *res = json_object_get(item, "resource") ? json_object_get(item, "resource") : item;
        if (pw_normalize_patient(res, &refs, patient, sizeof(patient)) == 0) {
            break;
        }
    }
    pw_timeline_init(&tl, patient);
    pw_timeline_init(&scratch, patient);
    json_array_foreach(list, i, item)
    {
        json_t *res = json_object_get(item, "resource") ? json_object_get(item, "resource") : item;
        pw_timeline_clear(&scratch);
        if (pw_normalize_resource(&ctx, res, &refs, &scratch) < 0) {
            continue;
        }
        if (pw_timeline_encode(&scratch, &enc) == 0) {
            dump_codec(&enc);
            if (pw_timeline_decode(&tl, enc.v, enc.n) == PW_EJSON) {
                abort(); /* the codec cannot read what it just wrote */
            }
        }
    }
    pw_timeline_sort(&tl);
    eval_at(&tl, PWF_NOW);
    eval_at(&tl, max_ms == PW_SYNC_NO_CURSOR ? 0 : max_ms / 1000);
    eval_at(&tl, PWF_NOW + 400LL * 86400);
    check_roundtrip(&tl);
    pw_bytes_cleanup(&enc);
    pw_timeline_cleanup(&scratch);
    pw_timeline_cleanup(&tl);
    pw_fhir_index_free(idx);
    json_decref(resources);
    pw_sync_state_cleanup(&st);
    json_decref(page);
    return 0;
}
