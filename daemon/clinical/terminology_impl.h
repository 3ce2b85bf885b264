/* SPDX-License-Identifier: Apache-2.0 */
/* Internal layout of the loaded terminology tables (terminology.c, terminology_match.c, mme.c). */
#ifndef PAINWATCH_CLINICAL_TERMINOLOGY_IMPL_H
#define PAINWATCH_CLINICAL_TERMINOLOGY_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "painwatch/terminology.h"

/* Value set membership bits (valuesets.csv). */
enum {
    PW_VS_EXTENDED_RELEASE = 1u << 0,
    PW_VS_OPIOID = 1u << 1,
    PW_VS_METHADONE = 1u << 2,
    PW_VS_BENZODIAZEPINE = 1u << 3,
    PW_VS_LAXATIVE = 1u << 4,
    PW_VS_ADJUVANT = 1u << 5,
};

/*
 * Names and displays live in the table's string pool (struct pw_term_strings), each cut to the
 * length its fixed field had (PW_CODE_MAX or PW_TERM_NAME_MAX with the NUL): ~4,000 codes are
 * loaded and most texts are short, so fixed fields wasted about half a megabyte that stayed
 * resident for the daemon's whole life (issue 9, B3).
 */
#define PW_TERM_NAME_MAX 48

struct pw_term_drug { /* opioid-drugs.csv, one per (drug, first opioid ingredient) */
    char rxcui[16];
    const char *name; /* pool */
    char dose_form_rxcui[16];
    const char *dose_form; /* pool */
    char ingredient_rxcui[16];
    const char *ingredient; /* pool */
    double strength;
    char strength_unit[16];
    bool is_combination;
    unsigned form_classes; /* pw_terminology_form_classes(ingredient, dose_form, name), at load */
};

struct pw_term_ingredient { /* ingredient-classes.csv + painwatch-classes.csv */
    char rxcui[16];         /* "" for name-only rows */
    char name[48];
    char match[48]; /* lower-case text matched as a whole word in drug names */
    unsigned classes;
    char basis[32];
};

struct pw_term_vs {
    char code[16];
    const char *display; /* pool; "" when the set gives none */
    unsigned sets;
};

struct pw_term_factor {
    char ingredient_rxcui[16];
    char set[24];
    char dose_form_rxcui[16];
    double factor;
    bool patch;
    double low, high; /* tier bounds in mg/day, NAN = open */
    char route[16];   /* "oral", "transdermal", "parenteral", ... (issue 16) */
    char row[48];     /* "cdc2022:7052:oral" (+ ":low-high" for a tier) */
};

/* dose-limits.csv: largest plausible doses per ingredient and route (issue 16). */
struct pw_term_limit {
    char ingredient_rxcui[16];
    char route[16];
    double max_single_mg; /* NAN = no limit */
    double max_day_mg;
    double max_mcg_per_hour; /* patches and rates */
    double min_dose_mg;      /* smallest practical dose (lowest marketed strength), NAN unknown */
};

struct pw_term_strings; /* a chunk of the string pool (terminology.c) */

struct pw_terminology {
    struct pw_term_strings *strings; /* owns every const char * of the tables */
    struct pw_term_drug *drugs;      /* sorted by rxcui */
    size_t n_drugs, cap_drugs;
    struct pw_term_ingredient *ings; /* file order */
    size_t n_ings, cap_ings;
    struct pw_term_vs *vs; /* sorted by code, one entry per code */
    size_t n_vs, cap_vs;
    struct pw_term_factor *factors;
    size_t n_factors, cap_factors;
    struct pw_term_limit *limits; /* issue 16 */
    size_t n_limits, cap_limits;
    /* drugs by (ingredient_rxcui, dose_form_rxcui, is_combination), for the minimum strength
     * lookup (an order reads it once per dosage); NULL (a linear scan) if it could not be made */
    const struct pw_term_drug **by_ingredient;
};

#endif
