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

/*
 * Issue 17 (normalize_context.c): clinical context. Condition: active cancer, end-of-life
 * findings; ServiceRequest/Encounter: setting, hospice / comfort care; MedicationAdministration:
 * doses given, benzodiazepine infusions; Goal/CarePlan: comfort care. @return 0 or an error.
 * pw_norm_vital_context returns 1 when @p res is no vital sign or sedation score.
 */
int pw_norm_condition_context(const struct pw_norm_ctx *ctx, const json_t *res,
                              const struct pw_ref *src, struct pw_timeline *tl);
int pw_norm_encounter_context(const struct pw_norm_ctx *ctx, const json_t *res,
                              const struct pw_ref *src, struct pw_timeline *tl);
int pw_norm_other_context(const struct pw_norm_ctx *ctx, const json_t *res,
                          const struct pw_ref *src, struct pw_timeline *tl);
int pw_norm_vital_context(const struct pw_norm_ctx *ctx, const json_t *res,
                          const struct pw_ref *src, struct pw_timeline *tl);

/**
 * A topical, ophthalmic, otic, nasal or inhaled form (route of a dosageInstruction, or the drug
 * name's dose form): not a systemic adjuvant analgesic.
 */
bool pw_norm_local_form(const json_t *res, const char *drug_name);

/**
 * A Condition on the problem list counts when its clinical status is active, recurrence or
 * relapse (absent: counted, as R4 allows for older records) and it is neither refuted nor entered
 * in error.
 */
bool pw_norm_condition_counts(const json_t *res);

/** ICD-10-CM code in the CDC cdc-malignant-cancer-conditions value set (its compose). */
bool pw_norm_icd10_malignant(const char *code);

/**
 * Whole-word @p word in @p text outside a negation scope (NegEx-style: "no", "not", "denies",
 * "without", "negative for", "free of", "absence of" negate the words after them up to a
 * sentence or clause end, "but", "however", or 5 words).
 */
bool pw_norm_word_affirmed(const char *word, const char *text);

#endif
