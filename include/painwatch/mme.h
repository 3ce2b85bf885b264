/* SPDX-License-Identifier: Apache-2.0 */
/* Morphine milligram equivalents: versioned conversion factor sets from mme-factors.csv. */
#ifndef PAINWATCH_MME_H
#define PAINWATCH_MME_H

#include <stdbool.h>
#include <stddef.h>

#include "painwatch/defaults.h" /* PW_MME_DEFAULT_SET */
#include "painwatch/terminology.h"

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

/**
 * Issue 16: the factor of @p ingredient_rxcui given by @p route ("oral", "transdermal",
 * "parenteral", "transmucosal", "rectal", "neuraxial"): the set's own row, else a row for every
 * set ("*", mme-route-factors.csv). Never another route's factor. @p row (may be NULL) receives
 * the row's name ("cdc2022:7052:oral"). @return 0 or PW_ENOENT ("no-factor-for-route").
 */
int pw_mme_factor_route(const struct pw_terminology *t, const char *set,
                        const char *ingredient_rxcui, const char *route, bool patch,
                        double mg_per_day, double *factor, char *row, size_t rowlen);

#endif
