/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Clinical context (issue 17): the problem list (active cancer), the care setting (encounters),
 * end of life (hospice, comfort care, palliative sedation) and opioid doses given. Each becomes a
 * pw_context event of the timeline; rules read those, never the JSON.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clinical/normalize_impl.h"
#include "painwatch/err.h"

#define ICD10CM "http://hl7.org/fhir/sid/icd-10-cm"

/*
 * CDC opioid-cds cdc-malignant-cancer-conditions (compose): ICD-10-CM section C00-C96, D03,
 * section D37-D48, D49, G89.3; minus D3A.
 */
bool pw_norm_icd10_malignant(const char *code)
{
    if (code == NULL || strlen(code) < 3) {
        return false;
    }
    if (code[0] == 'C' && isdigit((unsigned char)code[1])) {
        return true;
    }
    if (strncmp(code, "G89.3", 5) == 0) {
        return true;
    }
    if (code[0] != 'D' || strncmp(code, "D3A", 3) == 0 || !isdigit((unsigned char)code[1]) ||
        !isdigit((unsigned char)code[2])) {
        return false;
    }
    int n = (code[1] - '0') * 10 + (code[2] - '0');
    return n == 3 || (n >= 37 && n <= 49);
}

/* ---- NegEx-style negation ------------------------------------------------------------------ */

static bool word_at(const char *text, const char *p, const char *word)
{
    size_t n = strlen(word);
    return strncasecmp(p, word, n) == 0 && (p == text || !isalpha((unsigned char)p[-1])) &&
           !isalpha((unsigned char)p[n]);
}

/*
 * Whether the occurrence of a word at @p at lies in the scope of a negation trigger before it:
 * the trigger is at most 5 words back and no clause boundary (. ; : , "but", "however") lies in
 * between. A comma ends the scope except right after the trigger's list ("no burning, no
 * shooting" negates both through their own triggers).
 */
static bool negated_at(const char *text, const char *at)
{
    static const char *const triggers[] = {"no",         "not",     "denies",       "denied",
                                           "deny",       "without", "negative for", "free of",
                                           "absence of", "never",   "nor",          NULL};
    int words = 0;
    const char *p = at;
    while (p > text && words <= 5) {
        p--;
        if (*p == '.' || *p == ';' || *p == ':' || *p == ',' || *p == '\n') {
            return false;
        }
        if (isalpha((unsigned char)*p) && (p == text || !isalpha((unsigned char)p[-1]))) {
            if (word_at(text, p, "but") || word_at(text, p, "however")) {
                return false;
            }
            for (const char *const *t = triggers; *t; t++) {
                if (word_at(text, p, *t)) {
                    return true;
                }
            }
            words++;
        }
    }
    return false;
}

bool pw_norm_word_affirmed(const char *word, const char *text)
{
    int first = tolower((unsigned char)word[0]);
    for (const char *p = text; p && *p; p++) {
        /* the first letter filters out nearly every position before the full compare */
        if (tolower((unsigned char)*p) == first && word_at(text, p, word) && !negated_at(text, p)) {
            return true;
        }
    }
    return false;
}

/* ---- helpers ------------------------------------------------------------------------------- */

static bool cc_has_any(const json_t *cc, const char *system, const char *const *codes)
{
    for (; *codes; codes++) {
        if (pw_fhir_cc_has(cc, system, *codes)) {
            return true;
        }
    }
    return false;
}

/* Any of @p words affirmed in the text or a display of @p cc (or of each element of an array). */
static bool cc_words(const json_t *cc, const char *const *words)
{
    if (json_is_array(cc)) {
        size_t i;
        const json_t *e;
        json_array_foreach(cc, i, e)
        {
            if (cc_words(e, words)) {
                return true;
            }
        }
        return false;
    }
    for (const char *const *w = words; *w; w++) {
        if (pw_norm_word_affirmed(*w, pw_fhir_str(cc, "text")) ||
            pw_norm_word_affirmed(*w, pw_fhir_str(cc, "display"))) {
            return true;
        }
        size_t i;
        const json_t *c;
        json_array_foreach(json_object_get(cc, "coding"), i, c)
        {
            if (pw_norm_word_affirmed(*w, pw_fhir_str(c, "display"))) {
                return true;
            }
        }
    }
    return false;
}

static bool cc_codes(const json_t *cc, const char *system, const char *const *codes)
{
    if (json_is_array(cc)) {
        size_t i;
        const json_t *e;
        json_array_foreach(cc, i, e)
        {
            if (cc_has_any(e, system, codes)) {
                return true;
            }
        }
        return false;
    }
    return cc_has_any(cc, system, codes);
}

static int64_t time_of(const json_t *obj, const char *key)
{
    int64_t t;
    return pw_fhir_parse_time(pw_fhir_str(obj, key), &t) == 0 ? t : PW_TIME_NONE;
}

static int add_ctx(struct pw_timeline *tl, const struct pw_ref *src, enum pw_ctx_kind kind,
                   int64_t at, int64_t end, double value, const char *detail)
{
    struct pw_context ev;
    memset(&ev, 0, sizeof(ev));
    ev.src = *src;
    ev.kind = kind;
    ev.at = at;
    ev.end = end;
    ev.value = value;
    pw_fhir_copy(ev.detail, sizeof(ev.detail), detail ? detail : "");
    return pw_timeline_add_context(tl, &ev);
}

/* Malignant neoplasm: SNOMED concepts (flat list of common descendants), ICD-10-CM, words. */
static const char *const cancer_sct[] = {
    "363346000", /* Malignant neoplastic disease */
    "372087000", /* Primary malignant neoplasm */
    "128462008", /* Secondary malignant neoplastic disease */
    "254637007", /* Non-small cell lung cancer */
    "254632001", /* Small cell carcinoma of lung */
    "363358000", /* Malignant tumor of lung */
    "93761005",  /* Primary malignant neoplasm of colon */
    "363406005", /* Malignant tumor of colon */
    "94260004",  /* Secondary malignant neoplasm of colon */
    "254837009", /* Malignant neoplasm of breast */
    "363418001", /* Malignant tumor of pancreas */
    "399068003", /* Malignant tumor of prostate */
    "94222008",  /* Secondary malignant neoplasm of bone */
    "93655004",  /* Primary malignant neoplasm of lung */
    NULL,
};
static const char *const cancer_words[] = {
    "cancer",       "carcinoma",    "malignant",      "malignancy", "metastatic", "metastases",
    "lymphoma",     "leukemia",     "leukaemia",      "myeloma",    "sarcoma",    "melanoma",
    "glioblastoma", "mesothelioma", "adenocarcinoma", NULL,
};

/* Hospice and end-of-life findings / procedures (CDC hospice-finding, hospice-procedure,
 * therapies-indicating-end-of-life-care minus the palliative-only members). */
static const char *const eol_sct[] = {
    "170935008", "448451000124101", "1891000124102", "1951000124104", "305911006",
    "306205009", "305336008",       "183919006",     "183920000",     "183921001",
    "182964004", "385763009",       "395103003",     "133918004", /* Comfort measures */
    NULL,
};
static const char *const eol_words[] = {"hospice",       "comfort care",    "comfort measures",
                                        "terminal care", "end of life",     "end-of-life",
                                        "final days",    "comfort-focused", NULL};

bool pw_norm_condition_counts(const json_t *res)
{
    const json_t *vs = json_object_get(res, "verificationStatus");
    const json_t *cs = json_object_get(res, "clinicalStatus");
    if (pw_fhir_cc_has(vs, NULL, "entered-in-error") || pw_fhir_cc_has(vs, NULL, "refuted")) {
        return false;
    }
    return cs == NULL || pw_fhir_cc_has(cs, NULL, "active") ||
           pw_fhir_cc_has(cs, NULL, "recurrence") || pw_fhir_cc_has(cs, NULL, "relapse");
}

static bool icd_malignant(const json_t *cc)
{
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(cc, "coding"), i, c)
    {
        const char *sys = pw_fhir_str(c, "system");
        if (sys && strcmp(sys, ICD10CM) == 0 && pw_norm_icd10_malignant(pw_fhir_str(c, "code"))) {
            return true;
        }
    }
    return false;
}

int pw_norm_condition_context(const struct pw_norm_ctx *ctx, const json_t *res,
                              const struct pw_ref *src, struct pw_timeline *tl)
{
    (void)ctx;
    if (!pw_norm_condition_counts(res)) {
        return 0;
    }
    const json_t *code = json_object_get(res, "code");
    static const char *const keys[] = {"onsetDateTime", "recordedDate"};
    int64_t at = PW_TIME_NONE;
    for (size_t k = 0; k < 2 && at == PW_TIME_NONE; k++) {
        at = time_of(res, keys[k]);
    }
    if (at == PW_TIME_NONE) {
        at = time_of(json_object_get(res, "onsetPeriod"), "start");
    }
    /* A malignant neoplasm on the problem list stays in force while it is active, whatever its
     * date: its time is when it was first recorded (or unknown). */
    int rc = 0;
    if (icd_malignant(code) || cc_has_any(code, PW_FHIR_SNOMED, cancer_sct) ||
        cc_words(code, cancer_words)) {
        rc = add_ctx(tl, src, PW_CTX_CANCER, at, PW_TIME_FOREVER, NAN, "");
    }
    if (rc == 0 && (cc_has_any(code, PW_FHIR_SNOMED, eol_sct) || cc_words(code, eol_words))) {
        rc = add_ctx(tl, src, PW_CTX_END_OF_LIFE, at, PW_TIME_FOREVER, NAN, "");
    }
    return rc;
}

/* ---- encounters ---------------------------------------------------------------------------- */

static enum pw_setting encounter_setting(const json_t *res)
{
    const char *cls = pw_fhir_str(json_object_get(res, "class"), "code");
    static const struct {
        const char *code;
        enum pw_setting s;
    } map[] = {{"IMP", PW_SETTING_INPATIENT},   {"ACUTE", PW_SETTING_INPATIENT},
               {"NONAC", PW_SETTING_INPATIENT}, {"OBSENC", PW_SETTING_INPATIENT},
               {"SS", PW_SETTING_INPATIENT},    {"EMER", PW_SETTING_EMERGENCY},
               {"AMB", PW_SETTING_AMBULATORY},  {"HH", PW_SETTING_AMBULATORY},
               {"FLD", PW_SETTING_AMBULATORY},  {"VR", PW_SETTING_VIRTUAL}};
    for (size_t i = 0; cls && i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(cls, map[i].code) == 0) {
            return map[i].s;
        }
    }
    return PW_SETTING_UNKNOWN;
}

/* Locations' displays (Encounter.location[].location.display) as one check. */
static bool location_words(const json_t *res, const char *const *words)
{
    size_t i;
    const json_t *l;
    json_array_foreach(json_object_get(res, "location"), i, l)
    {
        const char *d = pw_fhir_str(json_object_get(l, "location"), "display");
        for (const char *const *w = words; d && *w; w++) {
            if (pw_norm_word_affirmed(*w, d)) {
                return true;
            }
        }
    }
    return false;
}

int pw_norm_encounter_context(const struct pw_norm_ctx *ctx, const json_t *res,
                              const struct pw_ref *src, struct pw_timeline *tl)
{
    if (strcmp(pw_fhir_str(res, "resourceType"), "Encounter") != 0) {
        return 0;
    }
    const char *status = pw_fhir_str(res, "status");
    if (status == NULL || strcmp(status, "cancelled") == 0 ||
        strcmp(status, "entered-in-error") == 0 || strcmp(status, "planned") == 0 ||
        strcmp(status, "unknown") == 0) {
        return 0;
    }
    const json_t *period = json_object_get(res, "period");
    int64_t start = time_of(period, "start");
    int64_t end = time_of(period, "end");
    bool finished = strcmp(status, "finished") == 0;
    if (start == PW_TIME_NONE) {
        return 0; /* an encounter without a time tells no setting at any time */
    }
    if (!finished) {
        end = end == PW_TIME_NONE || end < start ? PW_TIME_FOREVER : end;
    } else if (end == PW_TIME_NONE || end < start) {
        end = start;
    }
    struct pw_context ev;
    memset(&ev, 0, sizeof(ev));
    ev.src = *src;
    ev.kind = PW_CTX_ENCOUNTER;
    ev.at = start;
    ev.end = end;
    ev.value = (double)encounter_setting(res);
    ev.finished = finished;
    int rc = pw_timeline_add_context(tl, &ev);
    const json_t *type = json_object_get(res, "type");
    const json_t *svc = json_object_get(res, "serviceType");
    if (rc == 0 &&
        (cc_codes(type, PW_FHIR_SNOMED, eol_sct) || cc_codes(svc, PW_FHIR_SNOMED, eol_sct) ||
         cc_words(type, eol_words) || cc_words(svc, eol_words) || location_words(res, eol_words))) {
        rc = add_ctx(tl, src, PW_CTX_END_OF_LIFE, start, end, NAN, "hospice encounter");
    }
    static const char *const pall_words[] = {"palliative", NULL};
    bool pall = false;
    for (size_t i = 0; i < ctx->palliative.n && !pall; i++) {
        pall = cc_codes(type, ctx->palliative.v[i].system,
                        (const char *const[]){ctx->palliative.v[i].code, NULL}) ||
               cc_codes(svc, ctx->palliative.v[i].system,
                        (const char *const[]){ctx->palliative.v[i].code, NULL});
    }
    if (rc == 0 && (pall || location_words(res, pall_words))) {
        rc = add_ctx(tl, src, PW_CTX_PALLIATIVE, start, end, NAN, "palliative care encounter");
    }
    return rc;
}

/* ---- administrations, infusions, goals and care plans -------------------------------------- */

/* The drug's classes from a medicationCodeableConcept (RxNorm code, else its name). */
static unsigned drug_classes(const struct pw_norm_ctx *ctx, const json_t *res, char *name, size_t n)
{
    const json_t *cc = json_object_get(res, "medicationCodeableConcept");
    struct pw_drug_info info;
    size_t i;
    const json_t *c;
    name[0] = '\0';
    if (ctx->term == NULL) {
        return 0;
    }
    json_array_foreach(json_object_get(cc, "coding"), i, c)
    {
        const char *code = pw_fhir_str(c, "code");
        if (code && pw_terminology_lookup(ctx->term, code, &info) == 0) {
            pw_fhir_copy(name, n, info.name);
            return info.classes;
        }
    }
    const char *text = pw_fhir_str(cc, "text");
    if (text && pw_terminology_match_name(ctx->term, text, &info) == 0) {
        pw_fhir_copy(name, n, info.name);
        return info.classes;
    }
    return 0;
}

/* A dosage given as a rate (mg/h, mL/h): a continuous infusion. */
static bool has_rate(const json_t *dosage)
{
    if (json_object_get(dosage, "rateQuantity") || json_object_get(dosage, "rateRatio")) {
        return true;
    }
    size_t i;
    const json_t *dr;
    json_array_foreach(json_object_get(dosage, "doseAndRate"), i, dr)
    {
        if (json_object_get(dr, "rateQuantity") || json_object_get(dr, "rateRatio") ||
            json_object_get(dr, "rateRange")) {
            return true;
        }
    }
    return false;
}

static int administration(const struct pw_norm_ctx *ctx, const json_t *res,
                          const struct pw_ref *src, struct pw_timeline *tl)
{
    const char *status = pw_fhir_str(res, "status");
    if (status == NULL ||
        (strcmp(status, "completed") != 0 && strcmp(status, "in-progress") != 0)) {
        return 0; /* not-done, entered-in-error, stopped before any dose: nothing was given */
    }
    const json_t *period = json_object_get(res, "effectivePeriod");
    int64_t at = time_of(res, "effectiveDateTime");
    int64_t end = PW_TIME_NONE;
    if (at == PW_TIME_NONE) {
        at = time_of(period, "start");
        end = time_of(period, "end");
    }
    if (at == PW_TIME_NONE) {
        return pw_norm_dq(tl, src, "no-time", "administration without effective time");
    }
    char name[PW_CODE_MAX];
    unsigned classes = drug_classes(ctx, res, name, sizeof(name));
    const char *req = pw_fhir_str(json_object_get(res, "request"), "reference");
    struct pw_context ev;
    memset(&ev, 0, sizeof(ev));
    ev.src = *src;
    ev.at = at;
    ev.end = end;
    ev.value = NAN;
    pw_fhir_copy(ev.detail, sizeof(ev.detail), name);
    if (req == NULL || pw_fhir_ref_relative(req, ev.link, sizeof(ev.link)) < 0) {
        ev.link[0] = '\0';
    }
    if ((classes & PW_MED_BENZODIAZEPINE) &&
        (has_rate(json_object_get(res, "dosage")) ||
         (period != NULL && (end == PW_TIME_NONE || end - at >= 3600)))) {
        ev.kind = PW_CTX_BENZO_INFUSION;
        ev.end = end == PW_TIME_NONE || strcmp(status, "in-progress") == 0 ? PW_TIME_FOREVER : end;
        return pw_timeline_add_context(tl, &ev);
    }
    if ((classes & PW_MED_OPIOID) || (classes == 0 && ev.link[0] != '\0')) {
        ev.kind = PW_CTX_ADMINISTRATION;
        ev.end = at;
        return pw_timeline_add_context(tl, &ev);
    }
    return 0;
}

/* An active benzodiazepine order given as a continuous infusion (midazolam mg/h). */
static int benzo_infusion_order(const struct pw_norm_ctx *ctx, const json_t *res,
                                const struct pw_ref *src, struct pw_timeline *tl)
{
    const char *status = pw_fhir_str(res, "status");
    if (status == NULL || strcmp(status, "active") != 0) {
        return 0;
    }
    bool rate = false;
    size_t i;
    const json_t *d;
    json_array_foreach(json_object_get(res, "dosageInstruction"), i, d)
    {
        rate = rate || has_rate(d);
    }
    char name[PW_CODE_MAX];
    /* the rate first: the drug is looked up only for infusions */
    if (!rate || !(drug_classes(ctx, res, name, sizeof(name)) & PW_MED_BENZODIAZEPINE)) {
        return 0;
    }
    return add_ctx(tl, src, PW_CTX_BENZO_INFUSION, time_of(res, "authoredOn"), PW_TIME_FOREVER, NAN,
                   name);
}

/* Goal / CarePlan for comfort care, while active. */
static int comfort_plan(const json_t *res, const struct pw_ref *src, struct pw_timeline *tl)
{
    const char *type = pw_fhir_str(res, "resourceType");
    const char *status = pw_fhir_str(res, strcmp(type, "Goal") == 0 ? "lifecycleStatus" : "status");
    if (status == NULL || (strcmp(status, "active") != 0 && strcmp(status, "accepted") != 0)) {
        return 0;
    }
    bool hit = cc_words(json_object_get(res, "description"), eol_words) ||
               cc_codes(json_object_get(res, "description"), PW_FHIR_SNOMED, eol_sct) ||
               cc_words(json_object_get(res, "category"), eol_words) ||
               cc_codes(json_object_get(res, "category"), PW_FHIR_SNOMED, eol_sct) ||
               pw_norm_word_affirmed("comfort care", pw_fhir_str(res, "title")) ||
               pw_norm_word_affirmed("comfort", pw_fhir_str(res, "title"));
    if (!hit) {
        return 0;
    }
    int64_t at = time_of(res, "startDate");
    if (at == PW_TIME_NONE) {
        at = time_of(json_object_get(res, "period"), "start");
    }
    if (at == PW_TIME_NONE) {
        at = time_of(res, "created");
    }
    return add_ctx(tl, src, PW_CTX_END_OF_LIFE, at, PW_TIME_FOREVER, NAN, "comfort care plan");
}

int pw_norm_other_context(const struct pw_norm_ctx *ctx, const json_t *res,
                          const struct pw_ref *src, struct pw_timeline *tl)
{
    const char *type = pw_fhir_str(res, "resourceType");
    if (strcmp(type, "MedicationAdministration") == 0) {
        return administration(ctx, res, src, tl);
    }
    if (strcmp(type, "MedicationRequest") == 0) {
        return benzo_infusion_order(ctx, res, src, tl);
    }
    return comfort_plan(res, src, tl);
}

bool pw_norm_local_form(const json_t *res, const char *drug_name)
{
    /* SNOMED routes: topical, cutaneous, ophthalmic, otic, nasal, inhalation, intra-articular */
    static const char *const routes[] = {"6064005",  "448598008", "54485002", "10547007",
                                         "46713006", "18679011",  "12130007", NULL};
    static const char *const forms[] = {"topical",    "cream",  "ointment", "gel",        "lotion",
                                        "ophthalmic", "otic",   "nasal",    "inhalation", "inhaler",
                                        "paste",      "dental", NULL};
    size_t i;
    const json_t *d;
    json_array_foreach(json_object_get(res, "dosageInstruction"), i, d)
    {
        const json_t *route = json_object_get(d, "route");
        if (cc_has_any(route, PW_FHIR_SNOMED, routes) || cc_words(route, forms)) {
            return true;
        }
    }
    const json_t *med = json_object_get(res, "medicationCodeableConcept");
    for (const char *const *f = forms; *f; f++) {
        if (pw_norm_word_affirmed(*f, drug_name) ||
            pw_norm_word_affirmed(*f, pw_fhir_str(med, "text"))) {
            return true;
        }
    }
    return cc_words(med, forms);
}
