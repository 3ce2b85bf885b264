/* SPDX-License-Identifier: Apache-2.0 */
/* What a rule concludes about a patient: a finding, with its episode key and evidence. */
#ifndef PAINWATCH_FINDING_H
#define PAINWATCH_FINDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "painwatch/limits.h"
#include "painwatch/timeline.h"

enum pw_severity {
    PW_SEV_INFO = 0,
    PW_SEV_LOW,
    PW_SEV_MEDIUM,
    PW_SEV_HIGH,
};

/** "info", "low", "medium", "high". */
const char *pw_severity_name(enum pw_severity s);

#define PW_KEY_MAX       65 /* episode key: 64 hex chars + NUL */
#define PW_NUMBERS_MAX   8
#define PW_SITUATION_MAX 256
/* issue 21: the banner summary (Flag.code.text, CDS card summary): 140 characters + NUL */
#define PW_SUMMARY_MAX       141
#define PW_EVIDENCE_TEXT_MAX 112

/** A named number that justified a finding (goes to the audit trail and the Flag narrative). */
struct pw_number {
    const char *name; /* static string, e.g. "baseline_mme_per_day" */
    double value;
};

/**
 * One finding. Rules fill rule..numbers and situation; the engine fills patient and key.
 *
 * The episode key stays the same when the same situation is evaluated again and changes when the
 * situation does: key = hex(SHA-256(rule id | patient | situation)). A rule puts into situation
 * exactly what defines the episode (e.g. the ids+versions of the orders forming the regimen, or
 * the id of the high score), and nothing that moves with `now`.
 */
struct pw_finding {
    const char *rule;     /* static rule id */
    const char *category; /* "clinical" or "drug" (flag-category) */
    enum pw_severity severity;
    char patient[PW_REF_MAX];
    char key[PW_KEY_MAX];
    char situation[PW_SITUATION_MAX];
    char text[PW_TEXT_MAX]; /* clinician-readable, with the numbers */
    int64_t since;          /* when the situation began (Flag.period.start) */
    struct pw_ref evidence[PW_EVIDENCE_MAX];
    size_t n_evidence;
    struct pw_number numbers[PW_NUMBERS_MAX];
    size_t n_numbers;
    const char *factor_set; /* "cdc2022", ... (static) */
    /* issue 21 (appended; filled by pw_finding_complete(), finding_text.h) */
    char summary[PW_SUMMARY_MAX]; /* what, with the key number; <= 140 characters */
    /* evidence[i] in words ("oxycodone ER 20 mg q12h, ordered 5 Dec 15:14"), "" unknown */
    char evidence_text[PW_EVIDENCE_MAX][PW_EVIDENCE_TEXT_MAX];
    char encounter[PW_REF_MAX]; /* inpatient/emergency encounter in progress, "" none */
    bool encounter_bound;       /* the rule's findings only hold during such an encounter */
    bool audit_only; /* not written to a sink (severity setting, encounter ended): audit only */
};

/** A growable list of findings. Zero-initialise, then push; free with pw_findings_cleanup(). */
struct pw_findings {
    struct pw_finding *v;
    size_t n;
    size_t cap;
};

/** Append a copy of @p f. @return 0 or PW_ENOMEM. */
int pw_findings_push(struct pw_findings *list, const struct pw_finding *f);

/** Free the array; the list is empty and reusable afterwards. */
void pw_findings_cleanup(struct pw_findings *list);

/** Add evidence (ignored past PW_EVIDENCE_MAX) and a number (ignored past PW_NUMBERS_MAX). */
void pw_finding_add_evidence(struct pw_finding *f, const struct pw_ref *ref);
void pw_finding_add_number(struct pw_finding *f, const char *name, double value);

#endif
