/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue 18, findings 2-4, against a real loopback server through the real HTTP core and the real
 * sync engine (pages parsed into the page arena as in painwatchd): a page over its entry cap or
 * parse budget is asked again with half the _count; a page's rejected entries are one log line;
 * a resource holding a value jansson cannot represent (1e400, a 30-digit integer, invalid UTF-8)
 * is skipped and reported while the rest of the page and the cursor go on; a page that is not
 * JSON even at _count=1 fails the run, and repeated failures make the server unhealthy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "painwatch/jarena.h"
#include "painwatch/log.h"
#include "painwatch/page_parse.h"
#include "support/sync_harness.h"

#define SRV_WIDE "{\"type\": \"server\"}"
#define KEY      "ehr/Observation/-"

/* A server-wide Observation-only source (one stream: "ehr/Observation/-"). */
static void obs_only(struct sh *h, struct pw_fhir_search_conf *conf)
{
    sh_conf(h, conf, "ehr", h->base, 0, 0);
    free(conf->types[1].type);
    conf->types[1].type = NULL;
    conf->ntypes = 1;
}

/* An Observation entry as text, @p extra spliced in raw (e.g. ",\"x\":1e400"). */
static void obs_text(char *buf, size_t len, const char *id, const char *lu, const char *extra)
{
    snprintf(buf, len,
             "{\"resource\":{\"resourceType\":\"Observation\",\"id\":\"%s\",\"meta\":{"
             "\"versionId\":\"1\",\"lastUpdated\":\"%s\"},\"status\":\"final\"%s},\"search\":{"
             "\"mode\":\"match\"}}",
             id, lu, extra);
}

/* A searchset Bundle around @p entries (JSON text of the entries, comma-separated). */
static char *bundle_text(const char *entries)
{
    const char *head = "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"entry\":[";
    size_t n = strlen(head) + strlen(entries) + 3;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "%s%s]}", head, entries);
    return s;
}

/* @p n copies of @p entry, comma-separated, then @p tail (may be ""). */
static char *repeat(const char *entry, size_t n, const char *tail)
{
    size_t e = strlen(entry);
    size_t t = strlen(tail);
    char *s = malloc(n * (e + 1) + t + 2);
    size_t off = 0;
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) {
        if (off) {
            s[off++] = ',';
        }
        memcpy(s + off, entry, e);
        off += e;
    }
    if (t) {
        if (off) {
            s[off++] = ',';
        }
        memcpy(s + off, tail, t);
        off += t;
    }
    s[off] = '\0';
    return s;
}

static size_t count_str(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; p && (p = strstr(p, needle)); p++) {
        n++;
    }
    return n;
}

/* Finding 3: a page of a million bad entries wrote a million warnings; now one summary. */
static void test_rejected_entries_one_summary_line(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    char ok[512];
    char *log = NULL;
    size_t loglen = 0;
    FILE *out = open_memstream(&log, &loglen);

    pw_log_init();
    pw_log_set_output(out, false);
    sh_init(&h);
    obs_only(&h, &conf);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    obs_text(ok, sizeof(ok), "o1", "2024-05-01T10:00:00Z", "");
    char *no_id = repeat("{\"resource\":{\"resourceType\":\"Observation\"}}", 1000, ok);
    char *entries = repeat("{}", 10, no_id);
    char *page = bundle_text(entries);
    sh_rule(&h, "/fhir/Observation", NULL, 0, 200, NULL, page);
    sh_run_once(&h);
    fflush(out);

    assert_int_equal(h.cycle_failed, 0);
    assert_int_equal(json_array_size(h.delivered), 1);
    assert_non_null(json_object_get(h.cursors, KEY));
    /* One line for the page's 1010 rejected entries, none per entry. */
    assert_int_equal(count_str(log, "rejected"), 1);
    assert_non_null(strstr(log, "1,010 entries rejected: 1,000 no id, 10 no resource"));
    assert_int_equal(count_str(log, "\n"), 1);
    sh_fini(&h);
    pw_log_set_output(NULL, false);
    fclose(out);
    free(log);
    free(no_id);
    free(entries);
    free(page);
}

/* Finding 2: a page with more entries than the cap is refused and asked again smaller. */
static void test_page_over_entry_cap_asked_smaller(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    struct pw_sync_health hl;
    char e[512];

    sh_init(&h);
    pw_sync_set_page_limits(h.sync, 0, 10);
    obs_only(&h, &conf);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    obs_text(e, sizeof(e), "big", "2024-05-01T10:00:00Z", "");
    char *eleven = repeat(e, 11, "");
    char *big = bundle_text(eleven);
    obs_text(e, sizeof(e), "o1", "2024-05-01T10:05:00Z", "");
    char *small = bundle_text(e);
    sh_rule(&h, "/fhir/Observation", "_count=100", 0, 200, NULL, big);
    sh_rule(&h, "/fhir/Observation", "_count=50", 0, 200, NULL, small);
    sh_run_once(&h);

    assert_int_equal(pwt_responder_count(h.r), 2);
    assert_non_null(strstr(sh_query(&h, 1), "_count=50"));
    /* The request otherwise unchanged: the same search, the same window. */
    assert_non_null(strstr(sh_query(&h, 1), "code=http://loinc.org|72514-3"));
    assert_non_null(strstr(sh_query(&h, 1), "date=ge"));
    assert_null(strstr(sh_query(&h, 1), "_count=100"));
    assert_int_equal(json_array_size(h.delivered), 1);
    assert_true(sh_delivered(&h, KEY "|Observation/o1/1"));
    assert_non_null(json_object_get(h.cursors, KEY));
    assert_int_equal(pw_sync_health(h.sync, "ehr", &hl), 0);
    assert_int_equal(hl.pages_refused, 1);
    assert_int_equal(hl.page_failures, 0);
    assert_int_equal(h.cycle_failed, 0);
    sh_fini(&h);
    free(eleven);
    free(big);
    free(small);
}

/* Finding 2: a page whose tree passes the parse budget (tens of thousands of empty entries in a
 * few hundred kB) is refused before it is built whole, then asked again smaller. */
static void test_page_over_parse_budget_asked_smaller(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    struct pw_sync_health hl;
    struct pw_jarena_stats st;
    char e[512];

    sh_init(&h);
    pw_sync_set_page_limits(h.sync, 4u << 20, 1000000);
    obs_only(&h, &conf);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    char *empties = repeat("{}", 60000, "");
    char *big = bundle_text(empties);
    obs_text(e, sizeof(e), "o1", "2024-05-01T10:05:00Z", "");
    char *small = bundle_text(e);
    sh_rule(&h, "/fhir/Observation", "_count=100", 0, 200, NULL, big);
    sh_rule(&h, "/fhir/Observation", "_count=50", 0, 200, NULL, small);
    sh_run_once(&h);

    assert_int_equal(pwt_responder_count(h.r), 2);
    assert_non_null(strstr(sh_query(&h, 1), "_count=50"));
    assert_true(sh_delivered(&h, KEY "|Observation/o1/1"));
    assert_non_null(json_object_get(h.cursors, KEY));
    assert_int_equal(pw_sync_health(h.sync, "ehr", &hl), 0);
    assert_int_equal(hl.pages_refused, 1);
    /* Nothing of the refused parse is left in the arena. */
    pw_jarena_stats(&st);
    assert_int_equal(st.segments_used, 0);
    sh_fini(&h);
    free(empties);
    free(big);
    free(small);
}

/* Finding 4: values jansson cannot represent skip their resource, not the page. */
static void test_poison_values_skip_the_resource_not_the_page(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    struct pw_sync_health hl;
    char e[5][512];
    char all[4096];

    sh_init(&h);
    obs_only(&h, &conf);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    obs_text(e[0], sizeof(e[0]), "o1", "2024-05-01T10:00:00Z", ",\"valueQuantity\":{\"value\":5}");
    obs_text(e[1], sizeof(e[1]), "o2", "2024-05-01T10:01:00Z",
             ",\"valueQuantity\":{\"value\":1e400}");
    obs_text(e[2], sizeof(e[2]), "o3", "2024-05-01T10:02:00Z",
             ",\"valueQuantity\":{\"value\":123456789012345678901234567890}");
    obs_text(e[3], sizeof(e[3]), "o4", "2024-05-01T10:03:00Z",
             ",\"note\":[{\"text\":\"bad \xff\xfe bytes \xc3\"}]");
    obs_text(e[4], sizeof(e[4]), "o5", "2024-05-01T10:04:00Z",
             ",\"valueQuantity\":{\"value\":-1e-7}");
    snprintf(all, sizeof(all), "%s,%s,%s,%s,%s", e[0], e[1], e[2], e[3], e[4]);
    char *page = bundle_text(all);
    sh_rule(&h, "/fhir/Observation", NULL, 0, 200, NULL, page);
    sh_run_once(&h);

    /* One request: the page was read, not refused. */
    assert_int_equal(pwt_responder_count(h.r), 1);
    assert_int_equal(h.cycle_failed, 0);
    assert_int_equal(json_array_size(h.delivered), 2);
    assert_true(sh_delivered(&h, KEY "|Observation/o1/1"));
    assert_true(sh_delivered(&h, KEY "|Observation/o5/1"));
    /* Each unreadable resource reported with its identity. */
    assert_int_equal(json_array_size(h.unreadable), 3);
    assert_string_equal(json_string_value(json_array_get(h.unreadable, 0)),
                        KEY "|Observation/o2/1|-");
    assert_string_equal(json_string_value(json_array_get(h.unreadable, 1)),
                        KEY "|Observation/o3/1|-");
    assert_string_equal(json_string_value(json_array_get(h.unreadable, 2)),
                        KEY "|Observation/o4/1|-");
    /* The cursor advanced past them (to the newest lastUpdated of the page, o5's). */
    const char *cur = json_string_value(json_object_get(h.cursors, KEY));
    assert_non_null(cur);
    assert_non_null(strstr(cur, "2024-05-01T10:04:00.000Z"));
    assert_int_equal(pw_sync_health(h.sync, "ehr", &hl), 0);
    assert_int_equal(hl.unreadable, 3);
    assert_int_equal(hl.consecutive_failures, 0);

    /* The next run gets the same page back (the overlap): nothing reported or delivered twice. */
    sh_run_once(&h);
    assert_int_equal(pwt_responder_count(h.r), 2);
    assert_int_equal(json_array_size(h.unreadable), 3);
    assert_int_equal(json_array_size(h.delivered), 2);
    assert_int_equal(pw_sync_health(h.sync, "ehr", &hl), 0);
    assert_int_equal(hl.unreadable, 3);
    sh_fini(&h);
    free(page);
}

/* Finding 4: a page that is not JSON is asked again smaller down to one resource; still not
 * JSON, the run fails, the failures count, and repeated ones make the server unhealthy; a good
 * page makes it healthy again. */
static void test_malformed_page_retried_then_unhealthy(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    struct pw_sync_health hl;
    char e[512];

    /* systemd's STATUS= follows: a $NOTIFY_SOCKET of our own. */
    char *dir = pwt_mkdtemp();
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char msg[512];
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", dir);
    int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(sock >= 0);
    assert_int_equal(bind(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setenv("NOTIFY_SOCKET", sa.sun_path, 1);

    sh_init(&h);
    obs_only(&h, &conf);
    conf.count = 8;
    h.sched.unhealthy_after = 2;
    sh_add(&h, &conf, SRV_WIDE, NULL);
    sh_rule(&h, "/fhir/Observation", NULL, 0, 200, NULL,
            "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"entry\":[{\"resource\":");
    sh_run_once(&h);
    /* 8, 4, 2, 1. */
    assert_int_equal(pwt_responder_count(h.r), 4);
    assert_non_null(strstr(sh_query(&h, 0), "_count=8"));
    assert_non_null(strstr(sh_query(&h, 1), "_count=4"));
    assert_non_null(strstr(sh_query(&h, 2), "_count=2"));
    assert_non_null(strstr(sh_query(&h, 3), "_count=1"));
    assert_null(json_object_get(h.cursors, KEY));
    assert_int_equal(pw_sync_health(h.sync, "ehr", &hl), 0);
    assert_int_equal(hl.page_failures, 1);
    assert_false(hl.unhealthy);
    assert_true(recv(sock, msg, sizeof(msg), 0) < 0); /* nothing said yet */
    sh_run_once(&h);
    assert_int_equal(pw_sync_health(h.sync, "ehr", &hl), 0);
    assert_int_equal(hl.page_failures, 2);
    assert_int_equal(hl.consecutive_failures, 2);
    assert_true(hl.unhealthy); /* /readyz and painwatch_server_up follow this flag */
    ssize_t n = recv(sock, msg, sizeof(msg) - 1, 0);
    assert_true(n > 0);
    msg[n] = '\0';
    assert_string_equal(msg, "STATUS=degraded: server ehr failing (malformed JSON)");

    pwt_responder_clear_rules(h.r);
    obs_text(e, sizeof(e), "o1", "2024-05-01T10:05:00Z", "");
    char *good = bundle_text(e);
    sh_rule(&h, "/fhir/Observation", NULL, 0, 200, NULL, good);
    sh_run_once(&h);
    assert_int_equal(pw_sync_health(h.sync, "ehr", &hl), 0);
    assert_false(hl.unhealthy);
    assert_int_equal(hl.consecutive_failures, 0);
    assert_non_null(json_object_get(h.cursors, KEY));
    n = recv(sock, msg, sizeof(msg) - 1, 0);
    assert_true(n > 0);
    msg[n] = '\0';
    assert_string_equal(msg, "STATUS=ready: server ehr healthy again");
    sh_fini(&h);
    free(good);
    unsetenv("NOTIFY_SOCKET");
    close(sock);
    pwt_rmtree(dir);
    free(dir);
}

/* The _count of a request halved, everything else of the query kept as sent. */
static void test_halve_count(void **state)
{
    (void)state;
    char *u = NULL;
    unsigned n = 0;

    assert_int_equal(
        pw_search_url_halve_count("http://h/fhir/Observation?a=1&_count=100&b=x%2Cy", 7, &u, &n),
        0);
    /* curl's URL API writes percent-escapes in lower case: the same URL (RFC 3986, 2.1). */
    assert_int_equal(strcasecmp(u, "http://h/fhir/Observation?a=1&b=x%2Cy&_count=50"), 0);
    assert_int_equal(n, 50);
    free(u);
    /* A server's next link without one: the configured count is what it was. */
    assert_int_equal(pw_search_url_halve_count("http://h/fhir?_getpages=abc", 9, &u, &n), 0);
    assert_string_equal(u, "http://h/fhir?_getpages=abc&_count=4");
    free(u);
    assert_int_equal(pw_search_url_halve_count("http://h/fhir?_count=1", 100, &u, &n), PW_ERANGE);
    assert_null(u);
    assert_int_equal(pw_search_url_halve_count("http://h/fhir?_count=3", 100, &u, &n), 0);
    assert_string_equal(u, "http://h/fhir?_count=1");
    free(u);
}

/* Set-aside values outside every resource do not cost a resource; one in the next link makes the
 * page unusable (where to go on is unknown); a value the parse cannot place is not JSON. */
static void test_page_parse_places_unreadable_values(void **state)
{
    (void)state;
    struct pw_jarena_page pg;
    struct pw_page_parsed pp;
    const char *total = "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"total\":1e999,"
                        "\"entry\":[{\"resource\":{\"resourceType\":\"Observation\",\"id\":"
                        "\"a\"},\"search\":{\"score\":-9e9999}}]}";
    assert_int_equal(pw_page_parse(total, strlen(total), 0, 0, &pg, &pp), 0);
    assert_int_equal(pp.refusal, PW_PAGE_OK);
    assert_int_equal(pp.repairs, 2);
    json_t *bad = json_array();
    assert_int_equal(pw_page_take_unreadable(pp.bundle, bad), 0);
    assert_int_equal(json_array_size(json_object_get(pp.bundle, "entry")), 1);
    json_decref(bad);
    pw_jarena_page_drop(&pg, pp.bundle);

    const char *link = "{\"resourceType\":\"Bundle\",\"link\":[{\"relation\":\"next\","
                       "\"url\":\"http://h/fhir?p=\xff\"}]}";
    assert_int_equal(pw_page_parse(link, strlen(link), 0, 0, &pg, &pp), 0);
    assert_int_equal(pp.refusal, PW_PAGE_OK);
    assert_true(pw_page_value_unreadable(json_object_get(pp.bundle, "link")));
    pw_jarena_page_drop(&pg, pp.bundle);

    /* Invalid UTF-8 outside a string, a truncated page: not JSON, the position kept. */
    const char *raw = "{\"resourceType\":\"Bundle\",\"x\":\xff}";
    assert_int_equal(pw_page_parse(raw, strlen(raw), 0, 0, &pg, &pp), 0);
    assert_int_equal(pp.refusal, PW_PAGE_NOT_JSON);
    assert_null(pp.bundle);
    const char *cut = "{\"resourceType\":\"Bundle\",\"entry\":[";
    assert_int_equal(pw_page_parse(cut, strlen(cut), 0, 0, &pg, &pp), 0);
    assert_int_equal(pp.refusal, PW_PAGE_NOT_JSON);
    assert_int_equal(pp.line, 1);
    assert_true(pp.position > 0);

    /* More unreadable values than PW_PAGE_REPAIRS_MAX: the page is not read (asked smaller). */
    char many[4096] = "{\"entry\":[1e999";
    for (int i = 0; i < PW_PAGE_REPAIRS_MAX; i++) {
        strcat(many, ",1e999");
    }
    strcat(many, "]}");
    assert_int_equal(pw_page_parse(many, strlen(many), 0, 0, &pg, &pp), 0);
    assert_int_equal(pp.refusal, PW_PAGE_NOT_JSON);
    assert_int_equal(pp.repairs, PW_PAGE_REPAIRS_MAX);
}

/* A page whose next link is unreadable ends the run as a page failure, cursor kept. */
static void test_unreadable_next_link_fails_the_run(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    struct pw_sync_health hl;
    char e[512];
    char page[1024];

    sh_init(&h);
    obs_only(&h, &conf);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    obs_text(e, sizeof(e), "o1", "2024-05-01T10:00:00Z", "");
    snprintf(page, sizeof(page),
             "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"link\":[{\"relation\":"
             "\"next\",\"url\":\"%s?p=\xff\"}],\"entry\":[%s]}",
             h.base, e);
    sh_rule(&h, "/fhir/Observation", NULL, 0, 200, NULL, page);
    sh_run_once(&h);
    assert_int_equal(pwt_responder_count(h.r), 1);
    assert_int_equal(json_array_size(h.delivered), 0);
    assert_null(json_object_get(h.cursors, KEY));
    assert_int_equal(pw_sync_health(h.sync, "ehr", &hl), 0);
    assert_int_equal(hl.page_failures, 1);
    assert_int_equal(hl.last_error, PW_EFHIR);
    sh_fini(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rejected_entries_one_summary_line),
        cmocka_unit_test(test_page_over_entry_cap_asked_smaller),
        cmocka_unit_test(test_page_over_parse_budget_asked_smaller),
        cmocka_unit_test(test_poison_values_skip_the_resource_not_the_page),
        cmocka_unit_test(test_malformed_page_retried_then_unhealthy),
        cmocka_unit_test(test_halve_count),
        cmocka_unit_test(test_page_parse_places_unreadable_values),
        cmocka_unit_test(test_unreadable_next_link_fails_the_run),
    };
    /* As painwatchd does, before any thread starts. */
    if (pw_jarena_install() != 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
