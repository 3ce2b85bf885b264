/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pipeline.c: a page commits its resources and marks; the patient is evaluated at the end of the
 * cycle; time alone (an injected clock, no new data) raises the reassessment Flag once its
 * threshold passes. Real SQLite store, real terminology, engine and Flag formatter. Every test
 * runs twice: pages put straight into the store, and pages staged for a sorted merge.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "core/pipeline.h"
#include "painwatch/audit.h"
#include "painwatch/engine.h"
#include "painwatch/err.h"
#include "painwatch/fhir.h"
#include "painwatch/metrics.h"
#include "painwatch/normalize.h"
#include "painwatch/sink.h"
#include "painwatch/store.h"
#include "painwatch/terminology.h"
#include "painwatch/timeline.h"
#include "support/pwtest.h"

#define HOUR_MS (3600LL * 1000LL)

static int64_t clock_now_ms;

static int64_t fake_clock(void)
{
    return clock_now_ms;
}

struct fixture {
    char *dir;
    struct pw_store *store;
    struct pw_terminology *term;
    struct pw_engine *engine;
    struct pw_norm_ctx norm;
    struct pw_sink *sink;
    struct pw_pipeline *pipeline;
    struct pw_audit *audit; /* pipeline conf: NULL unless a test opens one */
    struct pw_sync_consumer consumer;
    int64_t t0_ms;        /* the dose change */
    uint64_t stage_from;  /* store opts: 1 stages every page, 0 the default (none here) */
    bool owner_evaluates; /* pipeline conf: on_due set (count_due) */
    int due_calls;
    struct pw_synced synced; /* pipeline conf (issue 17) */
};

static void count_due(void *arg)
{
    ((struct fixture *)arg)->due_calls++;
}

/* A new pipeline on the fixture's store, normalizing with @p factor_set. */
static void restart_with(struct fixture *fx, const char *factor_set)
{
    struct pw_pipeline_conf pc = {0};

    pw_pipeline_free(fx->pipeline);
    pw_norm_ctx_cleanup(&fx->norm);
    assert_int_equal(pw_norm_ctx_init(&fx->norm, fx->term, factor_set), 0);
    pc.store = fx->store;
    pc.engine = fx->engine;
    pc.norm = &fx->norm;
    pc.sink = fx->sink;
    pc.identifier_system = "urn:painwatch:flag-episode";
    pc.reevaluate_ms = 5 * 60 * 1000;
    pc.clock_ms = fake_clock;
    pc.audit = fx->audit;
    pc.on_due = fx->owner_evaluates ? count_due : NULL;
    pc.on_due_arg = fx;
    pc.synced = fx->synced;
    assert_int_equal(pw_pipeline_new(&fx->pipeline, &pc), 0);
    pw_pipeline_consumer(fx->pipeline, &fx->consumer);
}

static int setup_with(void **state, uint64_t stage_from)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    struct pw_store_opts so = {0};
    struct pw_sink_conf sc = {.identifier_system = "urn:painwatch:flag-episode",
                              .author = "Device/painwatch"};
    char err[256] = "";
    int64_t t0;

    assert_non_null(fx);
    fx->stage_from = stage_from;
    fx->dir = pwt_mkdtemp();
    so.dir = fx->dir;
    so.stage_always = stage_from != 0;
    assert_int_equal(pw_store_open(&fx->store, &so), 0);
    assert_int_equal(
        pw_terminology_load(&fx->term, pwt_src_path("config/terminology"), err, sizeof(err)), 0);
    assert_int_equal(pw_engine_new(&fx->engine, "cdc2022"), 0);
    assert_int_equal(pw_sink_new(&fx->sink, "fhir-flag", &sc), 0);
    restart_with(fx, "cdc2022");
    assert_int_equal(pw_fhir_parse_time("2026-03-02T08:00:00Z", &t0), 0);
    fx->t0_ms = t0 * 1000;
    *state = fx;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 0);
}

static int setup_staged(void **state)
{
    return setup_with(state, 1);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    pw_pipeline_free(fx->pipeline);
    pw_audit_free(fx->audit);
    pw_sink_free(fx->sink);
    pw_norm_ctx_cleanup(&fx->norm);
    pw_engine_free(fx->engine);
    pw_terminology_free(fx->term);
    pw_store_close(fx->store);
    pwt_rmtree(fx->dir);
    free(fx->dir);
    free(fx);
    return 0;
}

/* A pain score of 5 an hour before, then morphine ER 30 mg q12h started at t0 (a dose change). */
static json_t *page_resources(void)
{
    json_error_t jerr;
    json_t *a = json_loads(
        "[{\"resourceType\":\"Observation\",\"id\":\"obs-1\",\"meta\":{\"versionId\":\"1\","
        "\"lastUpdated\":\"2026-03-02T07:00:00Z\"},\"status\":\"final\",\"code\":{\"coding\":[{"
        "\"system\":\"http://loinc.org\",\"code\":\"72514-3\"}]},\"subject\":{\"reference\":"
        "\"Patient/p1\"},\"effectiveDateTime\":\"2026-03-02T07:00:00Z\",\"valueQuantity\":{"
        "\"value\":5,\"unit\":\"{score}\"}},"
        "{\"resourceType\":\"MedicationRequest\",\"id\":\"mr-1\",\"meta\":{\"versionId\":\"1\","
        "\"lastUpdated\":\"2026-03-02T08:00:00Z\"},\"status\":\"active\",\"intent\":\"order\","
        "\"medicationCodeableConcept\":{\"coding\":[{\"system\":"
        "\"http://www.nlm.nih.gov/research/umls/rxnorm\",\"code\":\"891885\"}]},\"subject\":{"
        "\"reference\":\"Patient/p1\"},\"authoredOn\":\"2026-03-02T08:00:00Z\","
        "\"dosageInstruction\":[{\"timing\":{\"repeat\":{\"frequency\":1,\"period\":12,"
        "\"periodUnit\":\"h\"}},\"doseAndRate\":[{\"doseQuantity\":{\"value\":1,\"unit\":\"TAB\","
        "\"system\":\"http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm\",\"code\":"
        "\"TAB\"}}]}]}]",
        0, &jerr);

    if (!a) {
        fail_msg("fixture JSON: %s at %d:%d", jerr.text, jerr.line, jerr.column);
    }
    return a;
}

static int page_err;
static int page_done_calls;

static void on_page_done(void *arg, int err)
{
    (void)arg;
    page_err = err;
    page_done_calls++;
}

struct rule_count {
    const char *rule;
    long n;
};

static int count_rule(void *arg, const struct pw_outbox_row *row)
{
    struct rule_count *c = arg;
    if (strcmp(row->rule, c->rule) == 0) {
        c->n++;
    }
    return 0;
}

static long rows_for(struct pw_store *st, const char *rule)
{
    struct rule_count c = {.rule = rule, .n = 0};

    assert_int_equal(pw_store_outbox_list(st, -1, count_rule, &c), 0);
    return c.n;
}

static void test_reassessment_raised_by_time_alone(void **state)
{
    struct fixture *fx = *state;
    struct pw_sync_source src = {.server = "ehr",
                                 .type = "MedicationRequest",
                                 .patient = "p1",
                                 .key = "ehr/MedicationRequest/Patient/p1"};
    struct pw_pipeline_stats ps;
    size_t n = 0;
    char cursor[64];

    /* One hour after the dose change: the page commits, the patient is evaluated at the end of
     * the cycle, and nothing is overdue yet. */
    clock_now_ms = fx->t0_ms + HOUR_MS;
    page_done_calls = 0;
    fx->consumer.on_page(fx->consumer.arg, &src, page_resources(), "{\"cursor\":1}", on_page_done,
                         NULL);
    assert_int_equal(page_done_calls, 1);
    assert_int_equal(page_err, 0);
    assert_int_equal(pw_store_cursor_get(fx->store, src.key, cursor, sizeof(cursor)), 0);
    assert_string_equal(cursor, "{\"cursor\":1}");
    pw_pipeline_stats(fx->pipeline, &ps);
    assert_int_equal(ps.patients_evaluated, 0); /* marked, not yet evaluated */
    fx->consumer.on_cycle_end(fx->consumer.arg, "ehr", 0);
    pw_pipeline_stats(fx->pipeline, &ps);
    assert_int_equal(ps.patients_evaluated, 1);
    assert_int_equal(rows_for(fx->store, "reassessment-overdue-after-dose-change"), 0);
    assert_true(rows_for(fx->store, "rescue-dose-missing") == 1);

    /* 23 hours later, still within the threshold: re-evaluated from the store, no Flag yet. */
    clock_now_ms = fx->t0_ms + 23 * HOUR_MS;
    assert_int_equal(pw_pipeline_reevaluate_due(fx->pipeline, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows_for(fx->store, "reassessment-overdue-after-dose-change"), 0);

    /* 25 hours after the change, no pain score since and no new data from the server: the
     * time-driven evaluation raises the reassessment Flag, once. */
    clock_now_ms = fx->t0_ms + 25 * HOUR_MS;
    assert_int_equal(pw_pipeline_reevaluate_due(fx->pipeline, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows_for(fx->store, "reassessment-overdue-after-dose-change"), 1);

    /* Evaluated again later: the same episode, no second row. */
    clock_now_ms = fx->t0_ms + 26 * HOUR_MS;
    assert_int_equal(pw_pipeline_reevaluate_due(fx->pipeline, &n), 0);
    assert_int_equal(rows_for(fx->store, "reassessment-overdue-after-dose-change"), 1);
}

/*
 * Issue 17: absence is evidence only where painwatch looked. The page has a pain score of 5 and
 * no pain type: with Condition synced, pain-type-undocumented fires; without (not in resources),
 * it stays off while the rules that do not rest on Condition still run.
 */
static void page_then_cycle(struct fixture *fx)
{
    struct pw_sync_source src = {.server = "ehr",
                                 .type = "MedicationRequest",
                                 .patient = "p1",
                                 .key = "ehr/MedicationRequest/Patient/p1"};
    clock_now_ms = fx->t0_ms + HOUR_MS;
    fx->consumer.on_page(fx->consumer.arg, &src, page_resources(), "{\"cursor\":1}", on_page_done,
                         NULL);
    assert_int_equal(page_err, 0);
    fx->consumer.on_cycle_end(fx->consumer.arg, "ehr", 0);
}

static void test_unsynced_type_turns_absence_rules_off(void **state)
{
    struct fixture *fx = *state;
    /* pain-type-undocumented is info, audit-only by default (issue 21): posted here */
    pw_engine_set_post_min(fx->engine, PW_SEV_INFO);

    fx->synced =
        (struct pw_synced){.known = true, .synced = PW_RES_OBSERVATION | PW_RES_MEDICATION_REQUEST};
    restart_with(fx, "cdc2022");
    page_then_cycle(fx);
    assert_int_equal(rows_for(fx->store, "pain-type-undocumented"), 0);
    assert_int_equal(rows_for(fx->store, "rescue-dose-missing"), 1);

    /* The same store with Condition synced: the absence now counts. */
    fx->synced.synced |= PW_RES_CONDITION;
    restart_with(fx, "cdc2022");
    size_t n = 0;
    clock_now_ms = fx->t0_ms + 2 * HOUR_MS;
    assert_int_equal(pw_pipeline_evaluate_patient(fx->pipeline, "Patient/p1", clock_now_ms / 1000),
                     0);
    (void)n;
    assert_int_equal(rows_for(fx->store, "pain-type-undocumented"), 1);
}

/* A 403 on one type at run time turns the rules resting on it off until that stream reads. */
static void test_refused_type_turns_absence_rules_off(void **state)
{
    struct fixture *fx = *state;
    /* pain-type-undocumented is info, audit-only by default (issue 21): posted here */
    pw_engine_set_post_min(fx->engine, PW_SEV_INFO);
    struct pw_sync_source cond = {
        .server = "ehr", .type = "Condition", .patient = "p1", .key = "ehr/Condition/Patient/p1"};

    fx->synced = (struct pw_synced){.known = true, .synced = PW_RES_ALL};
    restart_with(fx, "cdc2022");
    fx->consumer.on_type_access(fx->consumer.arg, &cond, 403);
    page_then_cycle(fx);
    assert_int_equal(rows_for(fx->store, "pain-type-undocumented"), 0);
    assert_int_equal(rows_for(fx->store, "rescue-dose-missing"), 1);
    /* The Condition stream reads again: the next evaluation counts the absence. */
    fx->consumer.on_type_access(fx->consumer.arg, &cond, 0);
    clock_now_ms = fx->t0_ms + 2 * HOUR_MS;
    assert_int_equal(pw_pipeline_evaluate_patient(fx->pipeline, "Patient/p1", clock_now_ms / 1000),
                     0);
    assert_int_equal(rows_for(fx->store, "pain-type-undocumented"), 1);
}

/* Bug N1: a Condition stream whose first run failed was never read: the rules resting on the
 * absence of a Condition are off until a run of it completes. A 403 recorded before stays. */
static void test_unread_type_turns_absence_rules_off(void **state)
{
    struct fixture *fx = *state;
    /* pain-type-undocumented is info, audit-only by default (issue 21): posted here */
    pw_engine_set_post_min(fx->engine, PW_SEV_INFO);
    struct pw_sync_source cond = {
        .server = "ehr", .type = "Condition", .patient = "p1", .key = "ehr/Condition/Patient/p1"};

    fx->synced = (struct pw_synced){.known = true, .synced = PW_RES_ALL};
    restart_with(fx, "cdc2022");
    fx->consumer.on_type_access(fx->consumer.arg, &cond, PW_SYNC_TYPE_UNREAD);
    page_then_cycle(fx);
    assert_int_equal(rows_for(fx->store, "pain-type-undocumented"), 0);
    assert_int_equal(rows_for(fx->store, "rescue-dose-missing"), 1);
    /* A run of the Condition stream completes: the next evaluation counts the absence. */
    fx->consumer.on_type_access(fx->consumer.arg, &cond, 0);
    clock_now_ms = fx->t0_ms + 2 * HOUR_MS;
    assert_int_equal(pw_pipeline_evaluate_patient(fx->pipeline, "Patient/p1", clock_now_ms / 1000),
                     0);
    assert_int_equal(rows_for(fx->store, "pain-type-undocumented"), 1);
}

static void test_page_failure_commits_nothing(void **state)
{
    struct fixture *fx = *state;
    struct pw_sync_source src = {
        .server = "ehr", .type = "Observation", .patient = "p2", .key = "ehr/Observation/p2"};
    char cursor[64];

    /* A transaction already open makes the page's begin fail: the page must not commit its
     * cursor, and done() reports the error so the run repeats the page. */
    clock_now_ms = fx->t0_ms;
    assert_int_equal(pw_store_begin(fx->store), 0);
    page_done_calls = 0;
    fx->consumer.on_page(fx->consumer.arg, &src, page_resources(), "{\"cursor\":2}", on_page_done,
                         NULL);
    assert_int_equal(page_done_calls, 1);
    assert_true(page_err < 0);
    pw_store_rollback(fx->store);
    assert_int_equal(pw_store_cursor_get(fx->store, src.key, cursor, sizeof(cursor)), PW_ENOENT);
}

static void test_normalization_change_resyncs(void **state)
{
    struct fixture *fx = *state;
    struct pw_sync_source src = {.server = "ehr",
                                 .type = "MedicationRequest",
                                 .patient = "p1",
                                 .key = "ehr/MedicationRequest/Patient/p1"};
    struct pw_pipeline_stats ps;
    size_t n = 0;
    char cursor[64];

    clock_now_ms = fx->t0_ms + HOUR_MS;
    fx->consumer.on_page(fx->consumer.arg, &src, page_resources(), "{\"cursor\":1}", on_page_done,
                         NULL);
    fx->consumer.on_cycle_end(fx->consumer.arg, "ehr", 0);
    assert_int_equal(rows_for(fx->store, "rescue-dose-missing"), 1);

    /* The same normalization after a restart: the cursor stands. */
    restart_with(fx, "cdc2022");
    assert_int_equal(pw_store_cursor_get(fx->store, src.key, cursor, sizeof(cursor)), 0);

    /* Another factor set: the stored events were derived under other rules, so every stream
     * starts over... */
    restart_with(fx, "cdc2016");
    assert_int_equal(pw_store_cursor_get(fx->store, src.key, cursor, sizeof(cursor)), PW_ENOENT);
    /* ...while the stale rows still count: no Flag is resolved for want of data meanwhile. */
    clock_now_ms = fx->t0_ms + 2 * HOUR_MS;
    assert_int_equal(pw_pipeline_reevaluate_due(fx->pipeline, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows_for(fx->store, "rescue-dose-missing"), 1);
    /* The same versions, read again, replace the stale rows and mark the patient. */
    page_done_calls = 0;
    fx->consumer.on_page(fx->consumer.arg, &src, page_resources(), "{\"cursor\":2}", on_page_done,
                         NULL);
    assert_int_equal(page_err, 0);
    pw_pipeline_stats(fx->pipeline, &ps);
    assert_int_equal(ps.patients_evaluated, 1);
    fx->consumer.on_cycle_end(fx->consumer.arg, "ehr", 0);
    pw_pipeline_stats(fx->pipeline, &ps);
    assert_int_equal(ps.patients_evaluated, 2);
    assert_int_equal(rows_for(fx->store, "rescue-dose-missing"), 1);
    /* Read a third time under the same normalization: nothing changed, nobody is marked. */
    fx->consumer.on_page(fx->consumer.arg, &src, page_resources(), "{\"cursor\":3}", on_page_done,
                         NULL);
    fx->consumer.on_cycle_end(fx->consumer.arg, "ehr", 0);
    pw_pipeline_stats(fx->pipeline, &ps);
    assert_int_equal(ps.patients_evaluated, 2);
}

/* A store written by schema <= 3 kept each resource's JSON: it is still evaluated. */
static void test_legacy_rows_still_evaluate(void **state)
{
    struct fixture *fx = *state;
    json_t *page = page_resources();
    char *mr = json_dumps(json_array_get(page, 1), JSON_COMPACT);
    struct pw_store_resource r = {.type = "MedicationRequest",
                                  .id = "mr-1",
                                  .version = "1",
                                  .last_updated = fx->t0_ms / 1000,
                                  .patient = "Patient/p1",
                                  .norm = "",
                                  .events = mr,
                                  .events_len = strlen(mr)};
    size_t n = 0;

    assert_int_equal(pw_store_begin(fx->store), 0);
    assert_int_equal(pw_store_put_resource(fx->store, &r, NULL), 0);
    assert_int_equal(pw_store_patient_schedule(fx->store, "Patient/p1", fx->t0_ms / 1000), 0);
    assert_int_equal(pw_store_commit(fx->store), 0);
    clock_now_ms = fx->t0_ms + HOUR_MS;
    assert_int_equal(pw_pipeline_reevaluate_due(fx->pipeline, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows_for(fx->store, "rescue-dose-missing"), 1);
    free(mr);
    json_decref(page);
}

/* A patient met by several pages of a cycle is marked once; an evaluation in between (time
 * driven) moves the mark, and the next page marks the patient again. */
static void test_marks_survive_an_evaluation_between_pages(void **state)
{
    struct fixture *fx = *state;
    struct pw_sync_source obs = {
        .server = "ehr", .type = "Observation", .patient = NULL, .key = "ehr/Observation/-"};
    struct pw_sync_source med = {.server = "ehr",
                                 .type = "MedicationRequest",
                                 .patient = NULL,
                                 .key = "ehr/MedicationRequest/-"};
    json_t *all = page_resources();
    json_t *score = json_array();
    json_t *order = json_array();
    struct pw_pipeline_stats ps;
    size_t n = 0;

    json_array_append(score, json_array_get(all, 0));
    json_array_append(order, json_array_get(all, 1));
    json_decref(all);
    clock_now_ms = fx->t0_ms + HOUR_MS;
    fx->consumer.on_page(fx->consumer.arg, &obs, score, NULL, on_page_done, NULL);
    assert_int_equal(page_err, 0);
    /* A time-driven pass evaluates the patient (the score alone: nothing to flag). */
    assert_int_equal(pw_pipeline_reevaluate_due(fx->pipeline, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows_for(fx->store, "rescue-dose-missing"), 0);
    /* The order arrives in the same cycle: the patient is due again at the cycle's end. */
    fx->consumer.on_page(fx->consumer.arg, &med, order, "{\"cursor\":1}", on_page_done, NULL);
    assert_int_equal(page_err, 0);
    fx->consumer.on_cycle_end(fx->consumer.arg, "ehr", 0);
    pw_pipeline_stats(fx->pipeline, &ps);
    assert_int_equal(ps.patients_evaluated, 2);
    assert_int_equal(rows_for(fx->store, "rescue-dose-missing"), 1);
}

struct moved_count {
    long resolved_p1;
    long created_p2;
};

static int count_moved(void *arg, const struct pw_outbox_row *row)
{
    struct moved_count *c = arg;

    if (strcmp(row->rule, "rescue-dose-missing") == 0) {
        c->resolved_p1 += row->op == PW_OUTBOX_RESOLVE && strcmp(row->patient, "Patient/p1") == 0;
        c->created_p2 += row->op == PW_OUTBOX_CREATE && strcmp(row->patient, "Patient/p2") == 0;
    }
    return 0;
}

/*
 * A chart correction: the opioid order is filed again under another patient. The first
 * patient, whose Flag rested on it, is evaluated too and its Flag resolved (the store makes
 * a patient a resource leaves due); the second gets the Flag.
 */
static void test_order_moved_to_another_patient(void **state)
{
    struct fixture *fx = *state;
    struct pw_sync_source src = {
        .server = "ehr", .type = "MedicationRequest", .key = "ehr/MedicationRequest/-"};
    struct moved_count c = {0};
    json_t *page = page_resources();

    clock_now_ms = fx->t0_ms + HOUR_MS;
    fx->consumer.on_page(fx->consumer.arg, &src, page, NULL, on_page_done, NULL);
    fx->consumer.on_cycle_end(fx->consumer.arg, "ehr", 0);
    assert_int_equal(rows_for(fx->store, "rescue-dose-missing"), 1);

    json_t *orig = page_resources();
    json_t *moved = json_deep_copy(json_array_get(orig, 1));
    json_decref(orig);
    json_object_set_new(json_object_get(moved, "meta"), "versionId", json_string("2"));
    json_object_set_new(json_object_get(moved, "meta"), "lastUpdated",
                        json_string("2026-03-02T09:00:00Z"));
    json_object_set_new(json_object_get(moved, "subject"), "reference", json_string("Patient/p2"));
    json_t *page2 = json_array();
    json_array_append_new(page2, moved);
    page_done_calls = 0;
    fx->consumer.on_page(fx->consumer.arg, &src, page2, NULL, on_page_done, NULL);
    assert_int_equal(page_err, 0);
    fx->consumer.on_cycle_end(fx->consumer.arg, "ehr", 0);
    assert_int_equal(pw_store_outbox_list(fx->store, -1, count_moved, &c), 0);
    assert_int_equal(c.resolved_p1, 1);
    assert_int_equal(c.created_p2, 1);
}

/* @p n patients due at the dose change, the clock an hour later. */
static void schedule_patients(struct fixture *fx, int n)
{
    char patient[32];

    assert_int_equal(pw_store_begin(fx->store), 0);
    for (int i = 0; i < n; i++) {
        snprintf(patient, sizeof(patient), "Patient/q%d", i);
        assert_int_equal(pw_store_patient_schedule(fx->store, patient, fx->t0_ms / 1000), 0);
    }
    assert_int_equal(pw_store_commit(fx->store), 0);
    clock_now_ms = fx->t0_ms + HOUR_MS;
}

/* More patients due than one chunk: every one is evaluated, once. */
#define MANY_DUE (2 * PW_EVAL_BATCH + 88)

static void test_many_due_patients_in_chunks(void **state)
{
    struct fixture *fx = *state;
    size_t n = 0;

    schedule_patients(fx, MANY_DUE);
    assert_int_equal(pw_pipeline_reevaluate_due(fx->pipeline, &n), 0);
    assert_int_equal(n, MANY_DUE);
    assert_int_equal(pw_pipeline_reevaluate_due(fx->pipeline, &n), 0);
    assert_int_equal(n, 0);
}

/*
 * The daemon's way (on_due): a cycle's end only hands the due patients to the owner, who
 * evaluates them a batch per step; steps end when nobody is left, every patient once.
 */
static void test_owner_evaluates_a_batch_per_step(void **state)
{
    struct fixture *fx = *state;
    size_t n = 0;
    size_t total = 0;
    int steps = 0;
    bool more = true;

    fx->owner_evaluates = true;
    restart_with(fx, "cdc2022");
    schedule_patients(fx, MANY_DUE);
    fx->consumer.on_cycle_end(fx->consumer.arg, "ehr", 0);
    assert_int_equal(fx->due_calls, 1);
    struct pw_pipeline_stats ps;
    pw_pipeline_stats(fx->pipeline, &ps);
    assert_int_equal(ps.patients_evaluated, 0); /* handed over, not evaluated */
    while (more) {
        assert_int_equal(pw_pipeline_reevaluate_step(fx->pipeline, &n, &more), 0);
        assert_true(n <= PW_EVAL_BATCH); /* a batch, never everything at once */
        total += n;
        steps++;
        assert_true(steps <= MANY_DUE);
    }
    assert_true(steps >= 3);
    assert_int_equal(total, MANY_DUE);
    assert_int_equal(pw_pipeline_reevaluate_step(fx->pipeline, &n, &more), 0);
    assert_int_equal(n, 0);
    assert_false(more);
}

/*
 * Staged pages a process did not merge before it stopped (a crash, a kill) are merged by the next
 * one before anything else: the patient is evaluated on them, and a later copy of a resource
 * still replaces an earlier one.
 */
static void test_staged_pages_survive_a_restart(void **state)
{
    struct fixture *fx = *state;
    struct pw_sync_source src = {.server = "ehr",
                                 .type = "MedicationRequest",
                                 .patient = NULL,
                                 .key = "ehr/MedicationRequest/-"};
    json_t *page = page_resources();
    json_t *stopped = json_deep_copy(page);
    json_t *mr = json_array_get(stopped, 1);
    size_t n = 0;

    /* The order as first read (30 mg q12h), then stopped by a later version in the next page. */
    clock_now_ms = fx->t0_ms + HOUR_MS;
    fx->consumer.on_page(fx->consumer.arg, &src, page, NULL, on_page_done, NULL);
    assert_int_equal(page_err, 0);
    json_object_set_new(mr, "status", json_string("stopped"));
    json_object_set_new(json_object_get(mr, "meta"), "versionId", json_string("2"));
    json_object_set_new(json_object_get(mr, "meta"), "lastUpdated",
                        json_string("2026-03-02T08:30:00Z"));
    json_array_remove(stopped, 0);
    fx->consumer.on_page(fx->consumer.arg, &src, stopped, "{\"cursor\":1}", on_page_done, NULL);
    assert_int_equal(page_err, 0);
    /* Stopped before the cycle's end: the next process merges, then evaluates. */
    restart_with(fx, "cdc2022");
    assert_int_equal(pw_pipeline_reevaluate_due(fx->pipeline, &n), 0);
    assert_int_equal(n, 1);
    /* Only the stopped version counts: no opioid in force, so no rescue-dose Flag. */
    assert_int_equal(rows_for(fx->store, "rescue-dose-missing"), 0);
}

/* The store's commits, counted; the real SQLite backend does everything. */
static const struct pw_store_ops *g_real_ops;
static struct pw_store_ops g_counting_ops;
static int g_commits;

static int counted_commit(struct pw_store *st)
{
    g_commits++;
    return g_real_ops->commit(st);
}

/* page_resources() for patients q0 .. q{n-1}: each one's own score and order. */
static json_t *page_of_patients(int n)
{
    json_t *page = json_array();
    char ref[32];
    char id[32];

    for (int i = 0; i < n; i++) {
        json_t *one = page_resources();
        size_t k;
        json_t *res;

        json_array_foreach(one, k, res)
        {
            snprintf(ref, sizeof(ref), "Patient/q%d", i);
            snprintf(id, sizeof(id), "%s-q%d", json_string_value(json_object_get(res, "id")), i);
            json_object_set_new(json_object_get(res, "subject"), "reference", json_string(ref));
            json_object_set_new(res, "id", json_string(id));
            json_array_append(page, res);
        }
        json_decref(one);
    }
    return page;
}

/*
 * A batch of due patients whose audit records overflow one audit batch is evaluated in halves,
 * each its own batch and transaction, not one patient at a time: every patient gets its Flag
 * with a handful of commits.
 */
static void test_audit_batch_overflow_halves_the_batch(void **state)
{
    struct fixture *fx = *state;
    struct pw_sync_source src = {
        .server = "ehr", .type = "MedicationRequest", .key = "ehr/MedicationRequest/-"};
    char trail[4096];
    char key_path[4096];
    const int n = 24;

    snprintf(trail, sizeof(trail), "%s/audit.jsonl", fx->dir);
    snprintf(key_path, sizeof(key_path), "%s/audit.key", fx->dir);
    pwt_write_file(key_path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    assert_int_equal(chmod(key_path, 0600), 0);
    /* Room for 6 to 11 patients' Flag records in a batch: 24 and 12 overflow it, 6 fit. */
    struct pw_audit_opts ao = {
        .path = trail, .key_path = key_path, .device = "Device/painwatch", .batch_max = 24000};
    assert_int_equal(pw_audit_open(&fx->audit, &ao), 0);
    restart_with(fx, "cdc2022");
    clock_now_ms = fx->t0_ms + HOUR_MS;
    json_t *page = page_of_patients(n);
    fx->consumer.on_page(fx->consumer.arg, &src, page, NULL, on_page_done, NULL);
    assert_int_equal(page_err, 0);

    g_real_ops = fx->store->ops;
    g_counting_ops = *g_real_ops;
    g_counting_ops.commit = counted_commit;
    fx->store->ops = &g_counting_ops;
    g_commits = 0;
    fx->consumer.on_cycle_end(fx->consumer.arg, "ehr", 0);
    fx->store->ops = g_real_ops;

    assert_int_equal(rows_for(fx->store, "rescue-dose-missing"), n);
    assert_true(g_commits > 1);      /* the whole batch did not fit */
    assert_true(g_commits <= n / 3); /* halves, not one patient per transaction */
}

/* Decode every stored resource of a patient into one timeline (its data-quality events). */
static int decode_into(void *arg, const struct pw_store_resource *res)
{
    return pw_timeline_decode(arg, res->events, res->events_len);
}

static void open_audit(struct fixture *fx, char *trail, size_t len)
{
    char key_path[4096];

    snprintf(trail, len, "%s/audit.jsonl", fx->dir);
    snprintf(key_path, sizeof(key_path), "%s/audit.key", fx->dir);
    pwt_write_file(key_path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    assert_int_equal(chmod(key_path, 0600), 0);
    struct pw_audit_opts ao = {.path = trail, .key_path = key_path, .device = "Device/painwatch"};
    assert_int_equal(pw_audit_open(&fx->audit, &ao), 0);
    restart_with(fx, "cdc2022");
}

/*
 * Issue 21: an info finding (pain-type-undocumented) is not posted by default (post_min_severity
 * low): no outbox row, a "finding-not-posted" audit record carried by "audit-only"; the posted
 * finding's record names the sink that carried it. With post_min info it is posted.
 */
static void test_info_finding_audit_only(void **state)
{
    struct fixture *fx = *state;
    char trail[4096];

    fx->synced = (struct pw_synced){.known = true, .synced = PW_RES_ALL};
    open_audit(fx, trail, sizeof(trail));
    page_then_cycle(fx);
    assert_int_equal(rows_for(fx->store, "pain-type-undocumented"), 0);
    assert_int_equal(rows_for(fx->store, "rescue-dose-missing"), 1);
    /* Re-evaluated unchanged: the episode is not audited again. */
    clock_now_ms = fx->t0_ms + HOUR_MS + 60000;
    assert_int_equal(pw_pipeline_evaluate_patient(fx->pipeline, "Patient/p1", clock_now_ms / 1000),
                     0);
    pw_audit_free(fx->audit);
    fx->audit = NULL;
    char *text = pwt_read_file(trail, NULL);
    assert_non_null(text);
    /* the one record (line) of the not-posted finding names its carrier */
    const char *np = strstr(text, "\"subtype\":\"finding-not-posted\"");
    assert_non_null(np);
    const char *line = np;
    while (line > text && line[-1] != '\n') {
        line--;
    }
    const char *carrier = strstr(line, "\"carrier\":\"audit-only\"");
    assert_true(carrier && carrier < np);
    assert_non_null(strstr(line, "pain-type-undocumented"));
    assert_null(strstr(np + 1, "\"subtype\":\"finding-not-posted\"")); /* once */
    assert_non_null(strstr(text, "\"carrier\":\"fhir-flag\""));
    free(text);

    /* A site that posts info findings: the next evaluation creates its Flag. */
    restart_with(fx, "cdc2022");
    pw_engine_set_post_min(fx->engine, PW_SEV_INFO);
    clock_now_ms = fx->t0_ms + 2 * HOUR_MS;
    assert_int_equal(pw_pipeline_evaluate_patient(fx->pipeline, "Patient/p1", clock_now_ms / 1000),
                     0);
    assert_int_equal(rows_for(fx->store, "pain-type-undocumented"), 1);
}

/* Issue 18: a resource the sync engine skipped as unreadable leaves an audit record and a
 * data-quality event on its patient's timeline (the patient is due for evaluation). */
static void test_unreadable_resource_audited_and_dq(void **state)
{
    struct fixture *fx = *state;
    struct pw_sync_source src = {.server = "ehr",
                                 .type = "Observation",
                                 .patient = "p1",
                                 .key = "ehr/Observation/Patient/p1"};
    struct pw_sync_unreadable u = {.type = "Observation",
                                   .id = "obs-bad",
                                   .version = "3",
                                   .patient = "Patient/p1",
                                   .reason = "a value could not be read"};
    struct pw_timeline tl;
    char trail[4096];

    open_audit(fx, trail, sizeof(trail));
    assert_non_null(fx->consumer.on_unreadable);
    fx->consumer.on_unreadable(fx->consumer.arg, &src, &u);

    pw_timeline_init(&tl, "Patient/p1");
    assert_int_equal(pw_store_load_patient(fx->store, "Patient/p1", decode_into, &tl), 0);
    assert_int_equal(tl.dq.n, 1);
    assert_string_equal(tl.dq.v[0].code, "resource-unreadable");
    assert_string_equal(tl.dq.v[0].src.id, "obs-bad");
    assert_non_null(strstr(tl.dq.v[0].detail, "could not be read"));
    pw_timeline_cleanup(&tl);

    /* Server-wide: the patient comes from the resource's own (readable) subject. */
    json_t *res = json_pack("{s:s, s:s, s:{s:s}, s:{s:s}}", "resourceType", "Observation", "id",
                            "obs-bad2", "subject", "reference", "Patient/p2", "valueQuantity",
                            "value", "\001painwatch:unreadable\001");
    struct pw_sync_source wide = {
        .server = "ehr", .type = "Observation", .key = "ehr/Observation/-"};
    struct pw_sync_unreadable u2 = {
        .type = "Observation", .id = "obs-bad2", .reason = "unreadable", .resource = res};
    fx->consumer.on_unreadable(fx->consumer.arg, &wide, &u2);
    json_decref(res);
    pw_timeline_init(&tl, "Patient/p2");
    assert_int_equal(pw_store_load_patient(fx->store, "Patient/p2", decode_into, &tl), 0);
    assert_int_equal(tl.dq.n, 1);
    assert_string_equal(tl.dq.v[0].src.id, "obs-bad2");
    pw_timeline_cleanup(&tl);

    pw_audit_free(fx->audit);
    fx->audit = NULL;
    char *text = pwt_read_file(trail, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "resource-unreadable"));
    assert_non_null(strstr(text, "obs-bad"));
    assert_non_null(strstr(text, "obs-bad2"));
    free(text);
}

/* Issue 18: painwatch_sync_last_success moves only when a cycle completed, not when a final
 * page committed in a cycle that failed. */
static void test_last_success_not_advanced_by_failed_cycle(void **state)
{
    struct fixture *fx = *state;
    struct pw_sync_source src = {
        .server = "ehr-ls", .type = "Observation", .key = "ehr-ls/Observation/-"};

    pw_metrics_reset();
    clock_now_ms = fx->t0_ms;
    fx->consumer.on_page(fx->consumer.arg, &src, json_array(), "{\"v\":1}", on_page_done, NULL);
    assert_int_equal(page_err, 0);
    fx->consumer.on_cycle_end(fx->consumer.arg, "ehr-ls", PW_EJSON);
    assert_true(pw_metric_get(PW_M_SYNC_LAST_SUCCESS, "ehr-ls", NULL) == 0);
    fx->consumer.on_cycle_end(fx->consumer.arg, "ehr-ls", 0);
    assert_true(pw_metric_get(PW_M_SYNC_LAST_SUCCESS, "ehr-ls", NULL) ==
                (double)(fx->t0_ms / 1000));
}

/* Issue 19: the searches of a cycle are one audit record per server, not one per page. */
static void test_one_search_record_per_cycle(void **state)
{
    struct fixture *fx = *state;
    struct pw_sync_source obs = {
        .server = "ehr", .type = "MedicationRequest", .key = "ehr/MedicationRequest/-"};
    char trail[4096];
    char key_path[4096];
    char *text;
    int searches = 0;

    snprintf(trail, sizeof(trail), "%s/audit.jsonl", fx->dir);
    snprintf(key_path, sizeof(key_path), "%s/audit.key", fx->dir);
    pwt_write_file(key_path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    assert_int_equal(chmod(key_path, 0600), 0);
    struct pw_audit_opts ao = {.path = trail, .key_path = key_path, .device = "Device/painwatch"};
    assert_int_equal(pw_audit_open(&fx->audit, &ao), 0);
    restart_with(fx, "cdc2022");
    clock_now_ms = fx->t0_ms + HOUR_MS;
    /* Three pages of one stream: two patients, then one more, then nothing new. */
    fx->consumer.on_page(fx->consumer.arg, &obs, page_of_patients(2), NULL, on_page_done, NULL);
    assert_int_equal(page_err, 0);
    fx->consumer.on_page(fx->consumer.arg, &obs, page_of_patients(3), NULL, on_page_done, NULL);
    assert_int_equal(page_err, 0);
    fx->consumer.on_page(fx->consumer.arg, &obs, json_array(), NULL, on_page_done, NULL);
    assert_int_equal(page_err, 0);
    fx->consumer.on_cycle_end(fx->consumer.arg, "ehr", 0);
    pw_audit_free(fx->audit);
    fx->audit = NULL;

    text = pwt_read_file(trail, NULL);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *rec = json_loads(line, 0, NULL);
        json_t *pw = json_object_get(rec, "painwatch");
        const char *subtype = json_string_value(json_object_get(rec, "subtype"));
        assert_non_null(rec);
        if (subtype && strcmp(subtype, "search") == 0) {
            searches++;
            assert_int_equal(json_integer_value(json_object_get(pw, "pages")), 3);
            assert_int_equal(json_integer_value(json_object_get(pw, "searches")), 1);
            /* the ids read: each resource of the three pages */
            assert_true(json_array_size(json_object_get(pw, "read")) > 0);
            assert_int_equal(json_integer_value(json_object_get(pw, "entries")),
                             (json_int_t)json_array_size(json_object_get(pw, "read")));
            /* a BALP query entity with the shape, and the patients read */
            assert_non_null(strstr(line, "\"role\":\"query\""));
            assert_non_null(strstr(line, "\"what\":\"Patient/q2\""));
        }
        json_decref(rec);
    }
    free(text);
    assert_int_equal(searches, 1);
}

/* One morphine ER order of Patient/d1 at @p version: with a structured dose, or a free-text sig
 * only (its dose cannot be read: an "unstructured-sig" data-quality event). */
static json_t *dq_order(const char *version, bool structured)
{
    char lu[32];
    snprintf(lu, sizeof(lu), "2026-03-02T08:0%s:00Z", version);
    json_t *mr = json_pack(
        "{s:s, s:s, s:{s:s, s:s}, s:s, s:s, s:{s:[{s:s, s:s}]}, s:{s:s}, s:s}", "resourceType",
        "MedicationRequest", "id", "mr-dq", "meta", "versionId", version, "lastUpdated", lu,
        "status", "active", "intent", "order", "medicationCodeableConcept", "coding", "system",
        "http://www.nlm.nih.gov/research/umls/rxnorm", "code", "891885", "subject", "reference",
        "Patient/d1", "authoredOn", "2026-03-02T08:00:00Z");
    json_t *di =
        structured ? json_pack("[{s:s, s:{s:{s:i, s:i, s:s}}, s:{s:[{s:s}]}, s:[{s:{s:i, s:s}}]}]",
                               "text", "1 tab q12h", "timing", "repeat", "frequency", 1, "period",
                               12, "periodUnit", "h", "route", "coding", "code", "26643006",
                               "doseAndRate", "doseQuantity", "value", 1, "unit", "TAB")
                   : json_pack("[{s:s}]", "text", "take as directed");
    assert_non_null(mr);
    assert_non_null(di);
    json_object_set_new(mr, "dosageInstruction", di);
    return json_pack("[o]", mr);
}

/* The page of @p version, then the cycle's end (the patient is evaluated). */
static void dq_page(struct fixture *fx, const char *version, bool structured)
{
    struct pw_sync_source src = {.server = "ehr",
                                 .type = "MedicationRequest",
                                 .patient = "d1",
                                 .key = "ehr/MedicationRequest/Patient/d1"};
    char cursor[32];
    snprintf(cursor, sizeof(cursor), "{\"v\":%s}", version);
    page_err = -1;
    fx->consumer.on_page(fx->consumer.arg, &src, dq_order(version, structured), cursor,
                         on_page_done, NULL);
    assert_int_equal(page_err, 0);
    fx->consumer.on_cycle_end(fx->consumer.arg, "ehr", 0);
}

/* "data-quality" records of the trail with painwatch.code @p code; the last one's resource. */
static int dq_records(const char *trail, const char *code, char *resource, size_t cap)
{
    char *text = pwt_read_file(trail, NULL);
    int n = 0;

    assert_non_null(text);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *rec = json_loads(line, 0, NULL);
        const char *subtype = json_string_value(json_object_get(rec, "subtype"));
        const char *c =
            json_string_value(json_object_get(json_object_get(rec, "painwatch"), "code"));
        assert_non_null(rec);
        if (subtype && strcmp(subtype, "data-quality") == 0) {
            assert_non_null(c);
            assert_string_equal(json_string_value(json_object_get(rec, "type")), "painwatch");
            if (strcmp(c, code) == 0) {
                json_t *ent = json_object_get(rec, "entity");
                n++;
                assert_string_equal(
                    json_string_value(json_object_get(json_array_get(ent, 0), "role")), "patient");
                assert_string_equal(
                    json_string_value(json_object_get(json_array_get(ent, 0), "what")),
                    "Patient/d1");
                snprintf(resource, cap, "%s",
                         json_string_value(json_object_get(json_array_get(ent, 1), "what")));
                assert_non_null(strstr(line, "\"detail\":\"no structured dose"));
            }
        }
        json_decref(rec);
    }
    free(text);
    return n;
}

/*
 * An opioid order whose dose cannot be read: its data-quality event is recorded in the audit
 * trail once (re-evaluations while it stands write nothing) and counted; once the order is
 * corrected it is forgotten, and when a later version loses its dose again it is recorded again.
 */
static void test_data_quality_recorded_once_per_episode(void **state)
{
    struct fixture *fx = *state;
    char trail[4096];
    char resource[128] = "";
    size_t n = 0;

    pw_metrics_reset();
    open_audit(fx, trail, sizeof(trail));
    clock_now_ms = fx->t0_ms + HOUR_MS;
    dq_page(fx, "1", false);
    assert_int_equal(dq_records(trail, "unstructured-sig", resource, sizeof(resource)), 1);
    assert_string_equal(resource, "MedicationRequest/mr-dq/_history/1");
    assert_true(pw_metric_get(PW_M_DATA_QUALITY, "unstructured-sig", NULL) == 1);

    /* Evaluated again and again (time-driven and directly): nothing more is recorded. */
    clock_now_ms += 10 * 60 * 1000;
    assert_int_equal(pw_pipeline_reevaluate_due(fx->pipeline, &n), 0);
    assert_int_equal(n, 1);
    clock_now_ms += 10 * 60 * 1000;
    assert_int_equal(pw_pipeline_evaluate_patient(fx->pipeline, "Patient/d1", clock_now_ms / 1000),
                     0);
    assert_int_equal(dq_records(trail, "unstructured-sig", resource, sizeof(resource)), 1);
    assert_true(pw_metric_get(PW_M_DATA_QUALITY, "unstructured-sig", NULL) == 1);

    /* Corrected: the episode ends (nothing recorded); it loses its dose again: a new one. */
    clock_now_ms += 10 * 60 * 1000;
    dq_page(fx, "2", true);
    assert_int_equal(dq_records(trail, "unstructured-sig", resource, sizeof(resource)), 1);
    clock_now_ms += 10 * 60 * 1000;
    dq_page(fx, "3", false);
    assert_int_equal(dq_records(trail, "unstructured-sig", resource, sizeof(resource)), 2);
    assert_string_equal(resource, "MedicationRequest/mr-dq/_history/3");
    assert_true(pw_metric_get(PW_M_DATA_QUALITY, "unstructured-sig", NULL) == 2);

    /* The chain is the one `painwatch audit verify` checks: still whole. */
    pw_audit_free(fx->audit);
    fx->audit = NULL;
    unsigned char *key = NULL;
    size_t key_len = 0;
    char key_path[4096];
    struct pw_audit_verdict v;
    const char *files[] = {trail};
    snprintf(key_path, sizeof(key_path), "%s/audit.key", fx->dir);
    assert_int_equal(pw_audit_key_load(key_path, &key, &key_len), 0);
    assert_int_equal(pw_audit_verify_files(key, key_len, files, 1, &v), 0);
    pw_audit_key_free(key, key_len);
    restart_with(fx, "cdc2022");
}

/*
 * Rules off for a type the configuration does not sync is one fact for every patient: not a
 * data-quality record per patient; off because this patient's read was refused (403) it is.
 */
static int count_dq(const char *trail, const char *code)
{
    char *text = pwt_read_file(trail, NULL);
    int n = 0;

    assert_non_null(text);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *rec = json_loads(line, 0, NULL);
        const char *c =
            json_string_value(json_object_get(json_object_get(rec, "painwatch"), "code"));
        assert_non_null(rec);
        n += c && strcmp(c, code) == 0 &&
             strcmp(json_string_value(json_object_get(rec, "subtype")), "data-quality") == 0;
        json_decref(rec);
    }
    free(text);
    return n;
}

static void test_data_quality_rules_off_only_when_refused(void **state)
{
    struct fixture *fx = *state;
    char trail[4096];
    struct pw_sync_source cond = {
        .server = "ehr", .type = "Condition", .patient = "p1", .key = "ehr/Condition/Patient/p1"};

    fx->synced =
        (struct pw_synced){.known = true, .synced = PW_RES_OBSERVATION | PW_RES_MEDICATION_REQUEST};
    open_audit(fx, trail, sizeof(trail)); /* restarts with fx->synced */
    page_then_cycle(fx);
    assert_int_equal(rows_for(fx->store, "rescue-dose-missing"), 1); /* evaluated */
    assert_int_equal(count_dq(trail, PW_DQ_RULES_OFF), 0);

    fx->synced = (struct pw_synced){.known = true, .synced = PW_RES_ALL};
    restart_with(fx, "cdc2022");
    fx->consumer.on_type_access(fx->consumer.arg, &cond, 403);
    clock_now_ms = fx->t0_ms + 2 * HOUR_MS;
    assert_int_equal(pw_pipeline_evaluate_patient(fx->pipeline, "Patient/p1", clock_now_ms / 1000),
                     0);
    assert_int_equal(count_dq(trail, PW_DQ_RULES_OFF), 1);
}

/* A store backend that keeps no data-quality state (an older out-of-tree one): patients are
 * evaluated all the same (their Flags planned), and no data-quality record is written. */
static void test_data_quality_without_backend_support(void **state)
{
    struct fixture *fx = *state;
    char trail[4096];
    char resource[128] = "";

    g_real_ops = fx->store->ops;
    g_counting_ops = *g_real_ops;
    g_counting_ops.dq_of_patient = NULL;
    g_counting_ops.dq_set = NULL;
    fx->store->ops = &g_counting_ops;
    open_audit(fx, trail, sizeof(trail));
    clock_now_ms = fx->t0_ms + HOUR_MS;
    dq_page(fx, "1", false);
    struct pw_pipeline_stats ps;
    pw_pipeline_stats(fx->pipeline, &ps);
    assert_int_equal(ps.patients_evaluated, 1);
    fx->store->ops = g_real_ops;
    assert_int_equal(dq_records(trail, "unstructured-sig", resource, sizeof(resource)), 0);
}

int main(void)
{
#define BOTH(t)                                          \
    cmocka_unit_test_setup_teardown(t, setup, teardown), \
        cmocka_unit_test_setup_teardown(t, setup_staged, teardown)
    const struct CMUnitTest tests[] = {
        BOTH(test_reassessment_raised_by_time_alone),
        BOTH(test_page_failure_commits_nothing),
        BOTH(test_normalization_change_resyncs),
        BOTH(test_legacy_rows_still_evaluate),
        BOTH(test_many_due_patients_in_chunks),
        BOTH(test_owner_evaluates_a_batch_per_step),
        BOTH(test_order_moved_to_another_patient),
        BOTH(test_marks_survive_an_evaluation_between_pages),
        BOTH(test_staged_pages_survive_a_restart),
        cmocka_unit_test_setup_teardown(test_one_search_record_per_cycle, setup, teardown),
        BOTH(test_data_quality_recorded_once_per_episode),
        cmocka_unit_test_setup_teardown(test_data_quality_without_backend_support, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_quality_rules_off_only_when_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unsynced_type_turns_absence_rules_off, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refused_type_turns_absence_rules_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unread_type_turns_absence_rules_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_info_finding_audit_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_batch_overflow_halves_the_batch, setup,
                                        teardown),
        BOTH(test_unreadable_resource_audited_and_dq),
        BOTH(test_last_success_not_advanced_by_failed_cycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
