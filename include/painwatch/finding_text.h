/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue 21: how a finding reads, independent of the sink that carries it (Flag, DetectedIssue,
 * CDS card): the banner summary (<= 140 characters, with the key number), the evidence in words,
 * the narrative for a clinician (drug names, doses, local times in the configured timezone), the
 * encounter in progress, and the rule presentation table (display, definition, encounter-bound)
 * from which the rule CodeSystem is generated. Pure but for the process timezone (TZ).
 */
#ifndef PAINWATCH_FINDING_TEXT_H
#define PAINWATCH_FINDING_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "painwatch/finding.h"
#include "painwatch/localtime.h"
#include "painwatch/rule.h"
#include "painwatch/timeline.h"

/** The banner summary of one finding: what, with its key number. */
typedef void pw_summary_fn(const struct pw_finding *f, const struct pw_timeline *tl, char *out,
                           size_t cap);

/** How a rule presents itself: one row per registered rule (finding_text.c). */
struct pw_rule_text {
    const char *id;         /* the rule id */
    const char *definition; /* CodeSystem concept definition: when the rule fires, for whom */
    pw_summary_fn *summary; /* builds the banner summary */
    bool encounter_bound;   /* its Flags hold only during an inpatient/emergency encounter */
};

/** The row of @p rule_id, or NULL (a rule without one is a defect a test catches). */
const struct pw_rule_text *pw_rule_text_find(const char *rule_id);

/**
 * The summary of @p f as its rule's builder writes it, untruncated: writes at most @p cap bytes
 * and @return the length it needed (snprintf-like), so a test can check it against 140.
 */
size_t pw_finding_summary(const struct pw_finding *f, const struct pw_timeline *tl, char *out,
                          size_t cap);

/**
 * Fill the issue-21 fields of @p f (an engine-finished finding of rule @p r evaluated on @p tl at
 * @p now): summary, evidence_text, encounter, encounter_bound, and audit_only (severity below
 * @p post_min, or an encounter-bound finding with no encounter in progress).
 */
void pw_finding_complete(struct pw_finding *f, const struct pw_rule *r,
                         const struct pw_timeline *tl, int64_t now, enum pw_severity post_min);

/**
 * The XHTML narrative (`<div xmlns=...>...</div>`) of @p f for a clinician: title, severity,
 * the full text, the numbers under their clinical names, evidence in words with the reference
 * beside it, local times. Caller frees. @return NULL on ENOMEM.
 */
char *pw_finding_narrative(const struct pw_finding *f);

/** The clinical label of a number name ("Previous baseline (MME/day)"), NULL when none. */
const char *pw_number_label(const char *name);

/** "info" -> PW_SEV_INFO, ... @return 0 or PW_EINVAL. */
int pw_severity_parse(const char *name, enum pw_severity *out);

/**
 * The rule CodeSystem (FHIR R4 CodeSystem resource) generated from the rule registry: every
 * rule with its display (title) and definition; @p url its canonical URL (NULL: the default
 * PW_FLAG_CODE_SYSTEM). New reference, NULL on ENOMEM.
 */
json_t *pw_rule_codesystem(const char *url);

#endif
