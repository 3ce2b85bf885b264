/* SPDX-License-Identifier: Apache-2.0 */
/* CDS Hooks internals: the evaluation of one hook call into cards (cds_hooks_cards.c). */
#ifndef PAINWATCH_CORE_CDS_HOOKS_INT_H
#define PAINWATCH_CORE_CDS_HOOKS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "painwatch/finding.h"
#include "painwatch/timeline.h"

struct pw_store;
struct pw_evaluator;

struct pw_cds_env {
    struct pw_store *store;
    const struct pw_evaluator *ev;
    struct pw_synced synced;
    void (*synced_for)(void *arg, const char *patient, struct pw_synced *out); /* may be NULL */
    void *synced_arg;
    const char *rule_system;
    int64_t horizon_s; /* order-sign: both evaluations at now + this */
};

/** What a hook call found, for the response and the audit trail. */
struct pw_cds_result {
    json_t *cards;            /* the "cards" array (new reference) */
    struct pw_findings found; /* the findings carded, in card order */
    char patient[PW_REF_MAX]; /* "Patient/<id>" */
    bool prefetch;            /* prefetched resources were overlaid on the stored timeline */
    size_t drafts;            /* order-sign: draft MedicationRequests evaluated */
    size_t unchecked;         /* order-sign: drafts carded as not checkable (data quality) */
};

void pw_cds_result_cleanup(struct pw_cds_result *r);

/** The discovery document (new reference). */
json_t *pw_cds_discovery(void);

/**
 * Evaluate one call of service @p service (PW_CDS_PATIENT_VIEW | PW_CDS_ORDER_SIGN) with the
 * request @p req at @p now (s). @return 0; PW_EINVAL (the request is not a valid call: reason
 * in @p why, no patient data); PW_ENOENT (unknown service); PW_ENOMEM; the store's error.
 */
int pw_cds_evaluate(const struct pw_cds_env *env, const char *service, json_t *req, int64_t now,
                    struct pw_cds_result *out, char *why, size_t why_len);

#endif
