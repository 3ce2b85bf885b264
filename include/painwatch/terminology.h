/* SPDX-License-Identifier: Apache-2.0 */
/* RxNorm terminology tables (the CSV files of config/terminology): drug identity, classes. */
#ifndef PAINWATCH_TERMINOLOGY_H
#define PAINWATCH_TERMINOLOGY_H

#include <stdbool.h>
#include <stddef.h>

#include "painwatch/limits.h"

/*
 * Files read from the table directory (SOURCES.md there names every source and licence):
 *   opioid-drugs.csv        OMTK opioid drugs: drug RxCUI -> dose form, opioid ingredient, strength
 *   ingredient-classes.csv  ingredient RxCUI -> class (opioid, benzodiazepine, adjuvant-tca, ...)
 *   painwatch-classes.csv   our additions: class by verified ingredient RxCUI or by name
 *   valuesets.csv           drug-level value set members (extended release, laxatives, ...)
 *   mme-factors.csv         MME conversion factor sets (see mme.h)
 */

/** Largest table file accepted (the biggest shipped is ~0.4 MB). */
#define PW_TERM_FILE_MAX ((size_t)8 * 1024 * 1024)

/** What the tables say about one drug (a drug-level or ingredient-level RxNorm code, or a name). */
struct pw_drug_info {
    char rxcui[16];            /* the code that matched; "" when identified by name */
    char name[PW_CODE_MAX];    /* RxNorm name or ingredient name */
    unsigned classes;          /* enum pw_med_class bits */
    char ingredient_rxcui[16]; /* the opioid ingredient for opioids (combinations: the opioid) */
    char ingredient[48];
    char dose_form_rxcui[16]; /* "" for ingredient-level codes */
    char dose_form[48];
    double strength;        /* opioid ingredient strength, summed over salts; NAN when unknown */
    char strength_unit[16]; /* "MG", "MG/ML", "MG/HR", "MG/ACTUAT" */
    bool is_combination;
    bool drug_level; /* true: a product code with dose form and strength */
    char basis[48];  /* which table identified it: "opioid-drugs", "ingredient-classes", ... */
};

struct pw_terminology;

/**
 * Load every table from @p dir. On failure @p err (may be NULL) names the file and line.
 * @return 0, PW_ENOENT (missing file), PW_ETERM (bad content), PW_E2BIG or PW_ENOMEM.
 */
int pw_terminology_load(struct pw_terminology **out, const char *dir, char *err, size_t errlen);

void pw_terminology_free(struct pw_terminology *t);

/**
 * SHA-256 of every loaded table (content, not file names): what normalization derived from the
 * tables is valid only while this stays the same (the pipeline stores normalized events).
 * @return 0 or PW_ENOMEM.
 */
int pw_terminology_digest(const struct pw_terminology *t, unsigned char out[32]);

/**
 * The default table directory: $PAINWATCH_TERMINOLOGY_DIR, else the installed
 * PW_DATADIR/terminology, else config/terminology next to a build tree (the painwatch binary in
 * build/<x>/ of a source checkout). Writes the first directory that holds opioid-drugs.csv.
 * @return 0 or PW_ENOENT.
 */
int pw_terminology_default_dir(char *out, size_t n);

/** Look up one RxNorm code. @return 0 (filled @p out) or PW_ENOENT. */
int pw_terminology_lookup(const struct pw_terminology *t, const char *rxcui,
                          struct pw_drug_info *out);

/**
 * Classify by a free-text drug name (Medication.code.text, a coding display), the last resort:
 * whole-word, case-insensitive match of ingredient names; for an opioid the strength is read
 * from an RxNorm-style name ("oxycodone hydrochloride 5 MG Oral Tablet") when present.
 * @return 0 (filled, basis "name") or PW_ENOENT.
 */
int pw_terminology_match_name(const struct pw_terminology *t, const char *name,
                              struct pw_drug_info *out);

/*
 * Issue 16. mme-route-factors.csv: MME factors per ingredient and route beyond the oral and
 * transdermal rows of mme-factors.csv (columns factor_set ("*" = every set), ingredient_rxcui,
 * ingredient, route, factor, unit_basis mg/day|mcg/hr, source). dose-limits.csv: the largest
 * plausible doses (columns ingredient_rxcui, ingredient, route, max_single_mg, max_day_mg,
 * max_mcg_per_hour, min_dose_mg, source). Both are read by pw_terminology_load().
 *
 * A site overrides either by a file of the same shape (config keys mme_route_factors_file,
 * dose_limits_file): a row with the key of a shipped row replaces it, others are added.
 * @return 0, or what pw_terminology_load() returns for a bad file (err names file:line).
 */
int pw_terminology_load_site(struct pw_terminology *t, const char *factors_file,
                             const char *limits_file, char *err, size_t errlen);

/**
 * The plausibility limits of @p ingredient_rxcui by @p route (NAN = no limit).
 * @return 0 or PW_ENOENT (no row: no limit known).
 */
int pw_terminology_dose_limit(const struct pw_terminology *t, const char *ingredient_rxcui,
                              const char *route, double *max_single_mg, double *max_day_mg,
                              double *max_mcg_per_hour, double *min_dose_mg);

/**
 * The lowest marketed strength (mg per unit) of @p ingredient_rxcui in dose form
 * @p dose_form_rxcui among single-ingredient (or, with @p combination, combination) products of
 * opioid-drugs.csv: the smallest practical dose of such a product. NAN when none.
 */
double pw_terminology_min_strength(const struct pw_terminology *t, const char *ingredient_rxcui,
                                   const char *dose_form_rxcui, bool combination);

/** The long-acting / rapid-onset / transdermal bits implied by a dose form or drug name. */
unsigned pw_terminology_form_classes(const char *ingredient, const char *dose_form,
                                     const char *name);

#endif
