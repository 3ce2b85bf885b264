/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reconcile (pure): a patient's findings against the flags painwatch holds for that patient ->
 * create / keep / resolve / reactivate / suppressed. No I/O, no clock.
 */
#ifndef PAINWATCH_CORE_RECONCILE_H
#define PAINWATCH_CORE_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>

#include "painwatch/finding.h"
#include "painwatch/store.h"

enum pw_rc_action {
    PW_RC_CREATE = 0, /* a finding with no flag: create a Flag */
    PW_RC_KEEP,       /* the same episode is flagged already: nothing to write */
    PW_RC_RESOLVE,    /* a flag painwatch holds active whose finding is gone: resolve it */
    PW_RC_REACTIVATE, /* an episode painwatch resolved is back (same key): set it active again */
    PW_RC_SUPPRESSED, /* a clinician set this episode's Flag inactive or entered-in-error:
                         it stays so, nothing is written (the audit trail says so) */
    PW_RC_NOT_POSTED, /* issue 21: an audit-only finding (below post_min_severity, or an
                         encounter-bound one whose encounter ended): recorded in the audit trail,
                         never written; a Flag painwatch holds active for it is resolved */
};

/*
 * Issue 21: the flag-map row recording that an audit-only finding's episode was audited (no Flag
 * exists for it): state resolved, server_id starting with this prefix. Its episode is audited once,
 * not at every re-evaluation; when the finding becomes postable it is created for real.
 */
#define PW_RC_AUDIT_ONLY_PREFIX "audit-only-"

/** True when @p flag is such a row (NULL: false). */
bool pw_rc_audit_only_marker(const struct pw_flag_rec *flag);

/** "create", "keep", "resolve", "reactivate", "suppressed", "not-posted". */
const char *pw_rc_action_name(enum pw_rc_action a);

/** One decision. Both pointers are borrowed from the inputs of pw_reconcile(). */
struct pw_rc_item {
    enum pw_rc_action action;
    const struct pw_finding *finding; /* NULL for RESOLVE */
    const struct pw_flag_rec *flag;   /* NULL for CREATE */
};

/** The decisions for one patient. Zero-initialise; free with pw_rc_plan_cleanup(). */
struct pw_rc_plan {
    struct pw_rc_item *v;
    size_t n;
    size_t cap;
};
void pw_rc_plan_cleanup(struct pw_rc_plan *plan);

/**
 * Compare @p findings (one patient's, as the engine returned them) with @p flags (the flag map
 * rows of that patient) and append one item per finding and per flag that needs resolving.
 * Findings come first in their order, then resolutions in flag order, so the plan is
 * deterministic. A key that appears twice among the findings is planned once.
 * An episode change (same rule, new key) is a CREATE of the new key plus a RESOLVE of the old.
 * An audit-only finding (finding.audit_only) counts as absent for the flags: the active Flag of
 * its episode is resolved. It is a NOT_POSTED item when its episode has no row yet or an active
 * Flag (to be audited once), a KEEP otherwise (issue 21).
 * @return 0 or PW_ENOMEM (the plan is then emptied).
 */
int pw_reconcile(const struct pw_finding *findings, size_t n_findings,
                 const struct pw_flag_rec *flags, size_t n_flags, struct pw_rc_plan *out);

/**
 * Fold what painwatch read back from the EHR about its own Flag into @p rec: @p status is the
 * Flag.status read ("active", "inactive", "entered-in-error"), @p version its meta.versionId.
 * A version equal to the one painwatch last wrote is painwatch's own write and changes nothing.
 * Otherwise someone else edited the Flag: inactive turns an ACTIVE episode into
 * CLINICIAN_INACTIVE, entered-in-error into ENTERED_IN_ERROR, active (re-opened by a clinician)
 * into ACTIVE. @return true when rec->state changed.
 */
bool pw_flag_observe(struct pw_flag_rec *rec, const char *status, const char *version);

#endif
