/* SPDX-License-Identifier: Apache-2.0 */
/* Dosage parsing: every Timing form, PRN, maxDosePerPeriod, doseRange and doseAndRate choice. */
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "clinical/dosage.h"
#include "clinical_support.h"

static void parse(const char *text, struct pw_dosage *out)
{
    json_t *j = clin_json(text);
    pw_dosage_parse(j, out);
    json_decref(j);
}

static double per_day(const char *timing)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "{\"timing\":%s}", timing);
    struct pw_dosage d;
    parse(buf, &d);
    return d.per_day;
}

static void test_repeat_frequency_and_every_period_unit(void **state)
{
    (void)state;
    assert_near(per_day("{\"repeat\":{\"frequency\":1,\"period\":12,\"periodUnit\":\"h\"}}"), 2);
    assert_near(per_day("{\"repeat\":{\"frequency\":3,\"period\":1,\"periodUnit\":\"d\"}}"), 3);
    assert_near(per_day("{\"repeat\":{\"frequency\":1,\"period\":30,\"periodUnit\":\"min\"}}"), 48);
    assert_near(per_day("{\"repeat\":{\"frequency\":1,\"period\":3600,\"periodUnit\":\"s\"}}"), 24);
    assert_near(per_day("{\"repeat\":{\"frequency\":3,\"period\":1,\"periodUnit\":\"wk\"}}"),
                3.0 / 7);
    assert_near(per_day("{\"repeat\":{\"frequency\":1,\"period\":1,\"periodUnit\":\"mo\"}}"),
                1.0 / 30);
    assert_near(per_day("{\"repeat\":{\"frequency\":1,\"period\":1,\"periodUnit\":\"a\"}}"),
                1.0 / 365);
    /* Frequency defaults to 1 when only the period is given. */
    assert_near(per_day("{\"repeat\":{\"period\":8,\"periodUnit\":\"h\"}}"), 3);
    /* Decimal period (72 h patch written as 3.0 d). */
    assert_near(per_day("{\"repeat\":{\"frequency\":1,\"period\":3.0,\"periodUnit\":\"d\"}}"),
                1.0 / 3);
}

static void test_ranges_take_the_most_allowed(void **state)
{
    (void)state;
    /* "1-2 times every 4-6 hours": frequencyMax over the shortest period. */
    assert_near(per_day("{\"repeat\":{\"frequency\":1,\"frequencyMax\":2,\"period\":4,"
                        "\"periodMax\":6,\"periodUnit\":\"h\"}}"),
                12);
}

static void test_time_of_day_when_and_day_of_week(void **state)
{
    (void)state;
    assert_near(per_day("{\"repeat\":{\"timeOfDay\":[\"08:00:00\",\"20:00:00\"]}}"), 2);
    assert_near(per_day("{\"repeat\":{\"when\":[\"MORN\",\"EVE\",\"HS\"]}}"), 3);
    /* AC/PC/C mean with each of three meals. */
    assert_near(per_day("{\"repeat\":{\"when\":[\"AC\"]}}"), 3);
    assert_near(per_day("{\"repeat\":{\"when\":[\"ACM\",\"ACV\"]}}"), 2);
    /* Twice a day on Monday, Wednesday, Friday: averaged over the week. */
    assert_near(per_day("{\"repeat\":{\"frequency\":2,\"period\":1,\"periodUnit\":\"d\","
                        "\"dayOfWeek\":[\"mon\",\"wed\",\"fri\"]}}"),
                6.0 / 7);
    /* A stated frequency with more listed times than it: the listed times count. */
    assert_near(per_day("{\"repeat\":{\"frequency\":1,\"period\":1,\"periodUnit\":\"d\","
                        "\"timeOfDay\":[\"08:00:00\",\"14:00:00\",\"20:00:00\"]}}"),
                3);
}

static void test_timing_codes(void **state)
{
    (void)state;
    static const struct {
        const char *code;
        double per_day;
    } codes[] = {{"BID", 2}, {"TID", 3},  {"QID", 4},  {"Q4H", 6},   {"Q6H", 4},
                 {"Q8H", 3}, {"Q12H", 2}, {"QD", 1},   {"QOD", 0.5}, {"AM", 1},
                 {"PM", 1},  {"Q1H", 24}, {"Q2H", 12}, {"Q3H", 8},   {"WK", 1.0 / 7}};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        char t[256];
        snprintf(t, sizeof(t),
                 "{\"code\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/"
                 "v3-GTSAbbreviation\",\"code\":\"%s\"}]}}",
                 codes[i].code);
        assert_near(per_day(t), codes[i].per_day);
    }
    /* The text of the code when there is no coding; unknown codes stay unknown. */
    assert_near(per_day("{\"code\":{\"text\":\"BID\"}}"), 2);
    assert_true(isnan(per_day("{\"code\":{\"text\":\"1000 every 24h scheduled\"}}")));
    assert_true(isnan(per_day("{}")));
    /* repeat wins over the code when it is computable. */
    assert_near(per_day("{\"repeat\":{\"frequency\":1,\"period\":4,\"periodUnit\":\"h\"},"
                        "\"code\":{\"coding\":[{\"code\":\"BID\"}]}}"),
                6);
}

static void test_prn_forms(void **state)
{
    (void)state;
    struct pw_dosage d;
    parse("{\"asNeededBoolean\":true}", &d);
    assert_true(d.prn);
    parse("{\"asNeededBoolean\":false}", &d);
    assert_false(d.prn);
    parse("{\"asNeededCodeableConcept\":{\"text\":\"breakthrough pain\"}}", &d);
    assert_true(d.prn);
    parse("{}", &d);
    assert_false(d.prn);
}

static void test_max_dose_per_period(void **state)
{
    (void)state;
    struct pw_dosage d;
    parse("{\"maxDosePerPeriod\":{\"numerator\":{\"value\":60,\"code\":\"mg\"},"
          "\"denominator\":{\"value\":24,\"code\":\"h\"}}}",
          &d);
    assert_true(d.has_max);
    assert_near(d.max_per_day.low, 60);
    assert_string_equal(d.max_per_day.code, "mg");
    parse("{\"maxDosePerPeriod\":{\"numerator\":{\"value\":8,\"unit\":\"tablets\"},"
          "\"denominator\":{\"value\":2,\"code\":\"d\"}}}",
          &d);
    assert_near(d.max_per_day.low, 4);
    assert_string_equal(d.max_per_day.unit, "tablets");
    /* R5-style array. */
    parse("[]", &d);
    assert_false(d.has_max);
    parse("{\"maxDosePerPeriod\":[{\"numerator\":{\"value\":6,\"code\":\"{tbl}\"},"
          "\"denominator\":{\"value\":1,\"code\":\"d\"}}]}",
          &d);
    assert_true(d.has_max);
    assert_near(d.max_per_day.low, 6);
}

static void test_dose_range_keeps_both_ends(void **state)
{
    (void)state;
    struct pw_dosage d;
    parse("{\"doseAndRate\":[{\"doseRange\":{\"low\":{\"value\":5,\"code\":\"mg\"},"
          "\"high\":{\"value\":10,\"code\":\"mg\"}}}]}",
          &d);
    assert_int_equal(d.n_cand, 1);
    assert_near(d.cand[0].low, 5);
    assert_near(d.cand[0].high, 10);
    assert_string_equal(d.cand[0].code, "mg");
    /* Only one end. */
    parse("{\"doseAndRate\":[{\"doseRange\":{\"high\":{\"value\":2,\"unit\":\"tablet\"}}}]}", &d);
    assert_near(d.cand[0].low, 2);
    assert_near(d.cand[0].high, 2);
}

static void test_dose_and_rate_preference(void **state)
{
    (void)state;
    struct pw_dosage d;
    /* calculated first in the array, ordered second: ordered wins, then calculated. */
    parse("{\"doseAndRate\":["
          "{\"type\":{\"coding\":[{\"code\":\"calculated\"}]},\"doseQuantity\":{\"value\":7,"
          "\"code\":\"mg\"}},"
          "{\"doseQuantity\":{\"value\":9,\"code\":\"mg\"}},"
          "{\"type\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/"
          "dose-rate-type\",\"code\":\"ordered\"}]},\"doseQuantity\":{\"value\":5,\"code\":"
          "\"mg\"}}]}",
          &d);
    assert_int_equal(d.n_cand, 3);
    assert_near(d.cand[0].low, 5);
    assert_near(d.cand[1].low, 7);
    assert_near(d.cand[2].low, 9);
    /* Untyped entries keep their order. */
    parse("{\"doseAndRate\":[{\"doseQuantity\":{\"value\":1,\"code\":\"{tbl}\"}},"
          "{\"doseQuantity\":{\"value\":10,\"code\":\"mg\"}}]}",
          &d);
    assert_near(d.cand[0].low, 1);
    assert_near(d.cand[1].low, 10);
}

static void test_epic_extensions(void **state)
{
    (void)state;
    struct pw_dosage d;
    /* As in the CDC calculator's Epic example: admin-amount 1 capsule, ordered-dose 20 mg,
     * plus a plain doseQuantity. The ordered dose comes before the untyped entry, the
     * administered amount last. */
    parse("{\"extension\":[{\"url\":\"https://open.epic.com/fhir/extensions/admin-amount\","
          "\"valueQuantity\":{\"value\":1,\"unit\":\"capsule\",\"code\":\"{capsule}\"}},"
          "{\"url\":\"https://open.epic.com/fhir/extensions/ordered-dose\",\"valueQuantity\":"
          "{\"value\":20,\"unit\":\"mg\",\"code\":\"mg\"}}],"
          "\"doseAndRate\":[{\"doseQuantity\":{\"value\":19,\"code\":\"mg\"}}]}",
          &d);
    assert_int_equal(d.n_cand, 3);
    assert_near(d.cand[0].low, 20);
    assert_near(d.cand[1].low, 19);
    assert_near(d.cand[2].low, 1);
    assert_string_equal(d.cand[2].code, "{capsule}");
}

static void test_sequence_and_text(void **state)
{
    (void)state;
    struct pw_dosage d;
    parse("{\"sequence\":2,\"text\":\"one at night\"}", &d);
    assert_true(d.has_sequence);
    assert_int_equal(d.sequence, 2);
    assert_true(d.has_text);
    assert_int_equal(d.n_cand, 0);
    assert_true(isnan(d.per_day));
    parse("[\"not an object\"]", &d);
    assert_false(d.has_sequence);
    assert_int_equal(d.n_cand, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repeat_frequency_and_every_period_unit),
        cmocka_unit_test(test_ranges_take_the_most_allowed),
        cmocka_unit_test(test_time_of_day_when_and_day_of_week),
        cmocka_unit_test(test_timing_codes),
        cmocka_unit_test(test_prn_forms),
        cmocka_unit_test(test_max_dose_per_period),
        cmocka_unit_test(test_dose_range_keeps_both_ends),
        cmocka_unit_test(test_dose_and_rate_preference),
        cmocka_unit_test(test_epic_extensions),
        cmocka_unit_test(test_sequence_and_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
