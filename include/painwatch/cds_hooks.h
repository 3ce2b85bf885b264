/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CDS Hooks 2.0 service (issue 21), on its own listener:
 *   GET  /cds-services                   discovery: patient-view and order-sign, prefetch templates
 *   POST /cds-services/painwatch-patient-view   cards from the patient's current findings
 *   POST /cds-services/painwatch-order-sign     the draft MedicationRequests evaluated as if signed
 * Every request but discovery carries the EHR's signed JWT (Authorization: Bearer): RS384/ES384,
 * iss on the allow-list, signed by a key of that issuer's JWK Set, aud = the service URL, exp,
 * a jti not seen within the window. Anything else is 401. The data come from the store (no EHR
 * call), overlaid by the prefetch the EHR sent; each call is audited before it is answered.
 */
#ifndef PAINWATCH_CDS_HOOKS_H
#define PAINWATCH_CDS_HOOKS_H

#include <stdint.h>

#include <uv.h>

#include "painwatch/timeline.h"

struct pw_conf_cds_hooks;
struct pw_store;
struct pw_evaluator;
struct pw_audit;
struct pw_http;

/** What the service works with. Everything is borrowed and must outlive the service. */
struct pw_cds_hooks_opts {
    uv_loop_t *loop;
    const struct pw_conf_cds_hooks *conf;
    struct pw_store *store;        /* read only */
    const struct pw_evaluator *ev; /* engine + normalization (evaluate.h) */
    struct pw_synced synced;       /* resource types the daemon syncs (known false: all) */
    /* The types the daemon could read for one patient right now (@p synced less those refused
     * or not read yet), as its own evaluation uses them; NULL: @p synced for every patient. */
    void (*synced_for)(void *arg, const char *patient, struct pw_synced *out);
    void *synced_arg;
    struct pw_audit *audit;    /* required: a hook call is answered only once audited */
    struct pw_http *http;      /* for issuers' jwks_url; may be NULL when none has one */
    const char *rule_system;   /* card source.topic.system; NULL: PW_FLAG_CODE_SYSTEM */
    int64_t (*clock_ms)(void); /* wall clock, ms since the epoch; NULL = real (tests) */
};

struct pw_cds_hooks;

/**
 * Start listening (TLS when conf->tls_cert/tls_key are set) and load the issuers' key sets
 * (files now; URLs fetched in the background: until they arrive, that issuer's calls are 401).
 * Caller owns *out; close with pw_cds_hooks_close(). @return 0, PW_ECONFIG (an unusable key
 * set or TLS file, logged), PW_EIO (cannot listen), PW_ENOMEM.
 */
int pw_cds_hooks_new(struct pw_cds_hooks **out, const struct pw_cds_hooks_opts *opts);

/** The port actually bound (useful with port 0). */
unsigned pw_cds_hooks_port(const struct pw_cds_hooks *cds);

/** Stop listening; memory goes with the loop's close callbacks. NULL is a no-op. */
void pw_cds_hooks_close(struct pw_cds_hooks *cds);

/** The service ids in discovery. */
#define PW_CDS_PATIENT_VIEW "painwatch-patient-view"
#define PW_CDS_ORDER_SIGN   "painwatch-order-sign"

#endif
