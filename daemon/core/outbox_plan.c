/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Outbox planning: reconcile decisions become flag-map rows and outbox rows in the caller's
 * transaction, so a page's data and the writes it causes commit together. No I/O but the store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/outbox.h"
#include "painwatch/err.h"
#include "painwatch/evaluate.h"
#include "painwatch/fhir.h"
#include "painwatch/log.h"
#include "painwatch/timeline.h"

/* Queue @p payload (JSON text, borrowed; @p json its tree) for @p rec's episode. */
static int enqueue_text(struct pw_store *st, const struct pw_flag_rec *rec, enum pw_outbox_op op,
                        char *payload, const json_t *json, int64_t now)
{
    const struct pw_sink_ops *t =
        pw_sink_for_resource(json_string_value(json_object_get(json, "resourceType")));
    struct pw_outbox_row row = {
        .op = op,
        .state = PW_OUTBOX_PENDING,
        .next_try = 0, /* due at once */
        .created = now * 1000,
        .updated = now * 1000,
    };
    int err;

    snprintf(row.key, sizeof(row.key), "%s", rec->key);
    snprintf(row.patient, sizeof(row.patient), "%s", rec->patient);
    snprintf(row.rule, sizeof(row.rule), "%s", rec->rule);
    row.payload = payload;
    /* the type delivery starts the row by (URL, Location, search): no parse of the payload */
    snprintf(row.type, sizeof(row.type), "%s", t ? t->resource_type : "Flag");
    err = pw_store_outbox_enqueue(st, &row);
    return err;
}

static int enqueue(struct pw_store *st, const struct pw_flag_rec *rec, enum pw_outbox_op op,
                   json_t *payload, int64_t now)
{
    char *text = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
    int err = text ? enqueue_text(st, rec, op, text, payload, now) : PW_ENOMEM;

    free(text);
    return err;
}

static int plan_create(struct pw_store *st, const struct pw_sink *sink, const struct pw_rc_item *it,
                       int64_t now)
{
    const struct pw_finding *f = it->finding;
    struct pw_flag_rec rec;
    json_t *flag = NULL;
    int err = pw_sink_format(sink, f, &flag);

    if (err == PW_EAGAIN) {
        /* `sink.type: auto` before /metadata chose the target: the page is repeated later. */
        return err;
    }
    if (err) {
        /* An unusable finding (a rule bug) is logged loudly and skipped; a transient failure
         * (memory) fails the page, which is then repeated. */
        pw_log_crit(OUTBOX, "rule %s: cannot format a Flag: %s", f->rule ? f->rule : "?",
                    pw_strerror(err));
        return err == PW_EINVAL ? 0 : err;
    }
    pw_rc_item_record(it, now, &rec); /* the episode record, as pw_episodes_reconcile() */
    rec.resource = json_dumps(flag, JSON_COMPACT | JSON_SORT_KEYS);
    err = rec.resource ? pw_store_flag_put(st, &rec) : PW_ENOMEM;
    if (!err) {
        err = enqueue_text(st, &rec, PW_OUTBOX_CREATE, rec.resource, flag, now); /* same text */
    }
    free(rec.resource);
    json_decref(flag);
    return err;
}

/* Issue 21: remember that an audit-only finding's episode was audited (no Flag, no outbox row). */
static int plan_audit_only(struct pw_store *st, const struct pw_rc_item *it, int64_t now)
{
    struct pw_flag_rec rec;

    return pw_rc_item_record(it, now, &rec) ? pw_store_flag_put(st, &rec) : 0;
}

/* RESOLVE and REACTIVATE: an update of the Flag as created. */
static int plan_update(struct pw_store *st, const struct pw_sink *sink, const struct pw_rc_item *it,
                       enum pw_outbox_op op, int64_t now)
{
    const struct pw_flag_rec *cur = it->flag;
    struct pw_flag_rec rec;
    json_error_t jerr;
    json_t *created = cur->resource ? json_loads(cur->resource, 0, &jerr) : NULL;
    json_t *payload = NULL;
    int err;

    if (!created) {
        /* Not fatal for the page: one unusable row must not stall every patient's data. */
        pw_log_err(OUTBOX, "flag map: episode %s (rule %s) has no stored Flag to update: skipped",
                   cur->key, cur->rule);
        return 0;
    }
    err = pw_sink_update(sink, created, op, now, &payload);
    json_decref(created);
    if (err) {
        return err;
    }
    pw_rc_item_record(it, now, &rec);  /* RESOLVED or ACTIVE, as pw_episodes_reconcile() */
    err = pw_store_flag_put(st, &rec); /* rec.resource stays the Flag as created */
    if (!err) {
        err = enqueue(st, &rec, op, payload, now);
    }
    json_decref(payload);
    return err;
}

/*
 * Going live after shadow mode: episodes only ever written to the shadow file have no Flag in the
 * EHR. Leave them out of the comparison, so a finding that still holds is created for real and
 * one that is gone is not "resolved" on a Flag that never existed.
 */
static void drop_shadow_only(const struct pw_sink *sink, struct pw_flag_list *flags)
{
    size_t keep = 0;
    size_t plen = strlen(PW_SINK_SHADOW_ID_PREFIX);

    if (!sink->ops->remote) {
        return;
    }
    for (size_t i = 0; i < flags->n; i++) {
        if (strncmp(flags->v[i].server_id, PW_SINK_SHADOW_ID_PREFIX, plen) == 0) {
            pw_flag_rec_cleanup(&flags->v[i]);
        } else {
            flags->v[keep++] = flags->v[i];
        }
    }
    flags->n = keep;
}

int pw_outbox_plan(struct pw_store *st, const struct pw_sink *sink, const char *patient,
                   const struct pw_finding *findings, size_t n_findings, int64_t now,
                   struct pw_flag_list *flags, struct pw_rc_plan *plan)
{
    int err = pw_store_flags_of_patient(st, patient, flags);

    if (!err) {
        drop_shadow_only(sink, flags);
    }

    if (!err) {
        err = pw_reconcile(findings, n_findings, flags->v, flags->n, plan);
    }
    for (size_t i = 0; !err && i < plan->n; i++) {
        const struct pw_rc_item *it = &plan->v[i];

        switch (it->action) {
        case PW_RC_CREATE:
            err = plan_create(st, sink, it, now);
            break;
        case PW_RC_RESOLVE:
            err = plan_update(st, sink, it, PW_OUTBOX_RESOLVE, now);
            break;
        case PW_RC_REACTIVATE:
            err = plan_update(st, sink, it, PW_OUTBOX_REACTIVATE, now);
            break;
        case PW_RC_NOT_POSTED: /* issue 21: audit-only, nothing written to the sink */
            err = plan_audit_only(st, it, now);
            break;
        case PW_RC_KEEP:
        case PW_RC_SUPPRESSED:
            break;
        }
    }
    return err;
}

/* The episode key of a Flag: its identifier value under @p system, or NULL. Borrowed. */
static const char *episode_of(const json_t *flag, const char *system)
{
    const json_t *ids = json_object_get(flag, "identifier");
    size_t i;
    const json_t *id;

    json_array_foreach(ids, i, id)
    {
        const char *sys = json_string_value(json_object_get(id, "system"));
        const char *val = json_string_value(json_object_get(id, "value"));

        if (sys && val && strcmp(sys, system) == 0) {
            return val;
        }
    }
    return NULL;
}

int pw_outbox_observe_flag(struct pw_store *st, const char *identifier_system, const json_t *flag)
{
    const char *type = json_string_value(json_object_get(flag, "resourceType"));
    const char *key;
    const char *status = pw_sink_episode_status(flag);
    const char *id = json_string_value(json_object_get(flag, "id"));
    const char *version =
        json_string_value(json_object_get(json_object_get(flag, "meta"), "versionId"));
    struct pw_flag_rec rec = {0};
    int err;

    if (!pw_sink_for_resource(type)) {
        return PW_EFHIR; /* neither a Flag nor a DetectedIssue */
    }
    /* Ids and versions from the server reach URLs and headers later: FHIR ids only. */
    if ((id && !pw_fhir_id_valid(id)) || (version && !pw_fhir_id_valid(version))) {
        pw_log_warn(OUTBOX,
                    "a %s read from the server has an id or version that is not a "
                    "FHIR id: ignored",
                    type);
        return 0; /* skipped, not a failed page */
    }
    key = episode_of(flag, identifier_system);
    if (!key || !status) {
        return 0; /* not one of painwatch's */
    }
    err = pw_store_flag_get(st, key, &rec);
    if (err == PW_ENOENT) {
        return 0;
    }
    if (!err && id && rec.server_id[0] && strcmp(id, rec.server_id) != 0) {
        /* Another Flag with our identifier (a duplicate made elsewhere): not the one we track. */
        pw_log_warn(OUTBOX, "%s/%s carries episode %s already mapped to %s", type, id, key,
                    rec.server_id);
    } else if (!err && pw_flag_observe(&rec, status, version)) {
        pw_log_notice(OUTBOX, "%s/%s: set %s in the EHR: painwatch leaves it so", type,
                      id ? id : rec.server_id, status);
        if (id && !rec.server_id[0]) {
            snprintf(rec.server_id, sizeof(rec.server_id), "%s", id);
        }
        err = pw_store_flag_put(st, &rec);
    }
    pw_flag_rec_cleanup(&rec);
    return err;
}
