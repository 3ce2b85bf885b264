/* SPDX-License-Identifier: Apache-2.0 */
/* adapters/source_fhir_search.c and _page.c, pure parts: config, instants, URLs, origins, pages,
 * cursors. */
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "painwatch/cohort.h"
#include "painwatch/conf.h"
#include "painwatch/err.h"
#include "painwatch/fhir.h"
#include "painwatch/fhir_search.h"
#include "painwatch/source.h"
#include "support/pwtest.h"

#define T0       1714557600000LL
#define SH_T0_MS T0 /* 2024-05-01T10:00:00Z */

/* The decoded value of query parameter @p name in @p url (first occurrence), or NULL. */
static char *query_param(const char *url, const char *name)
{
    CURLU *u = curl_url();
    char *q = NULL;
    char *found = NULL;

    assert_int_equal(curl_url_set(u, CURLUPART_URL, url, 0), CURLUE_OK);
    if (curl_url_get(u, CURLUPART_QUERY, &q, 0) == CURLUE_OK) {
        size_t nlen = strlen(name);
        for (char *p = strtok(q, "&"); p && !found; p = strtok(NULL, "&")) {
            if (strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
                int len = 0;
                char *dec = curl_easy_unescape(NULL, p + nlen + 1, 0, &len);
                found = strdup(dec);
                curl_free(dec);
            }
        }
    }
    curl_free(q);
    curl_url_cleanup(u);
    return found;
}

static void assert_param(const char *url, const char *name, const char *want)
{
    char *got = query_param(url, name);
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_instant_parse_and_format(void **state)
{
    (void)state;
    int64_t ms;
    char buf[40];

    assert_int_equal(pw_fhir_instant_parse("2024-05-01T10:00:00Z", &ms), 0);
    assert_int_equal(ms, T0);
    assert_int_equal(pw_fhir_instant_parse("2024-05-01T12:00:00.250+02:00", &ms), 0);
    assert_int_equal(ms, T0 + 250);
    assert_int_equal(pw_fhir_instant_parse("2024-05-01T05:30:00-04:30", &ms), 0);
    assert_int_equal(ms, T0);
    assert_int_equal(pw_fhir_instant_parse("2024-05-01", &ms), 0);
    assert_int_equal(ms, T0 - 10 * 3600 * 1000LL);
    assert_int_equal(pw_fhir_instant_parse("2024-02-29T00:00:00.1234Z", &ms), 0);
    pw_fhir_instant_format(ms, buf, sizeof(buf));
    assert_string_equal(buf, "2024-02-29T00:00:00.123Z");
    pw_fhir_instant_format(T0, buf, sizeof(buf));
    assert_string_equal(buf, "2024-05-01T10:00:00.000Z");
    pw_fhir_instant_format(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");

    /* Local times without a zone are not instants; garbage is refused, never guessed. */
    assert_int_equal(pw_fhir_instant_parse("2024-05-01T10:00:00", &ms), PW_EINVAL);
    assert_int_equal(pw_fhir_instant_parse("2024-13-01", &ms), PW_EINVAL);
    assert_int_equal(pw_fhir_instant_parse("yesterday", &ms), PW_EINVAL);
    assert_int_equal(pw_fhir_instant_parse("2024-05-01T10:00:00.Z", &ms), PW_EINVAL);
    assert_int_equal(pw_fhir_instant_parse("2024-05-01T10:00:00+2:00", &ms), PW_EINVAL);
    assert_int_equal(pw_fhir_instant_parse(NULL, &ms), PW_EINVAL);
}

/* A server block of the configuration file; tests append lines to it. */
#define SERVER_YAML                          \
    "servers:\n"                             \
    "  - name: ehr\n"                        \
    "    base_url: https://other.test/R4/\n" \
    "    auth: {type: none}\n"               \
    "    cohort: {type: server-wide}\n"

/* The searches the FHIR search source builds for server 0 of @p pc (the real config path:
 * schema, effective section, the adapter's config_map and init), into @p out. */
static void source_conf(struct pw_conf *pc, bool site_codes, struct pw_fhir_search_conf *out)
{
    const struct pw_conf_daemon *d = pw_conf_daemon(pc);
    struct pw_source *src = NULL;
    char err[256] = "";

    if (pw_source_from_conf(&src, json_array_get(pw_conf_get(pc, "servers"), 0), &d->servers[0],
                            site_codes ? &d->pain_codes : NULL, d->sink.section, err,
                            sizeof(err)) != 0) {
        fail_msg("source: %s", err);
    }
    assert_ptr_equal(src->ops, &pw_source_fhir_search);
    const struct pw_fhir_search *fs = src->ctx;
    assert_int_equal(pw_fhir_search_conf_copy(out, &fs->conf), 0);
    pw_source_free(src);
}

static void test_conf_defaults_and_config(void **state)
{
    (void)state;
    struct pw_fhir_search_conf c;

    assert_int_equal(pw_fhir_search_conf_init(&c, "ehr", "https://ehr.test/fhir"), 0);
    assert_int_equal(c.ntypes, 2);
    assert_string_equal(c.types[0].type, "Observation");
    assert_non_null(c.types[0].codes);
    assert_string_equal(c.types[1].type, "MedicationRequest");
    assert_int_equal(c.overlap_ms, 300000);
    assert_int_equal(c.lookback_ms, 14LL * 86400000);
    pw_fhir_search_conf_cleanup(&c);

    /* The configuration file's keys, through the schema and the typed view. */
    static const char yaml[] = SERVER_YAML "    overlap: 60s\n"
                                           "    lookback: 3d\n"
                                           "    dialect:\n"
                                           "      patient_param: subject\n"
                                           "      sort: true\n"
                                           "      max_count: 50\n"
                                           "    resources: [Observation, Condition]\n";
    struct pw_conf *pc = NULL;
    struct pw_conf_errors errs = {0};
    if (pw_conf_load_string(&pc, "test.yaml", "/tmp", yaml, strlen(yaml), &errs) != 0) {
        fail_msg("config did not load: %s", errs.n ? errs.lines[0] : "?");
    }
    source_conf(pc, false, &c);
    assert_string_equal(c.base, "https://other.test/R4");
    assert_int_equal(c.overlap_ms, 60000);
    assert_int_equal(c.lookback_ms, 3LL * 86400000);
    assert_true(c.dialect.subject);
    assert_true(c.dialect.sort);
    assert_int_equal(c.dialect.count_max, 50);
    assert_int_equal(c.ntypes, 2);
    assert_string_equal(c.types[0].codes, "http://loinc.org|72514-3,http://loinc.org|38208-5");
    assert_string_equal(c.types[1].type, "Condition");
    assert_null(c.types[1].codes);

    struct pw_fhir_search_conf copy;
    assert_int_equal(pw_fhir_search_conf_copy(&copy, &c), 0);
    assert_string_equal(copy.types[0].codes, c.types[0].codes);
    assert_ptr_not_equal(copy.types[0].codes, c.types[0].codes);
    pw_fhir_search_conf_cleanup(&copy);
    pw_fhir_search_conf_cleanup(&c);
    pw_conf_free(pc);
    pw_conf_errors_cleanup(&errs);
}

/* @p yaml is refused, by the schema or by the source's init, with an error naming @p fragment. */
static void expect_conf_error(const char *yaml, const char *fragment)
{
    struct pw_conf *pc = NULL;
    struct pw_conf_errors errs = {0};
    char err[256] = "";
    int rc = pw_conf_load_string(&pc, "test.yaml", "/tmp", yaml, strlen(yaml), &errs);

    if (rc == 0) {
        const struct pw_conf_daemon *d = pw_conf_daemon(pc);
        struct pw_source *src = NULL;
        rc = pw_source_from_conf(&src, json_array_get(pw_conf_get(pc, "servers"), 0),
                                 &d->servers[0], &d->pain_codes, d->sink.section, err, sizeof(err));
        assert_null(src);
    } else if (errs.n) {
        snprintf(err, sizeof(err), "%s", errs.lines[0]);
    }
    assert_int_equal(rc, PW_ECONFIG);
    if (!strstr(err, fragment)) {
        fail_msg("error '%s' does not mention '%s'", err, fragment);
    }
    pw_conf_free(pc);
    pw_conf_errors_cleanup(&errs);
}

static void test_conf_errors_name_the_key(void **state)
{
    (void)state;
    expect_conf_error(SERVER_YAML "    polll_interval: 10s\n", "servers[0].polll_interval");
    expect_conf_error(SERVER_YAML "    dialect: {sortt: true}\n", "servers[0].dialect.sortt");
    expect_conf_error(SERVER_YAML "    dialect: {patient_param: who}\n",
                      "servers[0].dialect.patient_param");
    expect_conf_error(SERVER_YAML "    resources: [Observation, Observation]\n", "listed twice");
    expect_conf_error(SERVER_YAML "    resources: [observation]\n", "servers.ehr.resources[0]");
    expect_conf_error(SERVER_YAML "    dialect: {max_count: 0}\n", "servers[0].dialect.max_count");
}

static void test_url_first_sync_uses_clinical_lookback(void **state)
{
    (void)state;
    struct pw_fhir_search_conf c;
    struct pw_search_window w = {.cursor_ms = PW_SYNC_NO_CURSOR, .now_ms = T0};
    char *url = NULL;

    assert_int_equal(pw_fhir_search_conf_init(&c, "ehr", "https://ehr.test/fhir"), 0);
    assert_int_equal(pw_search_url(&c, 0, "p1", &w, &url), 0);
    assert_true(strncmp(url, "https://ehr.test/fhir/Observation?", 34) == 0);
    assert_param(url, "patient", "p1");
    assert_param(url, "date", "ge2024-04-17T10:00:00Z");
    assert_param(url, "_lastUpdated", NULL);
    assert_param(url, "code", "http://loinc.org|72514-3,http://loinc.org|38208-5");
    assert_param(url, "_count", "100");
    assert_param(url, "_sort", NULL);
    free(url);

    assert_int_equal(pw_search_url(&c, 1, "p1", &w, &url), 0);
    assert_param(url, "authoredon", "ge2024-04-17T10:00:00Z");
    assert_param(url, "status",
                 "active,on-hold,cancelled,completed,entered-in-error,stopped,draft,unknown");
    assert_param(url, "code", NULL);
    free(url);

    /* A server without date search: the lookback falls back to _lastUpdated. */
    c.dialect.date_params = false;
    assert_int_equal(pw_search_url(&c, 0, "p1", &w, &url), 0);
    assert_param(url, "_lastUpdated", "ge2024-04-17T10:00:00Z");
    assert_param(url, "date", NULL);
    free(url);
    pw_fhir_search_conf_cleanup(&c);
}

static void test_url_orders_in_force(void **state)
{
    (void)state;
    struct pw_fhir_search_conf c;
    struct pw_search_window w = {
        .cursor_ms = PW_SYNC_NO_CURSOR, .now_ms = T0, .active_orders = true};
    char *url = NULL;

    assert_int_equal(pw_fhir_search_conf_init(&c, "ehr", "https://ehr.test/fhir"), 0);
    c.dialect.sort = true;
    c.dialect.include = true;
    /* Whatever status_list says: the two statuses of an order in force, authored before the
     * lookback (the lookback query has the rest: no order comes twice). */
    c.dialect.status_list = false;
    assert_int_equal(pw_search_url(&c, 1, "p1", &w, &url), 0);
    assert_true(strncmp(url, "https://ehr.test/fhir/MedicationRequest?", 40) == 0);
    assert_param(url, "patient", "p1");
    assert_param(url, "status", "active,on-hold");
    assert_param(url, "authoredon", "lt2024-04-17T10:00:00Z");
    assert_param(url, "_lastUpdated", NULL);
    assert_param(url, "_include", "MedicationRequest:medication");
    assert_param(url, "_sort", "_lastUpdated");
    assert_param(url, "_count", "100");
    free(url);
    /* Server-wide: no patient at all. */
    assert_int_equal(pw_search_url(&c, 1, NULL, &w, &url), 0);
    assert_param(url, "patient", NULL);
    assert_param(url, "status", "active,on-hold");
    free(url);
    /* A server without date search bounded the lookback by _lastUpdated: the complement too. */
    c.dialect.date_params = false;
    c.dialect.last_updated = true;
    assert_int_equal(pw_search_url(&c, 1, NULL, &w, &url), 0);
    assert_param(url, "authoredon", NULL);
    assert_param(url, "_lastUpdated", "lt2024-04-17T10:00:00Z");
    free(url);
    /* Only MedicationRequest has orders in force. */
    url = NULL;
    assert_int_equal(pw_search_url(&c, 0, "p1", &w, &url), PW_EINVAL);
    assert_null(url);
    pw_fhir_search_conf_cleanup(&c);
}

static void test_seen_prune_keeps_recent_and_kept(void **state)
{
    (void)state;
    struct pw_sync_state st;
    char key[128];
    json_t *keep = json_object();

    assert_int_equal(pw_sync_state_init(&st), 0);
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "Observation/o%d/1", i);
        json_object_set_new(st.seen, key, json_integer(T0 + i * 1000));
    }
    json_object_set_new(keep, "Observation/o1/1", json_true());
    /* Below T0 + 5 s goes, except the kept o1; the floor itself stays. */
    assert_int_equal(pw_sync_state_prune(&st, T0 + 5000, keep), 4);
    assert_int_equal(json_object_size(st.seen), 6);
    assert_non_null(json_object_get(st.seen, "Observation/o1/1"));
    assert_null(json_object_get(st.seen, "Observation/o4/1"));
    assert_non_null(json_object_get(st.seen, "Observation/o5/1"));
    assert_int_equal(pw_sync_state_prune(&st, T0 + 5000, NULL), 1);
    assert_int_equal(json_object_size(st.seen), 5);
    pw_sync_state_cleanup(&st);
    json_decref(keep);

    /* The key the filter uses: versionId, else lastUpdated. */
    json_t *res = json_pack("{s:s, s:s, s:{s:s, s:s}}", "resourceType", "MedicationRequest", "id",
                            "m1", "meta", "versionId", "3", "lastUpdated", "2024-05-01T10:00:00Z");
    assert_true(pw_sync_seen_key(res, key, sizeof(key)));
    assert_string_equal(key, "MedicationRequest/m1/3");
    json_object_del(json_object_get(res, "meta"), "versionId");
    assert_true(pw_sync_seen_key(res, key, sizeof(key)));
    assert_string_equal(key, "MedicationRequest/m1/@2024-05-01T10:00:00Z");
    assert_false(pw_sync_seen_key(res, key, 8));
    json_object_del(res, "id");
    assert_false(pw_sync_seen_key(res, key, sizeof(key)));
    json_decref(res);
}

static void test_url_incremental_and_dialects(void **state)
{
    (void)state;
    struct pw_fhir_search_conf c;
    struct pw_search_window w = {.cursor_ms = T0 + 1500, .now_ms = T0 + 3600000};
    char *url = NULL;

    assert_int_equal(pw_fhir_search_conf_init(&c, "ehr", "https://ehr.test/fhir"), 0);
    c.dialect.subject = true;
    c.dialect.sort = true;
    c.dialect.include = true;
    c.dialect.status_list = false;
    c.dialect.count_max = 20;
    assert_int_equal(pw_search_url(&c, 1, "p-9.x", &w, &url), 0);
    assert_param(url, "subject", "Patient/p-9.x");
    assert_param(url, "patient", NULL);
    /* cursor - 5 min overlap, floored to the second. */
    assert_param(url, "_lastUpdated", "gt2024-05-01T09:55:01Z");
    assert_param(url, "authoredon", NULL);
    assert_param(url, "_sort", "_lastUpdated");
    assert_param(url, "_include", "MedicationRequest:medication");
    assert_param(url, "status", NULL);
    assert_param(url, "_count", "20");
    free(url);

    /* Server-wide: no patient parameter at all; a value set replaces codes with code:in. */
    c.dialect.code_in = true;
    c.types[0].valueset = strdup("http://example.org/ValueSet/pain");
    assert_int_equal(pw_search_url(&c, 0, NULL, &w, &url), 0);
    assert_param(url, "subject", NULL);
    assert_param(url, "code:in", "http://example.org/ValueSet/pain");
    assert_param(url, "code", NULL);
    free(url);

    /* Bad patient ids never reach a URL. */
    assert_int_equal(pw_search_url(&c, 0, "a&b=c", &w, &url), PW_EINVAL);
    assert_int_equal(pw_search_url(&c, 0, "", &w, &url), PW_EINVAL);
    assert_int_equal(pw_search_url(&c, 5, "p1", &w, &url), PW_EINVAL);
    pw_fhir_search_conf_cleanup(&c);
}

static void test_same_origin(void **state)
{
    (void)state;
    const char *base = "https://ehr.test/fhir";
    assert_true(pw_url_same_origin("https://ehr.test/fhir?_getpages=x&page=2", base));
    assert_true(pw_url_same_origin("https://EHR.test:443/other/path", base));
    assert_false(pw_url_same_origin("http://ehr.test/fhir", base));
    assert_false(pw_url_same_origin("https://ehr.test:8443/fhir", base));
    assert_false(pw_url_same_origin("https://evil.test/fhir", base));
    assert_false(pw_url_same_origin("https://ehr.test.evil.test/fhir", base));
    assert_false(pw_url_same_origin("https://user:pw@ehr.test/fhir", base));
    assert_false(pw_url_same_origin("/fhir?page=2", base));
    assert_false(pw_url_same_origin("file:///etc/passwd", base));
    assert_false(pw_url_same_origin(NULL, base));
    assert_true(pw_url_same_origin("http://127.0.0.1:8080/a", "http://127.0.0.1:8080/fhir"));
    assert_false(pw_url_same_origin("http://127.0.0.1:8081/a", "http://127.0.0.1:8080/fhir"));
}

static json_t *obs(const char *id, const char *vid, const char *lu)
{
    json_t *meta = json_object();
    if (vid) {
        json_object_set_new(meta, "versionId", json_string(vid));
    }
    if (lu) {
        json_object_set_new(meta, "lastUpdated", json_string(lu));
    }
    return json_pack("{s:s, s:s, s:o}", "resourceType", "Observation", "id", id, "meta", meta);
}

static json_t *page(json_t *entries, const char *next)
{
    json_t *b = json_pack("{s:s, s:s, s:o}", "resourceType", "Bundle", "type", "searchset", "entry",
                          entries);
    if (next) {
        json_object_set_new(b, "link",
                            json_pack("[{s:s, s:s}, {s:s, s:s}]", "relation", "self", "url",
                                      "https://ehr.test/self", "relation", "next", "url", next));
    }
    return b;
}

static json_t *entry(json_t *res)
{
    return json_pack("{s:o, s:{s:s}}", "resource", res, "search", "mode", "match");
}

/* The typed filter also says how far the page's resources of the search's own type got: an
 * included resource of another type (a newer Medication) and a duplicate do not count. */
static void test_page_filter_typed_tracks_own_type(void **state)
{
    (void)state;
    struct pw_sync_state st;
    struct pw_page_stats ps;
    json_t *res = NULL;
    const char *next = NULL;
    int64_t max = PW_SYNC_NO_CURSOR;
    int64_t own = INT64_MIN;

    assert_int_equal(pw_sync_state_init(&st), 0);
    json_t *med = obs("m", "1", "2024-05-01T11:00:00Z");
    json_object_set_new(med, "resourceType", json_string("Medication"));
    json_t *p1 = page(json_pack("[o, o, o]", entry(obs("a", "1", "2024-05-01T10:00:00Z")),
                                entry(med), entry(obs("b", "1", "2024-05-01T10:05:00Z"))),
                      NULL);
    assert_int_equal(
        pw_sync_page_filter_typed(&st, p1, "Observation", &res, &next, &max, &own, &ps), 0);
    assert_int_equal(json_array_size(res), 3);
    assert_int_equal(max, T0 + 3600000); /* every kept resource */
    assert_int_equal(own, T0 + 300000);  /* the Observations only */
    json_decref(res);
    /* A page of duplicates moves neither. */
    own = INT64_MIN;
    assert_int_equal(
        pw_sync_page_filter_typed(&st, p1, "Observation", &res, &next, &max, &own, &ps), 0);
    assert_int_equal(json_array_size(res), 0);
    assert_int_equal(own, INT64_MIN);
    json_decref(res);
    json_decref(p1);
    pw_sync_state_cleanup(&st);
}

static void test_page_filter_dedupes_and_tracks_cursor(void **state)
{
    (void)state;
    struct pw_sync_state st;
    struct pw_page_stats ps;
    json_t *res = NULL;
    const char *next = NULL;
    int64_t max = PW_SYNC_NO_CURSOR;

    assert_int_equal(pw_sync_state_init(&st), 0);
    json_t *p1 = page(json_pack("[o, o, o, o]", entry(obs("a", "1", "2024-05-01T10:00:00Z")),
                                entry(obs("b", "1", "2024-05-01T10:05:00Z")),
                                entry(obs("a", "1", "2024-05-01T10:00:00Z")),
                                json_pack("{s:{s:s}, s:{s:s}}", "resource", "resourceType",
                                          "OperationOutcome", "search", "mode", "outcome")),
                      "https://ehr.test/fhir?page=2");
    assert_int_equal(pw_sync_page_filter(&st, p1, &res, &next, &max, &ps), 0);
    assert_string_equal(next, "https://ehr.test/fhir?page=2");
    assert_int_equal(json_array_size(res), 2);
    assert_int_equal(ps.entries, 4);
    assert_int_equal(ps.delivered, 2);
    assert_int_equal(ps.duplicates, 1);
    assert_int_equal(ps.outcomes, 1);
    assert_int_equal(max, T0 + 300000);
    json_decref(res);
    json_decref(p1);

    /* A page made only of duplicates: nothing delivered, but the next link is still there. */
    json_t *p2 = page(json_pack("[o, o]", entry(obs("b", "1", "2024-05-01T10:05:00Z")),
                                entry(obs("a", "1", "2024-05-01T10:00:00Z"))),
                      "https://ehr.test/fhir?page=3");
    assert_int_equal(pw_sync_page_filter(&st, p2, &res, &next, &max, &ps), 0);
    assert_int_equal(json_array_size(res), 0);
    assert_int_equal(ps.duplicates, 2);
    assert_non_null(next);
    json_decref(res);
    json_decref(p2);

    /* A new version of a seen resource is new. */
    json_t *p3 = page(json_pack("[o]", entry(obs("a", "2", "2024-05-01T10:07:00Z"))), NULL);
    assert_int_equal(pw_sync_page_filter(&st, p3, &res, &next, &max, &ps), 0);
    assert_int_equal(json_array_size(res), 1);
    assert_null(next);
    assert_int_equal(max, T0 + 420000);
    json_decref(res);
    json_decref(p3);

    /* Not a searchset Bundle. */
    json_t *bad = json_pack("{s:s}", "resourceType", "Patient");
    assert_int_equal(pw_sync_page_filter(&st, bad, &res, &next, &max, &ps), PW_EFHIR);
    json_decref(bad);
    bad = json_pack("{s:s, s:s}", "resourceType", "Bundle", "type", "transaction");
    assert_int_equal(pw_sync_page_filter(&st, bad, &res, &next, &max, &ps), PW_EFHIR);
    json_decref(bad);
    pw_sync_state_cleanup(&st);
}

static void test_state_roundtrip_and_bounded_seen_set(void **state)
{
    (void)state;
    struct pw_sync_state st;
    struct pw_page_stats ps;
    json_t *res = NULL;
    const char *next = NULL;
    char *text = NULL;

    assert_int_equal(pw_sync_state_init(&st), 0);
    json_t *p = page(json_pack("[o, o, o]", entry(obs("old", "1", "2024-05-01T09:00:00Z")),
                               entry(obs("edge", "1", "2024-05-01T09:55:00Z")),
                               entry(obs("new", "1", "2024-05-01T10:00:00Z"))),
                     NULL);
    st.cursor_ms = PW_SYNC_NO_CURSOR;
    int64_t max = st.cursor_ms;
    assert_int_equal(pw_sync_page_filter(&st, p, &res, &next, &max, &ps), 0);
    json_decref(res);
    st.cursor_ms = max;
    assert_int_equal(pw_sync_state_dump(&st, 300000, &text), 0);

    /* Only entries at or above cursor - overlap survive: "old" can never come back. */
    struct pw_sync_state st2;
    assert_int_equal(pw_sync_state_init(&st2), 0);
    assert_int_equal(pw_sync_state_load(&st2, text), 0);
    assert_int_equal(st2.cursor_ms, T0);
    assert_int_equal(json_object_size(st2.seen), 2);
    assert_null(json_object_get(st2.seen, "Observation/old/1"));
    assert_non_null(json_object_get(st2.seen, "Observation/edge/1"));
    free(text);

    /* Across runs: the same page again delivers nothing but what was pruned. */
    max = st2.cursor_ms;
    assert_int_equal(pw_sync_page_filter(&st2, p, &res, &next, &max, &ps), 0);
    assert_int_equal(ps.duplicates, 2);
    assert_int_equal(json_array_size(res), 1);
    json_decref(res);
    json_decref(p);

    assert_int_equal(pw_sync_state_load(&st2, NULL), 0);
    assert_int_equal(st2.cursor_ms, PW_SYNC_NO_CURSOR);
    assert_int_equal(pw_sync_state_load(&st2, "{\"v\":2,\"ms\":1,\"seen\":{}}"), PW_EJSON);
    assert_int_equal(pw_sync_state_load(&st2, "{\"v\":1,\"ms\":1,\"seen\":{\"a\":\"x\"}}"),
                     PW_EJSON);
    assert_int_equal(pw_sync_state_load(&st2, "not json"), PW_EJSON);
    pw_sync_state_cleanup(&st2);
    pw_sync_state_cleanup(&st);
}

static void test_seen_set_hard_cap_keeps_newest(void **state)
{
    (void)state;
    struct pw_sync_state st;
    char key[64];
    char *text = NULL;

    assert_int_equal(pw_sync_state_init(&st), 0);
    for (int i = 0; i < PW_SYNC_SEEN_MAX + 10; i++) {
        snprintf(key, sizeof(key), "Observation/o%d/1", i);
        json_object_set_new(st.seen, key, json_integer(T0 + i));
    }
    st.cursor_ms = T0 + PW_SYNC_SEEN_MAX + 10;
    assert_int_equal(pw_sync_state_dump(&st, 24LL * 3600000, &text), 0);
    assert_int_equal(json_object_size(st.seen), PW_SYNC_SEEN_MAX);
    assert_null(json_object_get(st.seen, "Observation/o9/1"));
    assert_non_null(json_object_get(st.seen, "Observation/o10/1"));
    free(text);
    pw_sync_state_cleanup(&st);
}

static void test_cursor_text_always_fits(void **state)
{
    (void)state;
    struct pw_sync_state st;
    char key[200];
    char *text = NULL;
    char pad[121];

    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    assert_int_equal(pw_sync_state_init(&st), 0);
    for (int i = 0; i < PW_SYNC_SEEN_MAX; i++) {
        snprintf(key, sizeof(key), "Observation/%s%d/1", pad, i);
        json_object_set_new(st.seen, key, json_integer(SH_T0_MS + i));
    }
    st.cursor_ms = SH_T0_MS + PW_SYNC_SEEN_MAX;
    assert_int_equal(pw_sync_state_dump(&st, 24LL * 3600000, &text), 0);
    assert_true(strlen(text) < PW_SYNC_CURSOR_MAX);
    assert_true(json_object_size(st.seen) < PW_SYNC_SEEN_MAX);
    /* The newest entry is kept. */
    snprintf(key, sizeof(key), "Observation/%s%d/1", pad, PW_SYNC_SEEN_MAX - 1);
    assert_non_null(json_object_get(st.seen, key));
    free(text);
    pw_sync_state_cleanup(&st);
}

static void test_conf_from_daemon_config(void **state)
{
    (void)state;
    static const char yaml[] = "servers:\n"
                               "  - name: epic\n"
                               "    base_url: https://ehr.test/api/FHIR/R4/\n"
                               "    auth:\n"
                               "      type: none\n"
                               "    dialect:\n"
                               "      patient_param: subject\n"
                               "      sort: false\n"
                               "      max_count: 50\n"
                               "    cohort:\n"
                               "      type: group\n"
                               "      group: ward4\n"
                               "      refresh: 10m\n"
                               "    resources: [Observation, MedicationRequest, Condition]\n"
                               "    poll_interval: 2m\n"
                               "    lookback: 7d\n"
                               "pain_codes:\n"
                               "  score: [\"http://loinc.org|72514-3\", \"http://site|faces|5\"]\n"
                               "  type: [\"http://snomed.info/sct|247398009\"]\n"
                               "  poss: [\"http://site|poss\"]\n";
    struct pw_conf *pc = NULL;
    struct pw_conf_errors errs;
    struct pw_fhir_search_conf c;
    struct pw_cohort *cohort = NULL;
    char err[256] = "";

    memset(&errs, 0, sizeof(errs));
    if (pw_conf_load_string(&pc, "test.yaml", "/tmp", yaml, strlen(yaml), &errs) != 0) {
        pw_conf_errors_cleanup(&errs);
        fail_msg("config did not load");
    }
    const struct pw_conf_daemon *d = pw_conf_daemon(pc);
    assert_int_equal(d->n_servers, 1);
    source_conf(pc, true, &c);
    assert_string_equal(c.name, "epic");
    assert_string_equal(c.base, "https://ehr.test/api/FHIR/R4");
    assert_true(c.dialect.subject);
    assert_false(c.dialect.sort);
    assert_int_equal(c.dialect.count_max, 50);
    assert_int_equal(c.ntypes, 3);
    /* issue 17: plus the vital signs opioid-sedation-risk reads */
    /* issue 17: a site scale's maximum is not searched; sedation and vital-sign codes are */
    assert_string_equal(
        c.types[0].codes,
        "http://loinc.org|72514-3,http://site|faces,http://snomed.info/sct|247398009,"
        "http://site|poss,http://loinc.org|9279-1,http://loinc.org|59408-5,"
        "http://loinc.org|2708-6");
    assert_null(c.types[1].codes);
    assert_string_equal(c.types[2].type, "Condition");
    assert_int_equal(c.lookback_ms, 7LL * 86400000);
    assert_int_equal(pw_cohort_new(&cohort, d->servers[0].cohort.section, err, sizeof(err)), 0);
    assert_false(cohort->server_wide);
    pw_cohort_free(cohort);
    pw_fhir_search_conf_cleanup(&c);
    pw_conf_free(pc);
    pw_conf_errors_cleanup(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_instant_parse_and_format),
        cmocka_unit_test(test_conf_defaults_and_config),
        cmocka_unit_test(test_conf_errors_name_the_key),
        cmocka_unit_test(test_url_first_sync_uses_clinical_lookback),
        cmocka_unit_test(test_url_incremental_and_dialects),
        cmocka_unit_test(test_same_origin),
        cmocka_unit_test(test_page_filter_dedupes_and_tracks_cursor),
        cmocka_unit_test(test_page_filter_typed_tracks_own_type),
        cmocka_unit_test(test_state_roundtrip_and_bounded_seen_set),
        cmocka_unit_test(test_seen_set_hard_cap_keeps_newest),
        cmocka_unit_test(test_cursor_text_always_fits),
        cmocka_unit_test(test_url_orders_in_force),
        cmocka_unit_test(test_seen_prune_keeps_recent_and_kept),
        cmocka_unit_test(test_conf_from_daemon_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
