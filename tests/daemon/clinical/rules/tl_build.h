/* SPDX-License-Identifier: Apache-2.0 */
/* Test helpers that build a struct pw_timeline by hand (no JSON), for the rule unit tests. */
#ifndef PAINWATCH_TESTS_TL_BUILD_H
#define PAINWATCH_TESTS_TL_BUILD_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "painwatch/engine.h"
#include "painwatch/timeline.h"

#define H  ((int64_t)3600)
#define T0 ((int64_t)1780000000) /* 2026-05-28T20:26:40Z: an arbitrary, fixed instant */

static inline void tlb_ref(struct pw_ref *r, const char *type, const char *id)
{
    memset(r, 0, sizeof(*r));
    (void)snprintf(r->type, sizeof(r->type), "%s", type);
    (void)snprintf(r->id, sizeof(r->id), "%s", id);
    (void)snprintf(r->version, sizeof(r->version), "1");
}

static inline void tlb_score(struct pw_timeline *tl, const char *id, int64_t at, double v)
{
    struct pw_pain_score s = {.at = at, .value = v};
    tlb_ref(&s.src, "Observation", id);
    assert_int_equal(pw_timeline_add_score(tl, &s), 0);
}

static inline void tlb_pain_type(struct pw_timeline *tl, const char *id, int64_t at,
                                 enum pw_pain_kind k)
{
    struct pw_pain_type p = {.at = at, .kind = k};
    tlb_ref(&p.src, "Observation", id);
    assert_int_equal(pw_timeline_add_pain_type(tl, &p), 0);
}

static inline void tlb_referral(struct pw_timeline *tl, const char *id, int64_t at)
{
    struct pw_referral r = {.at = at};
    tlb_ref(&r.src, "ServiceRequest", id);
    assert_int_equal(pw_timeline_add_referral(tl, &r), 0);
}

/* A generic order: everything NAN but what is given. */
static inline struct pw_med_order tlb_order(const char *id, unsigned classes, int64_t start,
                                            int64_t end)
{
    struct pw_med_order o;
    memset(&o, 0, sizeof(o));
    tlb_ref(&o.src, "MedicationRequest", id);
    o.classes = classes;
    o.start = start;
    o.end = end;
    o.mg_per_dose = o.mg_per_dose_high = o.mg_per_day = NAN;
    o.mcg_per_hour = o.mme_factor = o.mme_per_day = o.mme_per_dose = NAN;
    return o;
}

/* A scheduled (baseline) opioid of @p ingredient at @p mme MME/day (factor 1 unless given). */
static inline void tlb_baseline(struct pw_timeline *tl, const char *id, const char *ingredient,
                                const char *rxcui, unsigned extra, int64_t start, int64_t end,
                                double mme)
{
    struct pw_med_order o = tlb_order(id, PW_MED_OPIOID | PW_MED_LONG_ACTING | extra, start, end);
    o.role = PW_ROLE_BASELINE;
    (void)snprintf(o.ingredient, sizeof(o.ingredient), "%s", ingredient);
    (void)snprintf(o.ingredient_rxcui, sizeof(o.ingredient_rxcui), "%s", rxcui);
    (void)snprintf(o.drug_name, sizeof(o.drug_name), "%s Extended Release Oral Tablet", ingredient);
    o.mme_factor = 1;
    o.mme_per_day = mme;
    o.mg_per_day = mme;
    o.mg_per_dose = o.mg_per_dose_high = mme / 2;
    o.mme_per_dose = mme / 2;
    assert_int_equal(pw_timeline_add_order(tl, &o), 0);
}

/* A PRN oral morphine rescue of @p mg per dose, up to every 4 h. */
static inline void tlb_rescue(struct pw_timeline *tl, const char *id, int64_t start, double mg)
{
    struct pw_med_order o = tlb_order(id, PW_MED_OPIOID, start, PW_TIME_FOREVER);
    o.role = PW_ROLE_RESCUE;
    o.prn = true;
    (void)snprintf(o.ingredient, sizeof(o.ingredient), "Morphine");
    (void)snprintf(o.ingredient_rxcui, sizeof(o.ingredient_rxcui), "7052");
    (void)snprintf(o.drug_name, sizeof(o.drug_name), "morphine sulfate 15 MG Oral Tablet");
    o.mme_factor = 1;
    o.mg_per_dose = o.mg_per_dose_high = mg;
    o.mme_per_dose = mg;
    o.mg_per_day = o.mme_per_day = mg * 6;
    assert_int_equal(pw_timeline_add_order(tl, &o), 0);
}

static inline void tlb_other(struct pw_timeline *tl, const char *id, unsigned classes, bool prn,
                             int64_t start, int64_t end, const char *name)
{
    struct pw_med_order o = tlb_order(id, classes, start, end);
    o.prn = prn;
    (void)snprintf(o.drug_name, sizeof(o.drug_name), "%s", name);
    assert_int_equal(pw_timeline_add_order(tl, &o), 0);
}

/* Findings of @p rule at @p now (every rule enabled at defaults); returns how many. */
static inline size_t tlb_eval(struct pw_timeline *tl, int64_t now, const char *rule,
                              struct pw_findings *only)
{
    struct pw_engine *e = NULL;
    struct pw_findings all = {0};
    assert_int_equal(pw_engine_new(&e, "cdc2022"), 0);
    pw_timeline_sort(tl);
    assert_int_equal(pw_engine_eval(e, tl, now, &all), 0);
    size_t n = 0;
    for (size_t i = 0; i < all.n; i++) {
        if (strcmp(all.v[i].rule, rule) == 0) {
            n++;
            if (only) {
                assert_int_equal(pw_findings_push(only, &all.v[i]), 0);
            }
        }
    }
    pw_findings_cleanup(&all);
    pw_engine_free(e);
    return n;
}

#endif
