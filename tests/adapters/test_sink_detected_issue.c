/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The detected-issue sink: DetectedIssue content (identifier, status, code, severity mapping,
 * patient, implicated orders, evidence, detail, author, the clinician narrative the Flag sink
 * writes, from the same builder), the close (dated mitigation entry +
 * the site's status) and reactivation, what a read-back says (a clinician's mitigation or status
 * change = acknowledged), per-rule targets, the closing status setting and `auto`'s choice.
 * With PW_FLAG_OUT_DIR set it also writes its samples there (created and closed) for the FHIR
 * R4 validator run by tests/adapters/tests.cmake.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "painwatch/err.h"
#include "painwatch/finding_text.h"
#include "painwatch/localtime.h"
#include "painwatch/sink.h"
#include "painwatch/timeline.h"
#include "support/pwtest.h"

/* The adapters themselves (core names none: they are reached through the sink registry). */
extern const struct pw_sink_ops pw_sink_detected_issue;

#define T_SINCE 1767225600 /* 2026-01-01T00:00:00Z */
#define T_END   1767229200 /* 2026-01-01T01:00:00Z */

static struct pw_sink *new_sink(const char *closed_status)
{
    struct pw_sink_conf conf = {.author = "Device/pw-gw-1",
                                .author_display = "painwatch gateway",
                                .closed_status = closed_status};
    struct pw_sink *sink = NULL;

    assert_int_equal(pw_sink_new(&sink, "detected-issue", &conf), 0);
    return sink;
}

static struct pw_ref ref(const char *type, const char *id, const char *version)
{
    struct pw_ref r = {0};

    snprintf(r.type, sizeof(r.type), "%s", type);
    snprintf(r.id, sizeof(r.id), "%s", id);
    snprintf(r.version, sizeof(r.version), "%s", version);
    return r;
}

static struct pw_finding sample(const char *rule, enum pw_severity sev, const char *text)
{
    struct pw_finding f = {.rule = rule, .category = "drug", .severity = sev, .since = T_SINCE};

    snprintf(f.patient, sizeof(f.patient), "Patient/p-42");
    snprintf(f.key, sizeof(f.key), "%.12s%052d", rule, 9);
    snprintf(f.text, sizeof(f.text), "%s", text);
    return f;
}

static void add_evidence(struct pw_finding *f, const struct pw_ref *r)
{
    f->evidence[f->n_evidence++] = *r;
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static json_t *at(const json_t *arr, size_t i)
{
    return json_array_get(arr, i);
}

static struct pw_finding step_finding(void)
{
    struct pw_finding f = sample("titration-step-too-large", PW_SEV_HIGH,
                                 "Opioid step +100% (60 -> 120 MME/day) with pain 6/10.");
    struct pw_ref mr1 = ref("MedicationRequest", "mr-1", "3");
    struct pw_ref mr2 = ref("MedicationRequest", "mr-2", "");
    struct pw_ref obs = ref("Observation", "pain-9", "2");

    add_evidence(&f, &mr1);
    add_evidence(&f, &obs);
    add_evidence(&f, &mr2);
    return f;
}

static void test_content(void **state)
{
    struct pw_sink *sink = new_sink(NULL);
    struct pw_finding f = step_finding();
    json_t *di = NULL;
    json_t *coding;

    (void)state;
    assert_int_equal(pw_sink_format(sink, &f, &di), 0);
    assert_string_equal(str(di, "resourceType"), "DetectedIssue");
    assert_string_equal(str(di, "status"), "final");
    assert_string_equal(str(di, "severity"), "high");
    assert_string_equal(str(at(json_object_get(di, "identifier"), 0), "system"),
                        PW_FLAG_IDENTIFIER_SYSTEM);
    assert_string_equal(str(at(json_object_get(di, "identifier"), 0), "value"), f.key);
    coding = at(json_object_get(json_object_get(di, "code"), "coding"), 0);
    assert_string_equal(str(coding, "system"), PW_FLAG_CODE_SYSTEM);
    assert_string_equal(str(coding, "code"), "titration-step-too-large");
    assert_string_equal(str(json_object_get(di, "patient"), "reference"), "Patient/p-42");
    assert_string_equal(str(json_object_get(di, "author"), "reference"), "Device/pw-gw-1");
    assert_string_equal(str(di, "identifiedDateTime"), "2026-01-01T00:00:00Z");
    assert_string_equal(str(di, "detail"), f.text);
    /* The orders are implicated; the pain score is evidence. */
    assert_int_equal(json_array_size(json_object_get(di, "implicated")), 2);
    assert_string_equal(str(at(json_object_get(di, "implicated"), 0), "reference"),
                        "MedicationRequest/mr-1/_history/3");
    assert_string_equal(str(at(json_object_get(di, "implicated"), 1), "reference"),
                        "MedicationRequest/mr-2");
    assert_int_equal(json_array_size(json_object_get(di, "evidence")), 1);
    assert_string_equal(
        str(at(json_object_get(at(json_object_get(di, "evidence"), 0), "detail"), 0), "reference"),
        "Observation/pain-9/_history/2");
    assert_null(json_object_get(di, "mitigation"));
    /* The clinician narrative, as the Flag sink writes it (finding_text.c builds both). */
    const json_t *text = json_object_get(di, "text");
    char *want = pw_finding_narrative(&f);
    assert_non_null(want);
    assert_string_equal(str(text, "status"), "generated");
    assert_string_equal(str(text, "div"), want);
    free(want);
    assert_non_null(strstr(str(text, "div"), "<div xmlns=\"http://www.w3.org/1999/xhtml\">"));
    assert_non_null(strstr(str(text, "div"), "Opioid step +100% (60 -&gt; 120 MME/day)"));
    assert_non_null(strstr(str(text, "div"), "<li>MedicationRequest/mr-1</li>"));
    json_decref(di);

    /* Without evidence: neither element (FHIR forbids empty arrays). */
    f.n_evidence = 0;
    assert_int_equal(pw_sink_format(sink, &f, &di), 0);
    assert_null(json_object_get(di, "implicated"));
    assert_null(json_object_get(di, "evidence"));
    json_decref(di);
    pw_sink_free(sink);
}

static void test_severity_mapping(void **state)
{
    static const struct {
        enum pw_severity sev;
        const char *want;
    } map[] = {{PW_SEV_HIGH, "high"},
               {PW_SEV_MEDIUM, "moderate"},
               {PW_SEV_LOW, "low"},
               {PW_SEV_INFO, "low"}};
    struct pw_sink *sink = new_sink(NULL);

    (void)state;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        struct pw_finding f = sample("bowel-regimen-missing", map[i].sev, "x");
        json_t *di = NULL;

        assert_int_equal(pw_sink_format(sink, &f, &di), 0);
        assert_string_equal(str(di, "severity"), map[i].want);
        json_decref(di);
    }
    pw_sink_free(sink);
}

static void test_close_and_reopen(void **state)
{
    struct pw_sink *sink = new_sink(NULL);
    struct pw_sink *amend = new_sink("amended");
    struct pw_finding f = step_finding();
    json_t *created = NULL;
    json_t *closed = NULL;
    json_t *reopened = NULL;
    json_t *m;

    (void)state;
    assert_int_equal(pw_sink_format(sink, &f, &created), 0);
    json_object_set_new(created, "id", json_string("di-1"));
    json_object_set_new(created, "meta", json_pack("{s:s}", "versionId", "1"));
    assert_int_equal(pw_sink_update(sink, created, PW_OUTBOX_RESOLVE, T_END, &closed), 0);
    assert_string_equal(str(closed, "status"), "cancelled");
    assert_null(json_object_get(closed, "id")); /* the deliverer's business */
    assert_null(json_object_get(closed, "meta"));
    assert_int_equal(json_array_size(json_object_get(closed, "mitigation")), 1);
    m = at(json_object_get(closed, "mitigation"), 0);
    assert_string_equal(str(m, "date"), "2026-01-01T01:00:00Z");
    assert_non_null(strstr(str(json_object_get(m, "action"), "text"), "no longer holds"));
    /* The narrative says so too, as a resolved Flag's does; the created one is left as it was. */
    assert_non_null(strstr(str(json_object_get(closed, "text"), "div"),
                           "Resolved by painwatch on 1 Jan 2026 01:00 (UTC)"));
    assert_null(strstr(str(json_object_get(created, "text"), "div"), "Resolved by"));
    /* painwatch's own close reads as closed, not as a clinician's acknowledgement... */
    assert_string_equal(pw_sink_episode_status(closed), "inactive");
    assert_string_equal(pw_sink_episode_status(created), "active");
    /* ...and reopening drops it again. */
    assert_int_equal(pw_sink_update(sink, closed, PW_OUTBOX_REACTIVATE, T_END + 60, &reopened), 0);
    assert_string_equal(str(reopened, "status"), "final");
    assert_null(json_object_get(reopened, "mitigation"));
    assert_null(strstr(str(json_object_get(reopened, "text"), "div"), "Resolved by"));
    assert_string_equal(pw_sink_episode_status(reopened), "active");
    json_decref(closed);
    json_decref(reopened);

    /* The site's closing status; an end before the start is clamped to the start. */
    assert_int_equal(pw_sink_update(amend, created, PW_OUTBOX_RESOLVE, T_SINCE - 3600, &closed), 0);
    assert_string_equal(str(closed, "status"), "amended");
    assert_string_equal(str(at(json_object_get(closed, "mitigation"), 0), "date"),
                        "2026-01-01T00:00:00Z");
    json_decref(closed);
    assert_int_equal(pw_sink_update(sink, created, PW_OUTBOX_CREATE, T_END, &closed), PW_EINVAL);
    json_decref(created);
    pw_sink_free(sink);
    pw_sink_free(amend);
}

/* What the EHR's copy says: a clinician's mitigation or status change is an acknowledgement. */
static void test_read_back(void **state)
{
    struct pw_sink *sink = new_sink(NULL);
    struct pw_finding f = step_finding();
    json_t *di = NULL;
    json_t *mine = NULL;

    (void)state;
    assert_int_equal(pw_sink_format(sink, &f, &di), 0);
    assert_string_equal(pw_sink_episode_status(di), "active");
    /* A clinician's mitigation entry (no painwatch coding), status left final. */
    json_object_set_new(di, "mitigation",
                        json_pack("[{s:{s:s}, s:s}]", "action", "text",
                                  "Reviewed with the patient: dose step intended", "date",
                                  "2026-01-01T02:00:00Z"));
    assert_string_equal(pw_sink_episode_status(di), "inactive");
    /* Even beside painwatch's own entry. */
    assert_int_equal(pw_sink_update(sink, di, PW_OUTBOX_RESOLVE, T_END, &mine), 0);
    assert_string_equal(pw_sink_episode_status(mine), "inactive");
    assert_int_equal(json_array_size(json_object_get(mine, "mitigation")), 2); /* kept */
    json_decref(mine);
    json_object_del(di, "mitigation");
    /* Status changes. */
    json_object_set_new(di, "status", json_string("cancelled"));
    assert_string_equal(pw_sink_episode_status(di), "inactive");
    json_object_set_new(di, "status", json_string("entered-in-error"));
    assert_string_equal(pw_sink_episode_status(di), "entered-in-error");
    json_object_set_new(di, "status", json_string("preliminary"));
    assert_string_equal(pw_sink_episode_status(di), "active");
    json_object_del(di, "status");
    assert_null(pw_sink_episode_status(di));
    /* Types painwatch does not write say nothing. */
    json_object_set_new(di, "resourceType", json_string("Patient"));
    json_object_set_new(di, "status", json_string("active"));
    assert_null(pw_sink_episode_status(di));
    json_decref(di);
    pw_sink_free(sink);
}

/* sink.rules: one rule as a DetectedIssue while the sink writes Flags (and the other way). */
static void test_per_rule_target(void **state)
{
    struct pw_sink_rule_target rt[] = {
        {.rule = "titration-step-too-large", .target = "detected-issue"}};
    struct pw_sink_conf conf = {.rule_targets = rt, .n_rule_targets = 1};
    struct pw_sink_rule_target bad[] = {{.rule = "x", .target = "file"}};
    struct pw_sink_conf badconf = {.rule_targets = bad, .n_rule_targets = 1};
    struct pw_sink_conf badstatus = {.closed_status = "final"};
    struct pw_sink *sink = NULL;
    struct pw_finding step = step_finding();
    struct pw_finding lax = sample("bowel-regimen-missing", PW_SEV_LOW, "No laxative.");
    json_t *a = NULL;
    json_t *b = NULL;
    json_t *c = NULL;

    (void)state;
    assert_int_equal(pw_sink_new(&sink, "fhir-flag", &conf), 0);
    assert_int_equal(pw_sink_format(sink, &step, &a), 0);
    assert_int_equal(pw_sink_format(sink, &lax, &b), 0);
    assert_string_equal(str(a, "resourceType"), "DetectedIssue");
    assert_string_equal(str(b, "resourceType"), "Flag");
    assert_true(pw_sink_uses(sink, "DetectedIssue"));
    /* An update follows the resource as created, whatever builds new ones. */
    assert_int_equal(pw_sink_update(sink, a, PW_OUTBOX_RESOLVE, T_END, &c), 0);
    assert_string_equal(str(c, "resourceType"), "DetectedIssue");
    json_decref(c);
    pw_sink_free(sink);
    json_decref(a);
    json_decref(b);

    /* Only resource builders are targets; only closed statuses close. */
    assert_int_equal(pw_sink_new(&sink, "fhir-flag", &badconf), PW_ECONFIG);
    assert_int_equal(pw_sink_new(&sink, "detected-issue", &badstatus), PW_ECONFIG);
    assert_true(pw_sink_closed_status_valid("cancelled"));
    assert_false(pw_sink_closed_status_valid("entered-in-error"));
    assert_false(pw_sink_closed_status_valid(NULL));
}

/*
 * From the configuration, as the daemon builds it: the file sink of shadow mode carries the
 * configured type's resources; sink.rules and sink.closed_status reach the sink.
 */
static void test_from_conf(void **state)
{
    char *dir = pwt_mkdtemp();
    char file[4096];
    struct pw_sink *sink = NULL;
    struct pw_finding f = step_finding();
    struct pw_finding lax = sample("bowel-regimen-missing", PW_SEV_LOW, "No laxative.");
    json_t *section;
    json_t *res = NULL;
    json_t *closed = NULL;

    (void)state;
    snprintf(file, sizeof(file), "%s/shadow.ndjson", dir);
    section =
        json_pack("{s:s, s:s, s:s, s:{s:s}}", "type", "detected-issue", "file", file,
                  "closed_status", "corrected", "rules", "bowel-regimen-missing", "fhir-flag");
    assert_int_equal(pw_sink_from_conf(&sink, section, "file", NULL), 0); /* shadow mode */
    assert_false(sink->ops->remote);
    assert_int_equal(sink->ops->format(sink, &f, &res), 0);
    assert_string_equal(str(res, "resourceType"), "DetectedIssue");
    assert_int_equal(sink->ops->update(sink, res, PW_OUTBOX_RESOLVE, T_END, &closed), 0);
    assert_string_equal(str(closed, "status"), "corrected");
    json_decref(res);
    json_decref(closed);
    assert_int_equal(sink->ops->format(sink, &lax, &res), 0);
    assert_string_equal(str(res, "resourceType"), "Flag");
    json_decref(res);
    pw_sink_free(sink);
    json_decref(section);

    /* The same section, live: a remote DetectedIssue sink. */
    section = json_pack("{s:s}", "type", "detected-issue");
    assert_int_equal(pw_sink_from_conf(&sink, section, NULL, NULL), 0);
    assert_true(sink->ops->remote);
    assert_string_equal(sink->closed_status, "cancelled");
    pw_sink_free(sink);
    json_decref(section);
    pwt_rmtree(dir);
    free(dir);
}

/* `auto`: nothing is built before /metadata chose; then DetectedIssue when advertised. */
static void test_auto_choice(void **state)
{
    struct pw_sink_caps both = {.known = true, .flag = true, .detected_issue = true};
    struct pw_sink_caps flag_only = {.known = true, .flag = true};
    struct pw_sink_caps unknown = {0};
    struct pw_sink *sink = NULL;
    struct pw_finding f = step_finding();
    json_t *res = NULL;

    (void)state;
    assert_int_equal(pw_sink_new(&sink, "auto", NULL), 0);
    assert_true(sink->ops->remote);
    assert_int_equal(pw_sink_format(sink, &f, &res), PW_EAGAIN);
    assert_ptr_equal(pw_sink_choose_target(sink, &both), &pw_sink_detected_issue);
    assert_ptr_equal(pw_sink_choose_target(sink, &flag_only), &pw_sink_detected_issue); /* kept */
    assert_int_equal(sink->ops->format(sink, &f, &res), 0);
    assert_string_equal(str(res, "resourceType"), "DetectedIssue");
    json_decref(res);
    pw_sink_free(sink);

    assert_int_equal(pw_sink_new(&sink, "auto", NULL), 0);
    assert_ptr_equal(pw_sink_choose_target(sink, &flag_only), &pw_sink_fhir_flag);
    pw_sink_free(sink);
    assert_int_equal(pw_sink_new(&sink, "auto", NULL), 0);
    assert_ptr_equal(pw_sink_choose_target(sink, &unknown), &pw_sink_fhir_flag);
    pw_sink_free(sink);
}

static void dump(const char *dir, const char *name, json_t *res)
{
    char file[4096];

    snprintf(file, sizeof(file), "%s/%s.json", dir, name);
    assert_int_equal(json_dump_file(res, file, JSON_INDENT(2) | JSON_SORT_KEYS), 0);
}

/* Created and closed (default and site status) samples for the validator. */
static void test_write_samples_for_validator(void **state)
{
    const char *dir = getenv("PW_FLAG_OUT_DIR");
    struct pw_sink *sink;
    struct pw_sink *amend;
    struct pw_finding f[3];
    struct pw_ref mr = ref("MedicationRequest", "mr-7", "1");

    (void)state;
    if (!dir) {
        skip();
    }
    mkdir(dir, 0755);
    sink = new_sink(NULL);
    amend = new_sink("amended");
    f[0] = step_finding();
    f[1] = sample("bowel-regimen-missing", PW_SEV_MEDIUM, "Opioid for 30 h without a laxative.");
    add_evidence(&f[1], &mr);
    f[2] = sample("pain-uncontrolled-no-titration", PW_SEV_LOW, "Pain 8/10 on two scores.");
    f[2].since = PW_TIME_NONE;
    for (size_t i = 0; i < 3; i++) {
        json_t *created = NULL;
        json_t *closed = NULL;
        char name[160];

        assert_int_equal(pw_sink_format(sink, &f[i], &created), 0);
        assert_int_equal(
            pw_sink_update(i == 1 ? amend : sink, created, PW_OUTBOX_RESOLVE, T_END, &closed), 0);
        snprintf(name, sizeof(name), "di-%s.created", f[i].rule);
        dump(dir, name, created);
        snprintf(name, sizeof(name), "di-%s.closed", f[i].rule);
        dump(dir, name, closed);
        json_decref(created);
        json_decref(closed);
    }
    pw_sink_free(sink);
    pw_sink_free(amend);
}

int main(void)
{
    /* Narratives are in the configured zone; these expectations are in UTC. */
    if (pw_timezone_set("UTC") != 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content),          cmocka_unit_test(test_severity_mapping),
        cmocka_unit_test(test_close_and_reopen), cmocka_unit_test(test_read_back),
        cmocka_unit_test(test_per_rule_target),  cmocka_unit_test(test_from_conf),
        cmocka_unit_test(test_auto_choice),      cmocka_unit_test(test_write_samples_for_validator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
