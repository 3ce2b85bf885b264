/* SPDX-License-Identifier: Apache-2.0 */
/* FHIR R4 resources to timeline events. The only place that reads clinical JSON. */
#ifndef PAINWATCH_NORMALIZE_H
#define PAINWATCH_NORMALIZE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "painwatch/fhir.h"
#include "painwatch/terminology.h"
#include "painwatch/timeline.h"

/** A list of (system, code) pairs; system "" matches any system. */
struct pw_code_set {
    struct pw_code {
        char system[PW_CODE_MAX];
        char code[64];
    } * v;
    size_t n, cap;
};

/** A list of lower-case words or phrases matched as whole words in text and displays. */
struct pw_word_set {
    char (*v)[64];
    size_t n, cap;
};

/**
 * What normalize recognises. pw_norm_ctx_init() fills the defaults below; sites add codes with
 * pw_code_set_add() / pw_word_set_add() (config keys are the member names).
 *   pain_intensity  LOINC 72514-3, 38208-5, 38221-8, 38214-3
 *   neuropathic     SNOMED 247398009; words: neuropathic, burning, shooting, tingling,
 *                   electric, pins and needles
 *   somatic/visceral/mixed  words somatic|nociceptive somatic, visceral, mixed pain; no
 *                   default codes (sites add theirs)
 *   palliative      SNOMED 103735009 (palliative care) and its specialist/anticipatory
 *                   children and hospice referral/admission codes (therapies-indicating-end-of-
 *                   life-care, hospice-procedure value sets); words: palliative, hospice
 */
struct pw_norm_ctx {
    const struct pw_terminology *term; /* borrowed */
    const char *factor_set;            /* borrowed: "cdc2022" or "cdc2016" */
    struct pw_code_set pain_intensity;
    struct pw_code_set neuropathic, somatic, visceral, mixed;
    struct pw_word_set neuropathic_words, somatic_words, visceral_words, mixed_words;
    struct pw_code_set palliative;
    struct pw_word_set palliative_words;
    /* issue 17: site codes of sedation scales (no default LOINC; "POSS"/"RASS" in the code's
     * text or display are recognised without them) */
    struct pw_code_set sedation_poss, sedation_rass;
};

/**
 * Defaults for every list. @p term and @p factor_set are borrowed and must outlive the context.
 * @return 0, PW_ENOMEM, or PW_EINVAL when @p factor_set is not a clinical set of @p term.
 */
int pw_norm_ctx_init(struct pw_norm_ctx *ctx, const struct pw_terminology *term,
                     const char *factor_set);
void pw_norm_ctx_cleanup(struct pw_norm_ctx *ctx);

/**
 * The normalization's identity as 16 hex digits + NUL (PW_NORM_DIGEST_MAX): the encoding version,
 * the factor set, the terminology tables and every code and word set. Normalized events stored
 * under another digest were derived by other rules (the pipeline re-reads them from the servers).
 * @return 0 or PW_ENOMEM.
 */
int pw_norm_ctx_digest(const struct pw_norm_ctx *ctx, char out[PW_NORM_DIGEST_MAX]);

int pw_code_set_add(struct pw_code_set *s, const char *system, const char *code);
int pw_word_set_add(struct pw_word_set *s, const char *word);
void pw_code_set_clear(struct pw_code_set *s);

/**
 * Whether normalization reads resources of @p type (a patient's own record: Patient, Observation,
 * Condition, MedicationRequest, ServiceRequest, Encounter, MedicationAdministration, Goal,
 * CarePlan): only these make a patient appear in `painwatch check` and the backtest (not Claims,
 * Provenance, GuidanceResponses).
 */
bool pw_normalize_reads_type(const char *type);

/**
 * Whether normalization looks up resources of @p type by reference outside a patient's record
 * (an order's medicationReference: Medication). A tool that keeps resources for references keeps
 * only these and the patients' own, not Claims or ExplanationOfBenefits no patient names.
 */
bool pw_normalize_resolves_type(const char *type);

/**
 * The patient a resource belongs to, as "Patient/<id>": Patient itself, else subject or
 * patient. urn:uuid: and absolute references are resolved through @p refs (may be NULL).
 * @return 0, or PW_ENOENT when the resource names no patient.
 */
int pw_normalize_patient(const json_t *res, const struct pw_resolver *refs, char *out, size_t n);

/**
 * Add the events @p res yields to @p tl: a pain score, a pain type, a medication order or a
 * palliative referral; or data-quality events for what is relevant but unusable. Resources of
 * other types, other codes, drafts and entered-in-error add nothing. Contained Medications
 * ("#id") are read from @p res; others through @p refs (may be NULL).
 *
 * Pain score: Observation (or a component of one) coded in pain_intensity, status
 * final|amended|corrected, value 0-10 (valueQuantity, valueInteger, numeric valueString), time
 * effectiveDateTime | effectivePeriod.start | effectiveInstant | issued.
 *
 * MedicationRequest: the drug is the best RxNorm coding the tables know (product > ingredient >
 * value set), else a name in the text/displays. Dose per day = the most the sig allows: for each
 * dosageInstruction the first convertible dose (ordered, calculated, Epic ordered-dose, others,
 * Epic admin-amount; doseRange high end) x administrations per day (frequencyMax over the
 * shortest period, timeOfDay/when counts, timing.code, dayOfWeek averaged over the week), capped
 * by maxDosePerPeriod. Each dosageInstruction is one order part (issue 16: route, parts, taper
 * steps, bounds, plausibility; README "Medication engine"). Patches: mcg/h worn. mme_per_dose uses
 * the high end of a dose range. Times: start = authoredOn | validityPeriod.start |
 * boundsPeriod.start | meta.lastUpdated; active|on-hold end at validityPeriod.end when it has one,
 * else never; completed|stopped|cancelled end at the earliest of validityPeriod.end, start +
 * expected supply, meta.lastUpdated (R4 has no status date), else at start. doNotPerform, intent
 * proposal|option, draft and entered-in-error are ignored. Role: baseline = opioid not PRN;
 * rescue = PRN opioid that is not long-acting, transdermal or rapid-onset fentanyl.
 *
 * Data-quality codes: unknown-drug, unresolved-medication, unknown-status, unstructured-sig,
 * unit-not-convertible, dose-unit-assumed, no-factor, drug-identified-by-text, no-start-time,
 * no-time, missing-value, value-out-of-range.
 * @return 0 (also when nothing was added), PW_ENOMEM, or PW_E2BIG past the timeline's cap.
 */
int pw_normalize_resource(const struct pw_norm_ctx *ctx, const json_t *res,
                          const struct pw_resolver *refs, struct pw_timeline *tl);

/**
 * pw_normalize_patient() and pw_normalize_resource() for a caller that has read the resource's
 * resourceType (@p type) and id, or its pw_fhir_ref_of() (@p ref), already: the same results
 * without looking them up again (the sync path reads them once per resource).
 */
int pw_normalize_patient_of(const json_t *res, const char *type, const char *id,
                            const struct pw_resolver *refs, char *out, size_t n);
int pw_normalize_resource_of(const struct pw_norm_ctx *ctx, const json_t *res, const char *type,
                             const struct pw_ref *ref, const struct pw_resolver *refs,
                             struct pw_timeline *tl);

#endif
