/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Values a server chooses, read by painwatchd: the first byte picks the reader, the rest is the
 * value. Retry-After (delta-seconds and the three HTTP-date forms), origins and the same-origin
 * test that pins next links and redirects to the server, next links inside a page, FHIR
 * instants (meta.lastUpdated, the sync cursor), dates, references, durations, audit times,
 * query escaping, Group members (a server-chosen cohort).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "painwatch/audit.h"
#include "painwatch/cohort.h"
#include "painwatch/conf.h"
#include "painwatch/fhir.h"
#include "painwatch/fhir_search.h"
#include "painwatch/http.h"
#include "painwatch/sync.h"

static const char *const bases[] = {
    "https://ehr.example.org/fhir",
    "http://127.0.0.1:8080/fhir/R4",
    "https://[::1]:8443/r4",
};

static void next_link(const char *s)
{
    json_t *page = json_pack("{s:s, s:s, s:[{s:s, s:s}], s:[]}", "resourceType", "Bundle", "type",
                             "searchset", "link", "relation", "next", "url", s, "entry");
    struct pw_sync_state st;
    json_t *res = NULL;
    const char *next = NULL;
    int64_t max_ms = PW_SYNC_NO_CURSOR;
    struct pw_page_stats stats;
    if (page == NULL) {
        return; /* not UTF-8: jansson refuses it, as it does in a page */
    }
    if (pw_sync_state_init(&st) < 0) {
        abort();
    }
    if (pw_sync_page_filter(&st, page, &res, &next, &max_ms, &stats) == 0 && next != NULL) {
        for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
            (void)pw_url_same_origin(next, bases[i]);
        }
    }
    json_decref(res);
    pw_sync_state_cleanup(&st);
    json_decref(page);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pwf_init();
    if (size == 0) {
        return 0;
    }
    char *s = pwf_cstr(data + 1, size - 1);
    char buf[512];
    int64_t t;
    uint64_t ms;
    switch (data[0] % 11) {
    case 0:
        (void)pw_retry_after_parse(s, PWF_NOW, &ms);
        (void)pw_retry_after_parse(s, 0, &ms);
        (void)pw_retry_after_parse(s, INT64_MAX / 2, &ms);
        break;
    case 1:
        (void)pw_http_origin(s, buf, sizeof(buf));
        (void)pw_http_origin(s, buf, 8);
        break;
    case 2:
        for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
            (void)pw_url_same_origin(s, bases[i]);
            (void)pw_url_same_origin(bases[i], s);
        }
        (void)pw_url_same_origin(s, s);
        break;
    case 3:
        if (pw_fhir_instant_parse(s, &t) == 0) {
            pw_fhir_instant_format(t, buf, sizeof(buf));
        }
        break;
    case 4:
        if (pw_fhir_parse_time(s, &t) == 0) {
            pw_fhir_format_time(t, buf, sizeof(buf));
        }
        break;
    case 5:
        (void)pw_fhir_ref_relative(s, buf, sizeof(buf));
        (void)pw_fhir_ref_relative(s, buf, 4);
        break;
    case 6:
        (void)pw_audit_parse_time(s, &t);
        break;
    case 7:
        if (pw_conf_parse_duration(s, &t) == 0) {
            pw_conf_format_duration(t, buf, sizeof(buf));
        }
        break;
    case 8:
        pw_http_escape_free(pw_http_escape(s));
        break;
    case 9:
        next_link(s);
        break;
    default: {
        json_t *g = json_loads(s, 0, NULL);
        char **ids = NULL;
        size_t n = 0;
        if (g != NULL && pw_cohort_group_members(g, PWF_NOW * 1000, &ids, &n) == 0) {
            for (size_t i = 0; i < n; i++) {
                free(ids[i]);
            }
            free(ids);
        }
        json_decref(g);
        break;
    }
    }
    free(s);
    return 0;
}
