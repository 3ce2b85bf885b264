/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fhir-flag sink: Flag content (identifier, status, category, code, subject, period, author,
 * priority and evidence extensions, escaped narrative), resolve/reactivate updates, classify.
 * With PW_FLAG_OUT_DIR set it also writes one Flag per sample finding there (created and
 * resolved), for the FHIR R4 validator run by tests/adapters/tests.cmake.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "painwatch/err.h"
#include "painwatch/localtime.h"
#include "painwatch/sink.h"
#include "painwatch/timeline.h"
#include "support/pwtest.h"

static struct pw_sink *new_sink(void)
{
    struct pw_sink_conf conf = {.author = "Device/pw-gw-1", .author_display = "painwatch gateway"};
    struct pw_sink *sink = NULL;

    assert_int_equal(pw_sink_new(&sink, "fhir-flag", &conf), 0);
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

static struct pw_finding sample(const char *rule, const char *category, enum pw_severity sev,
                                const char *text)
{
    struct pw_finding f = {.rule = rule,
                           .category = category,
                           .severity = sev,
                           .since = 1767225600, /* 2026-01-01T00:00:00Z */
                           .factor_set = "cdc2022"};

    snprintf(f.patient, sizeof(f.patient), "Patient/p-42");
    snprintf(f.key, sizeof(f.key), "%.12s%052d", rule, 7);
    snprintf(f.text, sizeof(f.text), "%s", text);
    return f;
}

/* Local helpers: the test fills findings the way the engine does, without linking the engine. */
static void add_evidence(struct pw_finding *f, const struct pw_ref *r)
{
    f->evidence[f->n_evidence++] = *r;
}

static void add_number(struct pw_finding *f, const char *name, double value)
{
    f->numbers[f->n_numbers++] = (struct pw_number){.name = name, .value = value};
}

static json_t *path(json_t *root, const char *p)
{
    /* "a.0.b": object keys and array indexes. */
    char buf[256];
    json_t *cur = root;

    snprintf(buf, sizeof(buf), "%s", p);
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, ".")) {
        if (json_is_array(cur)) {
            cur = json_array_get(cur, strtoul(tok, NULL, 10));
        } else {
            cur = json_object_get(cur, tok);
        }
    }
    return cur;
}

static const char *str(json_t *root, const char *p)
{
    const char *s = json_string_value(path(root, p));

    if (!s) {
        fail_msg("no string at %s", p);
    }
    return s;
}

static void test_flag_content(void **state)
{
    struct pw_sink *sink = new_sink();
    struct pw_finding f = sample("opioid-benzo-coprescribed", "drug", PW_SEV_HIGH,
                                 "Opioid <90 MME/day> & benzodiazepine \"together\"");
    struct pw_ref o1 = ref("MedicationRequest", "mr-1", "3");
    struct pw_ref o2 = ref("MedicationRequest", "mr-2", "");
    json_t *flag = NULL;
    const char *div;

    (void)state;
    add_evidence(&f, &o1);
    add_evidence(&f, &o2);
    add_number(&f, "baseline_mme_per_day", 90);
    add_number(&f, "diazepam_mg_per_day", 12.5);
    /* issue 21: what the engine fills (pw_finding_complete) */
    snprintf(f.summary, sizeof(f.summary), "Opioid (90 MME/day) and diazepam ordered together");
    snprintf(f.evidence_text[0], sizeof(f.evidence_text[0]),
             "oxycodone ER 20 mg q12h, ordered 5 Dec 15:14");
    snprintf(f.encounter, sizeof(f.encounter), "Encounter/stay-1");
    assert_int_equal(sink->ops->format(sink, &f, &flag), 0);

    assert_string_equal(str(flag, "resourceType"), "Flag");
    assert_null(json_object_get(flag, "id"));
    assert_string_equal(str(flag, "identifier.0.system"), PW_FLAG_IDENTIFIER_SYSTEM);
    assert_string_equal(str(flag, "identifier.0.value"), f.key);
    assert_string_equal(str(flag, "status"), "active");
    assert_string_equal(str(flag, "category.0.coding.0.system"),
                        "http://terminology.hl7.org/CodeSystem/flag-category");
    assert_string_equal(str(flag, "category.0.coding.0.code"), "drug");
    assert_string_equal(str(flag, "code.coding.0.system"), PW_FLAG_CODE_SYSTEM);
    assert_string_equal(str(flag, "code.coding.0.code"), "opioid-benzo-coprescribed");
    /* issue 21: the banner is the summary; the full text is in the narrative */
    assert_string_equal(str(flag, "code.text"), f.summary);
    assert_string_equal(str(flag, "encounter.reference"), "Encounter/stay-1");
    assert_string_equal(str(flag, "subject.reference"), "Patient/p-42");
    assert_string_equal(str(flag, "period.start"), "2026-01-01T00:00:00Z");
    assert_null(path(flag, "period.end"));
    assert_string_equal(str(flag, "author.reference"), "Device/pw-gw-1");
    assert_string_equal(str(flag, "author.display"), "painwatch gateway");

    assert_int_equal(json_array_size(json_object_get(flag, "extension")), 3);
    assert_string_equal(str(flag, "extension.0.url"),
                        "http://hl7.org/fhir/StructureDefinition/flag-priority");
    assert_string_equal(str(flag, "extension.0.valueCodeableConcept.coding.0.system"),
                        "http://hl7.org/fhir/flag-priority-code");
    assert_string_equal(str(flag, "extension.0.valueCodeableConcept.coding.0.code"), "PH");
    assert_string_equal(str(flag, "extension.1.url"),
                        "http://hl7.org/fhir/StructureDefinition/flag-detail");
    assert_string_equal(str(flag, "extension.1.valueReference.reference"),
                        "MedicationRequest/mr-1/_history/3");
    assert_string_equal(str(flag, "extension.2.valueReference.reference"),
                        "MedicationRequest/mr-2");

    assert_string_equal(str(flag, "text.status"), "generated");
    div = str(flag, "text.div");
    assert_non_null(strstr(div, "<div xmlns=\"http://www.w3.org/1999/xhtml\">"));
    assert_non_null(
        strstr(div, "Opioid &lt;90 MME/day&gt; &amp; benzodiazepine &quot;together&quot;"));
    assert_null(strstr(div, "<90"));
    /* issue 21: figures under clinical names, evidence in words with the reference beside it,
     * no internal names and no raw _history ids */
    assert_non_null(strstr(div, "Baseline opioid (MME/day): 90<"));
    assert_non_null(strstr(div, "Diazepam mg per day: 12.5<"));
    assert_null(strstr(div, "_mme_per_day"));
    assert_null(strstr(div, "_history"));
    assert_non_null(strstr(div, "cdc2022"));
    assert_non_null(
        strstr(div, "oxycodone ER 20 mg q12h, ordered 5 Dec 15:14 (MedicationRequest/mr-1)"));
    assert_non_null(strstr(div, "<li>MedicationRequest/mr-2</li>"));
    assert_non_null(strstr(div, "Times are local (UTC)"));
    assert_string_equal(div + strlen(div) - 6, "</div>");
    json_decref(flag);
    pw_sink_free(sink);
}

static void test_priority_from_severity(void **state)
{
    static const struct {
        enum pw_severity sev;
        const char *code;
    } cases[] = {
        {PW_SEV_INFO, "PN"}, {PW_SEV_LOW, "PL"}, {PW_SEV_MEDIUM, "PM"}, {PW_SEV_HIGH, "PH"}};
    struct pw_sink *sink = new_sink();

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pw_finding f = sample("r", "clinical", cases[i].sev, "t");
        json_t *flag = NULL;

        assert_int_equal(sink->ops->format(sink, &f, &flag), 0);
        assert_string_equal(str(flag, "extension.0.valueCodeableConcept.coding.0.code"),
                            cases[i].code);
        assert_string_equal(str(flag, "category.0.coding.0.code"), "clinical");
        json_decref(flag);
    }
    pw_sink_free(sink);
}

static void test_resolve_and_reactivate(void **state)
{
    struct pw_sink *sink = new_sink();
    struct pw_finding f = sample("reassessment-overdue", "clinical", PW_SEV_MEDIUM, "overdue");
    json_t *created = NULL;
    json_t *resolved = NULL;
    json_t *early = NULL;
    json_t *again = NULL;

    (void)state;
    assert_int_equal(sink->ops->format(sink, &f, &created), 0);
    json_object_set_new(created, "id", json_string("srv-1"));
    assert_int_equal(sink->ops->update(sink, created, PW_OUTBOX_RESOLVE, f.since + 3600, &resolved),
                     0);
    assert_string_equal(str(resolved, "status"), "inactive");
    assert_string_equal(str(resolved, "period.start"), "2026-01-01T00:00:00Z");
    assert_string_equal(str(resolved, "period.end"), "2026-01-01T01:00:00Z");
    assert_null(json_object_get(resolved, "id"));
    assert_non_null(
        strstr(str(resolved, "text.div"), "Resolved by painwatch on 1 Jan 2026 01:00 (UTC)"));
    assert_string_equal(str(resolved, "identifier.0.value"), f.key);
    /* The created Flag is left as it was. */
    assert_string_equal(str(created, "status"), "active");
    assert_null(path(created, "period.end"));

    /* A clock behind period.start never yields end < start. */
    assert_int_equal(sink->ops->update(sink, created, PW_OUTBOX_RESOLVE, f.since - 60, &early), 0);
    assert_string_equal(str(early, "period.end"), "2026-01-01T00:00:00Z");

    assert_int_equal(sink->ops->update(sink, resolved, PW_OUTBOX_REACTIVATE, 0, &again), 0);
    assert_string_equal(str(again, "status"), "active");
    assert_null(path(again, "period.end"));
    /* The narrative is open again too: the closing line goes. */
    assert_string_equal(str(again, "text.div"), str(created, "text.div"));
    assert_int_equal(sink->ops->update(sink, created, PW_OUTBOX_CREATE, 0, &again), PW_EINVAL);
    json_decref(created);
    json_decref(resolved);
    json_decref(early);
    json_decref(again);
    pw_sink_free(sink);
}

static void test_unusable_finding_refused(void **state)
{
    struct pw_sink *sink = new_sink();
    struct pw_finding f = sample("r", "clinical", PW_SEV_LOW, "t");
    json_t *flag = NULL;

    (void)state;
    f.key[0] = '\0';
    assert_int_equal(sink->ops->format(sink, &f, &flag), PW_EINVAL);
    assert_null(flag);
    pw_sink_free(sink);
}

static void test_classify(void **state)
{
    struct pw_sink *sink = new_sink();
    static const long delivered[] = {200, 201, 204};
    static const long retry[] = {408, 429, 500, 502, 503, 504};
    static const long rejected[] = {400, 401, 403, 404, 409, 412, 422};

    (void)state;
    for (size_t i = 0; i < sizeof(delivered) / sizeof(delivered[0]); i++) {
        assert_int_equal(sink->ops->classify(sink, 0, delivered[i]), PW_DELIVERED);
    }
    for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++) {
        assert_int_equal(sink->ops->classify(sink, 0, retry[i]), PW_RETRY);
    }
    for (size_t i = 0; i < sizeof(rejected) / sizeof(rejected[0]); i++) {
        assert_int_equal(sink->ops->classify(sink, 0, rejected[i]), PW_REJECTED);
    }
    assert_int_equal(sink->ops->classify(sink, PW_ETIMEDOUT, 0), PW_RETRY);
    assert_int_equal(sink->ops->classify(sink, PW_EHTTP, 0), PW_RETRY);
    pw_sink_free(sink);
}

static void test_unknown_sink(void **state)
{
    struct pw_sink *sink = NULL;

    (void)state;
    assert_int_equal(pw_sink_new(&sink, "carrier-pigeon", NULL), PW_ECONFIG);
    assert_null(sink);
}

static void dump(const char *dir, const char *name, json_t *flag)
{
    char file[4096];

    snprintf(file, sizeof(file), "%s/%s.json", dir, name);
    assert_int_equal(json_dump_file(flag, file, JSON_INDENT(2) | JSON_SORT_KEYS), 0);
}

/*
 * One Flag per kind of finding the rules produce (drug and clinical, every severity, with and
 * without evidence and numbers), created and resolved, for the schema validator.
 */
static void test_write_samples_for_validator(void **state)
{
    const char *dir = getenv("PW_FLAG_OUT_DIR");
    struct pw_sink *sink;
    struct pw_finding f[4];
    struct pw_ref obs = ref("Observation", "pain-9", "2");
    struct pw_ref mr = ref("MedicationRequest", "mr-7", "1");

    (void)state;
    if (!dir) {
        skip();
    }
    mkdir(dir, 0755); /* may exist from an earlier run: files are overwritten */
    sink = new_sink();
    f[0] = sample("reassessment-overdue", "clinical", PW_SEV_MEDIUM,
                  "No pain reassessment 26 h after the morphine dose change (due within 24 h).");
    add_evidence(&f[0], &mr);
    add_number(&f[0], "hours_since_change", 26);
    f[1] = sample("rescue-dose-out-of-range", "drug", PW_SEV_HIGH,
                  "Rescue dose 30 mg MME is 33% of the 90 mg MME/day baseline (10-20% expected).");
    add_evidence(&f[1], &mr);
    add_number(&f[1], "rescue_pct_of_baseline", 33.3);
    add_number(&f[1], "baseline_mme_per_day", 90);
    f[2] =
        sample("laxative-missing", "drug", PW_SEV_LOW, "Opioid for 30 h without a laxative order.");
    f[3] = sample("uncontrolled-pain", "clinical", PW_SEV_INFO, "Pain 8/10 on two scores.");
    add_evidence(&f[3], &obs);
    f[3].since = PW_TIME_NONE;
    for (size_t i = 0; i < 4; i++) {
        json_t *created = NULL;
        json_t *resolved = NULL;
        char name[128];

        assert_int_equal(sink->ops->format(sink, &f[i], &created), 0);
        assert_int_equal(sink->ops->update(sink, created, PW_OUTBOX_RESOLVE, 1767229200, &resolved),
                         0);
        snprintf(name, sizeof(name), "%s.created", f[i].rule);
        dump(dir, name, created);
        snprintf(name, sizeof(name), "%s.resolved", f[i].rule);
        dump(dir, name, resolved);
        json_decref(created);
        json_decref(resolved);
    }
    pw_sink_free(sink);
}

int main(void)
{
    /* issue 21: narratives are in the configured zone; these expectations are in UTC */
    if (pw_timezone_set("UTC") != 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flag_content),
        cmocka_unit_test(test_priority_from_severity),
        cmocka_unit_test(test_resolve_and_reactivate),
        cmocka_unit_test(test_unusable_finding_refused),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_unknown_sink),
        cmocka_unit_test(test_write_samples_for_validator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
