/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by normalize.c (observations, conditions, referrals) and normalize_med.c. */
#ifndef PAINWATCH_CLINICAL_NORMALIZE_IMPL_H
#define PAINWATCH_CLINICAL_NORMALIZE_IMPL_H

#include "painwatch/normalize.h"

/** Add a data-quality event for @p src. @return what pw_timeline_add_dq returns. */
int pw_norm_dq(struct pw_timeline *tl, const struct pw_ref *src, const char *code, const char *fmt,
               ...) __attribute__((format(printf, 4, 5)));

/** MedicationRequest -> order (normalize_med.c); @p src is pw_fhir_ref_of(@p res). */
int pw_norm_medication_request(const struct pw_norm_ctx *ctx, const json_t *res,
                               const struct pw_ref *src, const struct pw_resolver *refs,
                               struct pw_timeline *tl);

/**
 * Issue 16 (normalize_med.c): a Condition of opioid use disorder (ICD-10 F11.x, SNOMED CT opioid
 * dependence/abuse, or the words) puts the patient outside the cancer-pain opioid rules: adds a
 * marker order (flag PW_ORDER_OUD, no class, role other, in force from onset to abatement) and
 * an `opioid-use-disorder` data-quality event. @return 1 (added), 0 (not such a Condition), or
 * what pw_timeline_add_* returns.
 */
int pw_norm_oud_condition(const json_t *res, const struct pw_ref *src, struct pw_timeline *tl);

#endif
