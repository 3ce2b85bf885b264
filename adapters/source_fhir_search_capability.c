/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The FHIR search source and /metadata: how the CapabilityStatement compares with the configured
 * dialect and types. A search that cannot work is a startup error; a feature that is merely not
 * advertised is a warning (many servers under-declare, e.g. _lastUpdated). A context type the
 * server does not search is dropped; a MedicationRequest without `status` search loses the first
 * sync's orders-in-force query.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "painwatch/capability.h"
#include "painwatch/err.h"
#include "painwatch/fhir_search.h"
#include "painwatch/log.h"
#include "painwatch/source.h"

static const char *clinical_date_param(const char *type)
{
    if (strcmp(type, "Observation") == 0) {
        return "date";
    }
    if (strcmp(type, "MedicationRequest") == 0) {
        return "authoredon";
    }
    return NULL;
}

/* What one searched type relies on. Errors: the search cannot work as configured. */
static void check_type(const struct pw_capability *cap, const struct pw_fhir_search_conf *conf,
                       const struct pw_search_type *st, unsigned *errors, unsigned *warnings)
{
    const char *name = conf->name;
    const char *type = st->type;
    const json_t *t = json_object_get(cap->types, type);
    const struct pw_fhir_dialect *d = &conf->dialect;

    if (!t || !json_is_true(json_object_get(t, "search"))) {
        pw_log_err(SYNC, "%s: /metadata does not advertise %s search", name, type);
        (*errors)++;
        return;
    }
    if (json_array_size(json_object_get(t, "params")) == 0) {
        pw_log_warn(SYNC, "%s: /metadata lists no search parameters for %s, cannot check", name,
                    type);
        (*warnings)++;
        return;
    }
    const char *pp = d->subject ? "subject" : "patient";
    if (!pw_capability_has_param(cap, type, pp)) {
        const char *other = d->subject ? "patient" : "subject";
        pw_log_err(SYNC, "%s: %s search by '%s' not advertised%s%s%s", name, type, pp,
                   pw_capability_has_param(cap, type, other) ? " (it advertises '" : "",
                   pw_capability_has_param(cap, type, other) ? other : "",
                   pw_capability_has_param(cap, type, other) ? "': set dialect.patient_param)"
                                                             : "");
        (*errors)++;
    }
    static const struct {
        const char *param;
        size_t flag;
    } optional[] = {
        {"_lastUpdated", offsetof(struct pw_fhir_dialect, last_updated)},
        {"_sort", offsetof(struct pw_fhir_dialect, sort)},
        {"_include", offsetof(struct pw_fhir_dialect, include)},
    };
    for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++) {
        bool used = *(const bool *)(const void *)((const char *)d + optional[i].flag);
        if (used && !pw_capability_has_param(cap, type, optional[i].param)) {
            pw_log_warn(SYNC, "%s: %s '%s' is configured but not advertised", name, type,
                        optional[i].param);
            (*warnings)++;
        }
    }
    const char *dp = clinical_date_param(type);
    if (d->date_params && dp && !pw_capability_has_param(cap, type, dp)) {
        pw_log_warn(SYNC,
                    "%s: %s '%s' not advertised; set dialect.date_params: false if the "
                    "lookback fails",
                    name, type, dp);
        (*warnings)++;
    }
    if ((st->codes || st->valueset) && !pw_capability_has_param(cap, type, "code")) {
        pw_log_warn(SYNC, "%s: %s 'code' not advertised: the code filter may be ignored", name,
                    type);
        (*warnings)++;
    }
}

int pw_fhir_search_capability_check(const struct pw_capability *cap,
                                    const struct pw_fhir_search_conf *conf, unsigned *errors,
                                    unsigned *warnings)
{
    *errors = 0;
    *warnings = 0;
    pw_log_info(SYNC, "%s: FHIR %s, %s; Flag create %s, update %s, conditional create %s",
                conf->name, cap->fhir_version ? cap->fhir_version : "(version not stated)",
                cap->software ? cap->software : "software not stated",
                cap->flag_create ? "yes" : "no", cap->flag_update ? "yes" : "no",
                cap->flag_conditional_create ? "yes" : "no");
    if (cap->fhir_version && strncmp(cap->fhir_version, "4.0", 3) != 0) {
        pw_log_warn(SYNC, "%s: FHIR %s is not R4", conf->name, cap->fhir_version);
        (*warnings)++;
    }
    for (size_t i = 0; i < conf->ntypes; i++) {
        check_type(cap, conf, &conf->types[i], errors, warnings);
    }
    *warnings += pw_capability_check_writes(cap, conf->name, &conf->writes);
    return *errors ? PW_ECONFIG : 0;
}

/* Whether the first sync may ask for MedicationRequest by status (a server that lists its
 * search parameters and leaves status out would ignore or refuse the filter). */
static void capability_status(struct pw_fhir_search *fs, const struct pw_capability *cap)
{
    const json_t *t = json_object_get(cap->types, "MedicationRequest");
    bool searched = false;

    for (size_t i = 0; i < fs->conf.ntypes; i++) {
        searched = searched || strcmp(fs->conf.types[i].type, "MedicationRequest") == 0;
    }
    fs->no_status_search = searched && json_array_size(json_object_get(t, "params")) > 0 &&
                           !pw_capability_has_param(cap, "MedicationRequest", "status");
    if (fs->no_status_search) {
        pw_log_notice(SYNC,
                      "%s: MedicationRequest 'status' search not advertised: the first sync "
                      "will not fetch orders in force written before the lookback",
                      fs->conf.name);
    }
}

/*
 * Issue 17: a context type (anything but Observation and MedicationRequest) the server does not
 * advertise is not synced rather than a startup error: it is dropped from the searches and the
 * consumer told (status -1), so the rules resting on its absence are off. The core types stay
 * required (pw_fhir_search_capability_check reports them).
 */
static void capability_context_types(struct pw_fhir_search *fs, const struct pw_capability *cap,
                                     pw_source_unsynced_fn *unsynced, void *arg)
{
    struct pw_fhir_search_conf *conf = &fs->conf;
    size_t i = 0;
    while (i < conf->ntypes && conf->ntypes > 1) {
        const char *type = conf->types[i].type;
        const json_t *t = json_object_get(cap->types, type);
        if (strcmp(type, "Observation") == 0 || strcmp(type, "MedicationRequest") == 0 ||
            json_is_true(json_object_get(t, "search"))) {
            i++;
            continue;
        }
        pw_log_warn(SYNC,
                    "%s: /metadata does not advertise %s search: not synced, the rules resting "
                    "on its absence are off",
                    conf->name, type);
        unsynced(arg, type);
        free(conf->types[i].type);
        free(conf->types[i].codes);
        free(conf->types[i].valueset);
        memmove(&conf->types[i], &conf->types[i + 1],
                (conf->ntypes - i - 1) * sizeof(conf->types[0]));
        conf->ntypes--;
        memset(&conf->types[conf->ntypes], 0, sizeof(conf->types[0]));
    }
}

int pw_fhir_search_capability(void *ctx, const struct pw_capability *cap,
                              pw_source_unsynced_fn *unsynced, void *arg, unsigned *errors,
                              unsigned *warnings)
{
    struct pw_fhir_search *fs = ctx;

    capability_status(fs, cap);
    capability_context_types(fs, cap, unsynced, arg);
    return pw_fhir_search_capability_check(cap, &fs->conf, errors, warnings);
}
