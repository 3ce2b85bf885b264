/* SPDX-License-Identifier: Apache-2.0 */
/* rescue-use-frequent: many rescue doses given and the baseline not raised since. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"

enum { P_PER_DAY_2, P_PER_24H };

static const struct pw_rule_param params[] = {
    [P_PER_DAY_2] = {"doses_per_day_2_days", 3, 1, 48,
                     "rescue doses in each of the last two 24-h periods that call for a higher "
                     "baseline (guide: frequent rescue use is the signal to raise the baseline; "
                     "3 a day is the usual trigger, site)"},
    [P_PER_24H] = {"doses_24h", 4, 1, 48,
                   "rescue doses in the last 24 h that call for a higher baseline (site)"},
};

/* The rescue order an administration fulfils (its request), or NULL. */
static const struct pw_med_order *rescue_order(const struct pw_timeline *tl,
                                               const struct pw_context *a)
{
    for (size_t i = 0; a->link[0] && i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        char ref[PW_REF_MAX];
        snprintf(ref, sizeof(ref), "%s/%s", o->src.type, o->src.id);
        if (strcmp(ref, a->link) == 0 && (o->classes & PW_MED_OPIOID) &&
            (o->role == PW_ROLE_RESCUE || o->prn)) {
            return o;
        }
    }
    return NULL;
}

/*
 * The new baseline, in MME/day and in practical doses of the baseline product (the medication
 * engine's rounding). No figure when the baseline includes methadone (non-linear, accumulates),
 * or when the baseline or rescue MME is not computed (implausible dose, buprenorphine, no
 * factor): words instead.
 */
static void advice(char *text, size_t size, const struct pw_timeline *tl, int64_t now, double tdd,
                   double daily)
{
    char a[32], b[32], c[32], d[32];
    if (pw_ru_regimen_class(tl, now, PW_MED_METHADONE)) {
        pw_ru_cat(text, size,
                  " The baseline includes methadone: painwatch gives no new-baseline figure "
                  "(methadone accumulates over days; raise it with specialist input).");
        return;
    }
    if (!isfinite(tdd) || tdd <= 0) {
        const char *why = pw_ru_tdd_why(tl, now);
        pw_ru_cat(text, size, " No new-baseline figure is given: %s.",
                  why[0] ? why : "MME not computed for the baseline");
        return;
    }
    if (!isfinite(daily)) {
        pw_ru_cat(text, size,
                  " No new-baseline figure is given: MME not computed for the rescue doses.");
        return;
    }
    pw_ru_cat(text, size,
              " Consider a new baseline of about %s MME/day (the current %s plus the average "
              "daily rescue total %s).",
              pw_ru_num(a, tdd + daily), pw_ru_num(b, tdd), pw_ru_num(c, daily));
    /* In mg only when the baseline is one order of one product: a split between orders or
     * products is the prescriber's choice. */
    const struct pw_med_order *base = NULL;
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if (o->role != PW_ROLE_BASELINE || !pw_order_active_at(o, now)) {
            continue;
        }
        if (base != NULL) {
            return;
        }
        base = o;
    }
    if (base == NULL || !isfinite(base->mme_factor) || base->mme_factor <= 0 ||
        (base->classes & PW_MED_TRANSDERMAL) ||
        (base->flags & (PW_ORDER_IMPLAUSIBLE | PW_ORDER_NO_MME)) || !isfinite(base->mg_per_dose) ||
        base->mg_per_dose <= 0 || !isfinite(base->mg_per_day)) {
        return;
    }
    double mg_day = (tdd + daily) / base->mme_factor;
    double per_day = round(base->mg_per_day / base->mg_per_dose);
    char name[48];
    const char *src = base->ingredient[0] ? base->ingredient : base->drug_name;
    size_t n = 0;
    for (; src[n] && n + 1 < sizeof(name); n++) {
        name[n] = (char)tolower((unsigned char)src[n]);
    }
    name[n] = '\0';
    if (per_day >= 1) {
        double dose = pw_ru_practical_mg(mg_day / per_day, base->min_dose_mg);
        pw_ru_cat(text, size, " As %s%s%s: %s mg a dose, %s doses a day (%s mg/day).",
                  pw_ru_route_word(base->route), base->route[0] ? " " : "", name,
                  pw_ru_num(a, dose), pw_ru_num(b, per_day), pw_ru_num(d, dose * per_day));
    } else {
        pw_ru_cat(text, size, " As %s%s%s: about %s mg/day.", pw_ru_route_word(base->route),
                  base->route[0] ? " " : "", name,
                  pw_ru_num(a, pw_ru_practical_mg(mg_day, base->min_dose_mg)));
    }
}

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    const struct pw_timeline *tl = in->tl;
    /* Issue 16: an opioid-use-disorder product or Condition puts the patient outside the
     * cancer-pain opioid rules; no baseline advice is given for them. */
    if (pw_ru_oud(tl, in->now)) {
        return 0;
    }
    int64_t d1 = in->now - PW_DAY, d2 = in->now - 2 * PW_DAY;
    size_t n1 = 0, n2 = 0;
    double mme1 = 0, mme2 = 0;
    const struct pw_context *first = NULL, *last = NULL;
    for (size_t i = 0; i < tl->context.n; i++) {
        const struct pw_context *a = &tl->context.v[i];
        const struct pw_med_order *o;
        if (a->kind != PW_CTX_ADMINISTRATION || a->at <= d2 || a->at > in->now ||
            (o = rescue_order(tl, a)) == NULL) {
            continue;
        }
        double mme = o->mme_per_dose;
        if (a->at > d1) {
            n1++;
            mme1 += mme;
        } else {
            n2++;
            mme2 += mme;
        }
        first = first ? first : a;
        last = a;
    }
    bool two_days = (double)n1 >= in->params[P_PER_DAY_2] && (double)n2 >= in->params[P_PER_DAY_2];
    bool one_day = (double)n1 >= in->params[P_PER_24H];
    if (!two_days && !one_day) {
        return 0;
    }
    int64_t from = two_days ? d2 : d1;
    /* A baseline increase since the counted doses began answers them. */
    struct pw_steps steps;
    int err = pw_steps_build(tl, in->now, &steps);
    if (err) {
        return err;
    }
    bool raised = false;
    for (size_t i = 0; i < steps.n; i++) {
        raised = raised || (pw_step_is_increase(&steps.v[i]) && steps.v[i].at > from);
    }
    pw_steps_cleanup(&steps);
    if (raised) {
        return 0;
    }
    double tdd = pw_ru_tdd(tl, in->now);
    double daily = two_days ? (mme1 + mme2) / 2 : mme1;
    size_t doses = two_days ? n1 + n2 : n1;
    struct pw_finding f;
    char t[32];
    pw_ru_finding_init(&f, rule, PW_SEV_MEDIUM);
    if (two_days) {
        pw_ru_cat(f.text, sizeof(f.text),
                  "%zu and %zu rescue opioid doses given in the last two 24-h periods", n2, n1);
    } else {
        pw_ru_cat(f.text, sizeof(f.text), "%zu rescue opioid doses given in the last 24 h", n1);
    }
    pw_ru_cat(f.text, sizeof(f.text), " and the baseline was not increased since (since %s).",
              pw_ru_time(t, first->at));
    advice(f.text, sizeof(f.text), tl, in->now, tdd, daily);
    pw_ru_cat(f.text, sizeof(f.text),
              " Guide: track rescue use separately; frequent rescue doses mean the baseline "
              "should go up.");
    pw_ru_sit(f.situation, sizeof(f.situation), "rescue-from:");
    pw_ru_sit_ref(f.situation, sizeof(f.situation), &first->src);
    pw_ru_sit_regimen(f.situation, sizeof(f.situation), tl, in->now);
    f.since = first->at;
    pw_finding_add_evidence(&f, &first->src);
    pw_finding_add_evidence(&f, &last->src);
    pw_ru_evidence_regimen(&f, tl, in->now);
    pw_finding_add_number(&f, "rescue_doses", (double)doses);
    if (isfinite(daily)) {
        pw_finding_add_number(&f, "rescue_mme_per_day", daily);
    }
    if (isfinite(tdd)) {
        pw_finding_add_number(&f, "baseline_mme_per_day", tdd);
    }
    return pw_findings_push(out, &f);
}

const struct pw_rule pw_rule_rescue_use_frequent = {
    .id = "rescue-use-frequent",
    .title = "Frequent rescue doses without a baseline increase",
    .category = "drug",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .eval = eval,
    .reads = PW_RES_MEDICATION_ADMINISTRATION | PW_RES_MEDICATION_REQUEST,
    .absence = PW_RES_MEDICATION_REQUEST,
};
