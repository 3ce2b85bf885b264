/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the clinical tests: the shipped terminology tables and MedicationRequest builders. */
#ifndef PAINWATCH_TESTS_CLINICAL_SUPPORT_H
#define PAINWATCH_TESTS_CLINICAL_SUPPORT_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "painwatch/normalize.h"
#include "painwatch/terminology.h"
#include "painwatch/timeline.h"
#include "support/pwtest.h"

/** The tables under config/terminology, loaded once per test binary. */
static inline struct pw_terminology *clin_term(void)
{
    static struct pw_terminology *term;
    if (term == NULL) {
        char err[512] = "";
        int rc = pw_terminology_load(&term, pwt_src_path("config/terminology"), err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "terminology: %s\n", err);
        }
        assert_int_equal(rc, 0);
    }
    return term;
}

static inline json_t *clin_json(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    if (j == NULL) {
        fprintf(stderr, "bad test JSON at %d:%d: %s\n%s\n", err.line, err.column, err.text, text);
    }
    assert_non_null(j);
    return j;
}

/**
 * An active MedicationRequest for Patient/p1 authored 2026-01-01T08:00Z, coded with RxNorm
 * @p rxcui, with @p dosage as its dosageInstruction array (JSON text).
 */
static inline json_t *clin_medreq(const char *id, const char *rxcui, const char *dosage)
{
    char buf[8192];
    snprintf(buf, sizeof(buf),
             "{\"resourceType\":\"MedicationRequest\",\"id\":\"%s\",\"status\":\"active\","
             "\"intent\":\"order\",\"subject\":{\"reference\":\"Patient/p1\"},"
             "\"authoredOn\":\"2026-01-01T08:00:00Z\",\"medicationCodeableConcept\":{\"coding\":"
             "[{\"system\":\"http://www.nlm.nih.gov/research/umls/rxnorm\",\"code\":\"%s\"}]},"
             "\"dosageInstruction\":%s}",
             id, rxcui, dosage);
    return clin_json(buf);
}

/** Normalize @p res (reference stolen) into @p tl with factor set @p set; the single order. */
static inline const struct pw_med_order *clin_order(const char *set, json_t *res,
                                                    struct pw_timeline *tl)
{
    struct pw_norm_ctx ctx;
    assert_int_equal(pw_norm_ctx_init(&ctx, clin_term(), set), 0);
    pw_timeline_init(tl, "Patient/p1");
    assert_int_equal(pw_normalize_resource(&ctx, res, NULL, tl), 0);
    pw_norm_ctx_cleanup(&ctx);
    json_decref(res);
    return tl->orders.n == 1 ? &tl->orders.v[0] : NULL;
}

/** True when @p tl has a data-quality event with @p code. */
static inline bool clin_has_dq(const struct pw_timeline *tl, const char *code)
{
    for (size_t i = 0; i < tl->dq.n; i++) {
        if (strcmp(tl->dq.v[i].code, code) == 0) {
            return true;
        }
    }
    return false;
}

#define assert_near(a, b) assert_true(fabs((double)(a) - (double)(b)) < 1e-6)

#endif
