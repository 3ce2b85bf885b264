/* SPDX-License-Identifier: Apache-2.0 */
/* rescue-dose-out-of-range: a rescue dose outside 10-20 % of the 24-h baseline (MME). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"

enum { P_MIN_PCT, P_MAX_PCT };

static const struct pw_rule_param params[] = {
    [P_MIN_PCT] = {"min_pct", 10, 0, 100,
                   "smallest rescue dose, % of the 24-h baseline MME (guide: 10-20%)"},
    [P_MAX_PCT] = {"max_pct", 20, 0, 100,
                   "largest rescue dose, % of the 24-h baseline MME (guide: 10-20%)"},
};

/* "oral morphine" from the order: its route, ingredient in lower case. */
static void drug_label(char *buf, size_t size, const struct pw_med_order *o)
{
    const char *name = o->ingredient[0] ? o->ingredient : o->drug_name;
    buf[0] = '\0';
    if (o->route[0]) {
        pw_ru_cat(buf, size, "%s ", pw_ru_route_word(o->route));
    } else if (strstr(o->drug_name, "Oral") || strstr(o->drug_name, "oral")) {
        pw_ru_cat(buf, size, "oral ");
    }
    size_t len = strlen(buf);
    for (size_t i = 0; name[i] && len + 1 < size; i++) {
        buf[len++] = (char)tolower((unsigned char)name[i]);
    }
    buf[len] = '\0';
}

/*
 * Practical doses of the ordered product within [lo, hi] mg: whole multiples of its smallest
 * practical dose (@p unit, NAN when unknown); none inside: the nearest one.
 */
static void practical(char *buf, size_t size, double lo, double hi, double unit)
{
    char a[32], b[32];
    buf[0] = '\0';
    if (!isfinite(unit) || unit <= 0) {
        double x = pw_ru_nice_mg(lo), y = pw_ru_nice_mg(hi);
        if (x == y) {
            (void)snprintf(buf, size, "about %s mg", pw_ru_num(a, x));
        } else {
            (void)snprintf(buf, size, "about %s-%s mg", pw_ru_num(a, x), pw_ru_num(b, y));
        }
        return;
    }
    double kmin = ceil(lo / unit - 1e-9), kmax = floor(hi / unit + 1e-9);
    if (kmin < 1) {
        kmin = 1;
    }
    if (kmin <= kmax) {
        if (kmin == kmax) {
            (void)snprintf(buf, size, "%s mg", pw_ru_num(a, kmin * unit));
        } else {
            (void)snprintf(buf, size, "%s-%s mg", pw_ru_num(a, kmin * unit),
                           pw_ru_num(b, kmax * unit));
        }
        return;
    }
    double k = round((lo + hi) / 2 / unit);
    (void)snprintf(buf, size, "%s mg (nearest to the range)", pw_ru_num(a, (k < 1 ? 1 : k) * unit));
}

static int64_t regimen_since(const struct pw_timeline *tl, const struct pw_med_order *rescue,
                             int64_t now)
{
    int64_t since = rescue->start;
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if (o->role == PW_ROLE_BASELINE && pw_order_active_at(o, now) && o->start > since) {
            since = o->start;
        }
    }
    return since;
}

static int check_order(const struct pw_rule *rule, const struct pw_rule_input *in,
                       const struct pw_med_order *o, double tdd, struct pw_findings *out)
{
    const double *p = in->params;
    if (!isfinite(o->mg_per_dose) || o->mg_per_dose <= 0 ||
        (o->flags & (PW_ORDER_IMPLAUSIBLE | PW_ORDER_NO_MME))) {
        return 0; /* a data-quality event says why the dose is unknown */
    }
    double mg_hi = isfinite(o->mg_per_dose_high) && o->mg_per_dose_high > o->mg_per_dose
                       ? o->mg_per_dose_high
                       : o->mg_per_dose;
    /* MME per mg of this drug by its route: the factor normalize used; else what its per-dose
     * MME implies (mme_per_dose is for the top of a dose range, the most one dose may be). */
    double mme_per_mg =
        isfinite(o->mme_factor) && o->mme_factor > 0 ? o->mme_factor : o->mme_per_dose / mg_hi;
    if (!isfinite(mme_per_mg) || mme_per_mg <= 0) {
        return 0;
    }
    double pct_lo = o->mg_per_dose * mme_per_mg / tdd * 100;
    double pct_hi = mg_hi * mme_per_mg / tdd * 100;
    /* A dose range fires only when no part of it is within the band; a dose that is already the
     * smallest practical dose of the product (lowest strength, a measured mL) is tolerated. */
    enum pw_severity sev;
    if (pct_lo > p[P_MAX_PCT] + 1e-9) {
        if (isfinite(o->min_dose_mg) && o->mg_per_dose <= o->min_dose_mg * (1 + 1e-9)) {
            return 0;
        }
        sev = PW_SEV_MEDIUM;
    } else if (pct_hi < p[P_MIN_PCT] - 1e-9) {
        sev = PW_SEV_LOW;
    } else {
        return 0;
    }
    struct pw_finding f;
    char drug[80], a[32], b[32], c[32], d[32], e[32], prac[96];
    drug_label(drug, sizeof(drug), o);
    pw_ru_finding_init(&f, rule, sev);
    if (mg_hi > o->mg_per_dose) {
        pw_ru_cat(f.text, sizeof(f.text), "Rescue dose %s-%s mg %s = %s-%s%%",
                  pw_ru_num(a, o->mg_per_dose), pw_ru_num(b, mg_hi), drug, pw_ru_num(c, pct_lo),
                  pw_ru_num(d, pct_hi));
    } else {
        pw_ru_cat(f.text, sizeof(f.text), "Rescue dose %s mg %s = %s%%",
                  pw_ru_num(a, o->mg_per_dose), drug, pw_ru_num(c, pct_lo));
    }
    double lo_mg = tdd * p[P_MIN_PCT] / 100 / mme_per_mg;
    double hi_mg = tdd * p[P_MAX_PCT] / 100 / mme_per_mg;
    practical(prac, sizeof(prac), lo_mg, hi_mg, o->min_dose_mg);
    pw_ru_cat(f.text, sizeof(f.text),
              " of 24-h baseline %s MME (%s); guide: %s-%s%%, i.e. %s-%s mg %s per dose; "
              "practical dose of the ordered product: %s.",
              pw_ru_num(a, tdd), sev == PW_SEV_MEDIUM ? "too high" : "too low",
              pw_ru_num(b, p[P_MIN_PCT]), pw_ru_num(c, p[P_MAX_PCT]), pw_ru_num(d, lo_mg),
              pw_ru_num(e, hi_mg), drug, prac);
    pw_ru_sit(f.situation, sizeof(f.situation), "rescue:");
    pw_ru_sit_ref(f.situation, sizeof(f.situation), &o->src);
    pw_ru_sit(f.situation, sizeof(f.situation), "|%s|", sev == PW_SEV_MEDIUM ? "above" : "below");
    pw_ru_sit_regimen(f.situation, sizeof(f.situation), in->tl, in->now);
    f.since = regimen_since(in->tl, o, in->now);
    pw_finding_add_evidence(&f, &o->src);
    pw_ru_evidence_regimen(&f, in->tl, in->now);
    pw_finding_add_number(&f, "rescue_mg_per_dose", mg_hi);
    pw_finding_add_number(&f, "rescue_mme_per_dose", mg_hi * mme_per_mg);
    pw_finding_add_number(&f, "baseline_mme_per_day", tdd);
    pw_finding_add_number(&f, "rescue_pct_of_baseline", pct_hi);
    pw_finding_add_number(&f, "range_low_mg", lo_mg);
    pw_finding_add_number(&f, "range_high_mg", hi_mg);
    return pw_findings_push(out, &f);
}

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    double tdd = pw_ru_tdd(in->tl, in->now);
    if (!isfinite(tdd) || tdd < PW_MME_EPS) {
        return 0; /* no baseline: nothing to take a percentage of */
    }
    /* Methadone's MME is not linear: no percentage or mg advice from it (issue 16). */
    if (pw_ru_oud(in->tl, in->now) || pw_ru_regimen_class(in->tl, in->now, PW_MED_METHADONE)) {
        return 0;
    }
    for (size_t i = 0; i < in->tl->orders.n; i++) {
        const struct pw_med_order *o = &in->tl->orders.v[i];
        if (o->role != PW_ROLE_RESCUE || !pw_order_active_at(o, in->now)) {
            continue;
        }
        int err = check_order(rule, in, o, tdd, out);
        if (err) {
            return err;
        }
    }
    return 0;
}

const struct pw_rule pw_rule_rescue_dose_out_of_range = {
    .id = "rescue-dose-out-of-range",
    .title = "Rescue dose outside 10-20% of the 24-h baseline",
    .category = "drug",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .eval = eval,
    .reads = PW_RES_MEDICATION_REQUEST,
    .absence = 0,
};
