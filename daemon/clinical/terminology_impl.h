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

struct pw_term_drug { /* opioid-drugs.csv, one per (drug, first opioid ingredient) */
    char rxcui[16];
    char name[PW_CODE_MAX];
    char dose_form_rxcui[16];
    char dose_form[48];
    char ingredient_rxcui[16];
    char ingredient[48];
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
    char display[PW_CODE_MAX];
    unsigned sets;
};

struct pw_term_factor {
    char ingredient_rxcui[16];
    char set[24];
    char dose_form_rxcui[16];
    double factor;
    bool patch;
    double low, high; /* tier bounds in mg/day, NAN = open */
};

struct pw_terminology {
    struct pw_term_drug *drugs; /* sorted by rxcui */
    size_t n_drugs, cap_drugs;
    struct pw_term_ingredient *ings; /* file order */
    size_t n_ings, cap_ings;
    struct pw_term_vs *vs; /* sorted by code, one entry per code */
    size_t n_vs, cap_vs;
    struct pw_term_factor *factors;
    size_t n_factors, cap_factors;
};

#endif
