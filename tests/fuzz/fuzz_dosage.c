/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Dosage and sig parsing: the input is a Dosage object (or an array of them, or a whole
 * MedicationRequest, whose dosageInstruction is then normalized with the terminology tables, so
 * dose units, frequencies, ranges and maxima reach the MME arithmetic).
 */
#include <math.h>
#include <stdlib.h>

#include <jansson.h>

#include "clinical/dosage.h"
#include "fuzz.h"
#include "painwatch/normalize.h"
#include "painwatch/timeline.h"

static struct pw_norm_ctx ctx;
static int ready;

static void one(const json_t *d)
{
    struct pw_dosage out;
    pw_dosage_parse(d, &out);
    (void)pw_dosage_prn(d);
    const json_t *timing = json_object_get(json_object_get(d, "timing"), "repeat");
    (void)pw_dosage_unit_days(json_string_value(json_object_get(timing, "periodUnit")));
    (void)pw_dosage_code_per_day(json_string_value(json_object_get(
        json_array_get(
            json_object_get(json_object_get(json_object_get(d, "timing"), "code"), "coding"), 0),
        "code")));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pwf_init();
    if (!ready) {
        if (pw_norm_ctx_init(&ctx, pwf_terminology(), "cdc2022") < 0) {
            abort();
        }
        ready = 1;
    }
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (j == NULL) {
        return 0;
    }
    if (json_is_array(j)) {
        size_t i;
        json_t *d;
        json_array_foreach(j, i, d)
        {
            one(d);
        }
    } else if (json_object_get(j, "resourceType") != NULL) {
        struct pw_timeline tl;
        json_t *d;
        size_t i;
        pw_timeline_init(&tl, "Patient/fuzz");
        json_array_foreach(json_object_get(j, "dosageInstruction"), i, d)
        {
            one(d);
        }
        (void)pw_normalize_resource(&ctx, j, NULL, &tl);
        pw_timeline_sort(&tl);
        (void)pw_timeline_baseline_mme_at(&tl, PWF_NOW);
        pw_timeline_cleanup(&tl);
    } else {
        one(j);
    }
    json_decref(j);
    return 0;
}
