/* SPDX-License-Identifier: Apache-2.0 */
/* Terminology tables and MME factor sets: look-ups, name matching, CSV errors named by place. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clinical/terminology_impl.h"
#include "clinical_support.h"
#include "painwatch/err.h"
#include "painwatch/mme.h"
#include "painwatch/terminology.h"

/* The minimum strength found through the index built at load is the minimum over every drug
 * row of the same ingredient, dose form and combination (MG, strength > 0), for each row's key. */
static void test_min_strength_is_the_group_minimum(void **state)
{
    (void)state;
    const struct pw_terminology *t = clin_term();
    assert_non_null(t->by_ingredient);
    for (size_t i = 0; i < t->n_drugs; i++) {
        const struct pw_term_drug *q = &t->drugs[i];
        double want = NAN;
        for (size_t k = 0; k < t->n_drugs; k++) {
            const struct pw_term_drug *d = &t->drugs[k];
            if (d->is_combination == q->is_combination &&
                strcmp(d->ingredient_rxcui, q->ingredient_rxcui) == 0 &&
                strcmp(d->dose_form_rxcui, q->dose_form_rxcui) == 0 &&
                strcmp(d->strength_unit, "MG") == 0 && d->strength > 0 &&
                (isnan(want) || d->strength < want)) {
                want = d->strength;
            }
        }
        double got = pw_terminology_min_strength(t, q->ingredient_rxcui, q->dose_form_rxcui,
                                                 q->is_combination);
        if (isnan(want)) {
            assert_true(isnan(got));
        } else {
            assert_true(got == want);
        }
    }
    assert_true(isnan(pw_terminology_min_strength(t, "0", "0", false)));
    assert_true(isnan(pw_terminology_min_strength(t, "99999999", "", true)));
}

static void test_drug_level_lookup(void **state)
{
    (void)state;
    struct pw_drug_info d;
    /* Salts summed: aspirin / oxycodone hydrochloride 4.5 / oxycodone terephthalate 0.38. */
    assert_int_equal(pw_terminology_lookup(clin_term(), "637540", &d), 0);
    assert_string_equal(d.ingredient_rxcui, "7804");
    assert_near(d.strength, 4.88);
    assert_true(d.is_combination);
    assert_true(d.drug_level);
    assert_int_equal(pw_terminology_lookup(clin_term(), "197696", &d), 0);
    assert_string_equal(d.strength_unit, "MG/HR");
    assert_true(d.classes & PW_MED_TRANSDERMAL);
    assert_true(d.classes & PW_MED_LONG_ACTING);
    /* Rapid-onset transmucosal fentanyl forms. */
    const char *tirf[] = {"668363", "261106"};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(pw_terminology_lookup(clin_term(), tirf[i], &d), 0);
        assert_true(d.classes & PW_MED_RAPID_ONSET_FENTANYL);
        assert_false(d.classes & PW_MED_LONG_ACTING);
    }
    assert_int_equal(pw_terminology_lookup(clin_term(), "864706", &d), 0);
    assert_true(d.classes & PW_MED_METHADONE);
    assert_int_equal(pw_terminology_lookup(clin_term(), "0", &d), PW_ENOENT);
    assert_int_equal(pw_terminology_lookup(clin_term(), "", &d), PW_ENOENT);
}

static void test_ingredient_and_valueset_lookup(void **state)
{
    (void)state;
    struct pw_drug_info d;
    assert_int_equal(pw_terminology_lookup(clin_term(), "7052", &d), 0);
    assert_true(d.classes & PW_MED_OPIOID);
    assert_false(d.drug_level);
    assert_true(isnan(d.strength));
    assert_int_equal(pw_terminology_lookup(clin_term(), "704", &d), 0);
    assert_true(d.classes & PW_MED_ADJUVANT_TCA);
    assert_int_equal(pw_terminology_lookup(clin_term(), "7242", &d), 0); /* naloxone: no class */
    assert_int_equal(d.classes, 0u);
    /* Benzodiazepine value set with a display. */
    assert_int_equal(pw_terminology_lookup(clin_term(), "197527", &d), 0);
    assert_true(d.classes & PW_MED_BENZODIAZEPINE);
    assert_string_equal(d.basis, "valuesets");
    /* ER value set member not in OMTK (2020) still counts as a long-acting opioid. */
    assert_int_equal(pw_terminology_lookup(clin_term(), "1148482", &d), 0);
    assert_true(d.classes & PW_MED_OPIOID);
}

static void test_name_matching(void **state)
{
    (void)state;
    struct pw_drug_info d;
    assert_int_equal(
        pw_terminology_match_name(clin_term(),
                                  "Acetaminophen 325 MG / HYDROcodone Bitartrate 7.5 MG Oral "
                                  "Tablet",
                                  &d),
        0);
    assert_string_equal(d.ingredient, "Hydrocodone");
    assert_near(d.strength, 7.5);
    assert_string_equal(d.strength_unit, "MG");
    assert_true(d.is_combination);
    assert_int_equal(pw_terminology_match_name(clin_term(), "Fentanyl 25micrograms/hour patch", &d),
                     0);
    assert_near(d.strength, 0.025);
    assert_string_equal(d.strength_unit, "MG/HR");
    assert_true(d.classes & PW_MED_TRANSDERMAL);
    assert_int_equal(pw_terminology_match_name(clin_term(), "MORPHINE ER 20 MG CAPSULE", &d), 0);
    assert_true(d.classes & PW_MED_LONG_ACTING);
    /* Whole words only: dihydrocodeine is not codeine. */
    assert_int_equal(pw_terminology_match_name(clin_term(), "dihydrocodeine 30 mg", &d), 0);
    assert_string_equal(d.ingredient, "dihydrocodeine");
    assert_int_equal(pw_terminology_match_name(clin_term(), "docusate / senna", &d), 0);
    assert_true(d.classes & PW_MED_LAXATIVE_SOFTENER);
    assert_true(d.classes & PW_MED_LAXATIVE_STIMULANT);
    assert_int_equal(pw_terminology_match_name(clin_term(), "Simvastatin 10 MG", &d), PW_ENOENT);
}

static void test_factor_sets(void **state)
{
    (void)state;
    struct pw_terminology *t = clin_term();
    double f;
    assert_true(pw_mme_set_known(t, "cdc2022"));
    assert_true(pw_mme_set_known(t, "cdc2016"));
    assert_false(pw_mme_set_known(t, "cdc-analytic")); /* research set, not for orders */
    assert_false(pw_mme_set_known(t, "x"));
    static const struct {
        const char *ing;
        double f2022;
    } want[] = {{"3423", 5}, {"6813", 4.7},  {"10689", 0.2}, {"787390", 0.4}, {"7804", 1.5},
                {"7814", 3}, {"2670", 0.15}, {"5489", 1},    {"7052", 1}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(pw_mme_factor(t, "cdc2022", want[i].ing, false, 10, &f), 0);
        assert_near(f, want[i].f2022);
    }
    assert_int_equal(pw_mme_factor(t, "cdc2022", "4337", true, NAN, &f), 0);
    assert_near(f, 2.4);
    assert_int_equal(pw_mme_factor(t, "cdc2022", "4337", false, 1, &f), PW_ENOENT);
    assert_int_equal(pw_mme_factor(t, "cdc2022", "1819", false, 1, &f), PW_ENOENT);
    assert_int_equal(pw_mme_factor(t, "cdc2022", "1819", true, 1, &f), PW_ENOENT);
    assert_int_equal(pw_mme_factor(t, "cdc2016", "10689", false, 1, &f), PW_ENOENT);
    assert_int_equal(pw_mme_factor(t, "cdc2016", "787390", false, 1, &f), PW_ENOENT);
    assert_int_equal(pw_mme_factor(t, "cdc2016", "3423", false, 1, &f), 0);
    assert_near(f, 4);
    /* Methadone tiers: boundaries and a dose between two tiers. */
    const double mg[] = {0.5, 1, 20, 20.5, 21, 40, 41, 60, 61, 300};
    const double tier[] = {4, 4, 4, 8, 8, 8, 10, 10, 12, 12};
    for (size_t i = 0; i < sizeof(mg) / sizeof(mg[0]); i++) {
        assert_int_equal(pw_mme_factor(t, "cdc2016", "6813", false, mg[i], &f), 0);
        assert_near(f, tier[i]);
    }
    assert_int_equal(pw_mme_factor(t, "cdc2016", "6813", false, NAN, &f), PW_ENOENT);
}

/* A table directory in a temp dir with the shipped files and one file replaced. */
static char *tables_with(const char *file, const char *content)
{
    char *dir = pwt_mkdtemp();
    const char *files[] = {"opioid-drugs.csv", "ingredient-classes.csv", "painwatch-classes.csv",
                           "valuesets.csv",    "mme-factors.csv",        "mme-route-factors.csv",
                           "dose-limits.csv"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char src[512], dst[512];
        snprintf(src, sizeof(src), "config/terminology/%s", files[i]);
        snprintf(dst, sizeof(dst), "%s/%s", dir, files[i]);
        if (strcmp(files[i], file) == 0) {
            pwt_write_file(dst, content);
        } else {
            char *data = pwt_read_file(pwt_src_path(src), NULL);
            pwt_write_file(dst, data);
            free(data);
        }
    }
    return dir;
}

static void test_bad_tables_name_file_and_line(void **state)
{
    (void)state;
    struct pw_terminology *t = NULL;
    char err[512];
    char *dir = tables_with("painwatch-classes.csv",
                            "ingredient_rxcui,ingredient,class,name_match,basis\n"
                            ",\"quoted, with comma\",laxative-osmotic,x,\"a \"\"b\"\"\"\n"
                            ",foo,not-a-class,foo,basis\n");
    assert_int_equal(pw_terminology_load(&t, dir, err, sizeof(err)), PW_ETERM);
    assert_non_null(strstr(err, "painwatch-classes.csv:3"));
    assert_non_null(strstr(err, "unknown class"));
    pwt_rmtree(dir);
    free(dir);
    dir = tables_with("mme-factors.csv", "ingredient_rxcui,ingredient\n1,x\n");
    assert_int_equal(pw_terminology_load(&t, dir, err, sizeof(err)), PW_ETERM);
    assert_non_null(strstr(err, "mme-factors.csv:1"));
    pwt_rmtree(dir);
    free(dir);
    dir = tables_with("opioid-drugs.csv", "rxcui,ingredient_rxcui,strength_value,strength_unit\n"
                                          "1,2,\"unterminated\n");
    assert_int_equal(pw_terminology_load(&t, dir, err, sizeof(err)), PW_ETERM);
    assert_non_null(strstr(err, "opioid-drugs.csv"));
    pwt_rmtree(dir);
    free(dir);
    assert_int_equal(pw_terminology_load(&t, "/nonexistent/dir", err, sizeof(err)), PW_ENOENT);
    assert_non_null(strstr(err, "/nonexistent/dir/opioid-drugs.csv"));
    assert_null(t);
}

static void test_quoted_fields_and_crlf(void **state)
{
    (void)state;
    struct pw_terminology *t = NULL;
    char err[512] = "";
    char *dir = tables_with("painwatch-classes.csv",
                            "ingredient_rxcui,ingredient,class,name_match,basis\r\n"
                            "123,\"zz, test\",laxative-osmotic,zzlax,\"say \"\"hi\"\"\r\n"
                            "on two lines\"\r\n");
    assert_int_equal(pw_terminology_load(&t, dir, err, sizeof(err)), 0);
    struct pw_drug_info d;
    assert_int_equal(pw_terminology_lookup(t, "123", &d), 0);
    assert_string_equal(d.name, "zz, test");
    assert_true(d.classes & PW_MED_LAXATIVE_OSMOTIC);
    assert_int_equal(pw_terminology_match_name(t, "ZZLAX sachet", &d), 0);
    pw_terminology_free(t);
    pwt_rmtree(dir);
    free(dir);
}

/* The digest depends on the tables' content only: two loads agree, a changed row does not. */
static void test_digest_follows_content(void **state)
{
    (void)state;
    struct pw_terminology *a = NULL, *b = NULL, *c = NULL;
    unsigned char da[32], db[32], dc[32];
    char err[512] = "";
    char *dir =
        tables_with("painwatch-classes.csv", "ingredient_rxcui,ingredient,class,name_match,basis\n"
                                             "123,zz test,laxative-osmotic,zzlax,test\n");

    assert_int_equal(pw_terminology_load(&a, pwt_src_path("config/terminology"), err, sizeof(err)),
                     0);
    assert_int_equal(pw_terminology_load(&b, pwt_src_path("config/terminology"), err, sizeof(err)),
                     0);
    assert_int_equal(pw_terminology_load(&c, dir, err, sizeof(err)), 0);
    assert_int_equal(pw_terminology_digest(a, da), 0);
    assert_int_equal(pw_terminology_digest(b, db), 0);
    assert_int_equal(pw_terminology_digest(c, dc), 0);
    assert_memory_equal(da, db, sizeof(da));
    assert_memory_not_equal(da, dc, sizeof(da));
    pw_terminology_free(a);
    pw_terminology_free(b);
    pw_terminology_free(c);
    pwt_rmtree(dir);
    free(dir);
}

static void test_default_dir_from_env(void **state)
{
    (void)state;
    char dir[4096];
    setenv("PAINWATCH_TERMINOLOGY_DIR", pwt_src_path("config/terminology"), 1);
    assert_int_equal(pw_terminology_default_dir(dir, sizeof(dir)), 0);
    assert_string_equal(dir, pwt_src_path("config/terminology"));
    setenv("PAINWATCH_TERMINOLOGY_DIR", "/nonexistent", 1);
    assert_int_equal(pw_terminology_default_dir(dir, sizeof(dir)), PW_ENOENT);
    unsetenv("PAINWATCH_TERMINOLOGY_DIR");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drug_level_lookup),
        cmocka_unit_test(test_min_strength_is_the_group_minimum),
        cmocka_unit_test(test_ingredient_and_valueset_lookup),
        cmocka_unit_test(test_name_matching),
        cmocka_unit_test(test_factor_sets),
        cmocka_unit_test(test_bad_tables_name_file_and_line),
        cmocka_unit_test(test_quoted_fields_and_crlf),
        cmocka_unit_test(test_default_dir_from_env),
        cmocka_unit_test(test_digest_follows_content),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
