/* SPDX-License-Identifier: Apache-2.0 */
/* audit.c + audit_verify.c: a written trail verifies; each kind of tampering is found at the right
 * line; rotation keeps the chain; real write failures fail closed and recover; logs stay PHI-free.
 */
#define _GNU_SOURCE /* open_memstream, RLIMIT_FSIZE helpers */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "painwatch/audit.h"
#include "painwatch/err.h"
#include "painwatch/log.h"
#include "support/pwtest.h"

/* Values that must reach the trail and never the operational log. */
#define SENTINEL_PATIENT "Patient/PHI-7f3a-Jane-Doe"
#define SENTINEL_QUERY   "Observation?patient=PHI-7f3a-Jane-Doe&code=72514-3"
#define SENTINEL_NUMBER  "baseline_mme_per_day"

#define TEST_KEY "6f1c2d3e4a5b69788796a5b4c3d2e1f00112233445566778899aabbccddeeff"

struct ctx {
    char *dir;
    char path[4200];
    char key[4200];
    struct pw_audit_opts opts;
};

static int64_t fake_now = 1795000000000; /* 2026-11-18T... UTC */

static int64_t fake_clock(void)
{
    fake_now += 1000;
    return fake_now;
}

static void write_key(const char *path, const char *text, mode_t mode)
{
    pwt_write_file(path, text);
    assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
    struct ctx *c = calloc(1, sizeof(*c));

    c->dir = pwt_mkdtemp();
    snprintf(c->path, sizeof(c->path), "%s/trail.jsonl", c->dir);
    snprintf(c->key, sizeof(c->key), "%s/audit.key", c->dir);
    write_key(c->key, TEST_KEY "\n", 0600);
    c->opts.path = c->path;
    c->opts.key_path = c->key;
    c->opts.device = "Device/painwatch-test";
    c->opts.site = "test-site";
    c->opts.clock_ms = fake_clock;
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

static struct pw_audit *open_trail(struct ctx *c)
{
    struct pw_audit *a = NULL;

    assert_int_equal(pw_audit_open(&a, &c->opts), 0);
    assert_true(pw_audit_writable(a));
    return a;
}

static void sample_finding(struct pw_finding *f)
{
    memset(f, 0, sizeof(*f));
    f->rule = "opioid-without-laxative/1";
    f->category = "drug";
    f->severity = PW_SEV_MEDIUM;
    snprintf(f->patient, sizeof(f->patient), "%s", SENTINEL_PATIENT);
    snprintf(f->key, sizeof(f->key), "%064d", 7);
    snprintf(f->text, sizeof(f->text), "Opioid for 30 h, no laxative ordered");
    f->factor_set = "cdc2022";
    f->since = 1795161600; /* 2026-11-20T08:00:00Z */
    snprintf(f->evidence[0].type, sizeof(f->evidence[0].type), "MedicationRequest");
    snprintf(f->evidence[0].id, sizeof(f->evidence[0].id), "mr-1");
    snprintf(f->evidence[0].version, sizeof(f->evidence[0].version), "3");
    f->n_evidence = 1;
    f->numbers[0].name = SENTINEL_NUMBER;
    f->numbers[0].value = 67.5;
    f->n_numbers = 1;
}

/* Seven records after the header: every builder once. Returns the number of lines written. */
static int write_sample(struct pw_audit *a)
{
    struct pw_finding f;
    struct pw_audit_fhir search = {
        .interaction = "search",
        .server = "https://ehr.example.org/fhir",
        .method = "GET",
        .url = SENTINEL_QUERY,
        .status = 200,
        .patient = SENTINEL_PATIENT,
        .correlation = "c-1",
        .entries = 12,
    };
    struct pw_audit_fhir create = {
        .interaction = "create",
        .server = "https://ehr.example.org/fhir",
        .method = "POST",
        .url = "Flag",
        .status = 201,
        .patient = SENTINEL_PATIENT,
        .resource = "Flag/f-9/_history/1",
        .correlation = "c-2",
        .entries = -1,
    };
    struct pw_audit_flag flag = {
        .subtype = "flag-delivered",
        .action = 'C',
        .server = "https://ehr.example.org/fhir",
        .patient = SENTINEL_PATIENT,
        .rule = "opioid-without-laxative/1",
        .episode = "00ab",
        .flag = "Flag/f-9/_history/1",
        .status = 201,
        .correlation = "c-2",
    };

    sample_finding(&f);
    assert_int_equal(pw_audit_event(a, "start", 'E', PW_AUDIT_SUCCESS, "painwatchd 0.1.0", NULL),
                     0);
    assert_int_equal(pw_audit_event(a, "config-loaded", 'E', PW_AUDIT_SUCCESS, NULL,
                                    json_pack("{s:{s:s}}", "painwatch", "config_hash", "ab12")),
                     0);
    assert_int_equal(pw_audit_fhir_interaction(a, &search), 0);
    assert_int_equal(pw_audit_finding(a, "finding-raised", &f, "c-1"), 0);
    assert_int_equal(pw_audit_fhir_interaction(a, &create), 0);
    assert_int_equal(pw_audit_flag(a, &flag), 0);
    assert_int_equal(pw_audit_event(a, "stop", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    return 8;
}

static int verify1(const char *key, const char *path, struct pw_audit_verdict *v)
{
    unsigned char *k = NULL;
    size_t klen = 0;
    const char *files[] = {path};
    int rc;

    assert_int_equal(pw_audit_key_load(key, &k, &klen), 0);
    rc = pw_audit_verify_files(k, klen, files, 1, v);
    pw_audit_key_free(k, klen);
    return rc;
}

static int verify_n(const char *key, const char *const *files, size_t n, struct pw_audit_verdict *v)
{
    unsigned char *k = NULL;
    size_t klen = 0;
    int rc;

    assert_int_equal(pw_audit_key_load(key, &k, &klen), 0);
    rc = pw_audit_verify_files(k, klen, files, n, v);
    pw_audit_key_free(k, klen);
    return rc;
}

/* The file as an array of lines (each with its newline, the last may lack it). */
struct lines {
    char *data;
    char *v[256];
    size_t len[256];
    size_t n;
};

static void split(const char *path, struct lines *l)
{
    size_t size;
    char *p;

    memset(l, 0, sizeof(*l));
    l->data = pwt_read_file(path, &size);
    p = l->data;
    while (p < l->data + size) {
        char *nl = memchr(p, '\n', (size_t)(l->data + size - p));
        size_t len = nl ? (size_t)(nl - p) + 1 : (size_t)(l->data + size - p);
        assert_true(l->n < 256);
        l->v[l->n] = p;
        l->len[l->n++] = len;
        p += len;
    }
}

/* Write lines in the order of @p order (indices into l, -1 ends). */
static void rewrite(const char *path, const struct lines *l, const int *order)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    for (; *order >= 0; order++) {
        assert_int_equal(fwrite(l->v[*order], 1, l->len[*order], f), l->len[*order]);
    }
    assert_int_equal(fclose(f), 0);
}

static void test_trail_verifies_and_continues(void **state)
{
    struct ctx *c = *state;
    struct pw_audit_verdict v;
    struct pw_audit *a = open_trail(c);
    struct lines l;
    json_t *rec;
    char last[PW_AUDIT_DIGEST_HEX + 1];
    int lines = write_sample(a);

    snprintf(last, sizeof(last), "%s", pw_audit_last_digest(a));
    pw_audit_free(a);
    assert_int_equal(verify1(c->key, c->path, &v), 0);
    assert_int_equal(v.records, (uint64_t)lines);
    assert_string_equal(v.last, last);
    assert_string_equal(v.first_prev,
                        "0000000000000000000000000000000000000000000000000000000000000000");

    /* A restart continues the same file and chain. */
    a = open_trail(c);
    assert_string_equal(pw_audit_last_digest(a), last);
    assert_int_equal(pw_audit_event(a, "start", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    pw_audit_free(a);
    assert_int_equal(verify1(c->key, c->path, &v), 0);
    assert_int_equal(v.records, (uint64_t)lines + 1);

    /* The records carry what an auditor needs, in the AuditEvent shape. */
    split(c->path, &l);
    rec = json_loadb(l.v[3], l.len[3], 0, NULL); /* the search */
    assert_non_null(rec);
    assert_string_equal(json_string_value(json_object_get(rec, "type")), "rest");
    assert_string_equal(json_string_value(json_object_get(rec, "subtype")), "search");
    assert_string_equal(json_string_value(json_object_get(rec, "action")), "E");
    assert_int_equal(json_integer_value(json_object_get(rec, "outcome")), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(rec, "agent"), 0), "who")),
        "Device/painwatch-test");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(rec, "agent"), 1), "who")),
        "https://ehr.example.org/fhir");
    assert_non_null(strstr(l.v[3], SENTINEL_QUERY));
    assert_non_null(strstr(l.v[3], "\"recorded\":\"2026-"));
    json_decref(rec);
    assert_non_null(strstr(l.v[4], "\"" SENTINEL_NUMBER "\":67.5"));
    assert_non_null(strstr(l.v[4], "MedicationRequest/mr-1/_history/3"));
    assert_non_null(strstr(l.v[4], "\"since\":\"2026-11-20T08:00:00Z\""));
    assert_non_null(strstr(l.v[0], "\"type\":\"header\""));
    free(l.data);
}

/* Writes a sample trail and returns its lines. */
static void sample_lines(struct ctx *c, struct lines *l)
{
    struct pw_audit *a = open_trail(c);

    write_sample(a);
    pw_audit_free(a);
    split(c->path, l);
    assert_int_equal(l->n, 8);
}

static void expect_failure_at(struct ctx *c, long line, const char *why_part)
{
    struct pw_audit_verdict v;

    assert_int_equal(verify1(c->key, c->path, &v), PW_EVERIFY);
    if (v.line != line || !strstr(v.why, why_part)) {
        fail_msg("expected line %ld (%s), got %s:%ld: %s", line, why_part, v.file, v.line, v.why);
    }
}

static void test_flipped_byte(void **state)
{
    struct ctx *c = *state;
    struct lines l;
    char *p;

    sample_lines(c, &l);
    /* Change a digit of the pain-relevant number in line 5: still valid JSON, new meaning. */
    p = strstr(l.v[4], "67.5");
    assert_non_null(p);
    p[0] = '9';
    rewrite(c->path, &l, (int[]){0, 1, 2, 3, 4, 5, 6, 7, -1});
    expect_failure_at(c, 5, "HMAC");

    /* Any byte at all, e.g. inside the hmac itself of line 3. */
    p[0] = '6';
    p = strstr(l.v[2], "\"hmac\":\"") + 10;
    *p = *p == 'a' ? 'b' : 'a';
    rewrite(c->path, &l, (int[]){0, 1, 2, 3, 4, 5, 6, 7, -1});
    expect_failure_at(c, 3, "HMAC");

    /* A byte that only changes the encoding, not the value, is caught too: "start" written
     * with a \u0073 escape parses to the same record but is not the canonical line. */
    *p = *p == 'a' ? 'b' : 'a';
    {
        char buf[4096];
        char *s = strstr(l.v[1], "\"start\"");
        size_t pre;
        assert_non_null(s);
        assert_true(l.len[1] + 5 < sizeof(buf));
        pre = (size_t)(s - l.v[1]) + 1;
        memcpy(buf, l.v[1], pre);
        memcpy(buf + pre, "\\u0073", 6);
        memcpy(buf + pre + 6, l.v[1] + pre + 1, l.len[1] - pre - 1);
        l.v[1] = buf;
        l.len[1] += 5;
        rewrite(c->path, &l, (int[]){0, 1, 2, 3, 4, 5, 6, 7, -1});
        expect_failure_at(c, 2, "canonical");
    }
    free(l.data);
}

/* "hmac" comes last in a line; a trail of the earlier writer (keys all sorted, "hmac" in its
 * place) still verifies; any other placement is not canonical. */
static void test_hmac_placement(void **state)
{
    struct ctx *c = *state;
    struct pw_audit_verdict v;
    struct lines l;
    char *older;
    char moved[8192];

    sample_lines(c, &l);
    for (size_t i = 0; i < l.n; i++) {
        const char *h = strstr(l.v[i], ",\"hmac\":\"");
        assert_non_null(h);
        assert_int_equal((size_t)(h - l.v[i]) + 9 + PW_AUDIT_DIGEST_HEX + 3, l.len[i]); /* "}\n */
    }
    /* Line 3 rewritten as the earlier writer put it. */
    json_t *rec = json_loadb(l.v[2], l.len[2], 0, NULL);
    assert_non_null(rec);
    older = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(older);
    char oldline[8192];
    assert_true(strlen(older) + 2 < sizeof(oldline));
    snprintf(oldline, sizeof(oldline), "%s\n", older);
    assert_true(strncmp(older, l.v[2], l.len[2] - 1) != 0);
    l.v[2] = oldline;
    l.len[2] = strlen(oldline);
    rewrite(c->path, &l, (int[]){0, 1, 2, 3, 4, 5, 6, 7, -1});
    assert_int_equal(verify1(c->key, c->path, &v), 0);
    /* "hmac" first: the same record, not a canonical line. */
    const char *h = strstr(older, "\"hmac\":\"");
    size_t hl = 8 + PW_AUDIT_DIGEST_HEX + 2; /* "hmac":"<digest>", */
    size_t n = 0;
    moved[n++] = '{';
    memcpy(moved + n, h, hl);
    n += hl;
    memcpy(moved + n, older + 1, (size_t)(h - older) - 1);
    n += (size_t)(h - older) - 1;
    memcpy(moved + n, h + hl, strlen(h + hl));
    n += strlen(h + hl);
    moved[n] = '\0';
    json_t *again = json_loads(moved, 0, NULL);
    moved[n++] = '\n';
    assert_non_null(again);
    assert_true(json_equal(again, rec));
    l.v[2] = moved;
    l.len[2] = n;
    rewrite(c->path, &l, (int[]){0, 1, 2, 3, 4, 5, 6, 7, -1});
    expect_failure_at(c, 3, "canonical");
    json_decref(again);
    json_decref(rec);
    free(older);
    free(l.data);
}

static void test_deleted_line(void **state)
{
    struct ctx *c = *state;
    struct lines l;

    sample_lines(c, &l);
    rewrite(c->path, &l, (int[]){0, 1, 2, 4, 5, 6, 7, -1});
    expect_failure_at(c, 4, "out of place");
    /* Deleting the first record after the header. */
    rewrite(c->path, &l, (int[]){0, 2, 3, 4, 5, 6, 7, -1});
    expect_failure_at(c, 2, "out of place");
    /* Deleting the header: the file was cut at the front. */
    rewrite(c->path, &l, (int[]){1, 2, 3, 4, 5, 6, 7, -1});
    expect_failure_at(c, 1, "not a file header");
    free(l.data);
}

static void test_swapped_lines(void **state)
{
    struct ctx *c = *state;
    struct lines l;

    sample_lines(c, &l);
    rewrite(c->path, &l, (int[]){0, 1, 2, 4, 3, 5, 6, 7, -1});
    expect_failure_at(c, 4, "out of place");
    rewrite(c->path, &l, (int[]){0, 1, 2, 3, 4, 5, 7, 6, -1});
    expect_failure_at(c, 7, "out of place");
    free(l.data);
}

static void test_inserted_line(void **state)
{
    struct ctx *c = *state;
    struct lines l;
    struct lines other;
    char other_key[4300];

    sample_lines(c, &l);
    /* A replayed authentic record. */
    rewrite(c->path, &l, (int[]){0, 1, 2, 3, 4, 5, 2, 6, 7, -1});
    expect_failure_at(c, 7, "out of place");

    /* A record made with another key. */
    snprintf(other_key, sizeof(other_key), "%s/other.key", c->dir);
    write_key(other_key, "an entirely different key of 40 bytes...", 0600);
    c->opts.key_path = other_key;
    {
        char other_path[4300];
        struct pw_audit *a;
        snprintf(other_path, sizeof(other_path), "%s/other.jsonl", c->dir);
        c->opts.path = other_path;
        a = open_trail(c);
        write_sample(a);
        pw_audit_free(a);
        split(other_path, &other);
        c->opts.path = c->path;
        c->opts.key_path = c->key;
    }
    l.v[8] = other.v[3];
    l.len[8] = other.len[3];
    l.n = 9;
    rewrite(c->path, &l, (int[]){0, 1, 2, 8, 3, 4, 5, 6, 7, -1});
    expect_failure_at(c, 4, "HMAC");
    free(other.data);
    free(l.data);
}

static void test_truncated_last_line(void **state)
{
    struct ctx *c = *state;
    struct lines l;

    sample_lines(c, &l);
    l.len[7] -= 20;
    rewrite(c->path, &l, (int[]){0, 1, 2, 3, 4, 5, 6, 7, -1});
    expect_failure_at(c, 8, "torn");
    l.len[7] += 19; /* only the newline is missing */
    rewrite(c->path, &l, (int[]){0, 1, 2, 3, 4, 5, 6, 7, -1});
    expect_failure_at(c, 8, "torn");
    free(l.data);
}

static void test_wrong_key_and_empty(void **state)
{
    struct ctx *c = *state;
    struct pw_audit_verdict v;
    struct lines l;
    char other_key[4300];

    sample_lines(c, &l);
    snprintf(other_key, sizeof(other_key), "%s/other.key", c->dir);
    write_key(other_key, "not the key the trail was written with", 0600);
    assert_int_equal(verify1(other_key, c->path, &v), PW_EVERIFY);
    assert_int_equal(v.line, 1);
    rewrite(c->path, &l, (int[]){-1});
    expect_failure_at(c, 0, "empty file");
    assert_int_equal(verify1(c->key, "/nonexistent/trail", &v), PW_ENOENT);
    free(l.data);
}

/* All trail files in the directory: the live one and its rotations. */
static size_t list_files(struct ctx *c, char names[][4300], size_t cap)
{
    size_t n = 0;

    snprintf(names[n++], 4300, "%s", c->path);
    for (int i = 0; i < 64 && n < cap; i++) {
        snprintf(names[n], 4300, "%s.%d", c->path, i);
        if (access(names[n], F_OK) == 0) {
            n++;
        }
    }
    return n;
}

static void test_size_rotation(void **state)
{
    struct ctx *c = *state;
    struct pw_audit_verdict v;
    struct pw_audit *a;
    char names[16][4300];
    const char *files[16];
    size_t n;

    c->opts.rotate_bytes = 2500;
    a = open_trail(c);
    for (int i = 0; i < 4; i++) {
        write_sample(a);
    }
    pw_audit_free(a);
    n = list_files(c, names, 16);
    assert_true(n >= 4);
    /* Given newest first: verify orders by header sequence. */
    for (size_t i = 0; i < n; i++) {
        files[i] = names[i];
    }
    assert_int_equal(verify_n(c->key, files, n, &v), 0);
    assert_int_equal(v.files, n);
    assert_int_equal(v.records, 4 * 7 + n);

    /* Each file alone verifies too, and says where its chain begins. */
    assert_int_equal(verify_n(c->key, files + 2, 1, &v), 0);
    assert_string_not_equal(v.first_prev,
                            "0000000000000000000000000000000000000000000000000000000000000000");

    /* A missing middle file: the next file's header says so. */
    files[2] = files[n - 1];
    assert_int_equal(verify_n(c->key, files, n - 1, &v), PW_EVERIFY);
    assert_int_equal(v.line, 1);
    assert_non_null(strstr(v.why, "missing"));
    /* A rotated file cut in the middle of its last line: not an acknowledged interruption. */
    {
        struct lines l;
        char p0[4300];
        int order[64];
        snprintf(p0, sizeof(p0), "%s.0", c->path);
        split(p0, &l);
        for (size_t i = 0; i < l.n; i++) {
            order[i] = (int)i;
        }
        order[l.n] = -1;
        l.len[l.n - 1] -= 7;
        rewrite(p0, &l, order);
        l.len[l.n - 1] += 7;
        for (size_t i = 0; i < n; i++) {
            files[i] = names[i];
        }
        assert_int_equal(verify_n(c->key, files, n, &v), PW_EVERIFY);
        assert_string_equal(v.file, p0);
        assert_int_equal(v.line, (long)l.n);
        assert_non_null(strstr(v.why, "torn"));
        rewrite(p0, &l, order);
        free(l.data);
    }
    /* A rotated file whose last record was removed: the next header no longer links. */
    {
        struct lines l;
        char p0[4300];
        snprintf(p0, sizeof(p0), "%s.0", c->path);
        split(p0, &l);
        l.n--;
        int order[64];
        for (size_t i = 0; i < l.n; i++) {
            order[i] = (int)i;
        }
        order[l.n] = -1;
        rewrite(p0, &l, order);
        free(l.data);
        for (size_t i = 0; i < n; i++) {
            files[i] = names[i];
        }
        assert_int_equal(verify_n(c->key, files, n, &v), PW_EVERIFY);
        assert_string_equal(v.file, names[2]);
        assert_int_equal(v.line, 1);
        assert_non_null(strstr(v.why, "links to"));
    }
}

static void test_logrotate_reopen(void **state)
{
    struct ctx *c = *state;
    struct pw_audit_verdict v;
    struct pw_audit *a = open_trail(c);
    char rotated[4300];
    const char *files[2];

    write_sample(a);
    /* logrotate `create`: rename, create an empty file, SIGHUP -> reopen. */
    snprintf(rotated, sizeof(rotated), "%s-20261126", c->path);
    assert_int_equal(rename(c->path, rotated), 0);
    pwt_write_file(c->path, "");
    assert_int_equal(pw_audit_reopen(a), 0);
    write_sample(a);
    /* A reopen with nothing rotated keeps the file. */
    assert_int_equal(pw_audit_reopen(a), 0);
    assert_int_equal(pw_audit_event(a, "stop", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    pw_audit_free(a);
    files[0] = c->path;
    files[1] = rotated;
    assert_int_equal(verify_n(c->key, files, 2, &v), 0);
    assert_int_equal(v.files, 2);
    assert_int_equal(v.records, 8 + 8 + 1);
}

static void test_batch(void **state)
{
    struct ctx *c = *state;
    struct pw_audit_verdict v;
    struct pw_audit *a = open_trail(c);
    struct stat before;
    struct stat after;

    assert_int_equal(pw_audit_batch_begin(a), 0);
    assert_int_equal(pw_audit_batch_begin(a), PW_EINVAL);
    assert_int_equal(stat(c->path, &before), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(pw_audit_event(a, "token-renewed", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    }
    /* Nothing reaches the file before commit. */
    assert_int_equal(stat(c->path, &after), 0);
    assert_int_equal(before.st_size, after.st_size);
    assert_int_equal(pw_audit_batch_commit(a), 0);
    assert_int_equal(pw_audit_batch_commit(a), PW_EINVAL);
    assert_int_equal(pw_audit_event(a, "stop", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    pw_audit_free(a);
    assert_int_equal(verify1(c->key, c->path, &v), 0);
    assert_int_equal(v.records, 7);
}

static void test_bad_records(void **state)
{
    struct ctx *c = *state;
    struct pw_audit_verdict v;
    struct pw_audit *a = open_trail(c);
    char *big = malloc(70000);

    assert_int_equal(pw_audit_append_new(a, json_pack("{s:s}", "type", "painwatch")), PW_EINVAL);
    assert_int_equal(
        pw_audit_append_new(a, json_pack("{s:s,s:s}", "type", "header", "subtype", "x")),
        PW_EINVAL);
    assert_int_equal(pw_audit_append_new(a, json_integer(3)), PW_EINVAL);
    assert_int_equal(pw_audit_event(a, "start", 'X', PW_AUDIT_SUCCESS, NULL, NULL), PW_EINVAL);
    memset(big, 'x', 69999);
    big[69999] = '\0';
    assert_int_equal(pw_audit_event(a, "operator-action", 'E', PW_AUDIT_SUCCESS, NULL,
                                    json_pack("{s:s}", "note", big)),
                     PW_E2BIG);
    free(big);
    assert_true(pw_audit_writable(a));
    assert_int_equal(pw_audit_event(a, "stop", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    pw_audit_free(a);
    assert_int_equal(verify1(c->key, c->path, &v), 0);
    assert_int_equal(v.records, 2);
}

static void test_key_file_rules(void **state)
{
    struct ctx *c = *state;
    struct pw_audit *a = NULL;
    unsigned char *k = NULL;
    size_t klen = 0;
    char *big = calloc(1, 70 * 1024);

    assert_int_equal(chmod(c->key, 0644), 0);
    assert_int_equal(pw_audit_open(&a, &c->opts), PW_ESECRET);
    assert_null(a);
    assert_int_equal(chmod(c->key, 0640), 0); /* group-readable is allowed (painwatch group) */
    assert_int_equal(pw_audit_key_load(c->key, &k, &klen), 0);
    assert_int_equal(klen, strlen(TEST_KEY)); /* trailing newline dropped */
    assert_memory_equal(k, TEST_KEY, klen);
    pw_audit_key_free(k, klen);
    write_key(c->key, "short\n", 0600);
    assert_int_equal(pw_audit_key_load(c->key, &k, &klen), PW_ESECRET);
    memset(big, 'k', 70 * 1024 - 1);
    write_key(c->key, big, 0600);
    assert_int_equal(pw_audit_key_load(c->key, &k, &klen), PW_ESECRET);
    assert_int_equal(pw_audit_key_load(c->dir, &k, &klen), PW_ESECRET);
    assert_int_equal(pw_audit_key_load("/nonexistent/key", &k, &klen), PW_ESECRET);
    free(big);
}

/* A real short write: RLIMIT_FSIZE lets the kernel write only part of the line. */
static void limit_file_size(rlim_t bytes)
{
    struct rlimit rl;

    assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rl.rlim_cur = bytes;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static void test_write_failure_fails_closed(void **state)
{
    struct ctx *c = *state;
    struct pw_audit_verdict v;
    struct pw_audit *a = open_trail(c);
    struct pw_audit_fhir search = {.interaction = "search",
                                   .server = "https://ehr.example.org/fhir",
                                   .url = SENTINEL_QUERY,
                                   .status = 200,
                                   .patient = SENTINEL_PATIENT,
                                   .entries = 3};
    struct stat st;
    size_t size;
    char *text;

    signal(SIGXFSZ, SIG_IGN);
    write_sample(a);
    assert_int_equal(stat(c->path, &st), 0);
    limit_file_size((rlim_t)st.st_size + 40);
    assert_int_equal(pw_audit_fhir_interaction(a, &search), PW_EAUDIT);
    assert_false(pw_audit_writable(a));
    /* The partial line was cut back: the file is exactly as before and still verifies. */
    text = pwt_read_file(c->path, &size);
    assert_int_equal(size, (size_t)st.st_size);
    assert_int_equal(text[size - 1], '\n');
    free(text);
    assert_int_equal(verify1(c->key, c->path, &v), 0);
    /* Still failing: each append retries and fails, nothing is written. */
    assert_int_equal(pw_audit_fhir_interaction(a, &search), PW_EAUDIT);
    assert_int_equal(pw_audit_retry(a), PW_EAUDIT);
    assert_int_equal(pw_audit_batch_begin(a), PW_EAUDIT);
    assert_false(pw_audit_writable(a));

    limit_file_size(RLIM_INFINITY);
    assert_int_equal(pw_audit_retry(a), 0);
    assert_true(pw_audit_writable(a));
    assert_int_equal(pw_audit_fhir_interaction(a, &search), 0);

    /* A batch that cannot be written is dropped whole; the chain stays where it was. */
    assert_int_equal(pw_audit_batch_begin(a), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pw_audit_fhir_interaction(a, &search), 0);
    }
    assert_int_equal(stat(c->path, &st), 0);
    limit_file_size((rlim_t)st.st_size + 100);
    assert_int_equal(pw_audit_batch_commit(a), PW_EAUDIT);
    assert_false(pw_audit_writable(a));
    text = pwt_read_file(c->path, &size);
    assert_int_equal(size, (size_t)st.st_size);
    free(text);
    limit_file_size(RLIM_INFINITY);
    assert_int_equal(pw_audit_event(a, "stop", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    assert_true(pw_audit_writable(a));
    pw_audit_free(a);
    signal(SIGXFSZ, SIG_DFL);

    assert_int_equal(verify1(c->key, c->path, &v), 0);
    text = pwt_read_file(c->path, NULL);
    /* The outage is in the trail: two resumes, the first after 2 failed appends. */
    assert_non_null(strstr(text, "\"failed_appends\":2,"));
    assert_non_null(strstr(text, "\"failed_appends\":3,"));
    free(text);
}

/*
 * pw_audit_batch_write(): the lines are in the file at once (the chain goes on from them) and
 * durable at pw_audit_sync(); a failure in between (here a real short write of a later record)
 * makes a mark from before it fail, even once the trail works again.
 */
static void test_batch_written_now_synced_later(void **state)
{
    struct ctx *c = *state;
    struct pw_audit_verdict v;
    struct pw_audit *a = open_trail(c);
    struct stat before;
    struct stat after;
    uint64_t mark = pw_audit_epoch(a);

    assert_int_equal(pw_audit_batch_begin(a), 0);
    assert_int_equal(pw_audit_event(a, "token-renewed", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    assert_int_equal(stat(c->path, &before), 0);
    assert_int_equal(pw_audit_batch_write(a), 0);
    assert_int_equal(pw_audit_batch_write(a), PW_EINVAL); /* not in a batch any more */
    assert_int_equal(stat(c->path, &after), 0);
    assert_true(after.st_size > before.st_size);
    assert_int_equal(pw_audit_sync(a, mark), 0);
    assert_int_equal(pw_audit_sync(a, mark), 0); /* nothing pending: no failure either */

    assert_int_equal(pw_audit_batch_begin(a), 0);
    assert_int_equal(pw_audit_event(a, "token-renewed", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    assert_int_equal(pw_audit_batch_write(a), 0);
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(stat(c->path, &after), 0);
    limit_file_size((rlim_t)after.st_size + 40);
    assert_int_equal(pw_audit_event(a, "token-renewed", 'E', PW_AUDIT_SUCCESS, NULL, NULL),
                     PW_EAUDIT);
    limit_file_size(RLIM_INFINITY);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(pw_audit_retry(a), 0);
    assert_true(pw_audit_writable(a));
    assert_int_equal(pw_audit_sync(a, mark), PW_EAUDIT);
    assert_true(pw_audit_epoch(a) != mark);
    assert_int_equal(pw_audit_sync(a, pw_audit_epoch(a)), 0);
    pw_audit_free(a);
    /* header, the two written events, the resume record after the failure */
    assert_int_equal(verify1(c->key, c->path, &v), 0);
    assert_int_equal(v.records, 4);
}

static void test_removed_directory(void **state)
{
    struct ctx *c = *state;
    struct pw_audit_verdict v;
    struct pw_audit *a;
    char sub[4000];
    char last[PW_AUDIT_DIGEST_HEX + 1];

    snprintf(sub, sizeof(sub), "%.3900s/sub", c->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(c->path, sizeof(c->path), "%s/trail.jsonl", sub);
    a = open_trail(c);
    write_sample(a);
    snprintf(last, sizeof(last), "%s", pw_audit_last_digest(a));
    pwt_rmtree(sub);
    /* SIGHUP while the directory is gone: the open fails for real. */
    assert_int_equal(pw_audit_reopen(a), PW_EAUDIT);
    assert_false(pw_audit_writable(a));
    assert_int_equal(pw_audit_event(a, "token-renewed", 'E', PW_AUDIT_SUCCESS, NULL, NULL),
                     PW_EAUDIT);
    assert_false(pw_audit_writable(a));
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(pw_audit_event(a, "token-renewed", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    assert_true(pw_audit_writable(a));
    /* The new file links to the last record written before the outage. */
    assert_int_equal(verify1(c->key, c->path, &v), 0);
    assert_string_equal(v.first_prev, last);
    assert_int_equal(v.records, 3); /* header, audit-resumed, token-renewed */

    /* Removing the directory is noticed at the next append, without a SIGHUP. */
    snprintf(last, sizeof(last), "%s", pw_audit_last_digest(a));
    pwt_rmtree(sub);
    assert_int_equal(pw_audit_event(a, "token-renewed", 'E', PW_AUDIT_SUCCESS, NULL, NULL),
                     PW_EAUDIT);
    assert_false(pw_audit_writable(a));
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(pw_audit_retry(a), 0);
    assert_true(pw_audit_writable(a));
    pw_audit_free(a);
    assert_int_equal(verify1(c->key, c->path, &v), 0);
    assert_string_equal(v.first_prev, last);
    assert_int_equal(v.records, 2); /* header, audit-resumed */
}

static void test_file_removed_or_truncated_while_open(void **state)
{
    struct ctx *c = *state;
    struct pw_audit_verdict v;
    struct pw_audit *a = open_trail(c);
    char *text;

    write_sample(a);
    assert_int_equal(unlink(c->path), 0);
    assert_int_equal(pw_audit_event(a, "stop", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    text = pwt_read_file(c->path, NULL);
    assert_non_null(strstr(text, "removed while open"));
    free(text);
    assert_int_equal(verify1(c->key, c->path, &v), 0);

    /* copytruncate: the file is emptied under us; the next append says so in a new header. */
    assert_int_equal(truncate(c->path, 0), 0);
    assert_int_equal(pw_audit_event(a, "stop", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    pw_audit_free(a);
    text = pwt_read_file(c->path, NULL);
    assert_non_null(strstr(text, "changed by another writer"));
    free(text);
    assert_int_equal(verify1(c->key, c->path, &v), 0);
    assert_int_equal(v.records, 2);
}

static void test_not_a_regular_file(void **state)
{
    struct ctx *c = *state;
    struct pw_audit_verdict v;
    struct pw_audit *a = open_trail(c);
    char aside[4300];
    const char *files[2] = {aside, c->path};

    write_sample(a);
    snprintf(aside, sizeof(aside), "%s.old", c->path);
    assert_int_equal(rename(c->path, aside), 0);
    assert_int_equal(symlink("/dev/full", c->path), 0);
    assert_int_equal(pw_audit_reopen(a), PW_EAUDIT);
    assert_false(pw_audit_writable(a));
    assert_int_equal(unlink(c->path), 0);
    assert_int_equal(pw_audit_retry(a), 0);
    pw_audit_free(a);
    assert_int_equal(verify_n(c->key, files, 2, &v), 0);
}

static void test_torn_tail_at_open(void **state)
{
    struct ctx *c = *state;
    struct pw_audit_verdict v;
    struct pw_audit *a = open_trail(c);
    struct lines l;
    char aside[4300];
    char last[PW_AUDIT_DIGEST_HEX + 1];
    const char *files[2] = {aside, c->path};
    FILE *f;
    char *text;

    write_sample(a);
    snprintf(last, sizeof(last), "%s", pw_audit_last_digest(a));
    pw_audit_free(a);
    /* Power loss in the middle of a write. */
    f = fopen(c->path, "ab");
    fputs("{\"action\":\"E\",\"agent\":[{\"role\"", f);
    fclose(f);

    a = open_trail(c);
    assert_int_equal(pw_audit_event(a, "start", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    pw_audit_free(a);
    snprintf(aside, sizeof(aside), "%s.0", c->path);
    split(aside, &l);
    assert_int_equal(l.n, 9); /* kept as found, torn line included */
    free(l.data);
    text = pwt_read_file(c->path, NULL);
    assert_non_null(strstr(text, "\"reason\":\"recovered\""));
    assert_non_null(strstr(text, "\"torn_bytes\":30"));
    free(text);
    /* The new file links to the last good record and acknowledges the torn bytes: the trail
     * verifies, and says so. Without the new file, the torn line is a truncation. */
    assert_int_equal(verify_n(c->key, files, 2, &v), 0);
    assert_int_equal(v.torn_acknowledged, 1);
    assert_non_null(strstr(v.note, ".0:9: torn record (30 bytes"));
    assert_int_equal(verify_n(c->key, files, 1, &v), PW_EVERIFY);
    assert_int_equal(v.line, 9);
    assert_non_null(strstr(v.why, "torn"));
    assert_int_equal(verify1(c->key, c->path, &v), 0);
    assert_string_equal(v.first_prev, last);
    /* An auditor reading the trail sees the anomaly, unless filtering by patient. */
    {
        struct pw_audit_filter flt = {.since_ms = INT64_MIN, .until_ms = INT64_MAX};
        const char *live[] = {c->path};
        char *buf = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&buf, &len);
        assert_int_equal(pw_audit_show(out, stderr, live, 1, &flt), 2);
        flt.patient = SENTINEL_PATIENT;
        assert_int_equal(pw_audit_show(out, stderr, live, 1, &flt), 0);
        fclose(out);
        assert_non_null(strstr(buf, "trail-anomaly"));
        assert_non_null(strstr(buf, "torn last record (set aside as "));
        free(buf);
    }
}

static void test_logs_carry_no_patient_data(void **state)
{
    struct ctx *c = *state;
    struct pw_audit *a;
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    char *trail;

    pw_log_init();
    pw_log_set_output(out, false);
    pw_log_set_level(LOG_DEBUG);
    signal(SIGXFSZ, SIG_IGN);
    a = open_trail(c);
    write_sample(a);
    assert_int_equal(stat(c->path, &st), 0);
    limit_file_size((rlim_t)st.st_size + 10);
    {
        struct pw_finding f;
        sample_finding(&f);
        assert_int_equal(pw_audit_finding(a, "finding-raised", &f, "c-9"), PW_EAUDIT);
    }
    limit_file_size(RLIM_INFINITY);
    write_sample(a);
    assert_int_equal(unlink(c->path), 0);
    write_sample(a);
    pw_audit_free(a);
    signal(SIGXFSZ, SIG_DFL);
    fclose(out);
    pw_log_set_output(NULL, false);
    pw_log_set_level(LOG_INFO);

    /* The log speaks about the trail... */
    assert_non_null(strstr(buf, "[audit]"));
    assert_non_null(strstr(buf, "failed"));
    assert_non_null(strstr(buf, "writable again"));
    /* ...and never about the patient, the query or the numbers, which the trail does hold. */
    assert_null(strstr(buf, "PHI-7f3a"));
    assert_null(strstr(buf, "Jane"));
    assert_null(strstr(buf, "72514"));
    assert_null(strstr(buf, SENTINEL_NUMBER));
    assert_null(strstr(buf, "67.5"));
    trail = pwt_read_file(c->path, NULL);
    assert_non_null(strstr(trail, SENTINEL_PATIENT));
    assert_non_null(strstr(trail, SENTINEL_QUERY));
    free(trail);
    free(buf);
}

/*
 * The grep-able half of the PHI rule: in the audit sources, no pw_log_* call takes an argument
 * that could carry record content (a json_t, a line buffer, a caller's string).
 */
static void test_log_calls_take_no_record_content(void **state)
{
    static const char *const files[] = {"daemon/core/audit.c", "daemon/core/audit_build.c",
                                        "daemon/core/audit_verify.c", "daemon/core/audit_show.c"};
    static const char *const banned[] = {"json_", "rec",  "line", "buf",  "patient", "query", "url",
                                         "text",  "desc", "->v",  "ix->", "fl->",    "f->"};
    int calls = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *src = pwt_read_file(pwt_src_path(files[i]), NULL);
        for (char *p = strstr(src, "pw_log_"); p; p = strstr(p + 1, "pw_log_")) {
            char *open = strchr(p, '(');
            char *fmt_end;
            char *end = strstr(p, ");");
            char args[1024];
            if (!open || !end || strncmp(p, "pw_log_write", 12) == 0) {
                continue;
            }
            /* Skip the component and the format string; look at the arguments only. */
            for (fmt_end = end; fmt_end > open && *fmt_end != '"'; fmt_end--) {
            }
            snprintf(args, sizeof(args), "%.*s", (int)(end - fmt_end), fmt_end);
            for (size_t b = 0; b < sizeof(banned) / sizeof(banned[0]); b++) {
                if (strstr(args, banned[b])) {
                    fail_msg("%s: log call passes '%s': %.80s", files[i], banned[b], p);
                }
            }
            calls++;
        }
        free(src);
    }
    assert_true(calls >= 10);
}

static void test_open_on_foreign_or_damaged_file(void **state)
{
    struct ctx *c = *state;
    struct pw_audit_verdict v;
    struct pw_audit *a = open_trail(c);
    char other_key[4300];
    char aside[4300];
    char *text;

    write_sample(a);
    pw_audit_free(a);
    /* Started with another key: the old file is not continued, it is set aside. */
    snprintf(other_key, sizeof(other_key), "%s/other.key", c->dir);
    write_key(other_key, "a rotated key that did not write this trail", 0600);
    c->opts.key_path = other_key;
    a = open_trail(c);
    pw_audit_free(a);
    snprintf(aside, sizeof(aside), "%s.0", c->path);
    assert_int_equal(access(aside, F_OK), 0);
    text = pwt_read_file(c->path, NULL);
    assert_non_null(strstr(text, "\"problem\":\"HMAC does not verify"));
    free(text);
    assert_int_equal(verify1(other_key, c->path, &v), 0);
    assert_int_equal(verify1(c->key, aside, &v), 0);

    /* A live file that does not start with a header (someone wrote into it). */
    pwt_write_file(c->path, "hello\n");
    a = open_trail(c);
    assert_int_equal(pw_audit_event(a, "start", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    pw_audit_free(a);
    text = pwt_read_file(c->path, NULL);
    assert_non_null(strstr(text, "\"problem\":\"not valid JSON (at column"));
    assert_null(strstr(text, "hello"));
    free(text);
    assert_int_equal(verify1(other_key, c->path, &v), 0);
}

static int64_t manual_now;

static int64_t manual_clock(void)
{
    return manual_now;
}

static void test_age_rotation(void **state)
{
    struct ctx *c = *state;
    struct pw_audit_verdict v;
    struct pw_audit *a;
    char p0[4300];
    char p1[4300];
    const char *files[3] = {c->path, p0, p1};

    snprintf(p0, sizeof(p0), "%s.0", c->path);
    snprintf(p1, sizeof(p1), "%s.1", c->path);
    c->opts.clock_ms = manual_clock;
    c->opts.rotate_seconds = 3600;
    manual_now = 1795161600000; /* 2026-11-20T08:00:00Z */
    a = open_trail(c);
    /* A long idle period with only the header: nothing to rotate. */
    manual_now += 2 * 3600000;
    assert_int_equal(pw_audit_event(a, "start", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    assert_int_not_equal(access(p0, F_OK), 0);
    /* The file is older than an hour and holds a record: the next append starts a new one. */
    manual_now += 30 * 60000;
    assert_int_equal(pw_audit_event(a, "token-renewed", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    assert_int_equal(access(p0, F_OK), 0);
    pw_audit_free(a);
    /* The age survives a restart: it comes from the header. */
    manual_now += 31 * 60000;
    a = open_trail(c);
    assert_int_equal(pw_audit_event(a, "start", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    assert_int_not_equal(access(p1, F_OK), 0);
    manual_now += 30 * 60000;
    assert_int_equal(pw_audit_event(a, "token-renewed", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    assert_int_equal(pw_audit_event(a, "stop", 'E', PW_AUDIT_SUCCESS, NULL, NULL), 0);
    pw_audit_free(a);
    assert_int_equal(access(p1, F_OK), 0);
    assert_int_equal(verify_n(c->key, files, 3, &v), 0);
    assert_int_equal(v.files, 3);
    assert_int_equal(v.records, 3 + 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_trail_verifies_and_continues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hmac_placement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swapped_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inserted_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_last_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key_and_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logrotate_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure_fails_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_written_now_synced_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_removed_or_truncated_while_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_regular_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_at_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logs_carry_no_patient_data, setup, teardown),
        cmocka_unit_test(test_log_calls_take_no_record_content),
        cmocka_unit_test_setup_teardown(test_age_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_on_foreign_or_damaged_file, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
