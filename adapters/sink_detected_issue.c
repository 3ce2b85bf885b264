/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The detected-issue sink: a finding as a FHIR R4 DetectedIssue, the resource FHIR meant for a
 * problem with a specific therapy. identifier = episode key (the same system and idempotency as
 * Flags), status final while the situation holds, code = rule, severity, patient, the
 * MedicationRequests the finding rests on as `implicated`, its other evidence (scores, doses
 * given, conditions) as `evidence`, the finding's text as `detail`, and the clinician narrative
 * the Flag sink writes as `text` (same builder, finding_text.c). When the situation ends the
 * update adds a dated `mitigation` entry saying so, the narrative's closing line, and sets the
 * site's closing status (`cancelled` by default). A mitigation entry someone else added, or a
 * status someone else set, is read back as the episode acknowledged (episode_status "inactive"), as
 * a clinician's inactive Flag is. Pure formatting.
 *
 * Severity: finding high -> high, medium -> moderate, low -> low, info -> low (DetectedIssue has
 * no lower level; whether info findings are written at all is the posting setting's business).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "painwatch/err.h"
#include "painwatch/sink.h"
#include "painwatch/sink_fhir.h"
#include "painwatch/timeline.h"

/* painwatch's own mitigation entries are coded here; any other entry is someone else's. */
#define MITIGATION_SYSTEM  "https://painwatch.org/fhir/CodeSystem/mitigation"
#define MITIGATION_CODE    "situation-ended"
#define MITIGATION_DISPLAY "Situation ended"
#define MITIGATION_TEXT    "painwatch: the finding no longer holds; closed automatically"
#define STATUS_OPEN        "final"

static const char *severity_of(enum pw_severity s)
{
    switch (s) {
    case PW_SEV_HIGH:
        return "high";
    case PW_SEV_MEDIUM:
        return "moderate";
    case PW_SEV_LOW:
    case PW_SEV_INFO:
        break;
    }
    return "low";
}

/* DetectedIssue.detail: the finding's own text (the narrative in `text` says it in full). */
static const char *detail_text(const struct pw_finding *f)
{
    return f->text[0] ? f->text : f->rule;
}

/* The orders as `implicated`, everything else the finding rests on as one `evidence` entry. */
static int add_references(json_t *di, const struct pw_finding *f)
{
    json_t *implicated = json_array();
    json_t *detail = json_array();
    int err = implicated && detail ? 0 : PW_ENOMEM;

    for (size_t i = 0; !err && i < f->n_evidence && i < PW_EVIDENCE_MAX; i++) {
        const struct pw_ref *r = &f->evidence[i];
        char ref[PW_REF_MAX + 64];

        pw_sink_ref_string(r, ref, sizeof(ref));
        err = json_array_append_new(strcmp(r->type, "MedicationRequest") == 0 ? implicated : detail,
                                    json_pack("{s:s}", "reference", ref))
                  ? PW_ENOMEM
                  : 0;
    }
    if (!err && json_array_size(implicated) > 0) {
        err = json_object_set(di, "implicated", implicated) ? PW_ENOMEM : 0;
    }
    if (!err && json_array_size(detail) > 0) {
        err = json_object_set_new(di, "evidence", json_pack("[{s:O}]", "detail", detail))
                  ? PW_ENOMEM
                  : 0;
    }
    json_decref(implicated);
    json_decref(detail);
    return err;
}

static int di_format(const struct pw_sink *sink, const struct pw_finding *f, json_t **out)
{
    json_t *text;
    json_t *di;
    char identified[32];
    int err;

    if (!f->rule || !f->rule[0] || !f->key[0] || !f->patient[0]) {
        return PW_EINVAL;
    }
    text = pw_sink_narrative(f);
    if (!text) {
        return PW_ENOMEM;
    }
    di = json_pack("{s:s, s:o, s:s, s:s, s:{s:s}, s:o, s:s}", "resourceType", "DetectedIssue",
                   "text", text, "status", STATUS_OPEN, "severity", severity_of(f->severity),
                   "patient", "reference", f->patient, "author", pw_sink_author(sink), "detail",
                   detail_text(f));
    if (!di) {
        return PW_ENOMEM;
    }
    err = pw_sink_set_episode(di, sink, f, detail_text(f));
    if (!err && f->since != PW_TIME_NONE) {
        pw_fhir_instant(f->since, identified);
        err =
            json_object_set_new(di, "identifiedDateTime", json_string(identified)) ? PW_ENOMEM : 0;
    }
    if (!err) {
        err = add_references(di, f);
    }
    if (err) {
        json_decref(di);
        return err;
    }
    *out = di;
    return 0;
}

static bool is_own_mitigation(const json_t *m)
{
    const json_t *c;
    size_t i;

    json_array_foreach(json_object_get(json_object_get(m, "action"), "coding"), i, c)
    {
        const char *sys = json_string_value(json_object_get(c, "system"));

        if (sys && strcmp(sys, MITIGATION_SYSTEM) == 0) {
            return true;
        }
    }
    return false;
}

/* Without painwatch's own mitigation entries (a reactivated episode is open again). */
static void drop_own_mitigations(json_t *di)
{
    json_t *list = json_object_get(di, "mitigation");

    for (size_t i = json_array_size(list); i-- > 0;) {
        if (is_own_mitigation(json_array_get(list, i))) {
            json_array_remove(list, i);
        }
    }
    if (list && json_array_size(list) == 0) {
        json_object_del(di, "mitigation");
    }
}

static int close_issue(const struct pw_sink *sink, json_t *di, int64_t at)
{
    const char *start = json_string_value(json_object_get(di, "identifiedDateTime"));
    json_t *list = json_object_get(di, "mitigation");
    json_t *entry;
    char when[32];

    pw_sink_end_instant(at, start, when);
    entry = json_pack("{s:{s:[o], s:s}, s:s}", "action", "coding",
                      pw_sink_coding(MITIGATION_SYSTEM, MITIGATION_CODE, MITIGATION_DISPLAY),
                      "text", MITIGATION_TEXT, "date", when);
    if (!entry) {
        return PW_ENOMEM;
    }
    if (!list) {
        list = json_array();
        if (!list || json_object_set_new(di, "mitigation", list) != 0) {
            json_decref(entry);
            return PW_ENOMEM;
        }
    }
    if (json_array_append_new(list, entry) != 0) {
        return PW_ENOMEM;
    }
    return json_object_set_new(
               di, "status",
               json_string(sink->closed_status ? sink->closed_status : PW_DI_CLOSED_STATUS_DEFAULT))
               ? PW_ENOMEM
               : 0;
}

static int di_update(const struct pw_sink *sink, const json_t *created, enum pw_outbox_op op,
                     int64_t at, json_t **out)
{
    json_t *di;
    int err;

    if (!json_is_object(created) || op == PW_OUTBOX_CREATE) {
        return PW_EINVAL;
    }
    di = pw_sink_update_copy(created);
    if (!di) {
        return PW_ENOMEM;
    }
    drop_own_mitigations(di);
    if (op == PW_OUTBOX_RESOLVE) {
        err = close_issue(sink, di, at);
    } else {
        err = json_object_set_new(di, "status", json_string(STATUS_OPEN)) ? PW_ENOMEM : 0;
    }
    if (!err) {
        err = pw_sink_narrative_state(di, op == PW_OUTBOX_RESOLVE, at);
    }
    if (err) {
        json_decref(di);
        return err;
    }
    *out = di;
    return 0;
}

/*
 * Read back. entered-in-error stands as such; a mitigation entry that is not painwatch's is a
 * clinician's response: acknowledged ("inactive"), whatever the status; an open status
 * (registered, preliminary, final) is "active"; any other (cancelled, amended, corrected,
 * unknown) is closed: "inactive".
 */
static const char *di_episode_status(const json_t *res)
{
    const char *status = json_string_value(json_object_get(res, "status"));
    const json_t *m;
    size_t i;

    if (!status) {
        return NULL;
    }
    if (strcmp(status, "entered-in-error") == 0) {
        return "entered-in-error";
    }
    json_array_foreach(json_object_get(res, "mitigation"), i, m)
    {
        if (!is_own_mitigation(m)) {
            return "inactive";
        }
    }
    if (strcmp(status, "final") == 0 || strcmp(status, "preliminary") == 0 ||
        strcmp(status, "registered") == 0) {
        return "active";
    }
    return "inactive";
}

const struct pw_sink_ops pw_sink_detected_issue = {
    .adapter = {.name = "detected-issue",
                .help = "FHIR DetectedIssue resources (implicated orders, severity, mitigation) "
                        "created and closed on the server"},
    .remote = true,
    .format = di_format,
    .update = di_update,
    .classify = pw_sink_classify_fhir,
    .resource_type = "DetectedIssue",
    .episode_status = di_episode_status,
};
