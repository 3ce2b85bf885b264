/* SPDX-License-Identifier: Apache-2.0 */
/* Terminology look-ups: by RxNorm code (drug, ingredient, value set), then by name. */
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clinical/terminology_impl.h"
#include "painwatch/err.h"
#include "painwatch/fhir.h"
#include "painwatch/terminology.h"
#include "painwatch/timeline.h"

/*
 * A lower-case copy of @p s for the searches below (all needles are lower case): searching it
 * with strstr costs a fraction of a strncasecmp at every position. Drug names fit the buffer;
 * a longer text is copied to the heap (NULL when that fails: treated as no match).
 */
struct lower {
    char buf[256];
    char *s;
};

static const char *lower_of(struct lower *l, const char *s)
{
    size_t n = strlen(s);
    l->s = n < sizeof(l->buf) ? l->buf : malloc(n + 1);
    if (l->s == NULL) {
        return NULL;
    }
    for (size_t i = 0; i <= n; i++) {
        l->s[i] = (char)tolower((unsigned char)s[i]);
    }
    return l->s;
}

static void lower_done(struct lower *l)
{
    if (l->s != l->buf) {
        free(l->s);
    }
}

/* @p needle (lower case) as a whole word of @p hay (lower case): no letter either side. */
static const char *find_word(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    if (hay == NULL || n == 0) {
        return NULL;
    }
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++) {
        bool left = p == hay || !isalpha((unsigned char)p[-1]);
        bool right = !isalpha((unsigned char)p[n]);
        if (left && right) {
            return p;
        }
    }
    return NULL;
}

static bool has(const char *hay, const char *needle)
{
    return hay != NULL && strstr(hay, needle) != NULL;
}

/* Transmucosal fentanyl forms (TIRF): buccal, sublingual, lozenge, nasal and mucosal sprays. */
static const char *const rapid_forms[] = {"buccal",        "sublingual", "lozenge", "nasal",
                                          "mucosal spray", "pack",       "troche",  "lollipop"};

static unsigned text_classes(const char *s)
{
    static const char *const la_phrases[] = {"extended release",
                                             "extended-release",
                                             "modified release",
                                             "modified-release",
                                             "prolonged release",
                                             "prolonged-release",
                                             "controlled release",
                                             "controlled-release",
                                             "sustained release",
                                             "sustained-release",
                                             "12 hr ",
                                             "24 hr ",
                                             "long acting",
                                             "long-acting"};
    static const char *const la_words[] = {"er", "xr", "xl", "sr", "cr", "la", "mr", "cd"};
    unsigned c = 0;

    for (size_t k = 0; k < sizeof(la_phrases) / sizeof(la_phrases[0]); k++) {
        c |= has(s, la_phrases[k]) ? PW_MED_LONG_ACTING : 0u;
    }
    for (size_t k = 0; k < sizeof(la_words) / sizeof(la_words[0]); k++) {
        c |= find_word(s, la_words[k]) ? PW_MED_LONG_ACTING : 0u;
    }
    if (has(s, "transdermal") || find_word(s, "patch")) {
        c |= PW_MED_TRANSDERMAL | PW_MED_LONG_ACTING;
    }
    return c;
}

unsigned pw_terminology_form_classes(const char *ingredient, const char *dose_form,
                                     const char *name)
{
    struct lower lf, ln;
    const char *form = lower_of(&lf, dose_form ? dose_form : "");
    const char *text = lower_of(&ln, name ? name : "");
    unsigned c = text_classes(form) | text_classes(text);

    if (ingredient != NULL && strcasecmp(ingredient, "fentanyl") == 0 &&
        !(c & PW_MED_TRANSDERMAL)) {
        for (size_t i = 0; i < sizeof(rapid_forms) / sizeof(rapid_forms[0]); i++) {
            if (has(form, rapid_forms[i]) || has(text, rapid_forms[i])) {
                c |= PW_MED_RAPID_ONSET_FENTANYL;
            }
        }
    }
    if (ingredient != NULL && strcasecmp(ingredient, "methadone") == 0) {
        c |= PW_MED_METHADONE | PW_MED_LONG_ACTING; /* long half-life: never a rescue */
    }
    lower_done(&lf);
    lower_done(&ln);
    return c;
}

static int cmp_drug(const void *a, const void *b)
{
    return strcmp(((const struct pw_term_drug *)a)->rxcui, ((const struct pw_term_drug *)b)->rxcui);
}

static int cmp_vs(const void *a, const void *b)
{
    return strcmp(((const struct pw_term_vs *)a)->code, ((const struct pw_term_vs *)b)->code);
}

static const struct pw_term_drug *find_drug(const struct pw_terminology *t, const char *rxcui)
{
    struct pw_term_drug key;
    pw_fhir_copy(key.rxcui, sizeof(key.rxcui), rxcui);
    return bsearch(&key, t->drugs, t->n_drugs, sizeof(key), cmp_drug);
}

static const struct pw_term_vs *find_vs(const struct pw_terminology *t, const char *rxcui)
{
    struct pw_term_vs key;
    pw_fhir_copy(key.code, sizeof(key.code), rxcui);
    return bsearch(&key, t->vs, t->n_vs, sizeof(key), cmp_vs);
}

static void info_reset(struct pw_drug_info *out)
{
    memset(out, 0, sizeof(*out));
    out->strength = NAN;
}

static void fill_opioid_ingredient(struct pw_drug_info *out, const struct pw_term_ingredient *ing)
{
    pw_fhir_copy(out->ingredient_rxcui, sizeof(out->ingredient_rxcui), ing->rxcui);
    pw_fhir_copy(out->ingredient, sizeof(out->ingredient), ing->name);
}

/*
 * Read "<salt words> 5 MG" or "0.075 MG/HR" right after an ingredient name, as RxNorm writes
 * product names. Strengths in MCG are converted to MG.
 */
static void parse_strength(const char *p, struct pw_drug_info *out)
{
    for (int words = 0; words < 4; words++) {
        while (*p == ' ') {
            p++;
        }
        if (isdigit((unsigned char)*p) || *p == '.') {
            break;
        }
        while (isalpha((unsigned char)*p)) {
            p++;
        }
        if (*p != ' ') {
            return;
        }
    }
    char *end;
    double v = strtod(p, &end);
    if (end == p || !(v > 0)) {
        return;
    }
    while (*end == ' ') {
        end++;
    }
    /* Longest spellings first so "mcg/hr" is not read as "mcg". */
    static const struct {
        const char *unit;
        double scale;
        const char *canon;
    } units[] = {
        {"micrograms/hour", 0.001, "MG/HR"},
        {"microgram/hour", 0.001, "MG/HR"},
        {"mcg/hour", 0.001, "MG/HR"},
        {"mcg/hr", 0.001, "MG/HR"},
        {"mcg/h", 0.001, "MG/HR"},
        {"ug/h", 0.001, "MG/HR"},
        {"mg/hr", 1, "MG/HR"},
        {"mg/ml", 1, "MG/ML"},
        {"mg/actuat", 1, "MG/ACTUAT"},
        {"mcg/actuat", 0.001, "MG/ACTUAT"},
        {"micrograms", 0.001, "MG"},
        {"microgram", 0.001, "MG"},
        {"milligrams", 1, "MG"},
        {"milligram", 1, "MG"},
        {"mcg", 0.001, "MG"},
        {"mg", 1, "MG"},
    };
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        size_t n = strlen(units[i].unit);
        if (strncasecmp(end, units[i].unit, n) == 0 && !isalpha((unsigned char)end[n])) {
            out->strength = v * units[i].scale;
            pw_fhir_copy(out->strength_unit, sizeof(out->strength_unit), units[i].canon);
            return;
        }
    }
}

int pw_terminology_match_name(const struct pw_terminology *t, const char *name,
                              struct pw_drug_info *out)
{
    info_reset(out);
    if (name == NULL || *name == '\0') {
        return PW_ENOENT;
    }
    const char *opioid_at = NULL;
    struct lower ln;
    const char *lname = lower_of(&ln, name);
    /* The name's pairs of adjacent bytes (hashed into 1024 bits): an ingredient whose first
     * two are not among them cannot occur, and is not searched for. */
    uint64_t pairs[16] = {0};
    for (size_t k = 0; lname && lname[k] && lname[k + 1]; k++) {
        unsigned h = ((unsigned char)lname[k] * 31u + (unsigned char)lname[k + 1]) & 1023u;
        pairs[h / 64] |= UINT64_C(1) << (h % 64);
    }
    for (size_t i = 0; lname && i < t->n_ings; i++) {
        const struct pw_term_ingredient *ing = &t->ings[i];
        const unsigned char *m = (const unsigned char *)ing->match;
        unsigned h = (m[0] * 31u + (m[0] ? m[1] : 0u)) & 1023u;
        if (m[0] && m[1] && !(pairs[h / 64] & UINT64_C(1) << (h % 64))) {
            continue;
        }
        const char *at = find_word(lname, ing->match);
        if (at == NULL) {
            continue;
        }
        /* The first opioid named is the one that counts; other ingredients add classes. */
        if ((ing->classes & PW_MED_OPIOID) && opioid_at == NULL) {
            opioid_at = name + (at - lname) + strlen(ing->match);
            fill_opioid_ingredient(out, ing);
        }
        out->classes |= ing->classes;
    }
    lower_done(&ln);
    if (out->classes == 0 && out->ingredient[0] == '\0') {
        return PW_ENOENT;
    }
    pw_fhir_copy(out->name, sizeof(out->name), name);
    out->is_combination = strstr(name, " / ") != NULL;
    if (opioid_at != NULL) {
        parse_strength(opioid_at, out);
        out->classes |= pw_terminology_form_classes(out->ingredient, NULL, name);
    }
    pw_fhir_copy(out->basis, sizeof(out->basis), "name");
    return 0;
}

static int lookup_valueset(const struct pw_terminology *t, const struct pw_term_vs *v,
                           struct pw_drug_info *out)
{
    /* Enrich from the display when the set has one (ingredient, laxative kind, strength). */
    if (v->display[0] == '\0' || pw_terminology_match_name(t, v->display, out) < 0) {
        info_reset(out);
    }
    unsigned named = out->classes;
    if (v->sets & (PW_VS_OPIOID | PW_VS_METHADONE | PW_VS_EXTENDED_RELEASE)) {
        out->classes |= PW_MED_OPIOID;
    }
    if (v->sets & PW_VS_EXTENDED_RELEASE) {
        out->classes |= PW_MED_LONG_ACTING;
    }
    if (v->sets & PW_VS_METHADONE) {
        out->classes |= PW_MED_METHADONE | PW_MED_LONG_ACTING;
    }
    if (v->sets & PW_VS_BENZODIAZEPINE) {
        out->classes |= PW_MED_BENZODIAZEPINE;
    }
    if ((v->sets & PW_VS_LAXATIVE) && !(named & PW_MED_LAXATIVE)) {
        out->classes |= PW_MED_LAXATIVE_OTHER;
    }
    /*
     * Adjuvant set members count only with a recognised adjuvant name: the set also holds
     * anaesthetic gases and anorectics (SOURCES.md section 3).
     */
    pw_fhir_copy(out->rxcui, sizeof(out->rxcui), v->code);
    pw_fhir_copy(out->name, sizeof(out->name), v->display);
    out->drug_level = true;
    pw_fhir_copy(out->basis, sizeof(out->basis), "valuesets");
    return 0;
}

int pw_terminology_lookup(const struct pw_terminology *t, const char *rxcui,
                          struct pw_drug_info *out)
{
    info_reset(out);
    if (rxcui == NULL || *rxcui == '\0') {
        return PW_ENOENT;
    }
    const struct pw_term_drug *d = find_drug(t, rxcui);
    const struct pw_term_vs *v = find_vs(t, rxcui);
    if (d != NULL) {
        pw_fhir_copy(out->rxcui, sizeof(out->rxcui), d->rxcui);
        pw_fhir_copy(out->name, sizeof(out->name), d->name);
        pw_fhir_copy(out->ingredient_rxcui, sizeof(out->ingredient_rxcui), d->ingredient_rxcui);
        pw_fhir_copy(out->ingredient, sizeof(out->ingredient), d->ingredient);
        pw_fhir_copy(out->dose_form_rxcui, sizeof(out->dose_form_rxcui), d->dose_form_rxcui);
        pw_fhir_copy(out->dose_form, sizeof(out->dose_form), d->dose_form);
        pw_fhir_copy(out->strength_unit, sizeof(out->strength_unit), d->strength_unit);
        out->strength = d->strength;
        out->is_combination = d->is_combination;
        out->drug_level = true;
        out->classes = PW_MED_OPIOID | d->form_classes;
        if (v != NULL && (v->sets & PW_VS_EXTENDED_RELEASE)) {
            out->classes |= PW_MED_LONG_ACTING;
        }
        pw_fhir_copy(out->basis, sizeof(out->basis), "opioid-drugs");
        return 0;
    }
    for (size_t i = 0; i < t->n_ings; i++) {
        const struct pw_term_ingredient *ing = &t->ings[i];
        if (ing->rxcui[0] == '\0' || strcmp(ing->rxcui, rxcui) != 0) {
            continue;
        }
        pw_fhir_copy(out->rxcui, sizeof(out->rxcui), ing->rxcui);
        pw_fhir_copy(out->name, sizeof(out->name), ing->name);
        out->classes = ing->classes;
        if (ing->classes & PW_MED_OPIOID) {
            fill_opioid_ingredient(out, ing);
            out->classes |= pw_terminology_form_classes(ing->name, NULL, NULL);
        }
        pw_fhir_copy(out->basis, sizeof(out->basis), ing->basis);
        return 0;
    }
    if (v != NULL) {
        return lookup_valueset(t, v, out);
    }
    return PW_ENOENT;
}
