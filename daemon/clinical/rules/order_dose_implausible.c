/* SPDX-License-Identifier: Apache-2.0 */
/* order-dose-implausible: an opioid order's dose is outside the plausibility table (a slip?). */
#include <ctype.h>
#include <string.h>

#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"

static void lower(char *dst, size_t size, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < size; i++) {
        dst[i] = (char)tolower((unsigned char)src[i]);
    }
    dst[i] = '\0';
}

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    const struct pw_timeline *tl = in->tl;
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if (!(o->flags & PW_ORDER_IMPLAUSIBLE) || !pw_order_active_at(o, in->now)) {
            continue;
        }
        /* one finding per order: the first implausible part names it */
        bool seen = false;
        for (size_t k = 0; k < i; k++) {
            const struct pw_med_order *p = &tl->orders.v[k];
            seen = seen ||
                   ((p->flags & PW_ORDER_IMPLAUSIBLE) && pw_order_active_at(p, in->now) &&
                    strcmp(p->src.id, o->src.id) == 0 && strcmp(p->src.type, o->src.type) == 0);
        }
        if (seen) {
            continue;
        }
        struct pw_finding f;
        char drug[64];
        lower(drug, sizeof(drug), o->ingredient[0] ? o->ingredient : o->drug_name);
        pw_ru_finding_init(&f, rule, PW_SEV_MEDIUM);
        pw_ru_cat(
            f.text, sizeof(f.text),
            "Order %s/%s (%s%s%s) has a dose as written of '%s', outside the plausible "
            "range for this drug, route and form (perhaps a unit or decimal slip). Verify the "
            "order with the prescriber; painwatch computes no MME and gives no dose advice "
            "from it.",
            o->src.type, o->src.id, drug, o->route[0] ? ", " : "", pw_ru_route_word(o->route),
            o->dose_written[0] ? o->dose_written : "none");
        pw_ru_sit(f.situation, sizeof(f.situation), "implausible:");
        pw_ru_sit_ref(f.situation, sizeof(f.situation), &o->src);
        f.since = o->start;
        pw_finding_add_evidence(&f, &o->src);
        int err = pw_findings_push(out, &f);
        if (err) {
            return err;
        }
    }
    return 0;
}

const struct pw_rule pw_rule_order_dose_implausible = {
    .id = "order-dose-implausible",
    .title = "Opioid order dose implausible: verify the order",
    .category = "drug",
    .params = NULL,
    .n_params = 0,
    .reads = PW_RES_MEDICATION_REQUEST | PW_RES_CONDITION, /* orders; an OUD Condition */
    .absence = 0,
    .eval = eval,
};
