/* SPDX-License-Identifier: Apache-2.0 */
/* Morphine milligram equivalents: versioned conversion factor sets from mme-factors.csv. */
#ifndef PAINWATCH_MME_H
#define PAINWATCH_MME_H

#include <stdbool.h>

#include "painwatch/terminology.h"

/** The default factor set (CDC 2022 clinical practice guideline). */
#define PW_MME_DEFAULT_SET "cdc2022"

/**
 * True when @p set is a clinical factor set in the tables (factors per mg/day or per mcg/h):
 * "cdc2022" and "cdc2016" as shipped. The research sets (cdc-analytic*) are refused.
 */
bool pw_mme_set_known(const struct pw_terminology *t, const char *set);

/**
 * The conversion factor of @p ingredient_rxcui in @p set.
 * @param patch       true for a transdermal patch: the factor is per mcg/h worn (fentanyl 2.4);
 *                    false: the factor is per mg/day of the ingredient.
 * @param mg_per_day  the daily dose, for tiered factors (cdc2016 methadone); tiers are the
 *                    published integer ranges, a dose between two tiers takes the lower one.
 * @return 0, or PW_ENOENT when the set has no factor (buprenorphine, non-patch fentanyl,
 *         tramadol in cdc2016, ...): the caller reports a "no-factor" data-quality event.
 */
int pw_mme_factor(const struct pw_terminology *t, const char *set, const char *ingredient_rxcui,
                  bool patch, double mg_per_day, double *factor);

#endif
