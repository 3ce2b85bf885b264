/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A Flag for every rule: each rule case that fires (tests/daemon/clinical/rules/cases) goes
 * through the real normalize and engine, and every finding becomes a Flag (created and resolved)
 * through the fhir-flag sink. Every registered rule must yield at least one Flag. With
 * PW_FLAG_OUT_DIR set, the Flags are written to $PW_FLAG_OUT_DIR/rules for the FHIR R4 validator
 * (tests/adapters/tests.cmake).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "painwatch/engine.h"
#include "painwatch/fhir.h"
#include "painwatch/normalize.h"
#include "painwatch/sink.h"
#include "painwatch/terminology.h"
#include "support/pwtest.h"

#define CASES_DIR    "tests/daemon/clinical/rules/cases"
#define MAX_PATIENTS 8
#define MAX_RULES    64

struct ctx {
    struct pw_terminology *term;
    struct pw_sink *sink;
    const char *out_dir; /* NULL: do not write */
    const char *rule_seen[MAX_RULES];
    size_t n_seen;
    size_t flags;
};

static bool is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static struct pw_timeline *timeline_for(struct pw_timeline *tl, size_t *n, const char *patient)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(tl[i].patient, patient) == 0) {
            return &tl[i];
        }
    }
    assert_true(*n < MAX_PATIENTS);
    pw_timeline_init(&tl[*n], patient);
    return &tl[(*n)++];
}

static size_t normalize_bundle(struct ctx *c, json_t *bundle, struct pw_timeline *tl)
{
    struct pw_norm_ctx nctx;
    struct pw_fhir_index *idx = NULL;
    struct pw_resolver refs;
    json_t *entries = json_object_get(bundle, "entry");
    json_t *e;
    size_t i;
    size_t n = 0;

    assert_int_equal(pw_norm_ctx_init(&nctx, c->term, "cdc2022"), 0);
    assert_int_equal(pw_fhir_index_new(&idx), 0);
    json_array_foreach(entries, i, e)
    {
        assert_int_equal(
            pw_fhir_index_add(idx, pw_fhir_str(e, "fullUrl"), json_object_get(e, "resource")), 0);
    }
    pw_fhir_index_resolver(idx, &refs);
    json_array_foreach(entries, i, e)
    {
        json_t *res = json_object_get(e, "resource");
        char patient[PW_REF_MAX];

        if (pw_normalize_patient(res, &refs, patient, sizeof(patient)) == 0) {
            assert_int_equal(
                pw_normalize_resource(&nctx, res, &refs, timeline_for(tl, &n, patient)), 0);
        }
    }
    for (size_t k = 0; k < n; k++) {
        pw_timeline_sort(&tl[k]);
    }
    pw_fhir_index_free(idx);
    pw_norm_ctx_cleanup(&nctx);
    return n;
}

static void seen(struct ctx *c, const char *rule)
{
    for (size_t i = 0; i < c->n_seen; i++) {
        if (strcmp(c->rule_seen[i], rule) == 0) {
            return;
        }
    }
    assert_true(c->n_seen < MAX_RULES);
    c->rule_seen[c->n_seen++] = rule; /* static rule id */
}

static void write_flag(const struct ctx *c, const char *name, const json_t *flag)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s/rules/%s.json", c->out_dir, name);
    assert_int_equal(json_dump_file(flag, path, JSON_INDENT(2) | JSON_SORT_KEYS), 0);
}

/* Format every finding of one case; check the essentials; write the Flags when asked. */
static void flags_for(struct ctx *c, const char *rule_dir, const char *case_dir,
                      const struct pw_findings *fs, int64_t at)
{
    for (size_t i = 0; i < fs->n; i++) {
        const struct pw_finding *f = &fs->v[i];
        json_t *created = NULL;
        json_t *resolved = NULL;
        char name[1024];

        assert_int_equal(c->sink->ops->format(c->sink, f, &created), 0);
        assert_string_equal(
            json_string_value(json_object_get(
                json_array_get(json_object_get(created, "identifier"), 0), "value")),
            f->key);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(created, "subject"), "reference")),
            f->patient);
        assert_int_equal(
            c->sink->ops->update(c->sink, created, PW_OUTBOX_RESOLVE, at + 3600, &resolved), 0);
        if (c->out_dir) {
            snprintf(name, sizeof(name), "%s--%s--%s--%zu.created", rule_dir, case_dir, f->rule, i);
            write_flag(c, name, created);
            snprintf(name, sizeof(name), "%s--%s--%s--%zu.resolved", rule_dir, case_dir, f->rule,
                     i);
            write_flag(c, name, resolved);
        }
        seen(c, f->rule);
        c->flags++;
        json_decref(created);
        json_decref(resolved);
    }
}

static void run_case(struct ctx *c, const char *rule_dir, const char *case_dir)
{
    char path[2048];
    json_t *exp;
    json_t *bundle;
    struct pw_timeline tl[MAX_PATIENTS];
    struct pw_engine *engine = NULL;
    struct pw_findings fs = {0};
    int64_t at = 0;
    size_t n;

    snprintf(path, sizeof(path), "%s/%s/%s/expected.json", pwt_src_path(CASES_DIR), rule_dir,
             case_dir);
    exp = json_load_file(path, 0, NULL);
    assert_non_null(exp);
    if (json_array_size(json_object_get(exp, "findings")) == 0) {
        json_decref(exp); /* a case that must not fire */
        return;
    }
    assert_int_equal(pw_fhir_parse_time(json_string_value(json_object_get(exp, "at")), &at), 0);
    snprintf(path, sizeof(path), "%s/%s/%s/input.json", pwt_src_path(CASES_DIR), rule_dir,
             case_dir);
    bundle = json_load_file(path, 0, NULL);
    assert_non_null(bundle);
    n = normalize_bundle(c, bundle, tl);
    assert_int_equal(pw_engine_new(&engine, "cdc2022"), 0);
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(pw_engine_eval(engine, &tl[k], at, &fs), 0);
        pw_timeline_cleanup(&tl[k]);
    }
    flags_for(c, rule_dir, case_dir, &fs, at);
    pw_findings_cleanup(&fs);
    pw_engine_free(engine);
    json_decref(bundle);
    json_decref(exp);
}

static void test_a_flag_for_every_rule(void **state)
{
    struct ctx c = {.out_dir = getenv("PW_FLAG_OUT_DIR")};
    struct pw_sink_conf sc = {.author = "Device/painwatch", .author_display = "painwatch"};
    char err[512];
    DIR *rules;
    struct dirent *rd;
    size_t n_rules = 0;
    const struct pw_rule *const *all = pw_rules_all(&n_rules);

    (void)state;
    assert_int_equal(
        pw_terminology_load(&c.term, pwt_src_path("config/terminology"), err, sizeof(err)), 0);
    assert_int_equal(pw_sink_new(&c.sink, "fhir-flag", &sc), 0);
    if (c.out_dir) {
        char sub[4096];

        snprintf(sub, sizeof(sub), "%s/rules", c.out_dir);
        mkdir(c.out_dir, 0755);
        mkdir(sub, 0755);
    }
    rules = opendir(pwt_src_path(CASES_DIR));
    assert_non_null(rules);
    while ((rd = readdir(rules)) != NULL) {
        char rule_path[1400];
        DIR *cases;
        struct dirent *cd;

        snprintf(rule_path, sizeof(rule_path), "%s/%s", pwt_src_path(CASES_DIR), rd->d_name);
        if (rd->d_name[0] == '.' || !is_dir(rule_path) || !(cases = opendir(rule_path))) {
            continue;
        }
        while ((cd = readdir(cases)) != NULL) {
            char case_path[2048];

            snprintf(case_path, sizeof(case_path), "%s/%s", rule_path, cd->d_name);
            if (cd->d_name[0] != '.' && is_dir(case_path)) {
                run_case(&c, rd->d_name, cd->d_name);
            }
        }
        closedir(cases);
    }
    closedir(rules);
    for (size_t i = 0; i < n_rules; i++) {
        bool found = false;

        for (size_t k = 0; k < c.n_seen && !found; k++) {
            found = strcmp(c.rule_seen[k], all[i]->id) == 0;
        }
        if (!found) {
            fail_msg("rule %s produced no Flag from its cases", all[i]->id);
        }
    }
    print_message("%zu Flags from %zu rules\n", c.flags, c.n_seen);
    pw_sink_free(c.sink);
    pw_terminology_free(c.term);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_flag_for_every_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
