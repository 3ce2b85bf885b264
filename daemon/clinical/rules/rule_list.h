/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rule registry: one line registers a rule. Include with PW_RULE(name) defined; the engine
 * includes it twice (declarations of `pw_rule_<name>`, then the table). Order is evaluation order.
 */
/* no include guard: this is an X-list */
PW_RULE(titration_step_too_large)
PW_RULE(titration_too_soon)
PW_RULE(titration_step_too_small)
PW_RULE(pain_uncontrolled_no_titration)
PW_RULE(rescue_dose_missing)
PW_RULE(rescue_dose_out_of_range)
PW_RULE(bowel_regimen_missing)
PW_RULE(neuropathic_pain_no_adjuvant)
PW_RULE(pain_type_undocumented)
PW_RULE(reassessment_overdue_after_dose_change)
PW_RULE(reassessment_overdue_after_high_score)
PW_RULE(palliative_referral_suggested)
PW_RULE(opioid_rotation_without_reduction)
PW_RULE(opioid_benzodiazepine_concurrent)
PW_RULE(order_dose_implausible)
PW_RULE(methadone_conversion_review)
PW_RULE(opioid_sedation_risk)
PW_RULE(rescue_use_frequent)
PW_RULE(pain_not_assessed_at_visit)
