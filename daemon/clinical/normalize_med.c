/* SPDX-License-Identifier: Apache-2.0 */
/* MedicationRequest -> pw_med_order: drug identity, dose per day, MME, time span and role. */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
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
        bool ug = strcasecmp(nu, "ug") == 0 || strcasecmp(nu, "mcg") == 0 ||
                  strcasecmp(nu, "microgram") == 0 || strcmp(nu, "\xc2\xb5g") == 0 ||
                  strcmp(nu, "\xce\xbcg") == 0;
        double scale = strcasecmp(nu, "mg") == 0 ? 1 : ug ? 0.001 : NAN;
        if (isnan(scale) || !(dv > 0)) {
            continue;
        }
        d->strength = nv * scale / dv;
        bool per_ml = du && strcasecmp(du, "mL") == 0;
        /* A patch's strength is a ratio per hour ("25 mcg / 1 h"). */
        bool per_h = du && (strcasecmp(du, "h") == 0 || strcasecmp(du, "hr") == 0 ||
                            strcasecmp(du, "hour") == 0);
        pw_fhir_copy(d->strength_unit, sizeof(d->strength_unit),
                     per_ml  ? "MG/ML"
                     : per_h ? "MG/HR"
                             : "MG");
        d->drug_level = true;
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
        if (best.dose_form[0] == '\0') {
            const char *ft =
                pw_fhir_str(form, "text") ? pw_fhir_str(form, "text") : pw_fhir_str(fc, "display");
            pw_fhir_copy(best.dose_form, sizeof(best.dose_form), ft);
        }
        if (strcmp(best.strength_unit, "MG/HR") == 0) {
            best.classes |= PW_MED_TRANSDERMAL;
        }
    }
    *out = best;
    return 0;
}

enum amount_kind {
    AMT_NONE = 0,
    AMT_MG,       /* mg of ingredient per administration */
    AMT_MCG_HOUR, /* transdermal: mcg/h worn */
    AMT_MG_HOUR,  /* a continuous rate in mg/h (infusion) */
    AMT_BAD_UNIT, /* a unit that does not fit the form (mg for a patch): implausible */
};

/* Replace every @p from in @p s (capacity @p n) by @p to (not longer than @p from). */
static void replace_all(char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to);
    char *p = s;
    while ((p = strstr(p, from)) != NULL) {
        memmove(p + tl, p + fl, strlen(p + fl) + 1);
        memcpy(p, to, tl);
        p += tl;
    }
}

/*
 * Canonical unit: lower case, no braces, no "(s)", no spaces around '/', microgram spellings as
 * "ug", milligram as "mg", per hour as "/h", a plural s dropped: "{Tablets}" -> "tablet",
 * "microgram/hour" and "µg/h" -> "ug/h", "tablet(s)" -> "tablet".
 */
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
    static const char *const rep[][2] = {
        {"(s)", ""},          {" / ", "/"},         {" /", "/"},         {"/ ", "/"},
        {"micrograms", "ug"}, {"microgram", "ug"},  {"mcg", "ug"},       {"\xc2\xb5g", "ug"},
        {"\xce\xbcg", "ug"},  {"milligrams", "mg"}, {"milligram", "mg"}, {" per hour", "/h"},
        {"/hours", "/h"},     {"/hour", "/h"},      {"/hrs", "/h"},      {"/hr", "/h"},
        {"/1h", "/h"},        {"/1 h", "/h"},
    };
    for (size_t i = 0; i < sizeof(rep) / sizeof(rep[0]); i++) {
        replace_all(out, rep[i][0], rep[i][1]);
    }
    j = strlen(out);
    while (j > 0 && out[j - 1] == ' ') {
        out[--j] = '\0';
    }
    if (j > 2 && out[j - 1] == 's' && out[j - 2] != 's' && strchr(out, '/') == NULL) {
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
 * Convert @p amount of unit @p u into ingredient terms using the drug's strength. @p patch: the
 * order is transdermal (doses are mcg/h worn: "25 mcg" of a patch is 25 mcg/h, mg does not fit).
 * @return the kind of the result, AMT_NONE when the unit cannot be converted.
 */
static enum amount_kind convert_unit(const struct pw_drug_info *d, const char *u, double amount,
                                     bool patch, double *out)
{
    static const char *const mass_mg[] = {"mg", NULL};
    static const char *const mass_ug[] = {"ug", NULL};
    static const char *const mass_g[] = {"g", "gram", NULL};
    static const char *const vol_ml[] = {"ml", "milliliter", "millilitre", NULL};
    static const char *const patch_u[] = {"patch", "patche", "ptch", "transdermal patch", NULL};
    static const char *const rate_ug[] = {"ug/h", NULL};
    static const char *const rate_mg[] = {"mg/h", NULL};
    static const char *const count[] = {
        "tab",       "tablet",      "cap",  "capsule", "tbl",  "1",      "each",  "ea",
        "supp",      "suppository", "loz",  "lozenge", "film", "troche", "spray", "actuat",
        "actuation", "puff",        "pill", "caps",    "unit", "dose",   NULL};
    static const char *const rate_ml[] = {"ml/h", NULL};
    bool per_hour_strength = strcmp(d->strength_unit, "MG/HR") == 0;
    if (patch) {
        if (unit_is(u, mass_ug) || unit_is(u, rate_ug)) {
            *out = amount;
            return AMT_MCG_HOUR;
        }
        if (unit_is(u, rate_mg)) {
            *out = amount * 1000.0;
            return AMT_MCG_HOUR;
        }
        if (unit_is(u, mass_mg) || unit_is(u, mass_g) || unit_is(u, vol_ml)) {
            return AMT_BAD_UNIT;
        }
        if ((unit_is(u, patch_u) || unit_is(u, count)) && per_hour_strength &&
            isfinite(d->strength)) {
            *out = amount * d->strength * 1000.0;
            return AMT_MCG_HOUR;
        }
        return AMT_NONE;
    }
    if (unit_is(u, mass_mg) || unit_is(u, mass_ug) || unit_is(u, mass_g)) {
        *out = amount * (unit_is(u, mass_mg) ? 1 : unit_is(u, mass_ug) ? 0.001 : 1000);
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
        *out = amount * (unit_is(u, rate_ug) ? 0.001 : 1);
        return AMT_MG_HOUR;
    }
    if (unit_is(u, rate_ml)) {
        if (strcmp(d->strength_unit, "MG/ML") != 0 || !isfinite(d->strength)) {
            return AMT_NONE;
        }
        *out = amount * d->strength; /* an infusion: mg/h */
        return AMT_MG_HOUR;
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
                                double amount, bool patch, double *out)
{
    char u[40];
    if (q->code[0] == '\0' && q->unit[0] == '\0') {
        return convert_unit(d, "1", amount, patch, out);
    }
    enum amount_kind bad = AMT_NONE;
    for (int text = 0; text < 2; text++) {
        unit_key(q, text != 0, u, sizeof(u));
        if (u[0] == '\0') {
            continue;
        }
        enum amount_kind k = convert_unit(d, u, amount, patch, out);
        if (k == AMT_BAD_UNIT) {
            bad = k;
        } else if (k != AMT_NONE) {
            return k;
        }
    }
    return bad;
}

/* ---- Route ------------------------------------------------------------------------------ */

#define ROUTE_ORAL         "oral"
#define ROUTE_TRANSDERMAL  "transdermal"
#define ROUTE_PARENTERAL   "parenteral"
#define ROUTE_TRANSMUCOSAL "transmucosal"
#define ROUTE_RECTAL       "rectal"
#define ROUTE_NEURAXIAL    "neuraxial"

/* True when @p word occurs in @p text (lower case) as a whole word. */
static bool has_word(const char *text, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = text; (p = strstr(p, word)) != NULL; p++) {
        bool left = p == text || !isalnum((unsigned char)p[-1]);
        bool right = !isalnum((unsigned char)p[wl]);
        if (left && right) {
            return true;
        }
    }
    return false;
}

/* A route named in free text (a route or dose form text, a coding display, a drug name). */
static const char *route_from_text(const char *s)
{
    static const struct {
        const char *route;
        const char *words[24];
    } table[] = {
        {ROUTE_NEURAXIAL, {"epidural", "intrathecal", "neuraxial", "spinal", "caudal", NULL}},
        {ROUTE_TRANSDERMAL, {"transdermal", "patch", "patches", "td", NULL}},
        {ROUTE_TRANSMUCOSAL,
         {"sublingual", "buccal", "nasal", "intranasal", "lozenge", "mucosal", "oromucosal", "sl",
          "troche", "oral transmucosal", NULL}},
        {ROUTE_RECTAL, {"rectal", "suppository", "rectum", "pr", NULL}},
        {ROUTE_PARENTERAL,
         {"intravenous",
          "intravenously",
          "subcutaneous",
          "subcutaneously",
          "intramuscular",
          "injection",
          "injectable",
          "infusion",
          "syringe",
          "cartridge",
          "auto-injector",
          "parenteral",
          "iv",
          "sc",
          "sq",
          "im",
          "subcut",
          "pca",
          "implant",
          "ivpb",
          NULL}},
        {ROUTE_ORAL,
         {"oral", "orally", "mouth", "po", "tablet", "capsule", "elixir", "syrup", "swallow",
          "enteral", "gastrostomy", "nasogastric", "peg", "suspension", "tube", NULL}},
    };
    char low[256];
    size_t i = 0;
    if (s == NULL) {
        return NULL;
    }
    for (; s[i] && i + 1 < sizeof(low); i++) {
        low[i] = (char)tolower((unsigned char)s[i]);
    }
    low[i] = '\0';
    /* The text's pairs of adjacent bytes (hashed into 1024 bits): a word whose first two are
     * not among them cannot occur, and is not searched for. */
    uint64_t pairs[16] = {0};
    for (size_t k = 0; k + 1 < i; k++) {
        unsigned h = ((unsigned char)low[k] * 31u + (unsigned char)low[k + 1]) & 1023u;
        pairs[h / 64] |= UINT64_C(1) << (h % 64);
    }
    for (size_t r = 0; r < sizeof(table) / sizeof(table[0]); r++) {
        for (size_t w = 0; table[r].words[w]; w++) {
            const unsigned char *wd = (const unsigned char *)table[r].words[w];
            unsigned h = (wd[0] * 31u + wd[1]) & 1023u;
            if (wd[1] != '\0' && !(pairs[h / 64] & UINT64_C(1) << (h % 64))) {
                continue;
            }
            if (has_word(low, table[r].words[w])) {
                return table[r].route;
            }
        }
    }
    return NULL;
}

/* A coded route: SNOMED CT, EDQM Standard Terms, HL7 v3 RouteOfAdministration. */
static const char *route_from_coding(const json_t *c)
{
    static const struct {
        const char *code;
        const char *route;
    } codes[] = {
        /* SNOMED CT route of administration values */
        {"26643006", ROUTE_ORAL},
        {"421521009", ROUTE_ORAL},
        {"127490009", ROUTE_ORAL},
        {"127492001", ROUTE_ORAL},
        {"45890007", ROUTE_TRANSDERMAL},
        {"47625008", ROUTE_PARENTERAL},
        {"34206005", ROUTE_PARENTERAL},
        {"78421000", ROUTE_PARENTERAL},
        {"37839007", ROUTE_TRANSMUCOSAL},
        {"54471007", ROUTE_TRANSMUCOSAL},
        {"46713006", ROUTE_TRANSMUCOSAL},
        {"372473007", ROUTE_TRANSMUCOSAL},
        {"37161004", ROUTE_RECTAL},
        {"404820008", ROUTE_NEURAXIAL},
        {"72607000", ROUTE_NEURAXIAL},
        /* EDQM Standard Terms (routes and methods of administration) */
        {"20053000", ROUTE_ORAL},
        {"20070000", ROUTE_TRANSDERMAL},
        {"20045000", ROUTE_PARENTERAL},
        {"20066000", ROUTE_PARENTERAL},
        {"20035000", ROUTE_PARENTERAL},
        {"20067000", ROUTE_TRANSMUCOSAL},
        {"20049000", ROUTE_TRANSMUCOSAL},
        {"20061000", ROUTE_RECTAL},
        /* HL7 v3 RouteOfAdministration */
        {"PO", ROUTE_ORAL},
        {"SL", ROUTE_TRANSMUCOSAL},
        {"BUC", ROUTE_TRANSMUCOSAL},
        {"TRNSDERMD", ROUTE_TRANSDERMAL},
        {"IM", ROUTE_PARENTERAL},
        {"SQ", ROUTE_PARENTERAL},
        {"SC", ROUTE_PARENTERAL},
        {"IVINJ", ROUTE_PARENTERAL},
        {"IVINJBOL", ROUTE_PARENTERAL},
        {"IVPUSH", ROUTE_PARENTERAL},
        {"IVINFUS", ROUTE_PARENTERAL},
        {"IV", ROUTE_PARENTERAL},
        {"EPIDURINJ", ROUTE_NEURAXIAL},
        {"IT", ROUTE_NEURAXIAL},
        {"RECTINJE", ROUTE_RECTAL},
    };
    const char *code = pw_fhir_str(c, "code");
    for (size_t i = 0; code && i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (strcmp(code, codes[i].code) == 0) {
            return codes[i].route;
        }
    }
    return route_from_text(pw_fhir_str(c, "display"));
}

/* Route of one dosageInstruction: its route codes, then its route text; NULL when absent. */
static const char *route_of_dosage(const json_t *dosage)
{
    const json_t *route = json_object_get(dosage, "route");
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(route, "coding"), i, c)
    {
        const char *r = route_from_coding(c);
        if (r != NULL) {
            return r;
        }
    }
    return route_from_text(pw_fhir_str(route, "text"));
}

/* Route from the product: its dose form, Medication.form, then the drug's names. */
static const char *route_of_product(const struct pw_drug_info *d, const json_t *med,
                                    const json_t *cc)
{
    const char *r = d->dose_form[0] ? route_from_text(d->dose_form) : NULL;
    const json_t *form = json_object_get(med, "form");
    size_t i;
    const json_t *c;
    if (r == NULL) {
        r = route_from_text(pw_fhir_str(form, "text"));
    }
    json_array_foreach(json_object_get(form, "coding"), i, c)
    {
        r = r ? r : route_from_coding(c);
    }
    if (r == NULL && d->drug_level) {
        r = route_from_text(d->name);
    }
    r = r ? r : route_from_text(pw_fhir_str(cc, "text"));
    json_array_foreach(json_object_get(cc, "coding"), i, c)
    {
        r = r ? r : route_from_text(pw_fhir_str(c, "display"));
    }
    if (r == NULL && (d->classes & PW_MED_TRANSDERMAL)) {
        r = ROUTE_TRANSDERMAL;
    }
    return r;
}

/* ---- One part ---------------------------------------------------------------------------- */

/* One dosage instruction in ingredient terms. */
struct inst {
    double dose_low, dose_high; /* mg per administration (AMT_MG) */
    double per_day;             /* mg/day, or mcg/h worn for patches */
    long seq;                   /* LONG_MIN when absent: unsequenced instructions run together */
    enum amount_kind kind;
    bool prn;
    bool unitless; /* the dose had no unit and was read as a count of units */
    bool rate;     /* from rateQuantity */
    const char *route;
    char written[48];
    struct pw_dosage ds;
};

static bool is_ingredient(const struct pw_drug_info *d, const char *rxcui, const char *name)
{
    return strcmp(d->ingredient_rxcui, rxcui) == 0 || strcasecmp(d->ingredient, name) == 0;
}

/* %g of a whole number below 10^6 (its digits) into @p buf; false for any other value. */
static bool whole_g(double v, char buf[8])
{
    if (!(v > 0 && v < 1e6) || v != (double)(long)v) {
        return false;
    }
    char tmp[8];
    size_t k = 0;
    for (long x = (long)v; x > 0; x /= 10) {
        tmp[k++] = (char)('0' + x % 10);
    }
    for (size_t i = 0; i < k; i++) {
        buf[i] = tmp[k - 1 - i];
    }
    buf[k] = '\0';
    return true;
}

/* The dose as written: "25 mg", "1-2 tablet", "2 mg/h". */
static void written_of(const struct pw_dose_qty *q, char *out, size_t n)
{
    const char *u = q->unit[0] ? q->unit : q->code;
    if (!(q->low > 0) || !(q->high > 0)) {
        snprintf(out, n, "zero or negative %s", u[0] ? u : "dose");
        return;
    }
    char lo[8];
    if (q->low == q->high && whole_g(q->low, lo)) {
        /* the usual single whole dose, without printf: what "%g%s%s" writes */
        pw_fhir_join(out, n, lo, u[0] ? " " : "", u);
        return;
    }
    if (q->low != q->high) {
        snprintf(out, n, "%g-%g%s%s", q->low, q->high, u[0] ? " " : "", u);
    } else {
        snprintf(out, n, "%g%s%s", q->low, u[0] ? " " : "", u);
    }
}

/* Read one Dosage. @return 0, or a data-quality code (static string) with @p detail. */
static const char *read_inst(const struct pw_drug_info *d, const json_t *dosage,
                             const char *product_route, struct inst *in, char *detail, size_t n)
{
    struct pw_dosage *ds = &in->ds;
    pw_dosage_parse(dosage, ds);
    in->seq = ds->has_sequence ? ds->sequence : LONG_MIN;
    in->prn = ds->prn;
    in->route = route_of_dosage(dosage);
    const struct pw_dose_qty *first = ds->n_cand ? &ds->cand[0] : NULL;
    in->kind = AMT_NONE;
    in->unitless = false;
    in->rate = false;
    in->written[0] = '\0';
    in->dose_low = in->dose_high = in->per_day = NAN;
    if (first != NULL) {
        written_of(first, in->written, sizeof(in->written));
        if (in->route == NULL && first->rate) {
            in->route = ROUTE_PARENTERAL; /* an infusion rate */
        }
    }
    if (in->route == NULL) {
        in->route = product_route;
    }
    if (in->route == NULL && first != NULL && !first->rate &&
        (is_ingredient(d, "4337", "fentanyl") || is_ingredient(d, "1819", "buprenorphine"))) {
        /* fentanyl or buprenorphine dosed per hour, not as a rate: a patch */
        char u[40];
        unit_key(first, false, u, sizeof(u));
        char t[40];
        unit_key(first, true, t, sizeof(t));
        if (strcmp(u, "ug/h") == 0 || strcmp(t, "ug/h") == 0) {
            in->route = ROUTE_TRANSDERMAL;
        }
    }
    bool patch = in->route != NULL ? strcmp(in->route, ROUTE_TRANSDERMAL) == 0
                                   : (d->classes & PW_MED_TRANSDERMAL) != 0;
    for (size_t i = 0; i < ds->n_cand && (in->kind == AMT_NONE || in->kind == AMT_BAD_UNIT); i++) {
        double lo, hi;
        enum amount_kind k = convert(d, &ds->cand[i], ds->cand[i].low, patch, &lo);
        /* in->written holds cand[0] as written already (first) */
        if (k == AMT_BAD_UNIT) {
            in->kind = k;
            if (i > 0) {
                written_of(&ds->cand[i], in->written, sizeof(in->written));
            }
            continue;
        }
        /* convert() is a function of the amount: a single dose (low = high) converts once */
        enum amount_kind kh = AMT_NONE;
        if (k != AMT_NONE) {
            kh = memcmp(&ds->cand[i].high, &ds->cand[i].low, sizeof(double)) == 0
                     ? (hi = lo, k)
                     : convert(d, &ds->cand[i], ds->cand[i].high, patch, &hi);
        }
        if (k != AMT_NONE && kh == k) {
            in->kind = k;
            in->dose_low = lo;
            in->dose_high = hi;
            in->unitless = ds->cand[i].code[0] == '\0' && ds->cand[i].unit[0] == '\0';
            in->rate = ds->cand[i].rate;
            if (i > 0) {
                written_of(&ds->cand[i], in->written, sizeof(in->written));
            }
        }
    }
    if (first == NULL) {
        snprintf(detail, n, "no structured dose%s", ds->has_text ? " (free-text sig only)" : "");
        return "unstructured-sig";
    }
    if (in->kind == AMT_BAD_UNIT) {
        return NULL; /* the caller reports an implausible dose */
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
        return NULL;
    }
    double cap = NAN;
    if (ds->has_max && convert(d, &ds->max_per_day, ds->max_per_day.low, patch, &cap) != AMT_MG) {
        cap = NAN;
    }
    if (isfinite(ds->per_day)) {
        in->per_day = in->dose_high * ds->per_day;
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
             ds->has_text ? "; free-text sig only" : "");
    return "unstructured-sig";
}

#define INST_MAX 32

/*
 * The plausibility check of one part (dose_low/high mg, per_day mg or mcg/h): true, with the
 * reason in @p why, when the dose is <= 0, above the table's limit or in a unit that does not fit.
 */
static bool implausible(const struct pw_norm_ctx *ctx, const struct pw_drug_info *d,
                        const struct inst *in, char *why, size_t n)
{
    if (in->kind == AMT_BAD_UNIT) {
        snprintf(why, n, "dose '%s' is in a unit that does not fit a transdermal patch (mcg/h)",
                 in->written);
        return true;
    }
    double vals[] = {in->dose_low, in->dose_high, in->per_day};
    for (size_t i = 0; i < 3; i++) {
        if (!isnan(vals[i]) && !(vals[i] > 0 && isfinite(vals[i]))) {
            snprintf(why, n, "dose '%s' is zero, negative or not a number", in->written);
            return true;
        }
    }
    double single = NAN, day = NAN, rate = NAN, minp = NAN;
    if (pw_terminology_dose_limit(ctx->term, d->ingredient_rxcui, in->route ? in->route : "oral",
                                  &single, &day, &rate, &minp) < 0) {
        /* No row: only doses no route could carry (over 100 g a day) are implausible. */
        day = in->kind == AMT_MCG_HOUR ? NAN : 100000;
        rate = in->kind == AMT_MCG_HOUR ? 100000 : NAN;
    }
    if (in->kind == AMT_MCG_HOUR) {
        if (isfinite(rate) && in->per_day > rate) {
            snprintf(why, n, "dose '%s' = %g mcg/h is above the plausible %g mcg/h", in->written,
                     in->per_day, rate);
            return true;
        }
        return false;
    }
    if (in->kind == AMT_MG_HOUR && isfinite(rate) && in->dose_high * 1000.0 > rate) {
        snprintf(why, n, "rate '%s' is above the plausible %g mcg/h", in->written, rate);
        return true;
    }
    if (in->kind == AMT_MG && isfinite(single) && in->dose_high > single) {
        snprintf(why, n, "dose '%s' = %g mg is above the plausible single dose %g mg", in->written,
                 in->dose_high, single);
        return true;
    }
    if (isfinite(day) && isfinite(in->per_day) && in->per_day > day) {
        snprintf(why, n, "dose '%s' gives %g mg/day, above the plausible %g mg/day", in->written,
                 in->per_day, day);
        return true;
    }
    return false;
}

static int compute_mme(const struct pw_norm_ctx *ctx, struct pw_med_order *o,
                       struct pw_timeline *tl)
{
    bool patch = isfinite(o->mcg_per_hour);
    double f;
    const char *route = o->route[0] ? o->route : ROUTE_ORAL;
    if (pw_mme_factor_route(ctx->term, ctx->factor_set, o->ingredient_rxcui, route, patch,
                            o->mg_per_day, &f, o->factor_row, sizeof(o->factor_row)) < 0) {
        o->flags |= PW_ORDER_NO_MME;
        if (strcmp(route, ROUTE_ORAL) == 0 || (patch && strcmp(route, ROUTE_TRANSDERMAL) == 0)) {
            return pw_norm_dq(tl, &o->src, "no-factor", "no %s MME factor for %s%s",
                              ctx->factor_set, o->ingredient[0] ? o->ingredient : "this opioid",
                              patch ? " (transdermal)" : "");
        }
        return pw_norm_dq(tl, &o->src, "no-factor-for-route",
                          "no %s MME factor for %s by the %s route: MME not computed (never the "
                          "oral factor)",
                          ctx->factor_set, o->ingredient[0] ? o->ingredient : "this opioid", route);
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
 * When the order starts and ends. active|on-hold: open-ended unless dispenseRequest.validityPeriod
 * has ended (the order is not in force past it). completed|stopped|cancelled: the earliest of
 * validityPeriod.end, the end of the expected supply, and meta.lastUpdated (the status change,
 * for want of a status date in R4); none known: it ended when it started.
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
        int64_t vend = time_of(valid, "end");
        o->end = vend != PW_TIME_NONE ? vend : PW_TIME_FOREVER;
        if (o->start != PW_TIME_NONE && o->end < o->start) {
            o->end = o->start;
        }
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
    if (!(o->classes & PW_MED_OPIOID) || (o->flags & PW_ORDER_OUD)) {
        return;
    }
    if (!o->prn) {
        o->role = PW_ROLE_BASELINE;
    } else if (!(o->classes &
                 (PW_MED_LONG_ACTING | PW_MED_RAPID_ONSET_FENTANYL | PW_MED_TRANSDERMAL))) {
        o->role = PW_ROLE_RESCUE;
    }
}

/* Every dosageInstruction as needed: a PRN-only laxative matters to the bowel rule. */
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

static int64_t t_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/*
 * When each part is in force: its boundsPeriod, else its boundsDuration from the start of its
 * step; sequenced parts (a taper) follow each other, a later step starting when the one before
 * it ends. Parts of a step whose start cannot be known are marked untimed (start NONE).
 */
static void part_times(struct inst *in, size_t n, const struct pw_med_order *o, int64_t *ps,
                       int64_t *pe)
{
    long prev_seq = LONG_MIN;
    int64_t prev_end = o->start;
    bool have_prev = false;
    for (;;) {
        /* the smallest sequence above prev_seq */
        long seq = LONG_MAX;
        bool found = false;
        for (size_t i = 0; i < n; i++) {
            if (in[i].seq != LONG_MIN && (!have_prev || in[i].seq > prev_seq) && in[i].seq <= seq) {
                seq = in[i].seq;
                found = true;
            }
        }
        if (!found) {
            break;
        }
        int64_t gstart = have_prev ? prev_end : o->start;
        int64_t gend = PW_TIME_NONE;
        for (size_t i = 0; i < n; i++) {
            if (in[i].seq != seq) {
                continue;
            }
            int64_t s = in[i].ds.bounds_start != PW_TIME_NONE ? in[i].ds.bounds_start : gstart;
            int64_t e = in[i].ds.bounds_end;
            if (e == PW_TIME_NONE && isfinite(in[i].ds.bounds_seconds) && s != PW_TIME_NONE &&
                s != PW_TIME_FOREVER) {
                e = s + (int64_t)in[i].ds.bounds_seconds;
            }
            if (e == PW_TIME_NONE) {
                e = o->end;
            }
            ps[i] = s;
            pe[i] = e;
            if (gend == PW_TIME_NONE || e > gend) {
                gend = e;
            }
        }
        prev_seq = seq;
        have_prev = true;
        /* A step without a known end: the next step's start is unknown. */
        prev_end =
            gend == PW_TIME_NONE || gend == PW_TIME_FOREVER || gend >= o->end ? PW_TIME_NONE : gend;
    }
    for (size_t i = 0; i < n; i++) {
        if (in[i].seq == LONG_MIN) {
            ps[i] = in[i].ds.bounds_start != PW_TIME_NONE ? in[i].ds.bounds_start : o->start;
            pe[i] = in[i].ds.bounds_end;
            if (pe[i] == PW_TIME_NONE && isfinite(in[i].ds.bounds_seconds) &&
                ps[i] != PW_TIME_NONE) {
                pe[i] = ps[i] + (int64_t)in[i].ds.bounds_seconds;
            }
            if (pe[i] == PW_TIME_NONE) {
                pe[i] = o->end;
            }
        }
        if (ps[i] != PW_TIME_NONE && o->start != PW_TIME_NONE && ps[i] < o->start) {
            ps[i] = o->start;
        }
        if (pe[i] != PW_TIME_NONE) {
            pe[i] = t_min(pe[i], o->end);
        }
    }
}

/* The smallest practical dose of the product (mg): its lowest marketed strength of the same
 * form, or a small measured volume of a solution. NAN when not known. */
static double min_dose_of(const struct pw_norm_ctx *ctx, const struct pw_drug_info *d)
{
    if (!isfinite(d->strength) || !d->drug_level) {
        return NAN;
    }
    if (strcmp(d->strength_unit, "MG/ML") == 0) {
        return d->strength * (d->strength >= 10 ? 0.25 : 1.0);
    }
    if (strcmp(d->strength_unit, "MG") != 0) {
        return NAN;
    }
    double m = pw_terminology_min_strength(ctx->term, d->ingredient_rxcui, d->dose_form_rxcui,
                                           d->is_combination);
    return isfinite(m) && m < d->strength ? m : d->strength;
}

/* A sublingual or naloxone-combined buprenorphine product: used for opioid use disorder. */
static bool oud_product(const struct pw_drug_info *d, const char *route)
{
    if (!is_ingredient(d, "1819", "buprenorphine")) {
        return false;
    }
    char low[PW_CODE_MAX];
    size_t i = 0;
    for (; d->name[i] && i + 1 < sizeof(low); i++) {
        low[i] = (char)tolower((unsigned char)d->name[i]);
    }
    low[i] = '\0';
    if (strstr(low, "naloxone") || strstr(low, "suboxone") || strstr(low, "zubsolv") ||
        strstr(low, "subutex") || strstr(low, "sublingual")) {
        return true;
    }
    return route != NULL && strcmp(route, ROUTE_TRANSMUCOSAL) == 0 && strstr(low, "buccal") == NULL;
}

/*
 * Every part of an opioid order: one timeline order per dosageInstruction, with its own PRN
 * flag, route, times, dose, plausibility and MME.
 */
static int add_parts(const struct pw_norm_ctx *ctx, const struct pw_drug_info *d, const json_t *res,
                     const json_t *med, const json_t *cc, const struct pw_med_order *base,
                     struct pw_timeline *tl)
{
    const json_t *dis = json_object_get(res, "dosageInstruction");
    size_t n = json_is_array(dis) ? json_array_size(dis) : 0;
    struct inst in[INST_MAX];
    int64_t ps[INST_MAX], pe[INST_MAX];
    char detail[200];
    const char *product_route = route_of_product(d, med, cc);
    int rc = 0;
    if (n == 0 || n > INST_MAX) {
        struct pw_med_order o = *base;
        pw_fhir_copy(o.route, sizeof(o.route), product_route ? product_route : "");
        o.prn = false;
        rc = pw_norm_dq(tl, &o.src, "unstructured-sig",
                        n == 0 ? "no dosageInstruction" : "over 32 dosageInstructions");
        role_of(&o);
        return rc < 0 ? rc : pw_timeline_add_order(tl, &o);
    }
    const char *codes[INST_MAX];
    for (size_t i = 0; i < n; i++) {
        codes[i] =
            read_inst(d, json_array_get(dis, i), product_route, &in[i], detail, sizeof(detail));
        if (codes[i] != NULL && (rc = pw_norm_dq(tl, &base->src, codes[i], "%s", detail)) < 0) {
            return rc;
        }
    }
    part_times(in, n, base, ps, pe);
    for (size_t i = 0; i < n; i++) {
        struct pw_med_order o = *base;
        o.part = (int)i;
        o.prn = in[i].prn;
        o.start = ps[i];
        o.end = pe[i];
        pw_fhir_copy(o.route, sizeof(o.route), in[i].route ? in[i].route : "");
        pw_fhir_copy(o.dose_written, sizeof(o.dose_written), in[i].written);
        /* only a rescue's smallest practical dose is ever used (a table scan: PRN parts only) */
        o.min_dose_mg = in[i].prn ? min_dose_of(ctx, d) : NAN;
        double l_single, l_day, l_rate, l_min;
        if (pw_terminology_dose_limit(ctx->term, d->ingredient_rxcui,
                                      in[i].route ? in[i].route : ROUTE_ORAL, &l_single, &l_day,
                                      &l_rate, &l_min) == 0 &&
            l_min > 0) {
            o.min_dose_mg = l_min; /* the site's smallest practical dose */
        }
        if (in[i].route && strcmp(in[i].route, ROUTE_TRANSDERMAL) == 0) {
            o.classes |= PW_MED_TRANSDERMAL;
        }
        if (o.start == PW_TIME_NONE && base->start != PW_TIME_NONE) {
            rc = pw_norm_dq(tl, &o.src, "taper-step-untimed",
                            "dosageInstruction %zu (sequence %ld) follows a step without a known "
                            "end: not placed on the timeline",
                            i + 1, in[i].seq);
            if (rc < 0) {
                return rc;
            }
            continue;
        }
        if (oud_product(d, in[i].route)) {
            o.flags |= PW_ORDER_OUD | PW_ORDER_NO_MME | PW_ORDER_BUPRENORPHINE;
            rc = pw_norm_dq(tl, &o.src, "opioid-use-disorder",
                            "buprenorphine product used for opioid use disorder (sublingual or "
                            "with naloxone): patient outside the cancer-pain opioid rules");
            if (rc < 0) {
                return rc;
            }
            role_of(&o);
            if ((rc = pw_timeline_add_order(tl, &o)) < 0) {
                return rc;
            }
            continue;
        }
        if (in[i].route == NULL) {
            rc = pw_norm_dq(tl, &o.src, "route-assumed-oral",
                            "no route in the order, its product or its text: read as oral");
            if (rc < 0) {
                return rc;
            }
        }
        if (in[i].unitless && in[i].kind != AMT_NONE) {
            rc = pw_norm_dq(tl, &o.src, "dose-unit-assumed",
                            "dose without unit read as a number of %s",
                            d->dose_form[0] ? d->dose_form : "dose units");
            if (rc < 0) {
                return rc;
            }
        }
        char why[200];
        bool computed = codes[i] == NULL && in[i].kind != AMT_NONE;
        if (codes[i] == NULL && implausible(ctx, d, &in[i], why, sizeof(why))) {
            o.flags |= PW_ORDER_IMPLAUSIBLE | PW_ORDER_NO_MME;
            rc = pw_norm_dq(tl, &o.src, "implausible-dose", "%s: order not used for MME or advice",
                            why);
            if (rc < 0) {
                return rc;
            }
            computed = false;
        }
        if (computed) {
            if (in[i].kind == AMT_MCG_HOUR) {
                o.mcg_per_hour = in[i].per_day;
                o.mg_per_day = in[i].per_day * 24.0 / 1000.0;
            } else if (in[i].kind == AMT_MG_HOUR) {
                o.mg_per_day = in[i].per_day;
            } else {
                o.mg_per_dose = in[i].dose_low;
                o.mg_per_dose_high = in[i].dose_high;
                o.mg_per_day = in[i].per_day;
            }
            if (is_ingredient(d, "1819", "buprenorphine")) {
                o.flags |= PW_ORDER_NO_MME | PW_ORDER_BUPRENORPHINE;
                rc = pw_norm_dq(tl, &o.src, "no-factor",
                                "MME not computable for buprenorphine (partial agonist)");
            } else if (isfinite(o.mg_per_day)) {
                if (o.route[0] == '\0') {
                    pw_fhir_copy(o.route, sizeof(o.route), ROUTE_ORAL);
                }
                rc = compute_mme(ctx, &o, tl);
            }
            if (rc < 0) {
                return rc;
            }
        }
        role_of(&o);
        if ((rc = pw_timeline_add_order(tl, &o)) < 0) {
            return rc;
        }
    }
    return 0;
}

/* Words and codes that make an unknown drug look like an opioid (then it is reported). */
static bool looks_opioid(const json_t *cc, const json_t *res)
{
    static const char *const words[] = {
        "opioid",      "opiate",         "morphine",    "codeine",
        "fentanyl",    "fentanil",       "oxycodone",   "hydromorphone",
        "methadone",   "buprenorphine",  "tramadol",    "tapentadol",
        "hydrocodone", "oxymorphone",    "pethidine",   "meperidine",
        "diamorphine", "heroin",         "levorphanol", "sufentanil",
        "alfentanil",  "remifentanil",   "nalbuphine",  "butorphanol",
        "pentazocine", "dihydrocodeine", "ms contin",   "oxycontin",
        "dilaudid",    "duragesic",      "percocet",    "vicodin",
        "norco",       "suboxone",       "subutex",     "oramorph",
        "sevredol",    "palladone",      "targin",      "narcotic",
        NULL};
    const char *texts[10];
    size_t n = 0, i;
    const json_t *c;
    texts[n++] = pw_fhir_str(cc, "text");
    texts[n++] = pw_fhir_str(json_object_get(res, "medicationReference"), "display");
    json_array_foreach(json_object_get(cc, "coding"), i, c)
    {
        const char *sys = pw_fhir_str(c, "system");
        const char *code = pw_fhir_str(c, "code");
        /* ATC N02A opioids, N07BC drugs used in opioid dependence */
        if (sys && strstr(sys, "atc") && code &&
            (strncmp(code, "N02A", 4) == 0 || strncmp(code, "N07BC", 5) == 0)) {
            return true;
        }
        if (n < 10) {
            texts[n++] = pw_fhir_str(c, "display");
        }
    }
    for (size_t k = 0; k < n; k++) {
        if (texts[k] == NULL) {
            continue;
        }
        char low[256];
        size_t j = 0;
        for (; texts[k][j] && j + 1 < sizeof(low); j++) {
            low[j] = (char)tolower((unsigned char)texts[k][j]);
        }
        low[j] = '\0';
        for (size_t w = 0; words[w]; w++) {
            if (strstr(low, words[w])) {
                return true;
            }
        }
    }
    return false;
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
        /* A drug outside every class the rules use (a statin) is not a data-quality problem;
         * an unknown code is reported only when the order looks like an opioid. */
        if (!looks_opioid(cc, res)) {
            return 0;
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
    o.min_dose_mg = NAN;
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
    if (!(d.classes & PW_MED_OPIOID)) {
        o.prn = all_prn(res);
        role_of(&o);
        return pw_timeline_add_order(tl, &o);
    }
    if (by_name) {
        rc = pw_norm_dq(tl, &o.src, "drug-identified-by-text",
                        "opioid recognised from its name, not an RxNorm code");
        if (rc < 0) {
            return rc;
        }
    }
    if (d.ingredient[0] == '\0') {
        o.prn = all_prn(res);
        rc = pw_norm_dq(tl, &o.src, "unknown-drug", "opioid ingredient not identified");
        role_of(&o);
        return rc < 0 ? rc : pw_timeline_add_order(tl, &o);
    }
    return add_parts(ctx, &d, res, med, cc, &o, tl);
}

/* A Condition status that makes it not (or no longer) true. */
static bool condition_void(const json_t *res)
{
    static const char *const bad[] = {"refuted", "entered-in-error", "inactive", "resolved",
                                      "remission"};
    const json_t *ccs[] = {json_object_get(res, "verificationStatus"),
                           json_object_get(res, "clinicalStatus")};
    for (size_t k = 0; k < 2; k++) {
        size_t i;
        const json_t *c;
        json_array_foreach(json_object_get(ccs[k], "coding"), i, c)
        {
            const char *code = pw_fhir_str(c, "code");
            for (size_t b = 0; code && b < sizeof(bad) / sizeof(bad[0]); b++) {
                if (strcmp(code, bad[b]) == 0) {
                    return true;
                }
            }
        }
    }
    return false;
}

static bool oud_coded(const json_t *code)
{
    /* SNOMED CT: 5602001 opioid abuse, 75544000 opioid dependence. */
    static const char *const sct[] = {"5602001", "75544000"};
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(code, "coding"), i, c)
    {
        const char *sys = pw_fhir_str(c, "system");
        const char *v = pw_fhir_str(c, "code");
        if (sys == NULL || v == NULL) {
            continue;
        }
        if (strstr(sys, "icd-10") != NULL && strncasecmp(v, "F11", 3) == 0) {
            return true;
        }
        for (size_t k = 0; strstr(sys, "snomed") && k < sizeof(sct) / sizeof(sct[0]); k++) {
            if (strcmp(v, sct[k]) == 0) {
                return true;
            }
        }
    }
    const char *text = pw_fhir_str(code, "text");
    if (text != NULL) {
        char low[256];
        size_t j = 0;
        for (; text[j] && j + 1 < sizeof(low); j++) {
            low[j] = (char)tolower((unsigned char)text[j]);
        }
        low[j] = '\0';
        return strstr(low, "opioid use disorder") || strstr(low, "opioid dependence") ||
               strstr(low, "opioid addiction");
    }
    return false;
}

int pw_norm_oud_condition(const json_t *res, const struct pw_ref *src, struct pw_timeline *tl)
{
    if (!oud_coded(json_object_get(res, "code")) || condition_void(res)) {
        return 0;
    }
    struct pw_med_order o;
    memset(&o, 0, sizeof(o));
    o.src = *src;
    o.role = PW_ROLE_OTHER;
    o.flags = PW_ORDER_OUD;
    o.mg_per_dose = o.mg_per_dose_high = o.mg_per_day = o.mcg_per_hour = NAN;
    o.mme_factor = o.mme_per_day = o.mme_per_dose = o.min_dose_mg = NAN;
    pw_fhir_copy(o.drug_name, sizeof(o.drug_name), "opioid use disorder (Condition)");
    o.start = time_of(res, "onsetDateTime");
    if (o.start == PW_TIME_NONE) {
        o.start = time_of(res, "recordedDate");
    }
    o.end = time_of(res, "abatementDateTime");
    if (o.end == PW_TIME_NONE) {
        o.end = PW_TIME_FOREVER;
    }
    int rc = pw_norm_dq(tl, src, "opioid-use-disorder",
                        "opioid use disorder on the problem list: patient outside the cancer-pain "
                        "opioid rules");
    if (rc == 0) {
        rc = pw_timeline_add_order(tl, &o);
    }
    return rc < 0 ? rc : 1;
}
