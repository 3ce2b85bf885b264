/* SPDX-License-Identifier: Apache-2.0 */
/* Loads the RxNorm tables into sorted arrays and answers "what is this drug?". */
#include "painwatch/terminology.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "clinical/csv.h"
#include "clinical/terminology_impl.h"
#include "painwatch/array.h"
#include "painwatch/err.h"
#include "painwatch/fhir.h"
#include "painwatch/timeline.h"

/* Value sets we read, by their id in valuesets.csv, and what membership means. */
static const struct {
    const char *id;
    unsigned bit;
} valuesets[] = {
    {"extended-release-opioid-with-ambulatory-misuse-potential", PW_VS_EXTENDED_RELEASE},
    {"opioid-analgesics-with-ambulatory-misuse-potential", PW_VS_OPIOID},
    {"methadone-medications", PW_VS_METHADONE},
    {"benzodiazepine-medications", PW_VS_BENZODIAZEPINE},
    {"2.16.840.1.113762.1.4.1032.43", PW_VS_BENZODIAZEPINE},
    {"2.16.840.1.113762.1.4.1032.44", PW_VS_LAXATIVE},
    {"2.16.840.1.113762.1.4.1032.54", PW_VS_ADJUVANT},
};

/* Class labels of ingredient-classes.csv and painwatch-classes.csv. */
static const struct {
    const char *label;
    unsigned classes;
} class_labels[] = {
    {"opioid", PW_MED_OPIOID},
    {"benzodiazepine", PW_MED_BENZODIAZEPINE},
    {"laxative-stimulant", PW_MED_LAXATIVE_STIMULANT},
    {"laxative-osmotic", PW_MED_LAXATIVE_OSMOTIC},
    {"laxative-softener", PW_MED_LAXATIVE_SOFTENER},
    {"stool-softener", PW_MED_LAXATIVE_SOFTENER},
    {"laxative", PW_MED_LAXATIVE_OTHER},
    {"pamora", PW_MED_LAXATIVE_OTHER},
    {"adjuvant-gabapentinoid", PW_MED_ADJUVANT_GABAPENTINOID},
    {"adjuvant-snri", PW_MED_ADJUVANT_SNRI},
    {"adjuvant-tca", PW_MED_ADJUVANT_TCA},
    {"corticosteroid", PW_MED_ADJUVANT_CORTICOSTEROID},
    {"adjuvant-corticosteroid", PW_MED_ADJUVANT_CORTICOSTEROID},
    {"naloxone", 0},
};

static int class_of_label(const char *label, unsigned *out)
{
    for (size_t i = 0; i < sizeof(class_labels) / sizeof(class_labels[0]); i++) {
        if (strcmp(class_labels[i].label, label) == 0) {
            *out = class_labels[i].classes;
            return 0;
        }
    }
    return PW_ETERM;
}

static void set_err(char *err, size_t n, const char *file, size_t line, const char *what)
{
    if (err != NULL && n > 0) {
        snprintf(err, n, "%s:%zu: %s", file, line, what);
    }
}

/* The string pool: chunks that never move, so entries can point into them. */
#define STRINGS_CHUNK 16384

struct pw_term_strings {
    struct pw_term_strings *next;
    size_t used;
    char text[STRINGS_CHUNK];
};

/* A copy of @p src in the pool, cut as pw_fhir_copy() cuts into a field of @p cap bytes. */
static const char *pool_copy(struct pw_terminology *t, const char *src, size_t cap)
{
    size_t len = strlen(src);
    size_t need = len + 1 < cap ? len + 1 : cap;

    if (len == 0) {
        return "";
    }
    if (t->strings == NULL || t->strings->used + need > STRINGS_CHUNK) {
        struct pw_term_strings *c = malloc(sizeof(*c));
        if (c == NULL) {
            return NULL;
        }
        c->next = t->strings;
        c->used = 0;
        t->strings = c;
    }
    char *dst = t->strings->text + t->strings->used;
    pw_fhir_copy(dst, need, src);
    t->strings->used += strlen(dst) + 1;
    return dst;
}

/* Give back the slack of a grown array (its tail was never touched, but its size was). */
static void shrink(void **v, size_t n, size_t *cap, size_t size)
{
    if (n > 0 && n < *cap) {
        void *p = realloc(*v, n * size);
        if (p != NULL) {
            *v = p;
            *cap = n;
        }
    }
}

/* Append one element to a growable array. */
static void *push(void **v, size_t *n, size_t *cap, size_t size)
{
    if (pw_array_reserve(v, cap, *n + 1, size) < 0) {
        return NULL;
    }
    void *e = (char *)*v + *n * size;
    memset(e, 0, size);
    (*n)++;
    return e;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    if (*s == '\0') {
        *out = NAN;
        return 0;
    }
    double d = strtod(s, &end);
    if (*end != '\0' || !isfinite(d)) {
        return PW_ETERM;
    }
    *out = d;
    return 0;
}

static int cmp_drug(const void *a, const void *b)
{
    const struct pw_term_drug *x = a, *y = b;
    return strcmp(x->rxcui, y->rxcui);
}

static int cmp_vs(const void *a, const void *b)
{
    const struct pw_term_vs *x = a, *y = b;
    return strcmp(x->code, y->code);
}

/* Open <dir>/<file> as a CSV table; on failure @p err names the file. */
static int open_table(struct pw_csv *csv, char *path, size_t n, const char *dir, const char *file,
                      char *err, size_t errlen)
{
    snprintf(path, n, "%s/%s", dir, file);
    int rc = pw_csv_open(csv, path, PW_TERM_FILE_MAX);
    if (rc < 0) {
        set_err(err, errlen, path, 0, pw_strerror(rc));
    }
    return rc;
}

/* The group key of the minimum strength lookup: ingredient, dose form, combination. */
static int cmp_group(const char *ing_a, const char *form_a, bool combo_a, const char *ing_b,
                     const char *form_b, bool combo_b)
{
    int c = strcmp(ing_a, ing_b);
    if (c == 0) {
        c = strcmp(form_a, form_b);
    }
    return c != 0 ? c : (int)combo_a - (int)combo_b;
}

static int cmp_by_ingredient(const void *a, const void *b)
{
    const struct pw_term_drug *x = *(const struct pw_term_drug *const *)a;
    const struct pw_term_drug *y = *(const struct pw_term_drug *const *)b;
    return cmp_group(x->ingredient_rxcui, x->dose_form_rxcui, x->is_combination,
                     y->ingredient_rxcui, y->dose_form_rxcui, y->is_combination);
}

/* t->by_ingredient over the loaded drugs; left NULL (the lookup scans) without memory. */
static void by_ingredient_build(struct pw_terminology *t)
{
    free(t->by_ingredient);
    t->by_ingredient = t->n_drugs ? malloc(t->n_drugs * sizeof(*t->by_ingredient)) : NULL;
    if (t->by_ingredient == NULL) {
        return;
    }
    for (size_t i = 0; i < t->n_drugs; i++) {
        t->by_ingredient[i] = &t->drugs[i];
    }
    qsort(t->by_ingredient, t->n_drugs, sizeof(*t->by_ingredient), cmp_by_ingredient);
}

static int load_drugs(struct pw_terminology *t, const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    struct pw_csv csv;
    int rc = open_table(&csv, path, sizeof(path), dir, "opioid-drugs.csv", err, errlen);
    if (rc < 0) {
        return rc;
    }
    int c_rx = pw_csv_col(&csv, "rxcui"), c_name = pw_csv_col(&csv, "name"),
        c_dfrx = pw_csv_col(&csv, "dose_form_rxcui"), c_df = pw_csv_col(&csv, "dose_form"),
        c_ing = pw_csv_col(&csv, "ingredient_rxcui"), c_ingn = pw_csv_col(&csv, "ingredient"),
        c_sv = pw_csv_col(&csv, "strength_value"), c_su = pw_csv_col(&csv, "strength_unit"),
        c_combo = pw_csv_col(&csv, "is_combination");
    if (c_rx < 0 || c_ing < 0 || c_sv < 0 || c_su < 0) {
        set_err(err, errlen, path, 1, "missing column");
        rc = PW_ETERM;
        goto out;
    }
    while ((rc = pw_csv_next(&csv)) == 1) {
        double sv;
        if (parse_double(pw_csv_get(&csv, c_sv), &sv) < 0 || *pw_csv_get(&csv, c_rx) == '\0') {
            set_err(err, errlen, path, csv.line, "bad row");
            rc = PW_ETERM;
            goto out;
        }
        /* Salts of one ingredient come as separate rows: sum them (SOURCES.md section 1). */
        struct pw_term_drug *prev = t->n_drugs ? &t->drugs[t->n_drugs - 1] : NULL;
        if (prev && strcmp(prev->rxcui, pw_csv_get(&csv, c_rx)) == 0 &&
            strcmp(prev->ingredient_rxcui, pw_csv_get(&csv, c_ing)) == 0) {
            prev->strength += sv;
            continue;
        }
        if (prev && strcmp(prev->rxcui, pw_csv_get(&csv, c_rx)) == 0) {
            continue; /* a second opioid ingredient: the first one identifies the product */
        }
        struct pw_term_drug *d = push((void **)&t->drugs, &t->n_drugs, &t->cap_drugs, sizeof(*d));
        if (d == NULL) {
            rc = PW_ENOMEM;
            goto out;
        }
        pw_fhir_copy(d->rxcui, sizeof(d->rxcui), pw_csv_get(&csv, c_rx));
        d->name = pool_copy(t, pw_csv_get(&csv, c_name), PW_CODE_MAX);
        pw_fhir_copy(d->dose_form_rxcui, sizeof(d->dose_form_rxcui), pw_csv_get(&csv, c_dfrx));
        d->dose_form = pool_copy(t, pw_csv_get(&csv, c_df), PW_TERM_NAME_MAX);
        pw_fhir_copy(d->ingredient_rxcui, sizeof(d->ingredient_rxcui), pw_csv_get(&csv, c_ing));
        d->ingredient = pool_copy(t, pw_csv_get(&csv, c_ingn), PW_TERM_NAME_MAX);
        if (d->name == NULL || d->dose_form == NULL || d->ingredient == NULL) {
            rc = PW_ENOMEM;
            goto out;
        }
        pw_fhir_copy(d->strength_unit, sizeof(d->strength_unit), pw_csv_get(&csv, c_su));
        d->strength = sv;
        d->is_combination = strcmp(pw_csv_get(&csv, c_combo), "1") == 0;
    }
    if (rc < 0) {
        set_err(err, errlen, path, csv.line, "malformed CSV");
        goto out;
    }
    rc = 0;
    if (t->n_drugs > 1) {
        qsort(t->drugs, t->n_drugs, sizeof(*t->drugs), cmp_drug);
    }
    for (size_t i = 0; i < t->n_drugs; i++) {
        struct pw_term_drug *d = &t->drugs[i];
        d->form_classes = pw_terminology_form_classes(d->ingredient, d->dose_form, d->name);
    }
    shrink((void **)&t->drugs, t->n_drugs, &t->cap_drugs, sizeof(*t->drugs));
    by_ingredient_build(t);
out:
    pw_csv_close(&csv);
    return rc;
}

/* ingredient-classes.csv and painwatch-classes.csv share a layout; @p optional skips absence. */
static int load_classes(struct pw_terminology *t, const char *dir, const char *file, char *err,
                        size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    struct pw_csv csv;
    int rc = pw_csv_open(&csv, path, PW_TERM_FILE_MAX);
    if (rc < 0) {
        set_err(err, errlen, path, 0, pw_strerror(rc));
        return rc;
    }
    int c_rx = pw_csv_col(&csv, "ingredient_rxcui"), c_name = pw_csv_col(&csv, "ingredient"),
        c_class = pw_csv_col(&csv, "class"), c_match = pw_csv_col(&csv, "name_match");
    if (c_rx < 0 || c_name < 0 || c_class < 0) {
        set_err(err, errlen, path, 1, "missing column");
        rc = PW_ETERM;
        goto out;
    }
    while ((rc = pw_csv_next(&csv)) == 1) {
        unsigned classes;
        if (class_of_label(pw_csv_get(&csv, c_class), &classes) < 0) {
            set_err(err, errlen, path, csv.line, "unknown class");
            rc = PW_ETERM;
            goto out;
        }
        struct pw_term_ingredient *ing =
            push((void **)&t->ings, &t->n_ings, &t->cap_ings, sizeof(*ing));
        if (ing == NULL) {
            rc = PW_ENOMEM;
            goto out;
        }
        pw_fhir_copy(ing->rxcui, sizeof(ing->rxcui), pw_csv_get(&csv, c_rx));
        pw_fhir_copy(ing->name, sizeof(ing->name), pw_csv_get(&csv, c_name));
        /* The name to match in free text: name_match when given, else the ingredient name. */
        const char *m = pw_csv_get(&csv, c_match);
        pw_fhir_copy(ing->match, sizeof(ing->match), *m ? m : ing->name);
        for (char *p = ing->match; *p; p++) {
            *p = (char)tolower((unsigned char)*p);
        }
        ing->classes = classes;
        pw_fhir_copy(ing->basis, sizeof(ing->basis), file);
        char *dot = strrchr(ing->basis, '.');
        if (dot != NULL) {
            *dot = '\0';
        }
    }
    if (rc < 0) {
        set_err(err, errlen, path, csv.line, "malformed CSV");
        goto out;
    }
    rc = 0;
out:
    pw_csv_close(&csv);
    return rc;
}

static int load_valuesets(struct pw_terminology *t, const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    struct pw_csv csv;
    int rc = open_table(&csv, path, sizeof(path), dir, "valuesets.csv", err, errlen);
    if (rc < 0) {
        return rc;
    }
    int c_code = pw_csv_col(&csv, "code"), c_disp = pw_csv_col(&csv, "display"),
        c_sys = pw_csv_col(&csv, "system"), c_vs = pw_csv_col(&csv, "valueset");
    if (c_code < 0 || c_vs < 0 || c_sys < 0) {
        set_err(err, errlen, path, 1, "missing column");
        rc = PW_ETERM;
        goto out;
    }
    while ((rc = pw_csv_next(&csv)) == 1) {
        if (strcmp(pw_csv_get(&csv, c_sys), PW_FHIR_RXNORM) != 0) {
            continue;
        }
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof(valuesets) / sizeof(valuesets[0]); i++) {
            if (strcmp(valuesets[i].id, pw_csv_get(&csv, c_vs)) == 0) {
                bit = valuesets[i].bit;
            }
        }
        if (bit == 0) {
            continue;
        }
        struct pw_term_vs *v = push((void **)&t->vs, &t->n_vs, &t->cap_vs, sizeof(*v));
        if (v == NULL) {
            rc = PW_ENOMEM;
            goto out;
        }
        pw_fhir_copy(v->code, sizeof(v->code), pw_csv_get(&csv, c_code));
        v->display = pool_copy(t, pw_csv_get(&csv, c_disp), PW_CODE_MAX);
        if (v->display == NULL) {
            rc = PW_ENOMEM;
            goto out;
        }
        v->sets = bit;
    }
    if (rc < 0) {
        set_err(err, errlen, path, csv.line, "malformed CSV");
        goto out;
    }
    rc = 0;
    if (t->n_vs > 1) {
        qsort(t->vs, t->n_vs, sizeof(*t->vs), cmp_vs);
    }
    /* Merge duplicates (a code in several sets) into the first entry of each run. */
    size_t w = 0;
    for (size_t i = 0; i < t->n_vs; i++) {
        if (w > 0 && strcmp(t->vs[w - 1].code, t->vs[i].code) == 0) {
            t->vs[w - 1].sets |= t->vs[i].sets;
            if (t->vs[w - 1].display[0] == '\0') {
                t->vs[w - 1].display = t->vs[i].display;
            }
            continue;
        }
        t->vs[w++] = t->vs[i];
    }
    t->n_vs = w;
    shrink((void **)&t->vs, t->n_vs, &t->cap_vs, sizeof(*t->vs));
out:
    pw_csv_close(&csv);
    return rc;
}

/* The row's stable name: set, ingredient, route and, for a tier, its mg/day range. */
static void set_row(struct pw_term_factor *fa)
{
    if (isnan(fa->low) && isnan(fa->high)) {
        snprintf(fa->row, sizeof(fa->row), "%s:%s:%s", fa->set, fa->ingredient_rxcui, fa->route);
    } else {
        snprintf(fa->row, sizeof(fa->row), "%s:%s:%s:%g-%g", fa->set, fa->ingredient_rxcui,
                 fa->route, isnan(fa->low) ? 0 : fa->low, isnan(fa->high) ? INFINITY : fa->high);
    }
}

static bool route_known(const char *r)
{
    static const char *const routes[] = {"oral",   "transdermal", "parenteral", "transmucosal",
                                         "rectal", "neuraxial",   NULL};
    for (size_t i = 0; routes[i]; i++) {
        if (strcmp(r, routes[i]) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * mme-route-factors.csv (or a site file of the same shape): factors per route that
 * mme-factors.csv does not give. A row with the (set, ingredient, route) of a loaded row
 * replaces it (a site override); others are added. factor_set "*" applies to every set.
 */
static int load_route_factors(struct pw_terminology *t, const char *path, char *err, size_t errlen)
{
    struct pw_csv csv;
    int rc = pw_csv_open(&csv, path, PW_TERM_FILE_MAX);
    if (rc < 0) {
        set_err(err, errlen, path, 0, pw_strerror(rc));
        return rc;
    }
    int c_ing = pw_csv_col(&csv, "ingredient_rxcui"), c_set = pw_csv_col(&csv, "factor_set"),
        c_f = pw_csv_col(&csv, "factor"), c_route = pw_csv_col(&csv, "route"),
        c_basis = pw_csv_col(&csv, "unit_basis"), c_src = pw_csv_col(&csv, "source");
    if (c_ing < 0 || c_set < 0 || c_f < 0 || c_route < 0 || c_basis < 0 || c_src < 0) {
        set_err(err, errlen, path, 1, "missing column");
        rc = PW_ETERM;
        goto out;
    }
    while ((rc = pw_csv_next(&csv)) == 1) {
        const char *basis = pw_csv_get(&csv, c_basis);
        const char *route = pw_csv_get(&csv, c_route);
        bool patch = strcmp(basis, "mcg/hr") == 0;
        double f;
        if ((!patch && strcmp(basis, "mg/day") != 0) || !route_known(route) ||
            parse_double(pw_csv_get(&csv, c_f), &f) < 0 || !(f > 0) ||
            pw_csv_get(&csv, c_ing)[0] == '\0' || pw_csv_get(&csv, c_src)[0] == '\0') {
            set_err(err, errlen, path, csv.line,
                    "bad row (unit_basis mg/day|mcg/hr, a known route, factor > 0, an "
                    "ingredient and a source are required)");
            rc = PW_ETERM;
            goto out;
        }
        struct pw_term_factor nf;
        memset(&nf, 0, sizeof(nf));
        pw_fhir_copy(nf.ingredient_rxcui, sizeof(nf.ingredient_rxcui), pw_csv_get(&csv, c_ing));
        pw_fhir_copy(nf.set, sizeof(nf.set), pw_csv_get(&csv, c_set));
        pw_fhir_copy(nf.route, sizeof(nf.route), route);
        nf.factor = f;
        nf.patch = patch;
        nf.low = nf.high = NAN;
        set_row(&nf);
        struct pw_term_factor *fa = NULL;
        for (size_t i = 0; i < t->n_factors && fa == NULL; i++) {
            struct pw_term_factor *o = &t->factors[i];
            if (strcmp(o->set, nf.set) == 0 && strcmp(o->route, nf.route) == 0 &&
                o->patch == nf.patch && strcmp(o->ingredient_rxcui, nf.ingredient_rxcui) == 0) {
                fa = o;
            }
        }
        if (fa == NULL) {
            fa = push((void **)&t->factors, &t->n_factors, &t->cap_factors, sizeof(*fa));
        }
        if (fa == NULL) {
            rc = PW_ENOMEM;
            goto out;
        }
        *fa = nf;
    }
    if (rc < 0) {
        set_err(err, errlen, path, csv.line, "malformed CSV");
        goto out;
    }
    rc = 0;
out:
    pw_csv_close(&csv);
    return rc;
}

/*
 * dose-limits.csv (or a site file of the same shape): the largest plausible doses. A row for the
 * (ingredient, route) of a loaded row replaces it.
 */
static int load_limits(struct pw_terminology *t, const char *path, char *err, size_t errlen)
{
    struct pw_csv csv;
    int rc = pw_csv_open(&csv, path, PW_TERM_FILE_MAX);
    if (rc < 0) {
        set_err(err, errlen, path, 0, pw_strerror(rc));
        return rc;
    }
    int c_ing = pw_csv_col(&csv, "ingredient_rxcui"), c_route = pw_csv_col(&csv, "route"),
        c_single = pw_csv_col(&csv, "max_single_mg"), c_day = pw_csv_col(&csv, "max_day_mg"),
        c_rate = pw_csv_col(&csv, "max_mcg_per_hour"), c_min = pw_csv_col(&csv, "min_dose_mg"),
        c_src = pw_csv_col(&csv, "source");
    if (c_ing < 0 || c_route < 0 || c_single < 0 || c_day < 0 || c_rate < 0 || c_min < 0 ||
        c_src < 0) {
        set_err(err, errlen, path, 1, "missing column");
        rc = PW_ETERM;
        goto out;
    }
    while ((rc = pw_csv_next(&csv)) == 1) {
        struct pw_term_limit nl;
        memset(&nl, 0, sizeof(nl));
        pw_fhir_copy(nl.ingredient_rxcui, sizeof(nl.ingredient_rxcui), pw_csv_get(&csv, c_ing));
        pw_fhir_copy(nl.route, sizeof(nl.route), pw_csv_get(&csv, c_route));
        if (parse_double(pw_csv_get(&csv, c_single), &nl.max_single_mg) < 0 ||
            parse_double(pw_csv_get(&csv, c_day), &nl.max_day_mg) < 0 ||
            parse_double(pw_csv_get(&csv, c_rate), &nl.max_mcg_per_hour) < 0 ||
            parse_double(pw_csv_get(&csv, c_min), &nl.min_dose_mg) < 0 || !route_known(nl.route) ||
            nl.ingredient_rxcui[0] == '\0' || pw_csv_get(&csv, c_src)[0] == '\0') {
            set_err(err, errlen, path, csv.line,
                    "bad row (numbers or empty, a known route, an ingredient and a source are "
                    "required)");
            rc = PW_ETERM;
            goto out;
        }
        struct pw_term_limit *l = NULL;
        for (size_t i = 0; i < t->n_limits && l == NULL; i++) {
            if (strcmp(t->limits[i].ingredient_rxcui, nl.ingredient_rxcui) == 0 &&
                strcmp(t->limits[i].route, nl.route) == 0) {
                l = &t->limits[i];
            }
        }
        if (l == NULL) {
            l = push((void **)&t->limits, &t->n_limits, &t->cap_limits, sizeof(*l));
        }
        if (l == NULL) {
            rc = PW_ENOMEM;
            goto out;
        }
        *l = nl;
    }
    if (rc < 0) {
        set_err(err, errlen, path, csv.line, "malformed CSV");
        goto out;
    }
    rc = 0;
out:
    pw_csv_close(&csv);
    return rc;
}

int pw_terminology_load_site(struct pw_terminology *t, const char *factors_file,
                             const char *limits_file, char *err, size_t errlen)
{
    int rc = 0;
    if (factors_file != NULL && factors_file[0] != '\0') {
        rc = load_route_factors(t, factors_file, err, errlen);
    }
    if (rc == 0 && limits_file != NULL && limits_file[0] != '\0') {
        rc = load_limits(t, limits_file, err, errlen);
    }
    return rc;
}

int pw_terminology_dose_limit(const struct pw_terminology *t, const char *ingredient_rxcui,
                              const char *route, double *max_single_mg, double *max_day_mg,
                              double *max_mcg_per_hour, double *min_dose_mg)
{
    for (size_t i = 0; i < t->n_limits; i++) {
        const struct pw_term_limit *l = &t->limits[i];
        if (strcmp(l->ingredient_rxcui, ingredient_rxcui) == 0 && strcmp(l->route, route) == 0) {
            *max_single_mg = l->max_single_mg;
            *max_day_mg = l->max_day_mg;
            *max_mcg_per_hour = l->max_mcg_per_hour;
            *min_dose_mg = l->min_dose_mg;
            return 0;
        }
    }
    return PW_ENOENT;
}

double pw_terminology_min_strength(const struct pw_terminology *t, const char *ingredient_rxcui,
                                   const char *dose_form_rxcui, bool combination)
{
    double best = NAN;
    if (t->by_ingredient != NULL) {
        /* the group's first row, then its rows: the same minimum as the scan below */
        size_t lo = 0, hi = t->n_drugs;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            const struct pw_term_drug *d = t->by_ingredient[mid];
            if (cmp_group(d->ingredient_rxcui, d->dose_form_rxcui, d->is_combination,
                          ingredient_rxcui, dose_form_rxcui, combination) < 0) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        for (size_t i = lo; i < t->n_drugs; i++) {
            const struct pw_term_drug *d = t->by_ingredient[i];
            if (cmp_group(d->ingredient_rxcui, d->dose_form_rxcui, d->is_combination,
                          ingredient_rxcui, dose_form_rxcui, combination) != 0) {
                break;
            }
            if (strcmp(d->strength_unit, "MG") == 0 && d->strength > 0 &&
                (isnan(best) || d->strength < best)) {
                best = d->strength;
            }
        }
        return best;
    }
    for (size_t i = 0; i < t->n_drugs; i++) {
        const struct pw_term_drug *d = &t->drugs[i];
        /* the ingredient's first character first: most rows differ there (an order reads
         * this once per dosage, over every drug row) */
        if (d->ingredient_rxcui[0] != ingredient_rxcui[0] || d->is_combination != combination ||
            strcmp(d->ingredient_rxcui, ingredient_rxcui) != 0 ||
            strcmp(d->strength_unit, "MG") != 0 ||
            strcmp(d->dose_form_rxcui, dose_form_rxcui) != 0 || !(d->strength > 0)) {
            continue;
        }
        if (isnan(best) || d->strength < best) {
            best = d->strength;
        }
    }
    return best;
}

static int load_factors(struct pw_terminology *t, const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    struct pw_csv csv;
    int rc = open_table(&csv, path, sizeof(path), dir, "mme-factors.csv", err, errlen);
    if (rc < 0) {
        return rc;
    }
    int c_ing = pw_csv_col(&csv, "ingredient_rxcui"), c_set = pw_csv_col(&csv, "factor_set"),
        c_f = pw_csv_col(&csv, "factor"), c_basis = pw_csv_col(&csv, "unit_basis"),
        c_df = pw_csv_col(&csv, "dose_form_rxcui"), c_lo = pw_csv_col(&csv, "daily_dose_low"),
        c_hi = pw_csv_col(&csv, "daily_dose_high");
    if (c_ing < 0 || c_set < 0 || c_f < 0 || c_basis < 0) {
        set_err(err, errlen, path, 1, "missing column");
        rc = PW_ETERM;
        goto out;
    }
    while ((rc = pw_csv_next(&csv)) == 1) {
        /*
         * Only clinical factors per mg/day or per mcg/h are usable for a prescription. This
         * skips the research sets and the flagged cdc2022 non-patch fentanyl value (SOURCES.md).
         */
        const char *basis = pw_csv_get(&csv, c_basis);
        bool patch = strcmp(basis, "mcg/hr") == 0;
        if (!patch && strcmp(basis, "mg/day") != 0) {
            continue;
        }
        double f, lo, hi;
        if (parse_double(pw_csv_get(&csv, c_f), &f) < 0 ||
            parse_double(pw_csv_get(&csv, c_lo), &lo) < 0 ||
            parse_double(pw_csv_get(&csv, c_hi), &hi) < 0) {
            set_err(err, errlen, path, csv.line, "bad number");
            rc = PW_ETERM;
            goto out;
        }
        if (isnan(f)) {
            continue; /* "N/A" in the source: no factor */
        }
        struct pw_term_factor *fa =
            push((void **)&t->factors, &t->n_factors, &t->cap_factors, sizeof(*fa));
        if (fa == NULL) {
            rc = PW_ENOMEM;
            goto out;
        }
        pw_fhir_copy(fa->ingredient_rxcui, sizeof(fa->ingredient_rxcui), pw_csv_get(&csv, c_ing));
        pw_fhir_copy(fa->set, sizeof(fa->set), pw_csv_get(&csv, c_set));
        pw_fhir_copy(fa->dose_form_rxcui, sizeof(fa->dose_form_rxcui), pw_csv_get(&csv, c_df));
        fa->factor = f;
        fa->patch = patch;
        fa->low = lo;
        fa->high = hi;
        pw_fhir_copy(fa->route, sizeof(fa->route), patch ? "transdermal" : "oral");
        set_row(fa);
    }
    if (rc < 0) {
        set_err(err, errlen, path, csv.line, "malformed CSV");
        goto out;
    }
    rc = 0;
out:
    pw_csv_close(&csv);
    return rc;
}

int pw_terminology_load(struct pw_terminology **out, const char *dir, char *err, size_t errlen)
{
    struct pw_terminology *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return PW_ENOMEM;
    }
    int rc = load_drugs(t, dir, err, errlen);
    if (rc == 0) {
        rc = load_classes(t, dir, "ingredient-classes.csv", err, errlen);
    }
    if (rc == 0) {
        rc = load_classes(t, dir, "painwatch-classes.csv", err, errlen);
    }
    if (rc == 0) {
        rc = load_valuesets(t, dir, err, errlen);
    }
    if (rc == 0) {
        rc = load_factors(t, dir, err, errlen);
    }
    /* Issue 16 tables: a table directory of an older release has none (no parenteral factors,
     * no plausibility limits: such orders are not computed, never computed with oral factors). */
    char path[PATH_MAX];
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/mme-route-factors.csv", dir);
        rc = access(path, F_OK) == 0 ? load_route_factors(t, path, err, errlen) : 0;
    }
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/dose-limits.csv", dir);
        rc = access(path, F_OK) == 0 ? load_limits(t, path, err, errlen) : 0;
    }
    if (rc < 0) {
        pw_terminology_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void pw_terminology_free(struct pw_terminology *t)
{
    if (t == NULL) {
        return;
    }
    free(t->drugs);
    free(t->ings);
    free(t->vs);
    free(t->factors);
    free(t->limits);
    free(t->by_ingredient);
    while (t->strings != NULL) {
        struct pw_term_strings *c = t->strings;
        t->strings = c->next;
        free(c);
    }
    free(t);
}

static int digest_str(EVP_MD_CTX *md, const char *s)
{
    return EVP_DigestUpdate(md, s ? s : "", s ? strlen(s) + 1 : 1);
}

static int digest_num(EVP_MD_CTX *md, double v, unsigned bits)
{
    return EVP_DigestUpdate(md, &v, sizeof(v)) && EVP_DigestUpdate(md, &bits, sizeof(bits));
}

/*
 * Field by field, strings by content (names live in the pool: their addresses change from run
 * to run). Ingredient and factor rows hold no pointers and are zero-filled by push() before
 * their fields are set, so they hash as they are.
 */
int pw_terminology_digest(const struct pw_terminology *t, unsigned char out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int len = 0;
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);

    for (size_t i = 0; ok && i < t->n_drugs; i++) {
        const struct pw_term_drug *d = &t->drugs[i];
        ok = digest_str(md, d->rxcui) && digest_str(md, d->name) &&
             digest_str(md, d->dose_form_rxcui) && digest_str(md, d->dose_form) &&
             digest_str(md, d->ingredient_rxcui) && digest_str(md, d->ingredient) &&
             digest_str(md, d->strength_unit) &&
             digest_num(md, d->strength, d->form_classes | (d->is_combination ? 1u << 31 : 0u));
    }
    for (size_t i = 0; ok && i < t->n_vs; i++) {
        ok = digest_str(md, t->vs[i].code) && digest_str(md, t->vs[i].display) &&
             digest_num(md, 0, t->vs[i].sets);
    }
    ok = ok && EVP_DigestUpdate(md, &t->n_ings, sizeof(t->n_ings)) &&
         EVP_DigestUpdate(md, t->ings, t->n_ings * sizeof(*t->ings)) &&
         EVP_DigestUpdate(md, &t->n_factors, sizeof(t->n_factors)) &&
         EVP_DigestUpdate(md, t->factors, t->n_factors * sizeof(*t->factors)) &&
         EVP_DigestUpdate(md, &t->n_limits, sizeof(t->n_limits)) &&
         EVP_DigestUpdate(md, t->limits, t->n_limits * sizeof(*t->limits)) &&
         EVP_DigestFinal_ex(md, out, &len);
    EVP_MD_CTX_free(md);
    return ok && len == 32 ? 0 : PW_ENOMEM;
}

static bool has_tables(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/opioid-drugs.csv", dir);
    return access(path, R_OK) == 0;
}

int pw_terminology_default_dir(char *out, size_t n)
{
    const char *env = getenv("PAINWATCH_TERMINOLOGY_DIR");
    if (env != NULL && *env != '\0') {
        pw_fhir_copy(out, n, env);
        return has_tables(env) ? 0 : PW_ENOENT;
    }
    if (has_tables(PW_DATADIR "/terminology")) {
        pw_fhir_copy(out, n, PW_DATADIR "/terminology");
        return 0;
    }
    /* Uninstalled: the binary sits in <source>/build/<x>/ (README's build layout). */
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len <= 0) {
        return PW_ENOENT;
    }
    exe[len] = '\0';
    static const char *const rel[] = {"/../../config/terminology", "/../config/terminology",
                                      "/../../../config/terminology"};
    char *slash = strrchr(exe, '/');
    if (slash == NULL) {
        return PW_ENOENT;
    }
    *slash = '\0';
    for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
        char cand[PATH_MAX + 64];
        snprintf(cand, sizeof(cand), "%s%s", exe, rel[i]);
        if (has_tables(cand)) {
            pw_fhir_copy(out, n, cand);
            return 0;
        }
    }
    return PW_ENOENT;
}
