/* SPDX-License-Identifier: Apache-2.0 */
/* log.h: journald prefixes, level gate before argument evaluation, rate limiting + summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "painwatch/limits.h"
#include "painwatch/log.h"
#include "support/pwtest.h"

static char *buf;
static size_t buflen;
static FILE *out;
static uint64_t fake_ms;

static uint64_t fake_clock(void)
{
    return fake_ms;
}

static int setup(void **state)
{
    (void)state;
    unsetenv("JOURNAL_STREAM");
    pw_log_init();
    out = open_memstream(&buf, &buflen);
    pw_log_set_output(out, false);
    pw_log_set_level(LOG_INFO);
    fake_ms = 1000;
    pw_log_set_clock(fake_clock);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fclose(out);
    free(buf);
    buf = NULL;
    pw_log_set_output(NULL, false);
    pw_log_set_clock(NULL);
    return 0;
}

static int count_lines(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++) {
        n++;
    }
    return n;
}

static void test_journal_prefix(void **state)
{
    (void)state;
    setenv("JOURNAL_STREAM", "8:12345", 1);
    pw_log_init();
    pw_log_set_output(out, true);
    pw_log_err(HTTP, "GET Observation: status %d", 503);
    pw_log_warn(SYNC, "cursor held");
    fflush(out);
    assert_non_null(strstr(buf, "<3>[http] GET Observation: status 503\n"));
    assert_non_null(strstr(buf, "<4>[sync] cursor held\n"));
    unsetenv("JOURNAL_STREAM");
}

static void test_plain_prefix_without_journal(void **state)
{
    (void)state;
    pw_log_notice(MAIN, "ready");
    fflush(out);
    assert_string_equal(buf, "notice: [main] ready\n");
}

static int evaluated;
static int side_effect(void)
{
    evaluated++;
    return 7;
}

static void test_level_checked_before_arguments(void **state)
{
    (void)state;
    evaluated = 0;
    pw_log_set_level(LOG_WARNING);
    pw_log_debug(RULE, "value %d", side_effect());
    pw_log_info(RULE, "value %d", side_effect());
    assert_int_equal(evaluated, 0);
    pw_log_err(RULE, "value %d", side_effect());
    assert_int_equal(evaluated, 1);
    fflush(out);
    assert_int_equal(count_lines(buf, "value 7"), 1);
}

static void test_rate_limit_suppresses_then_summarises(void **state)
{
    (void)state;
    for (int i = 0; i < 20; i++) {
        pw_log_err(HTTP, "GET Observation failed: status 500");
    }
    fflush(out);
    assert_int_equal(count_lines(buf, "Observation failed: status 500\n"), PW_LOG_RATE_BURST);
    assert_null(strstr(buf, "suppressed"));

    /* A different line is not affected. */
    pw_log_err(HTTP, "GET MedicationRequest failed: status 500");
    fflush(out);
    assert_int_equal(count_lines(buf, "MedicationRequest"), 1);

    /* After the window, the summary appears with the count, then lines pass again. */
    fake_ms += PW_LOG_RATE_WINDOW_MS;
    pw_log_flush();
    fflush(out);
    assert_non_null(strstr(buf, "(suppressed 15 similar lines)"));
    pw_log_err(HTTP, "GET Observation failed: status 500");
    fflush(out);
    assert_int_equal(count_lines(buf, "Observation failed: status 500\n"), PW_LOG_RATE_BURST + 1);
}

/* A process ending inside the window (painwatchd's SIGTERM, a --once run) must not take the
 * suppressed lines with it unsaid: the e2e SIGTERM test saw a sixth delivery line vanish. */
static void test_final_flush_summarises_inside_the_window(void **state)
{
    (void)state;
    for (int i = 0; i < PW_LOG_RATE_BURST + 1; i++) {
        pw_log_info(OUTBOX, "outbox row %d (create, rule r) done", i);
    }
    pw_log_flush(); /* the window is not over: nothing yet */
    fflush(out);
    assert_null(strstr(buf, "suppressed"));
    pw_log_flush_final();
    fflush(out);
    assert_int_equal(count_lines(buf, "(suppressed 1 similar lines)"), 1);
    pw_log_flush_final(); /* said once */
    fflush(out);
    assert_int_equal(count_lines(buf, "(suppressed 1 similar lines)"), 1);
}

/* Issue 18: one warning per bad entry, each with its index, was never folded (the limiter keyed
 * on the formatted text): a page of a million bad entries wrote a million lines. */
static void test_rate_limit_by_template_not_text(void **state)
{
    (void)state;
    for (int i = 0; i < 1000; i++) {
        pw_log_warn(SYNC, "search page entry %d has no resource, skipped", i);
    }
    fflush(out);
    assert_int_equal(count_lines(buf, "has no resource, skipped\n"), PW_LOG_RATE_BURST);
    /* Another template, same component: its own allowance. */
    pw_log_warn(SYNC, "page %d: %s", 3, "other");
    fflush(out);
    assert_int_equal(count_lines(buf, "page 3: other\n"), 1);
    fake_ms += PW_LOG_RATE_WINDOW_MS;
    pw_log_flush();
    fflush(out);
    assert_int_equal(count_lines(buf, "(suppressed 995 similar lines)"), 1);
    /* The summary shows the head of the first line of its window, not a later one. */
    assert_non_null(strstr(buf, "entry 0 has no resource, skipped ... (suppressed 995"));
}

static void test_newlines_cannot_forge_lines(void **state)
{
    (void)state;
    pw_log_err(CONF, "bad key %s", "x\nerr: [audit] forged");
    fflush(out);
    assert_int_equal(count_lines(buf, "\n"), 1);
}

static void test_level_names(void **state)
{
    (void)state;
    assert_int_equal(pw_log_level_from_name("debug"), LOG_DEBUG);
    assert_int_equal(pw_log_level_from_name("WARNING"), LOG_WARNING);
    assert_int_equal(pw_log_level_from_name("error"), LOG_ERR);
    assert_int_equal(pw_log_level_from_name("loud"), -1);
}

/* Issue 19: with a context, a journald line is an entry with PW_SERVER, PW_RULE, PW_RESOURCE_TYPE.
 */
static char journal_got[2048];

static int capture_journal(const struct iovec *iov, int n)
{
    size_t off = 0;

    journal_got[0] = '\0';
    for (int i = 0; i < n; i++) {
        off += (size_t)snprintf(journal_got + off, sizeof(journal_got) - off, "%.*s|",
                                (int)iov[i].iov_len, (const char *)iov[i].iov_base);
    }
    return 0;
}

static void test_journal_fields(void **state)
{
    (void)state;
    pw_log_set_output(out, true);
    pw_log_set_journal_sink(capture_journal);
    pw_log_context("ehr", "rescue-dose-missing", "Flag");
    pw_log_err(OUTBOX, "outbox row 7: HTTP 503: retry in 30000 ms");
    assert_string_equal(journal_got,
                        "MESSAGE=[outbox] outbox row 7: HTTP 503: retry in 30000 ms|PRIORITY=3|"
                        "SYSLOG_IDENTIFIER=painwatchd|PW_SERVER=ehr|PW_RULE=rescue-dose-missing|"
                        "PW_RESOURCE_TYPE=Flag|");
    pw_log_context("ehr", NULL, "Observation");
    pw_log_warn(SYNC, "run failed");
    assert_non_null(strstr(journal_got, "|PW_SERVER=ehr|PW_RESOURCE_TYPE=Observation|"));
    assert_null(strstr(journal_got, "PW_RULE"));
    /* No context: the plain journald stream line, as before. */
    pw_log_context(NULL, NULL, NULL);
    journal_got[0] = '\0';
    pw_log_warn(SYNC, "cursor held");
    fflush(out);
    assert_string_equal(journal_got, "");
    assert_non_null(strstr(buf, "<4>[sync] cursor held\n"));
    pw_log_set_journal_sink(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_journal_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_prefix_without_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_checked_before_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_suppresses_then_summarises, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_by_template_not_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_final_flush_summarises_inside_the_window, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_newlines_cannot_forge_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_fields, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
