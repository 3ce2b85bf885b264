/* SPDX-License-Identifier: Apache-2.0 */
/* MedicationRequest -> pw_med_order: drug identity, dose per day, MME, time span and role. */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "clinical/dosage.h"
#include "clinical/normalize_impl.h"
#include "painwatch/err.h"
#include "painwatch/mme.h"

#define RXNORM_OID "urn:oid:2.16.840.1.113883.6.88"

/* RxNorm by its URI (also with a trailing slash or https) or its OID. */
static bool is_rxnorm(const char *sys)
{
    static const char path[] = "www.nlm.nih.gov/research/umls/rxnorm";
    if (sys == NULL) {
        return false;
    }
    if (strncmp(sys, "https://", 8) == 0) {
        return strncmp(sys + 8, path, sizeof(path) - 1) == 0;
    }
    if (strncmp(sys, "http://", 7) == 0) {
        return strncmp(sys + 7, path, sizeof(path) - 1) == 0;
    }
    return strcmp(sys, RXNORM_OID) == 0;
}

/* The Medication code of a request: medicationCodeableConcept or the referenced Medication. */
static const json_t *medication_cc(const json_t *res, const struct pw_resolver *refs,
                                   const json_t **medication, const char **unresolved)
{
    *medication = NULL;
    *unresolved = NULL;
    const json_t *cc = json_object_get(res, "medicationCodeableConcept");
    if (json_is_object(cc)) {
        return cc;
    }
    const json_t *mref = json_object_get(res, "medicationReference");
    const char *ref = pw_fhir_str(mref, "reference");
    if (ref == NULL) {
        return NULL;
    }
    const json_t *med = NULL;
    if (ref[0] == '#') {
        size_t i;
        const json_t *c;
        json_array_foreach(json_object_get(res, "contained"), i, c)
        {
            const char *id = pw_fhir_str(c, "id");
            if (id && strcmp(id, ref + 1) == 0) {
                med = c;
            }
        }
    } else {
        med = pw_resolve(refs, ref);
    }
    const char *mt = pw_fhir_str(med, "resourceType");
    if (med == NULL || mt == NULL || strcmp(mt, "Medication") != 0) {
        *unresolved = ref;
        /* A display on the reference still names the drug. */
        return NULL;
    }
    *medication = med;
    return json_object_get(med, "code");
}

/* Rank of a look-up result: a product code beats an ingredient code beats a class-only hit. */
static int rank(const struct pw_drug_info *d)
{
    if ((d->classes & PW_MED_OPIOID) && d->drug_level && isfinite(d->strength)) {
        return 4;
    }
    if ((d->classes & PW_MED_OPIOID) && d->ingredient[0]) {
        return 3;
    }
    if (d->classes & PW_MED_OPIOID) {
        return 2;
    }
    return d->classes ? 1 : 0;
}

/* Strength from Medication.ingredient when the tables have none (mg per unit or per mL). */
static void strength_from_medication(const json_t *med, struct pw_drug_info *d)
{
    size_t i;
    const json_t *ing;
    json_array_foreach(json_object_get(med, "ingredient"), i, ing)
    {
        const json_t *item = json_object_get(ing, "itemCodeableConcept");
        bool ours = pw_fhir_cc_has(item, PW_FHIR_RXNORM, d->ingredient_rxcui) ||
                    json_array_size(json_object_get(med, "ingredient")) == 1;
        const json_t *num = json_object_get(json_object_get(ing, "strength"), "numerator");
        const json_t *den = json_object_get(json_object_get(ing, "strength"), "denominator");
        double nv, dv = 1;
        const char *nu =
            pw_fhir_str(num, "code") ? pw_fhir_str(num, "code") : pw_fhir_str(num, "unit");
        const char *du =
            pw_fhir_str(den, "code") ? pw_fhir_str(den, "code") : pw_fhir_str(den, "unit");
        if (!ours || !pw_fhir_num(num, "value", &nv) || nu == NULL) {
            continue;
        }
        pw_fhir_num(den, "value", &dv);
        double scale = strcasecmp(nu, "mg") == 0                                   ? 1
                       : (strcasecmp(nu, "ug") == 0 || strcasecmp(nu, "mcg") == 0) ? 0.001
                                                                                   : NAN;
        if (isnan(scale) || !(dv > 0)) {
            continue;
        }
        d->strength = nv * scale / dv;
        bool per_ml = du && strcasecmp(du, "mL") == 0;
        pw_fhir_copy(d->strength_unit, sizeof(d->strength_unit), per_ml ? "MG/ML" : "MG");
        return;
    }
}

/*
 * Identify the drug from every RxNorm coding (EHRs send SCD, SBD and IN together), keeping the
 * most specific opioid hit and the union of classes; then fall back to names.
 */
static int identify(const struct pw_norm_ctx *ctx, const json_t *cc, const json_t *med,
                    const json_t *res, struct pw_drug_info *out, bool *by_name)
{
    struct pw_drug_info best, cur;
    memset(&best, 0, sizeof(best));
    best.strength = NAN;
    unsigned classes = 0;
    *by_name = false;
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(cc, "coding"), i, c)
    {
        const char *sys = pw_fhir_str(c, "system");
        if (!is_rxnorm(sys)) {
            continue;
        }
        if (pw_terminology_lookup(ctx->term, pw_fhir_str(c, "code"), &cur) < 0) {
            continue;
        }
        classes |= cur.classes;
        if (rank(&cur) > rank(&best)) {
            best = cur;
        }
    }
    if (rank(&best) < 3) {
        /* Names: the concept text, coding displays, the reference display. */
        const char *names[8];
        size_t n = 0;
        names[n++] = pw_fhir_str(cc, "text");
        json_array_foreach(json_object_get(cc, "coding"), i, c)
        {
            if (n < 7) {
                names[n++] = pw_fhir_str(c, "display");
            }
        }
        names[n++] = pw_fhir_str(json_object_get(res, "medicationReference"), "display");
        for (size_t k = 0; k < n; k++) {
            if (names[k] != NULL && pw_terminology_match_name(ctx->term, names[k], &cur) == 0 &&
                rank(&cur) > rank(&best)) {
                best = cur;
                *by_name = true;
            }
        }
    }
    if (best.classes == 0 && classes == 0) {
        return PW_ENOENT;
    }
    best.classes |= classes;
    if ((best.classes & PW_MED_OPIOID) && med != NULL) {
        if (isnan(best.strength)) {
            strength_from_medication(med, &best);
        }
        /* Medication.form ("Extended release tablet", "Transdermal patch") adds what it says. */
        const json_t *form = json_object_get(med, "form");
        best.classes |=
            pw_terminology_form_classes(best.ingredient, pw_fhir_str(form, "text"), NULL);
        const json_t *fc = json_array_get(json_object_get(form, "coding"), 0);
        best.classes |=
            pw_terminology_form_classes(best.ingredient, pw_fhir_str(fc, "display"), NULL);
    }
    *out = best;
    return 0;
}

enum amount_kind {
    AMT_NONE = 0,
    AMT_MG,       /* mg of ingredient per administration */
    AMT_MCG_HOUR, /* transdermal: mcg/h worn */
    AMT_MG_HOUR,  /* a continuous rate in mg/h (infusion) */
};

/* Lower-case unit without braces and a plural s: "{Tablets}" -> "tablet". */
static void unit_key(const struct pw_dose_qty *q, bool text, char *out, size_t n)
{
    const char *u = text ? q->unit : q->code;
    size_t j = 0;
    for (; *u && j + 1 < n; u++) {
        if (*u != '{' && *u != '}') {
            out[j++] = (char)tolower((unsigned char)*u);
        }
    }
    out[j] = '\0';
    if (j > 2 && out[j - 1] == 's' && out[j - 2] != 's') {
        out[j - 1] = '\0';
    }
}

static bool unit_is(const char *u, const char *const *list)
{
    for (; *list; list++) {
        if (strcmp(u, *list) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * Convert @p amount of unit @p q into ingredient terms using the drug's strength.
 * @return the kind of the result, AMT_NONE when the unit cannot be converted.
 */
static enum amount_kind convert_unit(const struct pw_drug_info *d, const char *u, double amount,
                                     double *out)
{
    static const char *const mass_mg[] = {"mg", "milligram", NULL};
    static const char *const mass_ug[] = {"ug", "mcg", "microgram", "\xc2\xb5g", NULL};
    static const char *const mass_g[] = {"g", "gram", NULL};
    static const char *const vol_ml[] = {"ml", "milliliter", "millilitre", NULL};
    static const char *const patch[] = {"patch", "patche", "ptch", "transdermal patch", NULL};
    static const char *const rate_ug[] = {"ug/h", "mcg/h", "ug/hr", "mcg/hr", NULL};
    static const char *const rate_mg[] = {"mg/h", "mg/hr", NULL};
    static const char *const count[] = {"tab",    "tablet",    "cap",  "capsule", "tbl",
                                        "1",      "each",      "ea",   "supp",    "suppository",
                                        "loz",    "lozenge",   "film", "troche",  "spray",
                                        "actuat", "actuation", "puff", "pill",    NULL};
    static const char *const rate_ml[] = {"ml/h", "ml/hr", NULL};
    bool per_hour_strength = strcmp(d->strength_unit, "MG/HR") == 0;
    if (unit_is(u, mass_mg) || unit_is(u, mass_ug) || unit_is(u, mass_g)) {
        *out = amount * (unit_is(u, mass_mg) ? 1 : unit_is(u, mass_ug) ? 0.001 : 1000);
        if ((d->classes & PW_MED_TRANSDERMAL) && per_hour_strength) {
            *out *= 1000.0; /* "fentanyl 25 mcg patch": patches are named by their mcg/h */
            return AMT_MCG_HOUR;
        }
        return AMT_MG;
    }
    if (unit_is(u, vol_ml)) {
        if (strcmp(d->strength_unit, "MG/ML") != 0 || !isfinite(d->strength)) {
            return AMT_NONE;
        }
        *out = amount * d->strength;
        return AMT_MG;
    }
    if (unit_is(u, rate_ug) || unit_is(u, rate_mg)) {
        double mcg_h = amount * (unit_is(u, rate_ug) ? 1 : 1000);
        *out = (d->classes & PW_MED_TRANSDERMAL) ? mcg_h : mcg_h / 1000.0;
        return (d->classes & PW_MED_TRANSDERMAL) ? AMT_MCG_HOUR : AMT_MG_HOUR;
    }
    if (unit_is(u, rate_ml)) {
        if (strcmp(d->strength_unit, "MG/ML") != 0 || !isfinite(d->strength)) {
            return AMT_NONE;
        }
        *out = amount * d->strength; /* an infusion: mg/h */
        return AMT_MG_HOUR;
    }
    if (unit_is(u, patch) || (unit_is(u, count) && per_hour_strength)) {
        if (!per_hour_strength || !isfinite(d->strength)) {
            return AMT_NONE;
        }
        *out = amount * d->strength * 1000.0;
        return AMT_MCG_HOUR;
    }
    if (unit_is(u, count)) {
        if (!isfinite(d->strength) ||
            (strcmp(d->strength_unit, "MG") != 0 && strcmp(d->strength_unit, "MG/ACTUAT") != 0)) {
            return AMT_NONE;
        }
        *out = amount * d->strength;
        return AMT_MG;
    }
    return AMT_NONE;
}

/*
 * Try the UCUM/form code, then the unit text. A quantity without any unit (Synthea writes
 * {"value": 1}) is read as a count of the product's units, like UCUM "1"; the caller reports
 * that assumption.
 */
static enum amount_kind convert(const struct pw_drug_info *d, const struct pw_dose_qty *q,
                                double amount, double *out)
{
    char u[40];
    if (q->code[0] == '\0' && q->unit[0] == '\0') {
        return convert_unit(d, "1", amount, out);
    }
    for (int text = 0; text < 2; text++) {
        unit_key(q, text != 0, u, sizeof(u));
        if (u[0] == '\0') {
            continue;
        }
        enum amount_kind k = convert_unit(d, u, amount, out);
        if (k != AMT_NONE) {
            return k;
        }
    }
    return AMT_NONE;
}

/* One dosage instruction in ingredient terms. */
struct inst {
    double dose_low, dose_high; /* mg per administration (AMT_MG) */
    double per_day;             /* mg/day, or mcg/h worn for patches */
    long seq;                   /* LONG_MIN when absent: unsequenced instructions run together */
    enum amount_kind kind;
    bool prn;
    bool unitless; /* the dose had no unit and was read as a count of units */
};

/* Read one Dosage. @return 0, or a data-quality code (static string) with @p detail. */
static const char *read_inst(const struct pw_drug_info *d, const json_t *dosage, struct inst *in,
                             char *detail, size_t n)
{
    struct pw_dosage ds;
    pw_dosage_parse(dosage, &ds);
    in->seq = ds.has_sequence ? ds.sequence : LONG_MIN;
    in->prn = ds.prn;
    const struct pw_dose_qty *first = ds.n_cand ? &ds.cand[0] : NULL;
    in->kind = AMT_NONE;
    in->unitless = false;
    for (size_t i = 0; i < ds.n_cand && in->kind == AMT_NONE; i++) {
        double lo, hi;
        enum amount_kind k = convert(d, &ds.cand[i], ds.cand[i].low, &lo);
        if (k != AMT_NONE && convert(d, &ds.cand[i], ds.cand[i].high, &hi) == k) {
            in->kind = k;
            in->dose_low = lo;
            in->dose_high = hi;
            in->unitless = ds.cand[i].code[0] == '\0' && ds.cand[i].unit[0] == '\0';
        }
    }
    if (first == NULL) {
        snprintf(detail, n, "no structured dose%s", ds.has_text ? " (free-text sig only)" : "");
        return "unstructured-sig";
    }
    if (in->kind == AMT_NONE) {
        snprintf(detail, n, "dose unit '%s' not convertible to mg of %s%s",
                 first->code[0] ? first->code : first->unit, d->ingredient,
                 isfinite(d->strength) ? "" : " (drug strength unknown)");
        return "unit-not-convertible";
    }
    if (in->kind == AMT_MCG_HOUR) {
        in->per_day = in->dose_high; /* patches: what is worn, whatever the change interval */
        return NULL;
    }
    if (in->kind == AMT_MG_HOUR) {
        in->per_day = in->dose_high * 24.0;
        in->kind = AMT_MG;
        in->dose_low = in->dose_high = NAN; /* a rate has no per-administration dose */
        return NULL;
    }
    double cap = NAN;
    if (ds.has_max && convert(d, &ds.max_per_day, ds.max_per_day.low, &cap) != AMT_MG) {
        cap = NAN;
    }
    if (isfinite(ds.per_day)) {
        in->per_day = in->dose_high * ds.per_day;
        if (isfinite(cap) && cap < in->per_day) {
            in->per_day = cap;
        }
        return NULL;
    }
    if (isfinite(cap)) {
        in->per_day = cap; /* PRN without a frequency: the daily maximum is the most allowed */
        return NULL;
    }
    snprintf(detail, n, "no computable frequency (timing)%s",
             ds.has_text ? "; free-text sig only" : "");
    return "unstructured-sig";
}

#define INST_MAX 32

/*
 * Dose per day over all dosageInstructions: instructions with the same sequence run together
 * (summed); different sequences follow each other (the largest counts). Fills the mg fields of
 * @p o; on failure adds a data-quality event and leaves them NAN.
 */
static int compute_dose(const struct pw_drug_info *d, const json_t *res, struct pw_med_order *o,
                        struct pw_timeline *tl)
{
    const json_t *dis = json_object_get(res, "dosageInstruction");
    size_t n = json_is_array(dis) ? json_array_size(dis) : 0;
    struct inst in[INST_MAX];
    char detail[200];
    if (n == 0) {
        return pw_norm_dq(tl, &o->src, "unstructured-sig", "no dosageInstruction");
    }
    if (n > INST_MAX) {
        return pw_norm_dq(tl, &o->src, "unstructured-sig", "over %d dosageInstructions", INST_MAX);
    }
    bool all_prn = true;
    for (size_t i = 0; i < n; i++) {
        const char *code = read_inst(d, json_array_get(dis, i), &in[i], detail, sizeof(detail));
        if (code != NULL) {
            return pw_norm_dq(tl, &o->src, code, "%s", detail);
        }
        if (in[i].kind != in[0].kind) {
            return pw_norm_dq(tl, &o->src, "unit-not-convertible",
                              "dosageInstructions mix patch and non-patch doses");
        }
        all_prn = all_prn && in[i].prn;
        if (in[i].unitless) {
            int rc = pw_norm_dq(tl, &o->src, "dose-unit-assumed",
                                "dose without unit read as a number of %s",
                                d->dose_form[0] ? d->dose_form : "dose units");
            if (rc < 0) {
                return rc;
            }
        }
    }
    o->prn = all_prn;
    double best = -1;
    size_t best_first = 0;
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i; j++) {
            seen = seen || in[j].seq == in[i].seq;
        }
        if (seen) {
            continue; /* group already summed from its first member */
        }
        double sum = 0;
        for (size_t j = i; j < n; j++) {
            sum += in[j].seq == in[i].seq ? in[j].per_day : 0;
        }
        if (sum > best) {
            best = sum;
            best_first = i;
        }
    }
    o->mg_per_dose = in[best_first].dose_low;
    o->mg_per_dose_high = in[best_first].dose_high;
    for (size_t j = best_first; j < n; j++) {
        if (in[j].seq == in[best_first].seq && in[j].dose_high > o->mg_per_dose_high) {
            o->mg_per_dose_high = in[j].dose_high;
        }
    }
    if (in[0].kind == AMT_MCG_HOUR) {
        o->mcg_per_hour = best;
        o->mg_per_day = best * 24.0 / 1000.0;
        o->mg_per_dose = o->mg_per_dose_high = NAN;
    } else {
        o->mg_per_day = best;
    }
    return 0;
}

static int compute_mme(const struct pw_norm_ctx *ctx, struct pw_med_order *o,
                       struct pw_timeline *tl)
{
    bool patch = isfinite(o->mcg_per_hour);
    double f;
    if (pw_mme_factor(ctx->term, ctx->factor_set, o->ingredient_rxcui, patch, o->mg_per_day, &f) <
        0) {
        return pw_norm_dq(tl, &o->src, "no-factor", "no %s MME factor for %s%s", ctx->factor_set,
                          o->ingredient[0] ? o->ingredient : "this opioid",
                          patch ? " (transdermal)" : "");
    }
    o->mme_factor = f;
    if (patch) {
        o->mme_per_day = o->mcg_per_hour * f;
    } else {
        o->mme_per_day = o->mg_per_day * f;
        o->mme_per_dose = o->mg_per_dose_high * f;
    }
    return 0;
}

static int64_t time_of(const json_t *obj, const char *key)
{
    int64_t t;
    return pw_fhir_parse_time(pw_fhir_str(obj, key), &t) == 0 ? t : PW_TIME_NONE;
}

/*
 * When the order starts and ends. active|on-hold: open-ended. completed|stopped|cancelled: the
 * earliest of validityPeriod.end, the end of the expected supply, and meta.lastUpdated (the
 * status change, for want of a status date in R4); none known: it ended when it started.
 */
static void order_times(const json_t *res, const char *status, struct pw_med_order *o)
{
    const json_t *disp = json_object_get(res, "dispenseRequest");
    const json_t *valid = json_object_get(disp, "validityPeriod");
    const json_t *di0 = json_array_get(json_object_get(res, "dosageInstruction"), 0);
    const json_t *bounds =
        json_object_get(json_object_get(json_object_get(di0, "timing"), "repeat"), "boundsPeriod");
    int64_t updated = time_of(json_object_get(res, "meta"), "lastUpdated");
    o->start = time_of(res, "authoredOn");
    if (o->start == PW_TIME_NONE) {
        o->start = time_of(valid, "start");
    }
    if (o->start == PW_TIME_NONE) {
        o->start = time_of(bounds, "start");
    }
    if (o->start == PW_TIME_NONE) {
        o->start = updated;
    }
    if (strcmp(status, "active") == 0 || strcmp(status, "on-hold") == 0) {
        o->end = PW_TIME_FOREVER;
        return;
    }
    int64_t ends[3] = {time_of(valid, "end"), updated, PW_TIME_NONE};
    const json_t *supply = json_object_get(disp, "expectedSupplyDuration");
    double v;
    double days = pw_dosage_unit_days(pw_fhir_str(supply, "code"));
    if (o->start != PW_TIME_NONE && pw_fhir_num(supply, "value", &v) && isfinite(days) && v > 0 &&
        v * days < 3650) {
        ends[2] = o->start + (int64_t)(v * days * 86400.0);
    }
    o->end = PW_TIME_NONE;
    for (size_t i = 0; i < 3; i++) {
        if (ends[i] != PW_TIME_NONE && (o->end == PW_TIME_NONE || ends[i] < o->end)) {
            o->end = ends[i];
        }
    }
    if (o->end == PW_TIME_NONE || (o->start != PW_TIME_NONE && o->end < o->start)) {
        o->end = o->start;
    }
}

static void prior_of(const json_t *res, const struct pw_resolver *refs, struct pw_med_order *o)
{
    const char *ref = pw_fhir_str(json_object_get(res, "priorPrescription"), "reference");
    if (ref == NULL) {
        return;
    }
    const json_t *target = pw_resolve(refs, ref);
    if (target != NULL && pw_fhir_str(target, "id") && pw_fhir_str(target, "resourceType")) {
        snprintf(o->prior, sizeof(o->prior), "%s/%s", pw_fhir_str(target, "resourceType"),
                 pw_fhir_str(target, "id"));
    } else if (pw_fhir_ref_relative(ref, o->prior, sizeof(o->prior)) < 0) {
        pw_fhir_copy(o->prior, sizeof(o->prior), ref);
    }
}

static void role_of(struct pw_med_order *o)
{
    o->role = PW_ROLE_OTHER;
    if (!(o->classes & PW_MED_OPIOID)) {
        return;
    }
    if (!o->prn) {
        o->role = PW_ROLE_BASELINE;
    } else if (!(o->classes &
                 (PW_MED_LONG_ACTING | PW_MED_RAPID_ONSET_FENTANYL | PW_MED_TRANSDERMAL))) {
        o->role = PW_ROLE_RESCUE;
    }
}

/* Every dosageInstruction as needed: an opioid's role, and a PRN-only laxative matters to the
 * bowel rule. */
static bool all_prn(const json_t *res)
{
    const json_t *dis = json_object_get(res, "dosageInstruction");
    size_t i;
    const json_t *di;
    if (json_array_size(dis) == 0) {
        return false;
    }
    json_array_foreach(dis, i, di)
    {
        if (!pw_dosage_prn(di)) {
            return false;
        }
    }
    return true;
}

int pw_norm_medication_request(const struct pw_norm_ctx *ctx, const json_t *res,
                               const struct pw_ref *src, const struct pw_resolver *refs,
                               struct pw_timeline *tl)
{
    struct pw_med_order o;
    memset(&o, 0, sizeof(o));
    o.src = *src;
    const char *status = pw_fhir_str(res, "status");
    const char *intent = pw_fhir_str(res, "intent");
    if (status == NULL || strcmp(status, "draft") == 0 || strcmp(status, "entered-in-error") == 0) {
        return 0;
    }
    /* An order not to give the drug, a proposal or an option is not a prescription. */
    if (json_is_true(json_object_get(res, "doNotPerform")) ||
        (intent && (strcmp(intent, "proposal") == 0 || strcmp(intent, "option") == 0))) {
        return 0;
    }
    static const char *const known[] = {"active", "on-hold", "completed", "stopped", "cancelled"};
    bool ok = false;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        ok = ok || strcmp(status, known[i]) == 0;
    }
    if (!ok) {
        return pw_norm_dq(tl, &o.src, "unknown-status", "status '%.40s' is not usable", status);
    }
    const json_t *med;
    const char *unresolved;
    const json_t *cc = medication_cc(res, refs, &med, &unresolved);
    struct pw_drug_info d;
    bool by_name;
    if (identify(ctx, cc, med, res, &d, &by_name) < 0) {
        if (unresolved != NULL) {
            return pw_norm_dq(tl, &o.src, "unresolved-medication",
                              "medicationReference '%.120s' not found", unresolved);
        }
        const char *rx = NULL;
        size_t i;
        const json_t *c;
        json_array_foreach(json_object_get(cc, "coding"), i, c)
        {
            const char *sys = pw_fhir_str(c, "system");
            if (rx == NULL && is_rxnorm(sys)) {
                rx = pw_fhir_str(c, "code");
            }
        }
        return pw_norm_dq(tl, &o.src, "unknown-drug",
                          "%s%.20s not in the terminology tables (opioids, laxatives, adjuvants, "
                          "benzodiazepines)",
                          rx ? "RxNorm " : "no RxNorm code; name", rx ? rx : "");
    }
    o.mg_per_dose = o.mg_per_dose_high = o.mg_per_day = o.mcg_per_hour = NAN;
    o.mme_factor = o.mme_per_day = o.mme_per_dose = NAN;
    o.classes = d.classes;
    if ((o.classes & PW_MED_ADJUVANT) && pw_norm_local_form(res, d.name)) {
        o.classes &= ~(unsigned)PW_MED_ADJUVANT; /* issue 17: adjuvants are systemic only */
    }
    pw_fhir_copy(o.drug_rxcui, sizeof(o.drug_rxcui), d.rxcui);
    pw_fhir_copy(o.drug_name, sizeof(o.drug_name), d.name);
    pw_fhir_copy(o.ingredient_rxcui, sizeof(o.ingredient_rxcui), d.ingredient_rxcui);
    pw_fhir_copy(o.ingredient, sizeof(o.ingredient), d.ingredient);
    order_times(res, status, &o);
    prior_of(res, refs, &o);
    int rc = 0;
    if (o.start == PW_TIME_NONE) {
        rc = pw_norm_dq(tl, &o.src, "no-start-time",
                        "no authoredOn, validityPeriod.start, boundsPeriod.start or lastUpdated");
        if (rc < 0) {
            return rc;
        }
    }
    if (d.classes & PW_MED_OPIOID) {
        if (by_name) {
            rc = pw_norm_dq(tl, &o.src, "drug-identified-by-text",
                            "opioid recognised from its name, not an RxNorm code");
        }
        o.prn = all_prn(res);
        if (rc == 0 && d.ingredient[0] == '\0') {
            rc = pw_norm_dq(tl, &o.src, "unknown-drug", "opioid ingredient not identified");
        } else if (rc == 0) {
            rc = compute_dose(&d, res, &o, tl);
            if (rc == 0 && isfinite(o.mg_per_day)) {
                rc = compute_mme(ctx, &o, tl);
            }
        }
    } else {
        o.prn = all_prn(res);
    }
    if (rc < 0) {
        return rc;
    }
    role_of(&o);
    return pw_timeline_add_order(tl, &o);
}
