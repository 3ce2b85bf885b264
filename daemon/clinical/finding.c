/* SPDX-License-Identifier: Apache-2.0 */
/* Findings: the growable list rules append to, evidence and audit numbers, severity names. */
#include "painwatch/finding.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "painwatch/array.h"
#include "painwatch/err.h"

const char *pw_severity_name(enum pw_severity s)
{
    switch (s) {
    case PW_SEV_INFO:
        return "info";
    case PW_SEV_LOW:
        return "low";
    case PW_SEV_MEDIUM:
        return "medium";
    case PW_SEV_HIGH:
        return "high";
    }
    return "unknown";
}

int pw_findings_push(struct pw_findings *list, const struct pw_finding *f)
{
    if (PW_ARRAY_GROW(list) < 0) {
        return PW_ENOMEM;
    }
    list->v[list->n++] = *f;
    return 0;
}

void pw_findings_cleanup(struct pw_findings *list)
{
    free(list->v);
    list->v = NULL;
    list->n = 0;
    list->cap = 0;
}

void pw_finding_add_evidence(struct pw_finding *f, const struct pw_ref *ref)
{
    if (!ref || ref->id[0] == '\0' || f->n_evidence >= PW_EVIDENCE_MAX) {
        return;
    }
    /* The same resource can justify a finding twice (e.g. an order that is both the old and
     * the new regimen); the evidence list names it once. */
    for (size_t i = 0; i < f->n_evidence; i++) {
        if (strcmp(f->evidence[i].type, ref->type) == 0 &&
            strcmp(f->evidence[i].id, ref->id) == 0) {
            return;
        }
    }
    f->evidence[f->n_evidence++] = *ref;
}

void pw_finding_add_number(struct pw_finding *f, const char *name, double value)
{
    /* A figure painwatch could not compute (NaN: no factor, implausible dose, not synced) is
     * not recorded beside the finding: absent, never a number. */
    if (f->n_numbers >= PW_NUMBERS_MAX || !isfinite(value)) {
        return;
    }
    f->numbers[f->n_numbers].name = name;
    f->numbers[f->n_numbers].value = value;
    f->n_numbers++;
}
