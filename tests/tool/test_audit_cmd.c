/* SPDX-License-Identifier: Apache-2.0 */
/* `painwatch audit verify|show` as an auditor runs it: exit codes, file:line verdicts, filters,
 * and the committed fixture trail (format stability). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <jansson.h>

#include "core/audit_int.h"
#include "painwatch/audit.h"
#include "painwatch/err.h"
#include "support/pwtest.h"

#define HOUR_MS 3600000

static int64_t now_ms;

static int64_t test_clock(void)
{
    return now_ms;
}

struct ctx {
    char *dir;
    char trail[4200];
    char key[4200];
};

/* Run a shell command; stdout into *out (caller frees). Returns the exit status. */
static int run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(char **out, const char *fmt, ...)
{
    char cmd[16384];
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    va_list ap;
    FILE *p;
    int status;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    p = popen(cmd, "r");
    assert_non_null(p);
    while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0) {
        fwrite(chunk, 1, n, mem);
    }
    status = pclose(p);
    fclose(mem);
    if (out) {
        *out = buf;
    } else {
        free(buf);
    }
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static const char *painwatch(void)
{
    const char *p = getenv("PAINWATCH");

    return p ? p : PW_BINARY_DIR "/painwatch";
}

static int count_lines(const char *s)
{
    int n = 0;

    for (; *s; s++) {
        n += *s == '\n';
    }
    return n;
}

static void finding_for(struct pw_finding *f, const char *patient, const char *rule, double mme)
{
    memset(f, 0, sizeof(*f));
    f->rule = rule;
    f->category = "clinical";
    f->severity = PW_SEV_HIGH;
    snprintf(f->patient, sizeof(f->patient), "%s", patient);
    snprintf(f->key, sizeof(f->key), "%s",
             "5e0f1c2b3a4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7");
    snprintf(f->text, sizeof(f->text), "No pain reassessment within 24 h of a dose change");
    f->factor_set = "cdc2022";
    f->numbers[0].name = "baseline_mme_per_day";
    f->numbers[0].value = mme;
    f->n_numbers = 1;
}

static void search_for(struct pw_audit *a, const char *patient)
{
    char url[256];
    struct pw_audit_fhir ix = {.interaction = "search",
                               .server = "https://ehr.example.org/fhir",
                               .method = "GET",
                               .url = url,
                               .status = 200,
                               .patient = patient,
                               .entries = 4};

    snprintf(url, sizeof(url), "Observation?subject=%s&code=72514-3", patient);
    assert_int_equal(pw_audit_fhir_interaction(a, &ix), 0);
}

/* Eight records over two days, two patients, two rules. */
static void write_trail(struct ctx *c)
{
    struct pw_audit_opts opts = {
        .path = c->trail, .key_path = c->key, .device = "Device/painwatch", .clock_ms = test_clock};
    struct pw_audit_flag flag = {.subtype = "flag-delivered",
                                 .action = 'C',
                                 .server = "https://ehr.example.org/fhir",
                                 .patient = "Patient/A",
                                 .rule = "reassess-after-dose-change/1",
                                 .flag = "Flag/f1/_history/1",
                                 .status = 201};
    struct pw_finding f;
    struct pw_audit *a = NULL;
    int64_t t0;

    assert_int_equal(pw_audit_parse_time("2026-11-20T08:00:00Z", &t0), 0);
    now_ms = t0;
    assert_int_equal(pw_audit_open(&a, &opts), 0);
    assert_int_equal(pw_audit_event(a, "start", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    now_ms = t0 + 1 * HOUR_MS;
    search_for(a, "Patient/A");
    now_ms = t0 + 2 * HOUR_MS;
    finding_for(&f, "Patient/A", "reassess-after-dose-change/1", 67.5);
    assert_int_equal(pw_audit_finding(a, "finding-raised", &f, NULL), 0);
    now_ms = t0 + 3 * HOUR_MS;
    assert_int_equal(pw_audit_flag(a, &flag), 0);
    now_ms = t0 + 4 * HOUR_MS;
    search_for(a, "Patient/B");
    now_ms = t0 + 5 * HOUR_MS;
    finding_for(&f, "Patient/B", "opioid-without-laxative/1", 120);
    assert_int_equal(pw_audit_finding(a, "finding-raised", &f, NULL), 0);
    now_ms = t0 + 26 * HOUR_MS;
    finding_for(&f, "Patient/A", "reassess-after-dose-change/1", 67.5);
    assert_int_equal(pw_audit_finding(a, "finding-resolved", &f, NULL), 0);
    assert_int_equal(pw_audit_event(a, "stop", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    pw_audit_free(a);
}

static int setup(void **state)
{
    struct ctx *c = calloc(1, sizeof(*c));

    c->dir = pwt_mkdtemp();
    snprintf(c->trail, sizeof(c->trail), "%s/trail.jsonl", c->dir);
    snprintf(c->key, sizeof(c->key), "%s/audit.key", c->dir);
    pwt_write_file(c->key, "0123456789abcdef0123456789abcdef\n");
    assert_int_equal(chmod(c->key, 0600), 0);
    write_trail(c);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    struct ctx *c = *state;

    pwt_rmtree(c->dir);
    free(c->dir);
    free(c);
    return 0;
}

static void test_verify_exit_codes(void **state)
{
    struct ctx *c = *state;
    char *out;
    char *text;
    char *third;
    char *fourth;

    assert_int_equal(run(&out, "%s audit verify --key %s %s", painwatch(), c->key, c->trail), 0);
    assert_non_null(strstr(out, "OK: 9 records in 1 files verify"));
    free(out);

    /* Delete line 4: the record now on line 4 is reported, with the file name. */
    text = pwt_read_file(c->trail, NULL);
    third = strchr(strchr(strchr(text, '\n') + 1, '\n') + 1, '\n') + 1;
    fourth = strchr(third, '\n') + 1;
    memmove(third, fourth, strlen(fourth) + 1);
    pwt_write_file(c->trail, text);
    free(text);
    assert_int_equal(run(&out, "%s audit verify --key %s %s", painwatch(), c->key, c->trail), 1);
    assert_non_null(strstr(out, "trail.jsonl:4: authentic record out of place"));
    free(out);

    /* Usage and unreadable input: 2. */
    assert_int_equal(run(NULL, "%s audit verify %s 2>/dev/null", painwatch(), c->trail), 2);
    assert_int_equal(run(NULL, "%s audit verify --key %s 2>/dev/null", painwatch(), c->key), 2);
    assert_int_equal(
        run(NULL, "%s audit verify --key %s %s/nope 2>/dev/null", painwatch(), c->key, c->dir), 2);
    assert_int_equal(chmod(c->key, 0604), 0);
    assert_int_equal(
        run(NULL, "%s audit verify --key %s %s 2>/dev/null", painwatch(), c->key, c->trail), 2);
    assert_int_equal(run(NULL, "%s audit 2>/dev/null", painwatch()), 2);
    assert_int_equal(run(NULL, "%s audit frobnicate 2>/dev/null", painwatch()), 2);
}

static void test_show_filters(void **state)
{
    struct ctx *c = *state;
    char *out;

    /* Everything: a heading and the eight events (the file header is not an event). */
    assert_int_equal(run(&out, "%s audit show %s", painwatch(), c->trail), 0);
    assert_int_equal(count_lines(out), 9);
    assert_non_null(strstr(out, "fhir-search"));
    assert_non_null(strstr(out, "Observation?subject=Patient/A&code=72514-3"));
    assert_non_null(strstr(out, "baseline_mme_per_day=67.5"));
    assert_non_null(strstr(out, "Flag/f1/_history/1"));
    assert_non_null(strstr(out, "2026-11-20T11:00:00.000Z"));
    free(out);

    assert_int_equal(run(&out, "%s audit show --patient Patient/A %s", painwatch(), c->trail), 0);
    assert_int_equal(count_lines(out), 1 + 4);
    assert_null(strstr(out, "Patient/B"));
    free(out);
    assert_int_equal(run(&out, "%s audit show --patient B %s", painwatch(), c->trail), 0);
    assert_int_equal(count_lines(out), 1 + 2);
    free(out);

    assert_int_equal(
        run(&out, "%s audit show --rule reassess-after-dose-change/1 %s", painwatch(), c->trail),
        0);
    assert_int_equal(count_lines(out), 1 + 3);
    assert_null(strstr(out, "opioid-without-laxative"));
    free(out);

    /* since inclusive, until exclusive; offsets are honoured. */
    assert_int_equal(run(&out, "%s audit show --since 2026-11-20T11:00:00Z --until 2026-11-21 %s",
                         painwatch(), c->trail),
                     0);
    assert_int_equal(count_lines(out), 1 + 3);
    free(out);
    assert_int_equal(
        run(&out, "%s audit show --since 2026-11-20T12:00:00+01:00 %s", painwatch(), c->trail), 0);
    assert_int_equal(count_lines(out), 1 + 3 + 2);
    free(out);
    assert_int_equal(
        run(&out, "%s audit show --patient Patient/A --since 2026-11-21 %s", painwatch(), c->trail),
        0);
    assert_int_equal(count_lines(out), 1 + 1);
    assert_non_null(strstr(out, "finding-resolved"));
    free(out);

    assert_int_equal(
        run(NULL, "%s audit show --since yesterday %s 2>/dev/null", painwatch(), c->trail), 2);
    assert_int_equal(run(NULL, "%s audit show --format xml %s 2>/dev/null", painwatch(), c->trail),
                     2);
    assert_int_equal(run(NULL, "%s audit show %s/nope 2>/dev/null", painwatch(), c->dir), 2);
}

static void test_show_json(void **state)
{
    struct ctx *c = *state;
    char *out;
    char *line;
    char *save = NULL;
    int n = 0;

    assert_int_equal(
        run(&out, "%s audit show --format json --patient Patient/B %s", painwatch(), c->trail), 0);
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *rec = json_loads(line, 0, NULL);
        json_t *ent;
        assert_non_null(rec);
        assert_true(pw_audit_is_digest(json_string_value(json_object_get(rec, "hmac"))));
        ent = json_array_get(json_object_get(rec, "entity"), 0);
        assert_string_equal(json_string_value(json_object_get(ent, "what")), "Patient/B");
        json_decref(rec);
        n++;
    }
    assert_int_equal(n, 2);
    free(out);
}

/* The committed fixture was written by this format's writer: it must keep verifying. */
static void test_fixture_trail(void **state)
{
    struct ctx *c = *state;
    char key[4300];
    char live[4300];
    char rotated[4300];
    char *text;
    char *out;

    snprintf(key, sizeof(key), "%s/fixture.key", c->dir);
    text = pwt_read_file(pwt_src_path("tests/fixtures/audit/audit.key"), NULL);
    pwt_write_file(key, text);
    free(text);
    assert_int_equal(chmod(key, 0600), 0);
    /* pwt_src_path() returns a static buffer: one path per call. */
    snprintf(live, sizeof(live), "%s", pwt_src_path("tests/fixtures/audit/trail.jsonl"));
    snprintf(rotated, sizeof(rotated), "%s", pwt_src_path("tests/fixtures/audit/trail.jsonl.0"));
    assert_int_equal(run(&out, "%s audit verify --key %s %s %s", painwatch(), key, live, rotated),
                     0);
    assert_non_null(strstr(out, "in 2 files verify"));
    free(out);
    assert_int_equal(run(&out, "%s audit verify --key %s %s", painwatch(), key,
                         pwt_src_path("tests/fixtures/audit/tampered.jsonl")),
                     1);
    assert_non_null(strstr(out, "tampered.jsonl:5: HMAC does not verify"));
    free(out);
}

/* With --config the key and the trail (live file + rotations beside it) come from the
 * daemon's configuration, as an operator would run it on the host. */
static void test_verify_from_config(void **state)
{
    struct ctx *c = *state;
    struct pw_audit_opts opts = {.device = "Device/painwatch", .clock_ms = test_clock};
    struct pw_audit *a = NULL;
    char audit_dir[4300];
    char path[4400];
    char conf[4300];
    char other[4400];
    char yaml[16384];
    char *out;

    snprintf(audit_dir, sizeof(audit_dir), "%s/audit", c->dir);
    assert_int_equal(mkdir(audit_dir, 0700), 0);
    snprintf(path, sizeof(path), "%s/trail.jsonl", audit_dir);
    opts.path = path;
    opts.key_path = c->key;
    assert_int_equal(pw_audit_open(&a, &opts), 0);
    search_for(a, "Patient/A");
    assert_int_equal(pw_audit_rotate(a), 0);
    search_for(a, "Patient/B");
    pw_audit_free(a);
    /* A compressed rotation is named and skipped; an unrelated file is not picked up. */
    snprintf(other, sizeof(other), "%s/trail.jsonl.7.gz", audit_dir);
    pwt_write_file(other, "not gzip either");
    snprintf(other, sizeof(other), "%s/trailer.txt", audit_dir);
    pwt_write_file(other, "unrelated");

    snprintf(conf, sizeof(conf), "%s/painwatch.yaml", c->dir);
    snprintf(yaml, sizeof(yaml),
             "state_dir: %s\n"
             "servers:\n"
             "  - name: ehr\n"
             "    base_url: https://ehr.example.org/fhir\n"
             "    auth:\n"
             "      type: none\n"
             "    cohort:\n"
             "      type: server-wide\n"
             "audit:\n"
             "  path: %s\n"
             "  key_file: %s\n",
             c->dir, path, c->key);
    pwt_write_file(conf, yaml);
    assert_int_equal(run(&out, "%s audit verify --config %s 2>/dev/null", painwatch(), conf), 0);
    assert_non_null(strstr(out, "OK: 4 records in 2 files verify"));
    free(out);
    /* Files given on the command line win over the configured trail. */
    assert_int_equal(run(&out, "%s audit verify --config %s %s", painwatch(), conf, path), 0);
    assert_non_null(strstr(out, "OK: 2 records in 1 files verify"));
    free(out);
    assert_int_equal(
        run(NULL, "%s audit verify --config %s/nope.yaml 2>/dev/null", painwatch(), c->dir), 2);
}

/*
 * A "data-quality" record (the daemon's, pw_audit_data_quality) as an auditor meets it: listed
 * with its code and detail, filtered by patient, and the trail still verifies.
 */
static void test_show_data_quality(void **state)
{
    struct ctx *c = *state;
    char trail[4200];
    struct pw_audit_opts opts = {
        .path = trail, .key_path = c->key, .device = "Device/painwatch", .clock_ms = test_clock};
    struct pw_dq_event ev = {.code = "unstructured-sig",
                             .src = {.type = "MedicationRequest", .id = "mr-7", .version = "2"},
                             .detail = "no structured dose (free-text sig only)"};
    struct pw_dq_event scope = {.code = "out-of-scope",
                                .src = {.type = "Patient", .id = "B"},
                                .detail = "no active malignant neoplasm"};
    struct pw_audit *a = NULL;
    char *out;

    snprintf(trail, sizeof(trail), "%s/dq.jsonl", c->dir);
    assert_int_equal(pw_audit_parse_time("2026-11-22T08:00:00Z", &now_ms), 0);
    assert_int_equal(pw_audit_open(&a, &opts), 0);
    assert_int_equal(pw_audit_data_quality(a, "Patient/A", &ev), 0);
    assert_int_equal(pw_audit_data_quality(a, "Patient/B", &scope), 0);
    assert_int_equal(pw_audit_data_quality(a, "", &scope), PW_EINVAL);
    pw_audit_free(a);

    assert_int_equal(run(&out, "%s audit show --patient Patient/A %s", painwatch(), trail), 0);
    assert_int_equal(count_lines(out), 1 + 1);
    assert_non_null(strstr(out, "data-quality"));
    assert_non_null(strstr(out, "MedicationRequest/mr-7/_history/2"));
    assert_non_null(strstr(out, "unstructured-sig"));
    assert_non_null(strstr(out, "free-text sig only"));
    free(out);
    /* The patient-level event names the patient once, as the patient (no resource entity). */
    assert_int_equal(run(&out, "%s audit show --format json --patient B %s", painwatch(), trail),
                     0);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "\"subtype\":\"data-quality\""));
    assert_non_null(strstr(out, "\"code\":\"out-of-scope\""));
    assert_null(strstr(out, "\"role\":\"resource\""));
    free(out);
    assert_int_equal(run(&out, "%s audit verify --key %s %s", painwatch(), c->key, trail), 0);
    assert_non_null(strstr(out, "OK: 3 records in 1 files verify"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_verify_exit_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_show_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_show_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_show_data_quality, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fixture_trail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_from_config, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
