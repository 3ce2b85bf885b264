/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The seen-set of one long run stays bounded (daemon/core/scheduler.c): a search sorted by
 * _lastUpdated drops what it has paged past, while duplicates across the page overlap are still
 * dropped; an unsorted search keeps every entry. A generator on the loopback responder serves
 * thousands of resources in pages.
 */
#include "support/sync_harness.h"

#define SRV_WIDE "{\"type\": \"server\"}"

#define PAGES    60
#define PER_PAGE 200
#define REPEAT   3 /* entries of the previous page served again at the top of the next */
#define TOTAL    (PAGES * PER_PAGE)

/*
 * Resource i (0 <= i < TOTAL) was last updated at T0 - 4 h + i s, so a 5 min overlap spans
 * 300 of them. Page k serves [k * PER_PAGE - REPEAT, (k + 1) * PER_PAGE), sorted. For
 * MedicationRequest every tenth resource is active; the in-force query ("status=active,on-hold")
 * serves an order written years ago, then those active ones again, in its own pages.
 */
struct gen {
    char base[160];
    const char *type;
};

static json_t *gen_resource(const struct gen *g, size_t i)
{
    char id[32];
    char lu[40];
    snprintf(id, sizeof(id), "r%zu", i);
    pw_fhir_instant_format(SH_T0 - 4 * 3600000LL + (int64_t)i * 1000, lu, sizeof(lu));
    if (strcmp(g->type, "Observation") == 0) {
        return sh_obs(id, "1", lu);
    }
    return sh_med(id, "1", lu, i % 10 == 0 ? "active" : "completed", "2024-04-30T08:00:00Z");
}

static void gen_handler(void *arg, const struct pwt_request *req, struct pwt_reply *reply)
{
    const struct gen *g = arg;
    bool in_force = strstr(req->query, "status=active,on-hold&") || strstr(req->query, "_apage=");
    const char *p = strstr(req->query, in_force ? "_apage=" : "_page=");
    size_t k = p ? (size_t)atoi(strchr(p, '=') + 1) : 0;
    /* The in-force query lists the old order (position 0), then every tenth resource. */
    size_t total = in_force ? 1 + TOTAL / 10 : TOTAL;
    size_t from = k * PER_PAGE > REPEAT && k ? k * PER_PAGE - REPEAT : 0;
    size_t to = (k + 1) * PER_PAGE < total ? (k + 1) * PER_PAGE : total;
    json_t *entries = json_array();
    char next[256];

    for (size_t i = from; i < to; i++) {
        if (!in_force) {
            json_array_append_new(entries, gen_resource(g, i));
        } else if (i == 0) {
            json_array_append_new(entries, sh_med("old", "1", "2020-01-01T00:00:00Z", "active",
                                                  "2019-12-31T08:00:00Z"));
        } else {
            json_array_append_new(entries, gen_resource(g, (i - 1) * 10));
        }
    }
    snprintf(next, sizeof(next), "%s?%s=%zu", g->base, in_force ? "_apage" : "_page", k + 1);
    reply->status = 200;
    reply->body = sh_bundle(entries, to < total ? next : NULL);
    reply->body_len = strlen(reply->body);
}

/* One first sync of @p type over the generated pages; @p sorted sets dialect.sort. */
static void gen_run(struct sh *h, struct gen *g, const char *type, bool sorted)
{
    struct pw_fhir_search_conf conf;

    sh_init(h);
    snprintf(g->base, sizeof(g->base), "%s", h->base);
    g->type = type;
    sh_conf(h, &conf, "ehr", h->base, 0, 0);
    if (strcmp(type, "MedicationRequest") == 0) {
        free(conf.types[0].type);
        free(conf.types[0].codes);
        conf.types[0] = conf.types[1];
        memset(&conf.types[1], 0, sizeof(conf.types[1]));
    } else {
        free(conf.types[1].type);
        conf.types[1].type = NULL;
    }
    conf.ntypes = 1;
    conf.dialect.sort = sorted;
    sh_add(h, &conf, SRV_WIDE, NULL);
    struct pwt_rule rule = {.handler = gen_handler, .handler_arg = g};
    pwt_responder_add(h->r, &rule);
    sh_run_once(h);
    assert_int_equal(h->cycle_err, 0);
    assert_int_equal(h->cycle_failed, 0);
}

/* Every delivered line distinct: nothing was delivered twice. */
static size_t distinct_delivered(struct sh *h)
{
    json_t *set = json_object();
    size_t i;
    json_t *v;
    json_array_foreach(h->delivered, i, v)
    {
        json_object_set_new(set, json_string_value(v), json_true());
    }
    size_t n = json_object_size(set);
    json_decref(set);
    return n;
}

static void test_sorted_run_seen_set_stays_bounded(void **state)
{
    (void)state;
    struct sh h;
    struct gen g;
    struct pw_sync_health hl;

    gen_run(&h, &g, "Observation", true);
    assert_int_equal(pwt_responder_count(h.r), PAGES);
    assert_int_equal(json_array_size(h.delivered), TOTAL);
    assert_int_equal(distinct_delivered(&h), TOTAL);
    assert_int_equal(pw_sync_health(h.sync, "ehr", &hl), 0);
    /* Every repeat across a page boundary (inside the overlap) was dropped, also after the
     * prunes. */
    assert_int_equal(hl.duplicates, (PAGES - 1) * REPEAT);
    /* The set never held much more than the prune threshold plus a page: not one entry per
     * resource received. */
    assert_true(hl.seen_peak >= PW_SYNC_SEEN_PRUNE_MIN);
    assert_true(hl.seen_peak < PW_SYNC_SEEN_PRUNE_MIN + PER_PAGE + REPEAT);
    /* The cursor is the newest resource. */
    struct pw_sync_state st;
    assert_int_equal(pw_sync_state_init(&st), 0);
    assert_int_equal(
        pw_sync_state_load(&st, json_string_value(json_object_get(h.cursors, "ehr/Observation/-"))),
        0);
    assert_int_equal(st.cursor_ms, SH_T0 - 4 * 3600000LL + (TOTAL - 1) * 1000LL);
    pw_sync_state_cleanup(&st);
    sh_fini(&h);
}

static void test_unsorted_run_keeps_every_entry(void **state)
{
    (void)state;
    struct sh h;
    struct gen g;
    struct pw_sync_health hl;

    /* Without _sort nothing says an old entry cannot come back: all of them are kept. */
    gen_run(&h, &g, "Observation", false);
    assert_int_equal(json_array_size(h.delivered), TOTAL);
    assert_int_equal(distinct_delivered(&h), TOTAL);
    assert_int_equal(pw_sync_health(h.sync, "ehr", &hl), 0);
    assert_int_equal(hl.duplicates, (PAGES - 1) * REPEAT);
    assert_int_equal(hl.seen_peak, TOTAL);
    sh_fini(&h);
}

/* The first MedicationRequest sync prunes its lookback as it pages and stays bounded; the
 * in-force query (disjoint from the lookback by authoredon, here a server that answers it with
 * the lookback's active orders again) still brings the old order, and every order arrives. */
static void test_first_medication_sync_stays_bounded(void **state)
{
    (void)state;
    struct sh h;
    struct gen g;
    struct pw_sync_health hl;
    const size_t in_force_pages = (1 + TOTAL / 10 + PER_PAGE - 1) / PER_PAGE;

    gen_run(&h, &g, "MedicationRequest", true);
    assert_int_equal(pwt_responder_count(h.r), PAGES + in_force_pages);
    assert_int_equal(distinct_delivered(&h), TOTAL + 1);
    assert_true(json_array_size(h.delivered) >= TOTAL + 1);
    assert_true(sh_delivered(&h, "ehr/MedicationRequest/-|MedicationRequest/old/1"));
    assert_int_equal(pw_sync_health(h.sync, "ehr", &hl), 0);
    /* Bounded by the threshold and a page: nothing is held back for the second query. */
    assert_true(hl.seen_peak < PW_SYNC_SEEN_PRUNE_MIN + PER_PAGE + REPEAT);
    sh_fini(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sorted_run_seen_set_stays_bounded),
        cmocka_unit_test(test_unsorted_run_keeps_every_entry),
        cmocka_unit_test(test_first_medication_sync_stays_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
