/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue 16 property test: thousands of generated MedicationRequests (random drugs, routes,
 * units, doses including 10x/1000x slips, zero, negative and absurd values, PRN or not, ranges,
 * rates, bounds, tapers) through the real normalize and every rule. Properties: nothing crashes;
 * no finding text holds "?", NaN, inf or a negative number; an implausible order carries no
 * dose or MME and its written figure appears only in order-dose-implausible; every opioid order
 * has a route-aware MME or a data-quality event that says why not.
 */
#include <ctype.h>
#include <stdlib.h>

#include "clinical_support.h"
#include "painwatch/engine.h"
#include "painwatch/finding.h"

#define PATIENTS 2500

static uint64_t rng_state = 0x16a5eed16a5eedULL;

static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33) % n;
}

#define PICK(a) (a)[rnd((uint32_t)(sizeof(a) / sizeof((a)[0])))]

static const char *const drugs[] = {
    "892582",  /* morphine 15 mg tablet */
    "891890",  /* morphine ER 60 mg */
    "892531",  /* morphine 10 mg/mL injectable */
    "892489",  /* morphine 1 mg/mL injection */
    "7052",    /* morphine (ingredient) */
    "1049621", /* oxycodone 5 mg */
    "1049502", /* oxycodone ER 10 mg */
    "3423",    /* hydromorphone (ingredient) */
    "897745",  /* hydromorphone 2 mg/mL injectable */
    "245134",  /* fentanyl 25 mcg/h patch */
    "4337",    /* fentanyl (ingredient) */
    "727759",  /* fentanyl 0.05 mg/mL cartridge */
    "668363",  /* buccal fentanyl */
    "864706",  /* methadone 10 mg */
    "904870",  /* buprenorphine patch */
    "1010604", /* buprenorphine/naloxone SL film */
    "351265",  /* buprenorphine 8 mg SL */
    "1049221", /* oxycodone/acetaminophen */
    "10689",   /* tramadol */
    "617318",  /* not in the tables */
    "999999",  /* unknown */
};

static const char *const units[] = {
    "mg",
    "mcg",
    "ug",
    "g",
    "mL",
    "tablet(s)",
    "tab",
    "cap",
    "patch",
    "mcg/hr",
    "microgram/hour",
    "\xc2\xb5g/h",
    "ug/h",
    "mg/h",
    "mL/h",
    "{tbl}",
    "film",
    "drop",
    "",
    "furlong",
    "MG",
    "Tablets",
    "micrograms",
    "mg/hr",
};

static const char *const routes[] = {
    "",
    ",\"route\":{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"47625008\"}]}",
    ",\"route\":{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"26643006\"}]}",
    ",\"route\":{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"45890007\"}]}",
    ",\"route\":{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"37839007\"}]}",
    ",\"route\":{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"404820008\"}]}",
    ",\"route\":{\"coding\":[{\"system\":\"http://standardterms.edqm.eu\",\"code\":\"20066000\"}]}",
    ",\"route\":{\"text\":\"PR\"}",
    ",\"route\":{\"text\":\"by mouth\"}",
    ",\"route\":{\"text\":\"???\"}",
};

static const double doses[] = {1,    2.5,   5,     10,  15,    25, 30,  60, 100,   0.5,
                               1000, 15000, 25000, 1e9, 1e300, 0,  -10, -1, 0.001, 123456};

static const char *const timings[] = {
    "\"timing\":{\"repeat\":{\"frequency\":1,\"period\":4,\"periodUnit\":\"h\"}}",
    "\"timing\":{\"repeat\":{\"frequency\":1,\"period\":12,\"periodUnit\":\"h\"}}",
    "\"timing\":{\"repeat\":{\"frequency\":1,\"period\":72,\"periodUnit\":\"h\"}}",
    "\"timing\":{\"code\":{\"text\":\"BID\"}}",
    "\"timing\":{\"repeat\":{\"frequency\":1,\"period\":1,\"periodUnit\":\"d\","
    "\"boundsDuration\":{\"value\":2,\"code\":\"d\"}}}",
    "\"timing\":{\"repeat\":{\"frequency\":1,\"period\":6,\"periodUnit\":\"h\","
    "\"boundsPeriod\":{\"start\":\"2026-01-01T08:00:00Z\",\"end\":\"2026-01-02T08:00:00Z\"}}}",
    "\"timing\":{\"repeat\":{\"frequency\":3,\"period\":0,\"periodUnit\":\"h\"}}",
    "\"text\":\"as directed\"",
};

static void one_dosage(char *buf, size_t n, int seq)
{
    double v = PICK(doses);
    const char *u = PICK(units);
    const char *prn = rnd(3) == 0 ? ",\"asNeededBoolean\":true" : "";
    char seqs[32] = "";
    if (seq > 0) {
        snprintf(seqs, sizeof(seqs), "\"sequence\":%d,", seq);
    }
    char dose[256];
    switch (rnd(4)) {
    case 0:
        snprintf(dose, sizeof(dose),
                 "\"doseRange\":{\"low\":{\"value\":%.17g,\"unit\":\"%s\"},"
                 "\"high\":{\"value\":%.17g,\"unit\":\"%s\"}}",
                 v, u, v * (1 + rnd(3)), u);
        break;
    case 1:
        snprintf(dose, sizeof(dose), "\"rateQuantity\":{\"value\":%.17g,\"unit\":\"%s\"}", v, u);
        break;
    default:
        snprintf(dose, sizeof(dose), "\"doseQuantity\":{\"value\":%.17g,\"unit\":\"%s\"}", v, u);
    }
    snprintf(buf, n, "{%s%s,\"doseAndRate\":[{%s}]%s%s}", seqs, PICK(timings), dose, prn,
             PICK(routes));
}

static json_t *gen_order(int k)
{
    char dis[2048] = "[", one[700];
    int parts = 1 + (int)rnd(3);
    bool taper = rnd(4) == 0;
    for (int i = 0; i < parts; i++) {
        one_dosage(one, sizeof(one), taper ? i + 1 : 0);
        strncat(dis, i ? "," : "", sizeof(dis) - strlen(dis) - 1);
        strncat(dis, one, sizeof(dis) - strlen(dis) - 1);
    }
    strncat(dis, "]", sizeof(dis) - strlen(dis) - 1);
    char id[32];
    snprintf(id, sizeof(id), "o%d", k);
    json_t *r = clin_medreq(id, PICK(drugs), dis);
    static const char *const statuses[] = {"active", "active", "stopped", "completed", "on-hold"};
    json_object_set_new(r, "status", json_string(PICK(statuses)));
    char t[64];
    snprintf(t, sizeof(t), "2026-01-0%dT%02d:00:00Z", 1 + (int)rnd(3), (int)rnd(24));
    json_object_set_new(r, "authoredOn", json_string(t));
    if (rnd(3) == 0) {
        snprintf(t, sizeof(t), "2026-01-0%dT08:00:00Z", 2 + (int)rnd(6));
        json_object_set_new(r, "dispenseRequest",
                            json_pack("{s:{s:s}}", "validityPeriod", "end", t));
    }
    return r;
}

/* A '-' that starts a number (not a date's or a range's hyphen). */
static bool has_negative(const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == '-' && isdigit((unsigned char)p[1]) &&
            (p == s || !isalnum((unsigned char)p[-1]))) {
            return true;
        }
    }
    return false;
}

static bool has_dq_for(const struct pw_timeline *tl, const struct pw_ref *r)
{
    for (size_t i = 0; i < tl->dq.n; i++) {
        if (strcmp(tl->dq.v[i].src.id, r->id) == 0) {
            return true;
        }
    }
    return false;
}

static void test_generated_orders(void **state)
{
    (void)state;
    struct pw_norm_ctx ctx;
    struct pw_engine *engine;
    assert_int_equal(pw_norm_ctx_init(&ctx, clin_term(), "cdc2022"), 0);
    assert_int_equal(pw_engine_new(&engine, "cdc2022"), 0);
    int64_t at;
    assert_int_equal(pw_fhir_parse_time("2026-01-03T12:00:00Z", &at), 0);
    size_t n_orders = 0, n_implausible = 0, n_findings = 0, n_mme = 0;
    for (int p = 0; p < PATIENTS; p++) {
        struct pw_timeline tl;
        pw_timeline_init(&tl, "Patient/p1");
        int orders = 1 + (int)rnd(4);
        for (int k = 0; k < orders; k++) {
            json_t *r = gen_order(k);
            assert_int_equal(pw_normalize_resource(&ctx, r, NULL, &tl), 0);
            json_decref(r);
        }
        pw_timeline_sort(&tl);
        struct pw_findings fs = {0};
        assert_int_equal(pw_engine_eval(engine, &tl, at, &fs), 0);
        for (size_t i = 0; i < tl.orders.n; i++) {
            const struct pw_med_order *o = &tl.orders.v[i];
            if (!(o->classes & PW_MED_OPIOID)) {
                continue;
            }
            n_orders++;
            /* a route-aware MME, or a data-quality event saying why not */
            if (isfinite(o->mme_per_day)) {
                n_mme++;
                assert_true(o->route[0] != '\0');
                assert_true(o->factor_row[0] != '\0');
                assert_non_null(strstr(o->factor_row, o->route));
                assert_true(o->mme_per_day >= 0);
            } else if (!has_dq_for(&tl, &o->src)) {
                fail_msg("order %s (%s) has no MME and no data-quality event", o->src.id,
                         o->drug_name);
            }
            if (o->flags & PW_ORDER_IMPLAUSIBLE) {
                n_implausible++;
                assert_true(isnan(o->mme_per_day) && isnan(o->mg_per_day) &&
                            isnan(o->mg_per_dose) && isnan(o->mme_per_dose));
            }
        }
        for (size_t f = 0; f < fs.n; f++) {
            const char *text = fs.v[f].text;
            n_findings++;
            if (strchr(text, '?') || strstr(text, "nan") || strstr(text, "NaN") ||
                strstr(text, "inf ") || has_negative(text)) {
                fail_msg("%s: %s", fs.v[f].rule, text);
            }
            if (strcmp(fs.v[f].rule, "order-dose-implausible") == 0) {
                continue;
            }
            for (size_t i = 0; i < tl.orders.n; i++) {
                const struct pw_med_order *o = &tl.orders.v[i];
                char fig[48];
                snprintf(fig, sizeof(fig), "%s", o->dose_written);
                fig[strcspn(fig, " ")] = '\0';
                if ((o->flags & PW_ORDER_IMPLAUSIBLE) && strlen(fig) >= 5 && !strchr(fig, '-') &&
                    strstr(text, fig)) {
                    fail_msg("%s uses the figure %s of an implausible order: %s", fs.v[f].rule, fig,
                             text);
                }
            }
        }
        pw_findings_cleanup(&fs);
        pw_timeline_cleanup(&tl);
    }
    /* The generator reaches every branch it is meant to. */
    assert_true(n_orders > PATIENTS);
    assert_true(n_implausible > 100);
    assert_true(n_mme > 100);
    assert_true(n_findings > 100);
    pw_engine_free(engine);
    pw_norm_ctx_cleanup(&ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generated_orders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
