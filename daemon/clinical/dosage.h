/* SPDX-License-Identifier: Apache-2.0 */
/* One FHIR Dosage element read into numbers: candidate doses, administrations per day, PRN. */
#ifndef PAINWATCH_CLINICAL_DOSAGE_H
#define PAINWATCH_CLINICAL_DOSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/** A dose amount (doseRange keeps both ends; a doseQuantity has low == high). */
struct pw_dose_qty {
    double low, high;
    char code[32]; /* UCUM or v3-orderableDrugForm code, "" when absent */
    char unit[32]; /* human unit text, "" when absent */
    bool rate;     /* issue 16: read from rateQuantity (an infusion), not a dose */
};

#define PW_DOSE_CAND_MAX 8

struct pw_dosage {
    /* Doses in preference order: doseAndRate type ordered, calculated, Epic ordered-dose, the
     * first doseAndRate, the others, Epic admin-amount. The caller takes the first it can
     * convert to milligrams. */
    struct pw_dose_qty cand[PW_DOSE_CAND_MAX];
    size_t n_cand;
    double per_day; /* most administrations per day the timing allows; NAN when unknown */
    bool prn;       /* asNeededBoolean true or any asNeededCodeableConcept */
    bool has_max;   /* maxDosePerPeriod present, as an amount per day in max_per_day */
    struct pw_dose_qty max_per_day;
    bool has_sequence;
    long sequence;
    bool has_text; /* a free-text sig exists */
    /* Issue 16: when the instruction is in force (boundsPeriod / boundsDuration). */
    int64_t bounds_start, bounds_end; /* PW_TIME_NONE when absent */
    double bounds_seconds;            /* boundsDuration in seconds, NAN when absent */
};

/** Read @p dosage (a Dosage object). Never fails: what is absent stays NAN / 0. */
void pw_dosage_parse(const json_t *dosage, struct pw_dosage *out);

/** The prn of pw_dosage_parse() alone (a PRN-only order needs nothing else of its dosages). */
bool pw_dosage_prn(const json_t *dosage);

/** Administrations per day of a timing.code (BID, Q4H, ...), or NAN when unknown. */
double pw_dosage_code_per_day(const char *code);

/** Days in one FHIR periodUnit (s, min, h, d, wk, mo, a), or NAN when unknown. */
double pw_dosage_unit_days(const char *unit);

#endif
