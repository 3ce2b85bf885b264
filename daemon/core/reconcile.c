/* SPDX-License-Identifier: Apache-2.0 */
/* Reconcile: findings vs the flag map of one patient. Pure: the caller does the writes. */
#include "core/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "painwatch/array.h"
#include "painwatch/check.h"
#include "painwatch/err.h"

static const char *const action_names[] = {
    [PW_RC_CREATE] = "create",         [PW_RC_KEEP] = "keep",
    [PW_RC_RESOLVE] = "resolve",       [PW_RC_REACTIVATE] = "reactivate",
    [PW_RC_SUPPRESSED] = "suppressed", [PW_RC_NOT_POSTED] = "not-posted",
};

const char *pw_rc_action_name(enum pw_rc_action a)
{
    return (size_t)a < PW_ARRAY_SIZE(action_names) ? action_names[a] : "?";
}

void pw_rc_plan_cleanup(struct pw_rc_plan *plan)
{
    if (plan) {
        free(plan->v);
        memset(plan, 0, sizeof(*plan));
    }
}

static int push(struct pw_rc_plan *plan, enum pw_rc_action a, const struct pw_finding *f,
                const struct pw_flag_rec *flag)
{
    if (PW_ARRAY_GROW(plan) < 0) {
        return PW_ENOMEM;
    }
    plan->v[plan->n++] = (struct pw_rc_item){.action = a, .finding = f, .flag = flag};
    return 0;
}

bool pw_rc_audit_only_marker(const struct pw_flag_rec *flag)
{
    return flag && strncmp(flag->server_id, PW_RC_AUDIT_ONLY_PREFIX,
                           sizeof(PW_RC_AUDIT_ONLY_PREFIX) - 1) == 0;
}

static const struct pw_flag_rec *find_flag(const struct pw_flag_rec *flags, size_t n,
                                           const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(flags[i].key, key) == 0) {
            return &flags[i];
        }
    }
    return NULL;
}

static bool has_finding(const struct pw_finding *f, size_t n, const char *key, bool posted_only)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(f[i].key, key) == 0 && !(posted_only && f[i].audit_only)) {
            return true;
        }
    }
    return false;
}

static enum pw_rc_action action_for(const struct pw_flag_rec *flag)
{
    if (!flag) {
        return PW_RC_CREATE;
    }
    switch (flag->state) {
    case PW_FLAG_ACTIVE:
        return PW_RC_KEEP;
    case PW_FLAG_RESOLVED:
        return PW_RC_REACTIVATE;
    case PW_FLAG_CLINICIAN_INACTIVE:
    case PW_FLAG_ENTERED_IN_ERROR:
        break;
    }
    /* A clinician's decision about this episode stands; painwatch never re-creates it. */
    return PW_RC_SUPPRESSED;
}

int pw_reconcile(const struct pw_finding *findings, size_t n_findings,
                 const struct pw_flag_rec *flags, size_t n_flags, struct pw_rc_plan *out)
{
    int err = 0;

    for (size_t i = 0; i < n_findings && !err; i++) {
        const struct pw_finding *f = &findings[i];
        const struct pw_flag_rec *flag;

        if (has_finding(findings, i, f->key, false)) {
            continue; /* the same episode twice: planned once */
        }
        flag = find_flag(flags, n_flags, f->key);
        if (f->audit_only) {
            /* issue 21: audited once (no row yet, or its Flag is resolved now), then silent */
            bool once = !flag || flag->state == PW_FLAG_ACTIVE;
            err = push(out, once ? PW_RC_NOT_POSTED : PW_RC_KEEP, f, flag);
            continue;
        }
        if (pw_rc_audit_only_marker(flag)) {
            flag = NULL; /* only audited so far: now the Flag is created */
        }
        err = push(out, action_for(flag), f, flag);
    }
    for (size_t i = 0; i < n_flags && !err; i++) {
        if (flags[i].state == PW_FLAG_ACTIVE &&
            !has_finding(findings, n_findings, flags[i].key, true)) {
            err = push(out, PW_RC_RESOLVE, NULL, &flags[i]);
        }
    }
    if (err) {
        pw_rc_plan_cleanup(out);
    }
    return err;
}

bool pw_flag_observe(struct pw_flag_rec *rec, const char *status, const char *version)
{
    enum pw_flag_state next = rec->state;

    if (version && version[0] && strcmp(version, rec->version) == 0) {
        return false; /* painwatch's own write */
    }
    if (!status) {
        return false;
    }
    if (strcmp(status, "entered-in-error") == 0) {
        next = PW_FLAG_ENTERED_IN_ERROR;
    } else if (strcmp(status, "inactive") == 0) {
        if (rec->state == PW_FLAG_ACTIVE) {
            next = PW_FLAG_CLINICIAN_INACTIVE;
        }
    } else if (strcmp(status, "active") == 0) {
        if (rec->state == PW_FLAG_CLINICIAN_INACTIVE || rec->state == PW_FLAG_ENTERED_IN_ERROR) {
            next = PW_FLAG_ACTIVE; /* a clinician re-opened it: painwatch follows it again */
        }
    }
    if (version && version[0]) {
        snprintf(rec->version, sizeof(rec->version), "%s", version);
    }
    if (next == rec->state) {
        return false;
    }
    rec->state = next;
    return true;
}
