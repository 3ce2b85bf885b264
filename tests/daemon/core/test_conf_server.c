/* SPDX-License-Identifier: Apache-2.0 */
/* conf_server.c: the SMART scope derived from what is synced and what the sink writes. */
#include <stdio.h>
#include <string.h>

#include "core/conf_server.h"
#include "painwatch/conf.h"
#include "support/pwtest.h"

#define BASE                                       \
    "servers:\n"                                   \
    "  - name: ehr\n"                              \
    "    base_url: https://ehr.example.org/fhir\n" \
    "    auth:\n"                                  \
    "      type: none\n"                           \
    "    cohort:\n"                                \
    "      type: server-wide\n"

/* The scope derived for the first server of BASE + @p sink into @p buf. */
static void scope_of(const char *sink, char *buf, size_t size)
{
    char text[2048];
    struct pw_conf *conf = NULL;
    struct pw_conf_errors errs = {0};

    snprintf(text, sizeof(text), "%s%s", BASE, sink);
    if (pw_conf_load_string(&conf, "t.yaml", NULL, text, strlen(text), &errs) != 0) {
        fail_msg("config: %s", errs.n ? errs.lines[0] : "?");
    }
    pw_conf_errors_cleanup(&errs);
    const struct pw_conf_daemon *cd = pw_conf_daemon(conf);
    char scope[512];
    struct pw_auth_conf ac =
        pw_conf_server_auth(&cd->servers[0], cd->sink.section, scope, sizeof(scope));
    snprintf(buf, size, "%s", ac.scope);
    pw_conf_free(conf);
}

static void test_scope_follows_the_sink(void **state)
{
    (void)state;
    char scope[512];

    /* The default sink writes Flags. */
    scope_of("", scope, sizeof(scope));
    assert_non_null(strstr(scope, "system/Patient.read system/Group.read"));
    assert_non_null(strstr(scope, "system/Observation.read"));
    assert_non_null(strstr(scope, " system/Flag.read system/Flag.write"));
    assert_null(strstr(scope, "DetectedIssue"));

    /* A DetectedIssue sink asks for DetectedIssue, not for Flag. */
    scope_of("sink:\n  type: detected-issue\n", scope, sizeof(scope));
    assert_non_null(strstr(scope, " system/DetectedIssue.read system/DetectedIssue.write"));
    assert_null(strstr(scope, "Flag"));

    /* auto may write either. */
    scope_of("sink:\n  type: auto\n", scope, sizeof(scope));
    assert_non_null(strstr(scope, " system/Flag.read system/Flag.write"));
    assert_non_null(strstr(scope, " system/DetectedIssue.read system/DetectedIssue.write"));

    /* Flags, and DetectedIssues for one rule. */
    scope_of("sink:\n  type: fhir-flag\n  rules:\n    bowel_regimen_missing: detected-issue\n",
             scope, sizeof(scope));
    assert_non_null(strstr(scope, " system/Flag.read system/Flag.write"));
    assert_non_null(strstr(scope, " system/DetectedIssue.read system/DetectedIssue.write"));

    /* Shadow mode's file sink carries what the default target builds, as before. */
    scope_of("sink:\n  type: file\n", scope, sizeof(scope));
    assert_non_null(strstr(scope, " system/Flag.read system/Flag.write"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scope_follows_the_sink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
