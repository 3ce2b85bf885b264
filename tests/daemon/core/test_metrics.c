/* SPDX-License-Identifier: Apache-2.0 */
/* metrics.c: counters and gauges move, labels escape, the output parses as Prometheus text. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "painwatch/err.h"
#include "painwatch/limits.h"
#include "painwatch/log.h"
#include "painwatch/metrics.h"
#include "promtext.h"
#include "support/pwtest.h"

static struct prom_text parsed;

static int setup(void **state)
{
    (void)state;
    pw_metrics_reset();
    return 0;
}

static void render_parse(void)
{
    size_t len = 0;
    char *text = pw_metrics_render(&len);

    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    prom_parse(&parsed, text);
    free(text);
}

static void test_builtins_parse(void **state)
{
    (void)state;
    render_parse();
    /* Every built-in family is declared even before it has a sample. */
    assert_true(prom_family(&parsed, PW_M_HTTP_REQUESTS) != (size_t)-1);
    assert_true(prom_family(&parsed, PW_M_OUTBOX_DEPTH) != (size_t)-1);
    assert_true(prom_family(&parsed, PW_M_AUDIT_RECORDS) != (size_t)-1);
    assert_true(prom_value(&parsed, PW_M_BUILD_INFO, "version=\"" PW_VERSION "\"") == 1.0);
    assert_true(prom_value(&parsed, PW_M_START_TIME, "") > 1.7e9);
}

static void test_counters_move(void **state)
{
    (void)state;
    pw_metric_inc(PW_M_HTTP_REQUESTS, "ehr", "200", NULL);
    pw_metric_inc(PW_M_HTTP_REQUESTS, "ehr", "200", NULL);
    pw_metric_inc(PW_M_HTTP_REQUESTS, "ehr", "503", NULL);
    pw_metric_add(PW_M_INGESTED, 25, "ehr", "Observation", NULL);
    pw_metric_inc(PW_M_AUDIT_RECORDS, NULL);
    pw_metric_set(PW_M_OUTBOX_DEPTH, 7, "ehr", NULL);
    pw_metric_set(PW_M_OUTBOX_DEPTH, 3, "ehr", NULL);
    /* The lag is set as the newest lastUpdated and rendered as seconds since, at the scrape. */
    pw_metric_set(PW_M_SYNC_LAG, (double)time(NULL) - 12.5, "ehr", "Observation", NULL);
    render_parse();
    assert_true(prom_value(&parsed, PW_M_HTTP_REQUESTS, "server=\"ehr\",status=\"200\"") == 2.0);
    assert_true(prom_value(&parsed, PW_M_HTTP_REQUESTS, "server=\"ehr\",status=\"503\"") == 1.0);
    assert_true(prom_value(&parsed, PW_M_INGESTED, "server=\"ehr\",resource=\"Observation\"") ==
                25.0);
    assert_true(prom_value(&parsed, PW_M_AUDIT_RECORDS, "") == 1.0);
    assert_true(prom_value(&parsed, PW_M_OUTBOX_DEPTH, "server=\"ehr\"") == 3.0);
    assert_true(prom_value(&parsed, PW_M_SYNC_LAG, "server=\"ehr\",resource=\"Observation\"") >=
                12.5);
    /* process_* as every Prometheus client exports them. */
    assert_true(prom_value(&parsed, PW_M_PROCESS_CPU, "") > 0);
    assert_true(prom_value(&parsed, PW_M_PROCESS_RSS, "") > 1e6);
    assert_true(prom_value(&parsed, PW_M_PROCESS_FDS, "") >= 3);
    assert_true(prom_value(&parsed, PW_M_PROCESS_START, "") > 1.7e9);
    assert_true(pw_metric_get(PW_M_HTTP_REQUESTS, "ehr", "200", NULL) == 2.0);

    pw_metric_inc(PW_M_HTTP_REQUESTS, "ehr", "200", NULL);
    render_parse();
    assert_true(prom_value(&parsed, PW_M_HTTP_REQUESTS, "server=\"ehr\",status=\"200\"") == 3.0);

    /* A latency histogram: cumulative buckets, +Inf, _sum and _count. */
    pw_metric_observe(PW_M_HTTP_DURATION, 0.003, "ehr", "search", NULL);
    pw_metric_observe(PW_M_HTTP_DURATION, 0.2, "ehr", "search", NULL);
    pw_metric_observe(PW_M_HTTP_DURATION, 120, "ehr", "search", NULL);
    render_parse();
    assert_true(prom_value(&parsed, PW_M_HTTP_DURATION "_bucket",
                           "server=\"ehr\",operation=\"search\",le=\"0.005\"") == 1.0);
    assert_true(prom_value(&parsed, PW_M_HTTP_DURATION "_bucket",
                           "server=\"ehr\",operation=\"search\",le=\"0.25\"") == 2.0);
    assert_true(prom_value(&parsed, PW_M_HTTP_DURATION "_bucket",
                           "server=\"ehr\",operation=\"search\",le=\"60\"") == 2.0);
    assert_true(prom_value(&parsed, PW_M_HTTP_DURATION "_bucket",
                           "server=\"ehr\",operation=\"search\",le=\"+Inf\"") == 3.0);
    assert_true(prom_value(&parsed, PW_M_HTTP_DURATION "_count",
                           "server=\"ehr\",operation=\"search\"") == 3.0);
    assert_true(
        fabs(prom_value(&parsed, PW_M_HTTP_DURATION "_sum", "server=\"ehr\",operation=\"search\"") -
             120.203) < 1e-9);
}

static void test_escaping_and_register(void **state)
{
    (void)state;
    assert_int_equal(pw_metric_register("painwatch_test_events_total", PW_METRIC_COUNTER,
                                        "help with \\ backslash\nand newline", "kind"),
                     0);
    assert_int_equal(
        pw_metric_register("painwatch_test_events_total", PW_METRIC_COUNTER, "x", "kind"), 0);
    assert_int_equal(pw_metric_register("painwatch_test_events_total", PW_METRIC_GAUGE, "x", ""),
                     PW_EEXIST);
    assert_int_equal(pw_metric_register("9bad", PW_METRIC_GAUGE, "x", ""), PW_EINVAL);
    assert_int_equal(pw_metric_register("painwatch_ok", PW_METRIC_GAUGE, "x", "bad-label"),
                     PW_EINVAL);
    pw_metric_inc("painwatch_test_events_total", "quote\" back\\ nl\n", NULL);
    render_parse();
    assert_true(prom_value(&parsed, "painwatch_test_events_total",
                           "kind=\"quote\\\" back\\\\ nl\\n\"") == 1.0);
}

/* Misuse is contained: logged as an invariant failure, the registry stays consistent. */
static void test_misuse_contained(void **state)
{
    FILE *devnull = fopen("/dev/null", "w");

    (void)state;
    pw_log_set_output(devnull, false);
    pw_metric_inc(PW_M_HTTP_REQUESTS, "only-one-label", NULL);
    pw_metric_inc(PW_M_HTTP_REQUESTS, "a", "b", "c", NULL);
    pw_metric_add(PW_M_AUDIT_RECORDS, -1, NULL);
    pw_metric_set(PW_M_AUDIT_RECORDS, 5, NULL);
    pw_metric_inc("painwatch_no_such_metric_total", NULL);
    pw_log_set_output(NULL, false);
    fclose(devnull);
    render_parse();
    assert_true(isnan(prom_value(&parsed, PW_M_HTTP_REQUESTS, "server=\"only-one-label\"")));
    assert_true(isnan(prom_value(&parsed, PW_M_AUDIT_RECORDS, "")));
}

static void test_series_cap(void **state)
{
    FILE *devnull = fopen("/dev/null", "w");
    char rule[32];

    (void)state;
    pw_log_set_output(devnull, false);
    for (int i = 0; i < PW_METRIC_SERIES_MAX + 10; i++) {
        snprintf(rule, sizeof(rule), "rule-%d", i);
        pw_metric_inc(PW_M_FINDINGS, rule, NULL);
    }
    pw_log_set_output(NULL, false);
    fclose(devnull);
    size_t len = 0;
    char *text = pw_metrics_render(&len);
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, PW_M_FINDINGS "{")); p++) {
        n++;
    }
    free(text);
    assert_int_equal(n, PW_METRIC_SERIES_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_builtins_parse, setup),
        cmocka_unit_test_setup(test_counters_move, setup),
        cmocka_unit_test_setup(test_escaping_and_register, setup),
        cmocka_unit_test_setup(test_misuse_contained, setup),
        cmocka_unit_test_setup(test_series_cap, setup),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    pw_metrics_reset();
    return rc;
}
