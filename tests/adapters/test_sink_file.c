/* SPDX-License-Identifier: Apache-2.0 */
/* The file sink (shadow mode): one NDJSON line per write, appended across restarts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "painwatch/err.h"
#include "painwatch/sink.h"
#include "support/pwtest.h"

static char payload[] = "{\"resourceType\":\"Flag\",\"status\":\"active\"}";

static struct pw_outbox_row row(int64_t id, enum pw_outbox_op op)
{
    struct pw_outbox_row r = {.id = id, .op = op, .payload = payload};

    snprintf(r.key, sizeof(r.key), "%064d", 5);
    snprintf(r.patient, sizeof(r.patient), "Patient/9");
    snprintf(r.rule, sizeof(r.rule), "laxative-missing");
    return r;
}

static struct pw_sink *open_sink(const char *file)
{
    json_t *section = json_pack("{s:s}", "file", file);
    struct pw_sink_conf conf = {.section = section};
    struct pw_sink *sink = NULL;

    assert_int_equal(pw_sink_new(&sink, "file", &conf), 0);
    json_decref(section); /* the sink keeps its own reference */
    assert_false(sink->ops->remote);
    return sink;
}

static void test_lines_appended_across_reopen(void **state)
{
    char *dir = pwt_mkdtemp();
    char file[4096];
    struct pw_sink *sink;
    struct pw_outbox_row r1 = row(1, PW_OUTBOX_CREATE);
    struct pw_outbox_row r2 = row(2, PW_OUTBOX_RESOLVE);
    struct pw_sink_written w = {0};
    char *text;
    char *nl;
    json_t *line;

    (void)state;
    snprintf(file, sizeof(file), "%s/shadow.ndjson", dir);
    sink = open_sink(file);
    assert_int_equal(sink->ops->write(sink, &r1, 1767225600, &w), 0);
    assert_string_equal(w.version, "1");
    assert_true(strncmp(w.id, "shadow-", 7) == 0);
    assert_true(strlen(w.id) <= 64);
    pw_sink_free(sink);
    sink = open_sink(file); /* a restart appends */
    assert_int_equal(sink->ops->write(sink, &r2, 1767229200, &w), 0);
    pw_sink_free(sink);

    text = pwt_read_file(file, NULL);
    nl = strchr(text, '\n');
    assert_non_null(nl);
    *nl = '\0';
    line = json_loads(text, 0, NULL);
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "op")), "create");
    assert_string_equal(json_string_value(json_object_get(line, "time")), "2026-01-01T00:00:00Z");
    assert_string_equal(json_string_value(json_object_get(line, "rule")), "laxative-missing");
    assert_string_equal(json_string_value(json_object_get(line, "key")), r1.key);
    assert_int_equal(json_integer_value(json_object_get(line, "outbox_id")), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(line, "resource"), "resourceType")),
        "Flag");
    json_decref(line);
    line = json_loads(nl + 1, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "op")), "resolve");
    json_decref(line);
    assert_string_equal(nl + 1 + strlen(nl + 1) - 1, "\n");
    assert_null(strchr(strchr(nl + 1, '\n') + 1, '\n'));
    free(text);
    pwt_rmtree(dir);
    free(dir);
}

static void test_bad_payload_and_config(void **state)
{
    char *dir = pwt_mkdtemp();
    char file[4096];
    struct pw_sink *sink = NULL;
    struct pw_outbox_row r = row(3, PW_OUTBOX_CREATE);
    struct pw_sink_written w;
    struct pw_sink_conf none = {0};
    json_t *nodir_section = json_pack("{s:s}", "file", "/nonexistent-dir/x.ndjson");
    struct pw_sink_conf nodir = {.section = nodir_section};
    char bad[] = "{not json";

    (void)state;
    assert_int_equal(pw_sink_new(&sink, "file", &none), PW_ECONFIG);
    assert_int_equal(pw_sink_new(&sink, "file", &nodir), PW_ENOENT);
    json_decref(nodir_section);
    assert_null(sink);
    snprintf(file, sizeof(file), "%s/shadow.ndjson", dir);
    sink = open_sink(file);
    r.payload = bad;
    assert_int_equal(sink->ops->write(sink, &r, 0, &w), PW_EJSON);
    assert_int_equal(sink->ops->classify(sink, PW_ENOSPC, 0), PW_RETRY);
    assert_int_equal(sink->ops->classify(sink, 0, 0), PW_DELIVERED);
    pw_sink_free(sink);
    pwt_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_appended_across_reopen),
        cmocka_unit_test(test_bad_payload_and_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
