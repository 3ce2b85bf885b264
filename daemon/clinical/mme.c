/* SPDX-License-Identifier: Apache-2.0 */
/* MME conversion factors by set, ingredient, patch or not, and methadone tier. */
#include "painwatch/mme.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "clinical/terminology_impl.h"
#include "painwatch/err.h"

bool pw_mme_set_known(const struct pw_terminology *t, const char *set)
{
    if (t == NULL || set == NULL) {
        return false;
    }
    for (size_t i = 0; i < t->n_factors; i++) {
        if (strcmp(t->factors[i].set, set) == 0) {
            return true;
        }
    }
    return false;
}

int pw_mme_factor_route(const struct pw_terminology *t, const char *set,
                        const char *ingredient_rxcui, const char *route, bool patch,
                        double mg_per_day, double *factor, char *row, size_t rowlen)
{
    const struct pw_term_factor *best = NULL;
    for (int pass = 0; pass < 2 && best == NULL; pass++) {
        /* The set's own rows first, then rows for every set ("*"). */
        const char *want = pass == 0 ? set : "*";
        for (size_t i = 0; i < t->n_factors; i++) {
            const struct pw_term_factor *f = &t->factors[i];
            if (f->patch != patch || strcmp(f->set, want) != 0 || strcmp(f->route, route) != 0 ||
                strcmp(f->ingredient_rxcui, ingredient_rxcui) != 0) {
                continue;
            }
            if (isnan(f->low) && isnan(f->high)) {
                best = f;
                break;
            }
            /*
             * A tier: the published ranges are closed integer ranges (1-20, 21-40, ...). A dose
             * up to a tier's high end belongs to it; the lowest tier also takes doses below 1 mg.
             */
            if (!isfinite(mg_per_day)) {
                continue;
            }
            if ((isnan(f->high) || mg_per_day <= f->high) &&
                (best == NULL || isnan(best->high) || (!isnan(f->high) && f->high < best->high))) {
                best = f;
            }
        }
    }
    if (best == NULL) {
        return PW_ENOENT;
    }
    *factor = best->factor;
    if (row != NULL && rowlen > 0) {
        snprintf(row, rowlen, "%s", best->row);
    }
    return 0;
}

int pw_mme_factor(const struct pw_terminology *t, const char *set, const char *ingredient_rxcui,
                  bool patch, double mg_per_day, double *factor)
{
    return pw_mme_factor_route(t, set, ingredient_rxcui, patch ? "transdermal" : "oral", patch,
                               mg_per_day, factor, NULL, 0);
}
