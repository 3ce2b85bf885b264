/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue 16: the medication engine on real EHR order shapes. Route from route codes, dose form
 * or text; MME factors by ingredient and route; order parts; what is in force when;
 * plausibility; unit variants; the stored form of the new fields; site overrides of the tables.
 */
#include <stdlib.h>

#include "clinical_support.h"
#include "painwatch/err.h"
#include "painwatch/mme.h"
#include "painwatch/timeline.h"

#define CODEC_LEN 4 /* "PWT2" */
#define RXNORM    "http://www.nlm.nih.gov/research/umls/rxnorm"
#define SCT       "http://snomed.info/sct"
#define EDQM      "http://standardterms.edqm.eu"
#define V3        "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"

#define ASSERT_ORDER(o)                      \
    do {                                     \
        if ((o) == NULL) {                   \
            fail_msg("no medication order"); \
            abort();                         \
        }                                    \
    } while (0)

/* One dosageInstruction: a dose {value, unit}, every @p h hours, optional route and extras. */
static json_t *medreq(const char *rxcui, double value, const char *unit, double every_h,
                      const char *route_sys, const char *route_code, const char *extra)
{
    char route[256] = "", buf[4096];
    if (route_sys != NULL) {
        snprintf(route, sizeof(route),
                 ",\"route\":{\"coding\":[{\"system\":\"%s\",\"code\":\"%s\"}]}", route_sys,
                 route_code);
    } else if (route_code != NULL) {
        snprintf(route, sizeof(route), ",\"route\":{\"text\":\"%s\"}", route_code);
    }
    snprintf(buf, sizeof(buf),
             "[{\"timing\":{\"repeat\":{\"frequency\":1,\"period\":%g,\"periodUnit\":\"h\"}},"
             "\"doseAndRate\":[{\"doseQuantity\":{\"value\":%.17g,\"unit\":\"%s\"}}]%s%s}]",
             every_h, value, unit, route, extra ? extra : "");
    return clin_medreq("m", rxcui, buf);
}

static void test_transdermal_rate_unit_variants(void **state)
{
    (void)state;
    /* Fentanyl coded by ingredient, 25 per hour by the transdermal route: 60 MME/day. */
    static const char *const units[] = {
        "mcg/hr",       "mcg/h",    "microgram/hour",    "micrograms/hour",
        "microgram/hr", "ug/h",     "\xc2\xb5g/h",       "\xce\xbcg/h",
        "ug/hr",        "mcg / hr", "microgram per hour"};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        struct pw_timeline tl;
        const struct pw_med_order *o =
            clin_order("cdc2022", medreq("4337", 25, units[i], 72, SCT, "45890007", NULL), &tl);
        ASSERT_ORDER(o);
        if (fabs(o->mme_per_day - 60) > 1e-6) {
            fail_msg("unit '%s': %g MME/day", units[i], o->mme_per_day);
        }
        assert_string_equal(o->route, "transdermal");
        assert_string_equal(o->factor_row, "cdc2022:4337:transdermal");
        assert_true(o->classes & PW_MED_TRANSDERMAL);
        pw_timeline_cleanup(&tl);
    }
}

static void test_count_unit_variants(void **state)
{
    (void)state;
    /* Oxycodone 5 mg tablets, 2 every 6 h: 10 mg per dose. */
    static const char *const units[] = {"tablet(s)", "tab", "tabs", "Tablets", "{tbl}", "TAB"};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        struct pw_timeline tl;
        const struct pw_med_order *o =
            clin_order("cdc2022", medreq("1049621", 2, units[i], 6, NULL, NULL, NULL), &tl);
        ASSERT_ORDER(o);
        if (fabs(o->mg_per_dose - 10) > 1e-6) {
            fail_msg("unit '%s': %g mg", units[i], o->mg_per_dose);
        }
        assert_string_equal(o->route, "oral"); /* from the dose form "Oral Tablet" */
        assert_false(clin_has_dq(&tl, "route-assumed-oral"));
        pw_timeline_cleanup(&tl);
    }
    /* A capsule: morphine ER 100 mg capsule, 1 cap every 12 h. */
    struct pw_timeline tl;
    const struct pw_med_order *o =
        clin_order("cdc2022", medreq("892554", 1, "cap", 12, NULL, NULL, NULL), &tl);
    ASSERT_ORDER(o);
    assert_near(o->mg_per_day, 200);
    pw_timeline_cleanup(&tl);
}

static void test_ml_through_concentration_by_route(void **state)
{
    (void)state;
    struct pw_timeline tl;
    /* Morphine 10 mg/mL injectable, 0.5 mL every 4 h: 5 mg IV = 15 MME per dose. */
    const struct pw_med_order *o =
        clin_order("cdc2022", medreq("892531", 0.5, "mL", 4, NULL, NULL, NULL), &tl);
    ASSERT_ORDER(o);
    assert_near(o->mg_per_dose, 5);
    assert_string_equal(o->route, "parenteral");
    assert_near(o->mme_factor, 3);
    assert_near(o->mme_per_dose, 15);
    pw_timeline_cleanup(&tl);
}

static void test_route_codes_and_text(void **state)
{
    (void)state;
    static const struct {
        const char *sys, *code, *route;
        double factor; /* NAN: no factor for the route */
    } v[] = {
        {SCT, "47625008", "parenteral", 3},
        {SCT, "34206005", "parenteral", 3},
        {SCT, "26643006", "oral", 1},
        {EDQM, "20053000", "oral", 1},
        {EDQM, "20045000", "parenteral", 3},
        {V3, "IVINJ", "parenteral", 3},
        {V3, "PO", "oral", 1},
        {NULL, "SC", "parenteral", 3},
        {NULL, "subcutaneous", "parenteral", 3},
        {NULL, "by mouth", "oral", 1},
        {SCT, "404820008", "neuraxial", NAN},
        {SCT, "37161004", "rectal", NAN},
        {NULL, "epidural", "neuraxial", NAN},
        {SCT, "37839007", "transmucosal", NAN},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct pw_timeline tl;
        /* Morphine by ingredient (no dose form), 10 mg every 4 h. */
        const struct pw_med_order *o =
            clin_order("cdc2022", medreq("7052", 10, "mg", 4, v[i].sys, v[i].code, NULL), &tl);
        ASSERT_ORDER(o);
        if (strcmp(o->route, v[i].route) != 0) {
            fail_msg("route %s: %s, want %s", v[i].code, o->route, v[i].route);
        }
        if (isnan(v[i].factor)) {
            /* Never the oral factor: not computed, said why. */
            assert_true(isnan(o->mme_per_day));
            assert_true(clin_has_dq(&tl, "no-factor-for-route"));
            assert_true(o->flags & PW_ORDER_NO_MME);
        } else {
            assert_near(o->mme_factor, v[i].factor);
        }
        pw_timeline_cleanup(&tl);
    }
    /* No route anywhere: read as oral, and said. */
    struct pw_timeline tl;
    const struct pw_med_order *o =
        clin_order("cdc2022", medreq("7052", 10, "mg", 4, NULL, NULL, NULL), &tl);
    ASSERT_ORDER(o);
    assert_true(clin_has_dq(&tl, "route-assumed-oral"));
    assert_near(o->mme_per_day, 60);
    pw_timeline_cleanup(&tl);
}

static void test_parenteral_factors_of_the_issue(void **state)
{
    (void)state;
    struct pw_timeline tl;
    /* IV morphine 1 mg/h: 24 mg/day x 3 = 72 MME/day (not 24). */
    const struct pw_med_order *o = clin_order(
        "cdc2022",
        clin_medreq("m", "7052",
                    "[{\"route\":{\"coding\":[{\"system\":\"" SCT "\",\"code\":\"47625008\"}]},"
                    "\"doseAndRate\":[{\"rateQuantity\":{\"value\":1,\"unit\":\"mg/h\"}}]}]"),
        &tl);
    ASSERT_ORDER(o);
    assert_near(o->mme_per_day, 72);
    pw_timeline_cleanup(&tl);
    /* IV hydromorphone 0.5 mg/h: 12 mg/day x 20 = 240 MME/day (not 60). */
    o = clin_order("cdc2022",
                   clin_medreq("h", "3423",
                               "[{\"doseAndRate\":[{\"rateQuantity\":{\"value\":0.5,\"unit\":"
                               "\"mg/hr\"}}]}]"),
                   &tl);
    ASSERT_ORDER(o);
    assert_string_equal(o->route, "parenteral");
    assert_near(o->mme_per_day, 240);
    pw_timeline_cleanup(&tl);
    /* A rateRatio: morphine 2 mg / 1 h IV = 48 mg/day x 3 = 144 MME/day. */
    o = clin_order("cdc2022",
                   clin_medreq("r", "892531",
                               "[{\"doseAndRate\":[{\"rateRatio\":{\"numerator\":{\"value\":2,"
                               "\"unit\":\"mg\",\"code\":\"mg\"},\"denominator\":{\"value\":1,"
                               "\"unit\":\"h\",\"code\":\"h\"}}}]}]"),
                   &tl);
    ASSERT_ORDER(o);
    assert_near(o->mg_per_day, 48);
    assert_near(o->mme_per_day, 144);
    pw_timeline_cleanup(&tl);
    /* The factor lookup itself: never another route's row. */
    double f;
    char row[48];
    assert_int_equal(pw_mme_factor_route(clin_term(), "cdc2022", "7052", "rectal", false, 10, &f,
                                         row, sizeof(row)),
                     PW_ENOENT);
    assert_int_equal(pw_mme_factor_route(clin_term(), "cdc2016", "3423", "parenteral", false, 10,
                                         &f, row, sizeof(row)),
                     0);
    assert_near(f, 20);
}

static void test_plausibility(void **state)
{
    (void)state;
    static const struct {
        const char *rxcui;
        double value;
        const char *unit;
        const char *route;
        bool ok;
    } v[] = {
        {"245134", 25, "mg", "45890007", false},     /* patch in mg: unit does not fit */
        {"245134", 25, "mcg/h", "45890007", true},   /* the same patch in mcg/h */
        {"4337", 25000, "mcg/h", "45890007", false}, /* 25 mg = 25,000 mcg/h */
        {"892582", 15000, "mg", "26643006", false},  /* 1000x slip */
        {"892582", 1e9, "mg", "26643006", false},
        {"892582", 0, "mg", "26643006", false},
        {"892582", -10, "mg", "26643006", false},
        {"891883", 300, "mg", "26643006", true}, /* high cancer dose */
        {"7052", 2000, "mg", "47625008", false}, /* IV morphine 2 g */
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct pw_timeline tl;
        const struct pw_med_order *o = clin_order(
            "cdc2022", medreq(v[i].rxcui, v[i].value, v[i].unit, 12, SCT, v[i].route, NULL), &tl);
        ASSERT_ORDER(o);
        bool flagged = (o->flags & PW_ORDER_IMPLAUSIBLE) != 0;
        if (flagged == v[i].ok || clin_has_dq(&tl, "implausible-dose") == v[i].ok) {
            fail_msg("%s %g %s: implausible=%d", v[i].rxcui, v[i].value, v[i].unit, flagged);
        }
        if (!v[i].ok) {
            assert_true(isnan(o->mme_per_day));
            assert_true(isnan(o->mg_per_dose));
            assert_null(strchr(o->dose_written, '-')); /* never a negative number */
        }
        pw_timeline_cleanup(&tl);
    }
}

static void test_scheduled_and_prn_parts(void **state)
{
    (void)state;
    struct pw_timeline tl;
    /* Morphine 15 mg q4h + 15 mg q1h PRN in one order: baseline 90 MME/day, rescue 15 mg. */
    const struct pw_med_order *o = clin_order(
        "cdc2022",
        clin_medreq(
            "m", "892582",
            "[{\"timing\":{\"repeat\":{\"frequency\":1,\"period\":4,\"periodUnit\":\"h\"}},"
            "\"doseAndRate\":[{\"doseQuantity\":{\"value\":15,\"unit\":\"mg\"}}]},"
            "{\"asNeededBoolean\":true,\"timing\":{\"repeat\":{\"frequency\":1,\"period\":1,"
            "\"periodUnit\":\"h\"}},\"doseAndRate\":[{\"doseQuantity\":{\"value\":15,\"unit\":"
            "\"mg\"}}]}]"),
        &tl);
    assert_null(o); /* two parts */
    assert_int_equal(tl.orders.n, 2);
    assert_int_equal(tl.orders.v[0].role, PW_ROLE_BASELINE);
    assert_int_equal(tl.orders.v[1].role, PW_ROLE_RESCUE);
    assert_int_equal(tl.orders.v[1].part, 1);
    assert_near(pw_timeline_baseline_mme_at(&tl, tl.orders.v[0].start + 3600), 90);
    pw_timeline_cleanup(&tl);
}

static void test_what_is_in_force(void **state)
{
    (void)state;
    struct pw_timeline tl;
    int64_t t0, vend, bend;
    assert_int_equal(pw_fhir_parse_time("2026-01-01T08:00:00Z", &t0), 0);
    assert_int_equal(pw_fhir_parse_time("2026-01-10T08:00:00Z", &vend), 0);
    assert_int_equal(pw_fhir_parse_time("2026-01-03T08:00:00Z", &bend), 0);
    /* Active, but dispenseRequest.validityPeriod ended: the order ends there. */
    char buf[1024];
    json_t *r = medreq("892582", 15, "mg", 4, NULL, NULL, NULL);
    json_object_set_new(r, "dispenseRequest",
                        clin_json("{\"validityPeriod\":{\"end\":\"2026-01-10T08:00:00Z\"}}"));
    const struct pw_med_order *o = clin_order("cdc2022", r, &tl);
    ASSERT_ORDER(o);
    assert_int_equal(o->end, vend);
    pw_timeline_cleanup(&tl);
    /* An instruction bounded by boundsDuration (2 days) ends there. */
    snprintf(buf, sizeof(buf),
             "[{\"timing\":{\"repeat\":{\"frequency\":1,\"period\":4,\"periodUnit\":\"h\","
             "\"boundsDuration\":{\"value\":2,\"unit\":\"d\",\"code\":\"d\"}}},"
             "\"doseAndRate\":[{\"doseQuantity\":{\"value\":15,\"unit\":\"mg\"}}]}]");
    o = clin_order("cdc2022", clin_medreq("m", "892582", buf), &tl);
    ASSERT_ORDER(o);
    assert_int_equal(o->start, t0);
    assert_int_equal(o->end, bend);
    pw_timeline_cleanup(&tl);
    /* A taper: 60 mg q12h for 2 days, then 30 mg q12h: successive parts. */
    snprintf(buf, sizeof(buf),
             "[{\"sequence\":1,\"timing\":{\"repeat\":{\"frequency\":1,\"period\":12,"
             "\"periodUnit\":\"h\",\"boundsDuration\":{\"value\":2,\"code\":\"d\"}}},"
             "\"doseAndRate\":[{\"doseQuantity\":{\"value\":60,\"unit\":\"mg\"}}]},"
             "{\"sequence\":2,\"timing\":{\"repeat\":{\"frequency\":1,\"period\":12,"
             "\"periodUnit\":\"h\"}},"
             "\"doseAndRate\":[{\"doseQuantity\":{\"value\":30,\"unit\":\"mg\"}}]}]");
    clin_order("cdc2022", clin_medreq("m", "891890", buf), &tl);
    assert_int_equal(tl.orders.n, 2);
    assert_near(pw_timeline_baseline_mme_at(&tl, t0 + 3600), 120);
    assert_near(pw_timeline_baseline_mme_at(&tl, bend + 3600), 60);
    pw_timeline_cleanup(&tl);
}

static void test_noise_and_buprenorphine(void **state)
{
    (void)state;
    struct pw_timeline tl;
    /* A statin (not in any class the rules use): nothing, not even data quality. */
    const struct pw_med_order *o =
        clin_order("cdc2022", medreq("617318", 40, "mg", 24, NULL, NULL, NULL), &tl);
    assert_null(o);
    assert_int_equal(tl.dq.n, 0);
    pw_timeline_cleanup(&tl);
    /* Buprenorphine/naloxone sublingual film: OUD product, not baseline, said why. */
    o = clin_order("cdc2022", medreq("1010604", 1, "film", 24, SCT, "37839007", NULL), &tl);
    ASSERT_ORDER(o);
    assert_true(o->flags & PW_ORDER_OUD);
    assert_int_equal(o->role, PW_ROLE_OTHER);
    assert_true(clin_has_dq(&tl, "opioid-use-disorder"));
    pw_timeline_cleanup(&tl);
    /* Buprenorphine patch: MME not computable, in words. */
    o = clin_order("cdc2022", medreq("904870", 1, "patch", 168, NULL, NULL, NULL), &tl);
    ASSERT_ORDER(o);
    assert_true(o->flags & PW_ORDER_BUPRENORPHINE);
    assert_false(o->flags & PW_ORDER_OUD);
    assert_int_equal(o->role, PW_ROLE_BASELINE);
    assert_true(isnan(o->mme_per_day));
    pw_timeline_cleanup(&tl);
}

static void test_new_fields_survive_the_codec(void **state)
{
    (void)state;
    struct pw_timeline tl, back;
    clin_order("cdc2022", medreq("892531", 0.5, "mL", 4, SCT, "47625008", NULL), &tl);
    assert_int_equal(tl.orders.n, 1);
    tl.orders.v[0].part = 3;
    tl.orders.v[0].flags = PW_ORDER_NO_MME;
    tl.orders.v[0].min_dose_mg = 2.5;
    struct pw_bytes b = {0};
    assert_int_equal(pw_timeline_encode(&tl, &b), 0);
    pw_timeline_init(&back, "Patient/p1");
    assert_int_equal(pw_timeline_decode(&back, b.v, b.n), 0);
    assert_int_equal(back.orders.n, 1);
    const struct pw_med_order *o = &back.orders.v[0];
    assert_string_equal(o->route, "parenteral");
    assert_string_equal(o->factor_row, "*:7052:parenteral");
    assert_string_equal(o->dose_written, "0.5 mL");
    assert_int_equal(o->part, 3);
    assert_int_equal(o->flags, PW_ORDER_NO_MME);
    assert_near(o->min_dose_mg, 2.5);
    pw_bytes_cleanup(&b);
    pw_timeline_cleanup(&back);
    pw_timeline_cleanup(&tl);
}

static void test_newer_version_replaces_every_part(void **state)
{
    (void)state;
    struct pw_timeline tl;
    pw_timeline_init(&tl, "Patient/p1");
    struct pw_med_order o;
    memset(&o, 0, sizeof(o));
    snprintf(o.src.type, sizeof(o.src.type), "MedicationRequest");
    snprintf(o.src.id, sizeof(o.src.id), "x");
    snprintf(o.src.version, sizeof(o.src.version), "1");
    for (int p = 0; p < 3; p++) {
        o.part = p;
        assert_int_equal(pw_timeline_add_order(&tl, &o), 0);
    }
    assert_int_equal(pw_timeline_add_order(&tl, &o), 0); /* the same part again: ignored */
    assert_int_equal(tl.orders.n, 3);
    snprintf(o.src.version, sizeof(o.src.version), "2");
    o.part = 0;
    assert_int_equal(pw_timeline_add_order(&tl, &o), 0);
    assert_int_equal(tl.orders.n, 1);
    snprintf(o.src.version, sizeof(o.src.version), "1");
    o.part = 1;
    assert_int_equal(pw_timeline_add_order(&tl, &o), 0); /* older: ignored */
    assert_int_equal(tl.orders.n, 1);
    assert_string_equal(tl.orders.v[0].src.version, "2");
    pw_timeline_cleanup(&tl);
}

static void test_site_override_files(void **state)
{
    (void)state;
    struct pw_terminology *t = NULL;
    char err[512] = "";
    assert_int_equal(pw_terminology_load(&t, pwt_src_path("config/terminology"), err, sizeof(err)),
                     0);
    char *dir = pwt_mkdtemp();
    char fpath[512], lpath[512], bad[512];
    snprintf(fpath, sizeof(fpath), "%s/factors.csv", dir);
    snprintf(lpath, sizeof(lpath), "%s/limits.csv", dir);
    snprintf(bad, sizeof(bad), "%s/bad.csv", dir);
    pwt_write_file(fpath, "factor_set,ingredient_rxcui,ingredient,route,factor,unit_basis,source\n"
                          "*,7052,Morphine,parenteral,2.5,mg/day,site pharmacy 2026\n"
                          "*,7052,Morphine,rectal,1,mg/day,site pharmacy 2026\n");
    pwt_write_file(lpath, "ingredient_rxcui,ingredient,route,max_single_mg,max_day_mg,"
                          "max_mcg_per_hour,min_dose_mg,source\n"
                          "7052,Morphine,oral,100,600,,,site pharmacy 2026\n");
    assert_int_equal(pw_terminology_load_site(t, fpath, lpath, err, sizeof(err)), 0);
    double f, s1, d1, r1, m1;
    assert_int_equal(
        pw_mme_factor_route(t, "cdc2022", "7052", "parenteral", false, 10, &f, NULL, 0), 0);
    assert_near(f, 2.5);
    assert_int_equal(pw_mme_factor_route(t, "cdc2022", "7052", "rectal", false, 10, &f, NULL, 0),
                     0);
    assert_near(f, 1);
    assert_int_equal(pw_terminology_dose_limit(t, "7052", "oral", &s1, &d1, &r1, &m1), 0);
    assert_near(s1, 100);
    assert_near(d1, 600);
    /* A row without a source, or with an unknown route, names the file and line. */
    pwt_write_file(bad, "factor_set,ingredient_rxcui,ingredient,route,factor,unit_basis,source\n"
                        "*,7052,Morphine,parenteral,3,mg/day,ok\n"
                        "*,7052,Morphine,intergalactic,3,mg/day,x\n");
    assert_int_equal(pw_terminology_load_site(t, bad, NULL, err, sizeof(err)), PW_ETERM);
    assert_non_null(strstr(err, "bad.csv:3"));
    assert_int_equal(pw_terminology_load_site(t, NULL, "/nonexistent/limits.csv", err, sizeof(err)),
                     PW_ENOENT);
    pw_terminology_free(t);
    pwt_rmtree(dir);
    free(dir);
}

/* Every dose form of the shipped opioid table gives a route (no "assumed oral" for them). */
static void test_every_dose_form_has_a_route(void **state)
{
    (void)state;
    static const struct {
        const char *rxcui, *route;
    } v[] = {
        {"894911", "parenteral"},    /* Auto-Injector */
        {"858087", "transmucosal"},  /* Buccal Film */
        {"668363", "transmucosal"},  /* Buccal Tablet */
        {"727759", "parenteral"},    /* Cartridge */
        {"836408", "oral"},          /* Disintegrating Oral Tablet */
        {"1536457", "oral"},         /* Effervescent Oral Tablet */
        {"849903", "oral"},          /* Extended Release Oral Capsule */
        {"833709", "oral"},          /* Extended Release Oral Tablet */
        {"1087459", "oral"},         /* Extended Release Suspension */
        {"238133", "parenteral"},    /* Injectable Solution */
        {"861476", "parenteral"},    /* Injection */
        {"886634", "transmucosal"},  /* Metered Dose Nasal Spray */
        {"1237050", "transmucosal"}, /* Mucosal Spray */
        {"250486", "oral"},          /* Oral Capsule */
        {"261106", "transmucosal"},  /* Oral Lozenge */
        {"311297", "oral"},          /* Oral Solution */
        {"895199", "oral"},          /* Oral Suspension */
        {"197873", "oral"},          /* Oral Tablet */
        {"894912", "parenteral"},    /* Prefilled Syringe */
        {"250877", "rectal"},        /* Rectal Suppository */
        {"1053647", "transmucosal"}, /* Sublingual Tablet */
        {"864978", "oral"},          /* Tablet for Oral Suspension */
        {"197696", "transdermal"},   /* Transdermal System */
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct pw_timeline tl;
        const struct pw_med_order *o =
            clin_order("cdc2022", medreq(v[i].rxcui, 1, "mg", 12, NULL, NULL, NULL), &tl);
        ASSERT_ORDER(o);
        if (strcmp(o->route, v[i].route) != 0) {
            fail_msg("%s: route %s, want %s", v[i].rxcui, o->route, v[i].route);
        }
        assert_false(clin_has_dq(&tl, "route-assumed-oral"));
        pw_timeline_cleanup(&tl);
    }
}

/* A store row of the previous release (magic PWT1, orders without the issue 16 fields) still
 * decodes until a re-sync replaces it. */
static void test_previous_encoding_still_decodes(void **state)
{
    (void)state;
    struct pw_timeline tl, back;
    pw_timeline_init(&tl, "Patient/p1");
    struct pw_med_order o;
    memset(&o, 0, sizeof(o));
    snprintf(o.src.type, sizeof(o.src.type), "MedicationRequest");
    snprintf(o.src.id, sizeof(o.src.id), "old");
    o.start = 1000;
    o.end = PW_TIME_FOREVER;
    o.role = PW_ROLE_BASELINE;
    o.mme_per_day = 60;
    assert_int_equal(pw_timeline_add_order(&tl, &o), 0);
    struct pw_bytes b = {0};
    assert_int_equal(pw_timeline_encode(&tl, &b), 0);
    /* The new fields with empty strings: 3 x u16 lengths, 2 x u32, 1 x f64 = 22 bytes, before
     * the referral and data-quality counts (8 bytes). */
    size_t tail = 8, extra = 22;
    assert_true(b.n > CODEC_LEN + tail + extra);
    unsigned char *v1 = malloc(b.n - extra);
    assert_non_null(v1);
    memcpy(v1, "PWT1", 4);
    memcpy(v1 + 4, b.v + 4, b.n - 4 - tail - extra);
    memcpy(v1 + b.n - tail - extra, b.v + b.n - tail, tail);
    pw_timeline_init(&back, "Patient/p1");
    assert_true(pw_timeline_is_encoded(v1, b.n - extra));
    assert_int_equal(pw_timeline_decode(&back, v1, b.n - extra), 0);
    assert_int_equal(back.orders.n, 1);
    assert_string_equal(back.orders.v[0].src.id, "old");
    assert_near(back.orders.v[0].mme_per_day, 60);
    assert_string_equal(back.orders.v[0].route, "");
    assert_true(isnan(back.orders.v[0].min_dose_mg));
    free(v1);
    pw_bytes_cleanup(&b);
    pw_timeline_cleanup(&back);
    pw_timeline_cleanup(&tl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transdermal_rate_unit_variants),
        cmocka_unit_test(test_count_unit_variants),
        cmocka_unit_test(test_ml_through_concentration_by_route),
        cmocka_unit_test(test_route_codes_and_text),
        cmocka_unit_test(test_parenteral_factors_of_the_issue),
        cmocka_unit_test(test_plausibility),
        cmocka_unit_test(test_scheduled_and_prn_parts),
        cmocka_unit_test(test_what_is_in_force),
        cmocka_unit_test(test_noise_and_buprenorphine),
        cmocka_unit_test(test_new_fields_survive_the_codec),
        cmocka_unit_test(test_newer_version_replaces_every_part),
        cmocka_unit_test(test_site_override_files),
        cmocka_unit_test(test_every_dose_form_has_a_route),
        cmocka_unit_test(test_previous_encoding_still_decodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
