/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CDS Hooks: one call into cards. The patient's timeline is the store's (no EHR call) with the
 * prefetched resources overlaid (a resource replaces its stored copy when newer); order-sign
 * evaluates it twice through the one evaluation entry point (evaluate.h), without and with the
 * draft orders made active as if signed (authored now), both at now + order_sign_horizon, and
 * cards the findings the drafts bring.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "core/cds_hooks_int.h"
#include "painwatch/cds_hooks.h"
#include "painwatch/engine.h"
#include "painwatch/err.h"
#include "painwatch/evaluate.h"
#include "painwatch/fhir.h"
#include "painwatch/normalize.h"
#include "painwatch/sink.h"
#include "painwatch/store.h"

#define CARD_SUMMARY_MAX 140 /* CDS Hooks 2.0: summary "<140 characters" */

/*
 * The laxative a bowel card proposes: a scheduled stimulant laxative, the usual opening order
 * with an opioid (site default; sennosides are recognised by name, as the terminology ships no
 * RxNorm code for them).
 */
#define SENNA_TEXT  "sennosides 8.6 mg oral tablet"
#define SENNA_SIG   "2 tablets by mouth at bedtime (scheduled while on an opioid)"
#define SENNA_LABEL "Order sennosides 8.6 mg, 2 tablets at bedtime"

void pw_cds_result_cleanup(struct pw_cds_result *r)
{
    json_decref(r->cards);
    r->cards = NULL;
    pw_findings_cleanup(&r->found);
}

/* ---- discovery ------------------------------------------------------------------------------ */

static json_t *prefetch_templates(void)
{
    return json_pack("{s:s,s:s,s:s,s:s}", "patient", "Patient/{{context.patientId}}", "medications",
                     "MedicationRequest?patient={{context.patientId}}", "painScores",
                     "Observation?patient={{context.patientId}}&code=http://loinc.org|72514-3,"
                     "http://loinc.org|38208-5",
                     "conditions",
                     "Condition?patient={{context.patientId}}&clinical-status=active");
}

json_t *pw_cds_discovery(void)
{
    return json_pack(
        "{s:[{s:s,s:s,s:s,s:s,s:o},{s:s,s:s,s:s,s:s,s:o}]}", "services", "hook", "patient-view",
        "id", PW_CDS_PATIENT_VIEW, "title", "painwatch: cancer pain findings", "description",
        "Current cancer-pain findings for the patient (titration, reassessment, rescue and bowel "
        "regimen, rotation), from painwatch's stored timeline",
        "prefetch", prefetch_templates(), "hook", "order-sign", "id", PW_CDS_ORDER_SIGN, "title",
        "painwatch: opioid order check", "description",
        "Checks draft opioid orders against the patient's timeline as if signed: titration step "
        "too large or too soon, missing rescue or bowel regimen, rotation without reduction, "
        "methadone conversion",
        "prefetch", prefetch_templates());
}

/* ---- cards ---------------------------------------------------------------------------------- */

static const char *indicator(enum pw_severity s)
{
    return s == PW_SEV_HIGH ? "critical" : s == PW_SEV_MEDIUM ? "warning" : "info";
}

/*
 * A UUID (RFC 9562 version 8) from 16 bytes of the episode key (64 hex) at byte @p offset (0 or
 * 16), XORed with @p mix: the same episode gets the same card uuid in every call, which ties
 * EHR feedback to the audit trail's episode.
 */
static void uuid_from_key(const char *key, size_t offset, unsigned char mix, char out[37])
{
    unsigned char b[16] = {0};
    size_t klen = strlen(key);
    size_t n = 0;

    for (size_t i = 0; i < 16 && 2 * (offset + i) + 1 < klen; i++) {
        char hex[3] = {key[2 * (offset + i)], key[2 * (offset + i) + 1], '\0'};
        b[i] = (unsigned char)(strtoul(hex, NULL, 16) ^ mix);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x80);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    for (size_t i = 0; i < 16; i++) {
        n += (size_t)snprintf(out + n, 37 - n, "%s%02x",
                              (i == 4 || i == 6 || i == 8 || i == 10) ? "-" : "", b[i]);
    }
}

/* At most CARD_SUMMARY_MAX bytes, never cutting a UTF-8 sequence. */
static void summary_of(const struct pw_finding *f, char *out, size_t cap)
{
    const struct pw_rule *rule = pw_rule_find(f->rule);
    size_t n;

    /* issue 21: the finding's own summary (what, with the key number), as on the Flag */
    snprintf(out, cap, "%s",
             f->summary[0]         ? f->summary
             : rule && rule->title ? rule->title
                                   : f->rule);
    n = strlen(out);
    if (n > CARD_SUMMARY_MAX) {
        n = CARD_SUMMARY_MAX;
        while (n > 0 && ((unsigned char)out[n] & 0xc0) == 0x80) {
            n--;
        }
        out[n] = '\0';
    }
}

static json_t *senna_suggestion(const struct pw_finding *f)
{
    char uuid[37];

    uuid_from_key(f->key, 16, 0x5a, uuid);
    return json_pack(
        "{s:s,s:s,s:b,s:[{s:s,s:s,s:{s:s,s:s,s:s,s:{s:s},s:{s:s},s:[{s:s,s:{s:{s:i,s:i,s:s,s:[s]}},"
        "s:{s:[{s:s,s:s,s:s}]},s:[{s:{s:i,s:s,s:s,s:s}}]}]}}]}",
        "label", SENNA_LABEL, "uuid", uuid, "isRecommended", 1, "actions", "type", "create",
        "description", "Add a scheduled stimulant laxative with the opioid", "resource",
        "resourceType", "MedicationRequest", "status", "draft", "intent", "order", "subject",
        "reference", f->patient, "medicationCodeableConcept", "text", SENNA_TEXT,
        "dosageInstruction", "text", SENNA_SIG, "timing", "repeat", "frequency", 1, "period", 1,
        "periodUnit", "d", "when", "HS", "route", "coding", "system", "http://snomed.info/sct",
        "code", "26643006", "display", "Oral route", "doseAndRate", "doseQuantity", "value", 2,
        "unit", "tablet", "system", "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
        "code", "TAB");
}

static json_t *card_of(const struct pw_cds_env *env, const struct pw_finding *f)
{
    const struct pw_rule *rule = pw_rule_find(f->rule);
    char summary[PW_TEXT_MAX];
    char uuid[37];
    json_t *card;

    summary_of(f, summary, sizeof(summary));
    uuid_from_key(f->key, 0, 0, uuid);
    card = json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:{s:s,s:s,s:s}}}", "uuid", uuid, "summary", summary,
                     "detail", f->text, "indicator", indicator(f->severity), "source", "label",
                     "painwatch", "topic", "system",
                     env->rule_system ? env->rule_system : PW_FLAG_CODE_SYSTEM, "code", f->rule,
                     "display", rule && rule->title ? rule->title : f->rule);
    if (card && strcmp(f->rule, "bowel-regimen-missing") == 0) {
        json_t *sugg = senna_suggestion(f);
        if (!sugg || json_object_set_new(card, "suggestions", json_pack("[o]", sugg)) < 0 ||
            json_object_set_new(card, "selectionBehavior", json_string("at-most-one")) < 0) {
            json_decref(card);
            return NULL;
        }
    }
    return card;
}

/* ---- the timeline ---------------------------------------------------------------------------- */

/* Resources of @p patient in @p val (a resource or a Bundle of them), appended to @p arr. */
static int collect(json_t *val, const char *patient, json_t *arr, struct pw_fhir_index *idx)
{
    const char *rt = json_string_value(json_object_get(val, "resourceType"));
    json_t *entry;
    size_t i;

    if (!rt) {
        return 0;
    }
    if (strcmp(rt, "Bundle") == 0) {
        json_array_foreach(json_object_get(val, "entry"), i, entry)
        {
            json_t *res = json_object_get(entry, "resource");
            const char *full = json_string_value(json_object_get(entry, "fullUrl"));
            if (json_is_object(res) && pw_fhir_index_add(idx, full, res) < 0) {
                return PW_ENOMEM;
            }
            if (collect(res, patient, arr, idx) < 0) {
                return PW_ENOMEM;
            }
        }
        return 0;
    }
    if (strcmp(rt, "Patient") != 0) {
        char owner[PW_REF_MAX];
        if (pw_normalize_patient(val, NULL, owner, sizeof(owner)) == 0 &&
            strcmp(owner, patient) == 0 && json_array_append(arr, val) < 0) {
            return PW_ENOMEM;
        }
    }
    return 0;
}

static int overlay_prefetch(const struct pw_cds_env *env, json_t *prefetch, struct pw_timeline *tl,
                            bool *used)
{
    json_t *arr = json_array();
    struct pw_fhir_index *idx = NULL;
    struct pw_resolver refs;
    const char *k;
    json_t *v;
    int rc = arr ? pw_fhir_index_new(&idx) : PW_ENOMEM;

    json_object_foreach(prefetch, k, v)
    {
        if (rc == 0 && json_is_object(v)) {
            rc = collect(v, tl->patient, arr, idx);
        }
    }
    if (rc == 0 && json_array_size(arr) > 0) {
        pw_fhir_index_resolver(idx, &refs);
        rc = pw_eval_timeline_add_resources(env->ev, arr, &refs, tl);
        *used = rc == 0;
    }
    pw_fhir_index_free(idx);
    json_decref(arr);
    return rc;
}

static void iso_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The draft MedicationRequests of context.draftOrders, as if signed now (new references). */
static int signed_drafts(const json_t *bundle, const char *patient, int64_t now, json_t *out,
                         char *why, size_t why_len)
{
    const json_t *entry;
    size_t i;
    char at[32];

    const char *rt = json_string_value(json_object_get(bundle, "resourceType"));

    if (!rt || strcmp(rt, "Bundle") != 0) {
        snprintf(why, why_len, "context.draftOrders must be a Bundle");
        return PW_EINVAL;
    }
    iso_time(now, at);
    json_array_foreach(json_object_get(bundle, "entry"), i, entry)
    {
        const json_t *res = json_object_get(entry, "resource");
        const char *type = json_string_value(json_object_get(res, "resourceType"));
        const char *subject =
            json_string_value(json_object_get(json_object_get(res, "subject"), "reference"));
        char id[40];
        json_t *copy;

        if (!type || strcmp(type, "MedicationRequest") != 0) {
            continue; /* other draft orders (labs, imaging) are not painwatch's */
        }
        if (json_array_size(out) == PW_CDS_DRAFTS_MAX) {
            snprintf(why, why_len, "more than %d draft MedicationRequests", PW_CDS_DRAFTS_MAX);
            return PW_EINVAL;
        }
        if (subject && strcmp(subject, patient) != 0) {
            snprintf(why, why_len, "draftOrders.entry[%zu]: subject is not context.patientId", i);
            return PW_EINVAL;
        }
        copy = json_deep_copy(res);
        snprintf(id, sizeof(id), "draft-%zu", i);
        if (!copy || json_object_set_new(copy, "status", json_string("active")) < 0 ||
            json_object_set_new(copy, "intent", json_string("order")) < 0 ||
            (!json_is_string(json_object_get(copy, "id")) &&
             json_object_set_new(copy, "id", json_string(id)) < 0) ||
            (!subject &&
             json_object_set_new(copy, "subject", json_pack("{s:s}", "reference", patient)) < 0) ||
            (!json_is_string(json_object_get(copy, "authoredOn")) &&
             json_object_set_new(copy, "authoredOn", json_string(at)) < 0) ||
            json_array_append_new(out, copy) < 0) {
            return PW_ENOMEM;
        }
    }
    return 0;
}

/* Whether a clinician closed this episode in the EHR (its card would be the Flag they dismissed).
 */
static bool dismissed(const struct pw_flag_list *flags, const char *key)
{
    for (size_t i = 0; i < flags->n; i++) {
        if (strcmp(flags->v[i].key, key) == 0) {
            return flags->v[i].state == PW_FLAG_CLINICIAN_INACTIVE ||
                   flags->v[i].state == PW_FLAG_ENTERED_IN_ERROR;
        }
    }
    return false;
}

static bool has_key(const struct pw_findings *list, const char *key)
{
    for (size_t i = 0; i < list->n; i++) {
        if (strcmp(list->v[i].key, key) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * A draft painwatch cannot judge (its drug, dose or sig unreadable: a data-quality event on it)
 * gets a card that says so, rather than the silence of a draft that passed every check.
 */
static int card_unchecked(struct pw_cds_result *out, const struct pw_timeline *tl,
                          const json_t *drafts)
{
    const json_t *d;
    size_t i;

    json_array_foreach(drafts, i, d)
    {
        const char *id = json_string_value(json_object_get(d, "id"));
        char codes[160] = "";
        char detail[PW_TEXT_MAX] = "";
        size_t nc = 0;
        size_t nd = 0;
        for (size_t k = 0; id && k < tl->dq.n; k++) {
            const struct pw_dq_event *q = &tl->dq.v[k];
            if (strcmp(q->src.type, "MedicationRequest") != 0 || strcmp(q->src.id, id) != 0 ||
                strcmp(q->code, "drug-identified-by-text") == 0 ||
                strcmp(q->code, "dose-unit-assumed") == 0 || strstr(codes, q->code)) {
                continue;
            }
            nc += (size_t)snprintf(codes + nc, sizeof(codes) - nc, "%s%s", nc ? ", " : "", q->code);
            nc = nc < sizeof(codes) ? nc : sizeof(codes) - 1;
            nd += (size_t)snprintf(detail + nd, sizeof(detail) - nd, "- %s: %s\n", q->code,
                                   q->detail);
            nd = nd < sizeof(detail) ? nd : sizeof(detail) - 1;
        }
        if (!codes[0]) {
            continue;
        }
        unsigned char b[16];
        char uuid[37];
        char summary[CARD_SUMMARY_MAX + 1];
        size_t n = 0;
        if (RAND_bytes(b, sizeof(b)) != 1) {
            return PW_ENOMEM;
        }
        b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
        b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
        for (size_t k = 0; k < 16; k++) {
            n += (size_t)snprintf(uuid + n, sizeof(uuid) - n, "%s%02x",
                                  (k == 4 || k == 6 || k == 8 || k == 10) ? "-" : "", b[k]);
        }
        snprintf(summary, sizeof(summary), "painwatch could not check this opioid order (%s)",
                 codes);
        json_t *card =
            json_pack("{s:s,s:s,s:s,s:s,s:{s:s}}", "uuid", uuid, "summary", summary, "detail",
                      detail, "indicator", "warning", "source", "label", "painwatch");
        if (!card || json_array_append_new(out->cards, card) < 0) {
            return PW_ENOMEM;
        }
        out->unchecked++;
    }
    return 0;
}

static int evaluate(const struct pw_cds_env *env, struct pw_timeline *tl, int64_t now,
                    struct pw_findings *out)
{
    int rule_err = 0;
    struct pw_synced synced = env->synced;

    /* What the daemon could read for this patient: a type refused (401/403) or not read yet is
     * no evidence of absence here either (absence is evidence only where painwatch looked). */
    if (env->synced_for) {
        env->synced_for(env->synced_arg, tl->patient, &synced);
    }
    return pw_evaluate(env->ev->engine, tl, &synced, now, out, &rule_err);
}

static int card_all(const struct pw_cds_env *env, struct pw_cds_result *out,
                    const struct pw_findings *found, const struct pw_findings *before,
                    const struct pw_flag_list *flags)
{
    for (size_t i = 0; i < found->n; i++) {
        const struct pw_finding *f = &found->v[i];
        json_t *card;
        if ((before && has_key(before, f->key)) || dismissed(flags, f->key)) {
            continue;
        }
        card = card_of(env, f);
        if (!card || json_array_append_new(out->cards, card) < 0 ||
            pw_findings_push(&out->found, f) < 0) {
            return PW_ENOMEM;
        }
    }
    return 0;
}

int pw_cds_evaluate(const struct pw_cds_env *env, const char *service, json_t *req, int64_t now,
                    struct pw_cds_result *out, char *why, size_t why_len)
{
    const json_t *ctx = json_object_get(req, "context");
    const char *pid = json_string_value(json_object_get(ctx, "patientId"));
    bool order_sign = strcmp(service, PW_CDS_ORDER_SIGN) == 0;
    struct pw_timeline tl;
    struct pw_findings before = {0};
    struct pw_findings after = {0};
    struct pw_flag_list flags = {0};
    json_t *drafts = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!order_sign && strcmp(service, PW_CDS_PATIENT_VIEW) != 0) {
        return PW_ENOENT;
    }
    if (!json_is_object(ctx) || !pid || !pw_fhir_id_valid(pid)) {
        snprintf(why, why_len, "context.patientId must be a FHIR id");
        return PW_EINVAL;
    }
    snprintf(out->patient, sizeof(out->patient), "Patient/%s", pid);
    out->cards = json_array();
    drafts = json_array();
    if (!out->cards || !drafts) {
        json_decref(drafts);
        return PW_ENOMEM;
    }
    if (order_sign) {
        rc = signed_drafts(json_object_get(ctx, "draftOrders"), out->patient, now, drafts, why,
                           why_len);
        if (rc < 0) {
            json_decref(drafts);
            return rc;
        }
        out->drafts = json_array_size(drafts);
    }
    pw_timeline_init(&tl, out->patient);
    rc = pw_eval_timeline_load(env->store, &env->ev->norm, out->patient, &tl);
    if (rc == 0 && json_is_object(json_object_get(req, "prefetch"))) {
        rc = overlay_prefetch(env, json_object_get(req, "prefetch"), &tl, &out->prefetch);
    }
    if (rc == 0) {
        rc = pw_store_flags_of_patient(env->store, out->patient, &flags);
    }
    /*
     * order-sign: the timeline without and with the drafts, both judged at the horizon. What the
     * clock alone brings by then is in both and is not carded; what the drafts bring once the
     * rules' grace periods have passed (24 h before a bowel regimen is expected) is.
     */
    if (rc == 0 && order_sign) {
        rc = evaluate(env, &tl, now + env->horizon_s, &before);
        if (rc == 0) {
            rc = pw_eval_timeline_add_resources(env->ev, drafts, NULL, &tl);
        }
    }
    if (rc == 0) {
        rc = evaluate(env, &tl, order_sign ? now + env->horizon_s : now, &after);
    }
    if (rc == 0) {
        rc = card_all(env, out, &after, order_sign ? &before : NULL, &flags);
    }
    if (rc == 0 && order_sign) {
        rc = card_unchecked(out, &tl, drafts);
    }
    pw_flag_list_cleanup(&flags);
    pw_findings_cleanup(&before);
    pw_findings_cleanup(&after);
    pw_timeline_cleanup(&tl);
    json_decref(drafts);
    return rc;
}
