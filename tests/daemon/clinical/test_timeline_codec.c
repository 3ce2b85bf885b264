/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The stored form of timeline events: normalizing each resource alone, encoding and decoding
 * must give the timeline that normalizing the whole Bundle gives (every rule case folder and the
 * trimmed Synthea patients), and any damaged buffer is refused without adding anything.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "clinical_support.h"
#include "painwatch/err.h"
#include "painwatch/fhir.h"

/* A Bundle's resources by fullUrl and Type/id, and the list in entry order. */
struct bundle {
    json_t *root;
    json_t *list;
    struct pw_fhir_index *idx;
    struct pw_resolver refs;
};

static void bundle_load(struct bundle *b, const char *path)
{
    json_error_t jerr;
    size_t i;
    json_t *e;

    b->root = json_load_file(path, 0, &jerr);
    if (b->root == NULL) {
        fail_msg("%s:%d: %s", path, jerr.line, jerr.text);
    }
    b->list = json_array();
    assert_int_equal(pw_fhir_index_new(&b->idx), 0);
    json_array_foreach(json_object_get(b->root, "entry"), i, e)
    {
        json_t *res = json_object_get(e, "resource");
        if (json_is_object(res)) {
            assert_int_equal(pw_fhir_index_add(b->idx, pw_fhir_str(e, "fullUrl"), res), 0);
            assert_int_equal(json_array_append(b->list, res), 0);
        }
    }
    pw_fhir_index_resolver(b->idx, &b->refs);
}

static void bundle_free(struct bundle *b)
{
    pw_fhir_index_free(b->idx);
    json_decref(b->list);
    json_decref(b->root);
}

static bool same_num(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

static bool same_ref(const struct pw_ref *a, const struct pw_ref *b)
{
    return strcmp(a->type, b->type) == 0 && strcmp(a->id, b->id) == 0 &&
           strcmp(a->version, b->version) == 0;
}

static bool same_order(const struct pw_med_order *a, const struct pw_med_order *b)
{
    return same_ref(&a->src, &b->src) && a->classes == b->classes && a->role == b->role &&
           a->prn == b->prn && strcmp(a->drug_rxcui, b->drug_rxcui) == 0 &&
           strcmp(a->drug_name, b->drug_name) == 0 &&
           strcmp(a->ingredient_rxcui, b->ingredient_rxcui) == 0 &&
           strcmp(a->ingredient, b->ingredient) == 0 && a->start == b->start && a->end == b->end &&
           strcmp(a->prior, b->prior) == 0 && same_num(a->mg_per_dose, b->mg_per_dose) &&
           same_num(a->mg_per_dose_high, b->mg_per_dose_high) &&
           same_num(a->mg_per_day, b->mg_per_day) && same_num(a->mcg_per_hour, b->mcg_per_hour) &&
           same_num(a->mme_factor, b->mme_factor) && same_num(a->mme_per_day, b->mme_per_day) &&
           same_num(a->mme_per_dose, b->mme_per_dose);
}

/* Field by field (not through the codec, which could drop a field on both sides). */
static bool same_timeline(const struct pw_timeline *a, const struct pw_timeline *b)
{
    bool same = a->scores.n == b->scores.n && a->pain_types.n == b->pain_types.n &&
                a->orders.n == b->orders.n && a->referrals.n == b->referrals.n &&
                a->dq.n == b->dq.n;
    size_t i;

    for (i = 0; same && i < a->scores.n; i++) {
        same = a->scores.v[i].at == b->scores.v[i].at &&
               same_num(a->scores.v[i].value, b->scores.v[i].value) &&
               same_ref(&a->scores.v[i].src, &b->scores.v[i].src);
    }
    for (i = 0; same && i < a->pain_types.n; i++) {
        same = a->pain_types.v[i].at == b->pain_types.v[i].at &&
               a->pain_types.v[i].kind == b->pain_types.v[i].kind &&
               same_ref(&a->pain_types.v[i].src, &b->pain_types.v[i].src);
    }
    for (i = 0; same && i < a->orders.n; i++) {
        same = same_order(&a->orders.v[i], &b->orders.v[i]);
    }
    for (i = 0; same && i < a->referrals.n; i++) {
        same = a->referrals.v[i].at == b->referrals.v[i].at &&
               same_ref(&a->referrals.v[i].src, &b->referrals.v[i].src);
    }
    for (i = 0; same && i < a->dq.n; i++) {
        same = strcmp(a->dq.v[i].code, b->dq.v[i].code) == 0 &&
               strcmp(a->dq.v[i].detail, b->dq.v[i].detail) == 0 &&
               same_ref(&a->dq.v[i].src, &b->dq.v[i].src);
    }
    return same;
}

/* Normalize @p b's resources of @p patient: all at once, and one by one through the codec. */
static void check_patient(const struct pw_norm_ctx *ctx, struct bundle *b, const char *patient,
                          const char *where)
{
    struct pw_timeline direct, stored, one;
    struct pw_bytes enc = {0};
    char who[PW_REF_MAX];
    size_t i;
    json_t *res;

    pw_timeline_init(&direct, patient);
    pw_timeline_init(&stored, patient);
    pw_timeline_init(&one, patient);
    json_array_foreach(b->list, i, res)
    {
        if (pw_normalize_patient(res, &b->refs, who, sizeof(who)) < 0 ||
            strcmp(who, patient) != 0) {
            continue;
        }
        assert_int_equal(pw_normalize_resource(ctx, res, &b->refs, &direct), 0);
        pw_timeline_clear(&one);
        assert_int_equal(pw_normalize_resource(ctx, res, &b->refs, &one), 0);
        assert_int_equal(pw_timeline_encode(&one, &enc), 0);
        assert_true(pw_timeline_is_encoded(enc.v, enc.n));
        assert_int_equal(pw_timeline_decode(&stored, enc.v, enc.n), 0);
    }
    pw_timeline_sort(&direct);
    pw_timeline_sort(&stored);
    if (!same_timeline(&direct, &stored)) {
        fail_msg("%s %s: the stored events differ from the Bundle's", where, patient);
    }
    pw_bytes_cleanup(&enc);
    pw_timeline_cleanup(&direct);
    pw_timeline_cleanup(&stored);
    pw_timeline_cleanup(&one);
}

static void check_bundle(const struct pw_norm_ctx *ctx, const char *path, size_t *patients)
{
    struct bundle b = {0};
    json_t *seen = json_object();
    char who[PW_REF_MAX];
    size_t i;
    json_t *res;

    bundle_load(&b, path);
    json_array_foreach(b.list, i, res)
    {
        if (pw_normalize_patient(res, &b.refs, who, sizeof(who)) == 0 &&
            !json_object_get(seen, who)) {
            json_object_set_new(seen, who, json_true());
            check_patient(ctx, &b, who, path);
            (*patients)++;
        }
    }
    json_decref(seen);
    bundle_free(&b);
}

/* Every input.json two levels under @p dir (rule/case/input.json), or every *.json in it. */
static size_t walk(const struct pw_norm_ctx *ctx, const char *dir, int depth)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t patients = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        char path[2048];
        struct stat st;
        size_t n = strlen(de->d_name);
        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode) && depth > 0) {
            patients += walk(ctx, path, depth - 1);
        } else if (S_ISREG(st.st_mode) && n > 5 && strcmp(de->d_name + n - 5, ".json") == 0 &&
                   strcmp(de->d_name, "expected.json") != 0) {
            check_bundle(ctx, path, &patients);
        }
    }
    closedir(d);
    return patients;
}

static void test_round_trip_rule_cases(void **state)
{
    struct pw_norm_ctx ctx;
    (void)state;

    assert_int_equal(pw_norm_ctx_init(&ctx, clin_term(), "cdc2022"), 0);
    size_t n = walk(&ctx, pwt_src_path("tests/daemon/clinical/rules/cases"), 2);
    assert_true(n >= 60); /* every case folder has a patient */
    n = walk(&ctx, pwt_src_path("tests/fixtures/fhir/synthea"), 0);
    assert_true(n > 0);
    pw_norm_ctx_cleanup(&ctx);
}

/* One encoding with an event of every kind, strings at their field's full length. */
static void sample(struct pw_bytes *out)
{
    struct pw_timeline tl;
    struct pw_pain_score s = {.at = 100, .value = 7.5, .src = {"Observation", "o1", "2"}};
    struct pw_pain_type t = {.at = 90, .kind = PW_PAIN_NEUROPATHIC, .src = {"Condition", "c1", ""}};
    struct pw_referral r = {.at = 80, .src = {"ServiceRequest", "s1", "1"}};
    struct pw_med_order o;
    struct pw_dq_event q;

    memset(&o, 0, sizeof(o));
    memset(&q, 0, sizeof(q));
    o.src = (struct pw_ref){"MedicationRequest", "m1", "3"};
    o.classes = PW_MED_OPIOID | PW_MED_LONG_ACTING;
    o.role = PW_ROLE_BASELINE;
    memset(o.drug_name, 'x', sizeof(o.drug_name) - 1);
    o.start = 50;
    o.end = PW_TIME_FOREVER;
    o.mme_factor = NAN;
    o.mg_per_day = 60;
    snprintf(q.code, sizeof(q.code), "unstructured-sig");
    q.src = o.src;
    snprintf(q.detail, sizeof(q.detail), "no timing");
    pw_timeline_init(&tl, "Patient/p1");
    assert_int_equal(pw_timeline_add_score(&tl, &s), 0);
    assert_int_equal(pw_timeline_add_pain_type(&tl, &t), 0);
    assert_int_equal(pw_timeline_add_referral(&tl, &r), 0);
    assert_int_equal(pw_timeline_add_order(&tl, &o), 0);
    assert_int_equal(pw_timeline_add_dq(&tl, &q), 0);
    assert_int_equal(pw_timeline_encode(&tl, out), 0);
    pw_timeline_cleanup(&tl);
}

static void test_fields_survive(void **state)
{
    struct pw_bytes b = {0};
    struct pw_timeline tl;
    (void)state;

    sample(&b);
    pw_timeline_init(&tl, "Patient/p1");
    assert_int_equal(pw_timeline_decode(&tl, b.v, b.n), 0);
    assert_int_equal(tl.scores.n, 1);
    assert_true(tl.scores.v[0].value == 7.5);
    assert_string_equal(tl.scores.v[0].src.version, "2");
    assert_int_equal(tl.pain_types.v[0].kind, PW_PAIN_NEUROPATHIC);
    assert_int_equal(tl.referrals.v[0].at, 80);
    assert_int_equal(tl.orders.n, 1);
    assert_int_equal(tl.orders.v[0].end, PW_TIME_FOREVER);
    assert_true(isnan(tl.orders.v[0].mme_factor));
    assert_int_equal(strlen(tl.orders.v[0].drug_name), PW_CODE_MAX - 1);
    assert_int_equal(tl.orders.v[0].role, PW_ROLE_BASELINE);
    assert_int_equal(tl.dq.n, 1);
    assert_string_equal(tl.dq.v[0].detail, "no timing");
    pw_timeline_cleanup(&tl);
    pw_bytes_cleanup(&b);
}

static void test_damage_is_refused_whole(void **state)
{
    struct pw_bytes b = {0};
    struct pw_timeline tl;
    (void)state;

    sample(&b);
    pw_timeline_init(&tl, "Patient/p1");
    /* Every truncation, and one extra byte. */
    for (size_t n = 0; n < b.n; n++) {
        assert_int_equal(pw_timeline_decode(&tl, b.v, n), PW_EJSON);
    }
    unsigned char *longer = malloc(b.n + 1);
    memcpy(longer, b.v, b.n);
    longer[b.n] = 0;
    assert_int_equal(pw_timeline_decode(&tl, longer, b.n + 1), PW_EJSON);
    free(longer);
    /* Every single-byte change either still decodes or is refused: never a crash. */
    for (size_t i = 0; i < b.n; i++) {
        struct pw_timeline t2;
        unsigned char keep = b.v[i];
        b.v[i] ^= 0xff;
        pw_timeline_init(&t2, "Patient/p1");
        int rc = pw_timeline_decode(&t2, b.v, b.n);
        assert_true(rc == 0 || rc == PW_EJSON);
        if (rc == PW_EJSON) {
            assert_int_equal(t2.scores.n + t2.pain_types.n + t2.orders.n + t2.referrals.n + t2.dq.n,
                             0);
        }
        pw_timeline_cleanup(&t2);
        b.v[i] = keep;
    }
    /* The JSON of an older store row is not an encoding. */
    assert_false(pw_timeline_is_encoded("{\"resourceType\":\"Observation\"}", 31));
    assert_int_equal(tl.scores.n + tl.orders.n + tl.dq.n, 0);
    pw_timeline_cleanup(&tl);
    pw_bytes_cleanup(&b);
}

/* One event of each kind with the given times, encoded (the encoder writes any int64). */
static void with_times(struct pw_bytes *out, int64_t score_at, int64_t type_at, int64_t ref_at,
                       int64_t start, int64_t end)
{
    struct pw_timeline tl;
    struct pw_pain_score s = {.at = score_at, .value = 7, .src = {"Observation", "o1", "1"}};
    struct pw_pain_type t = {.at = type_at, .kind = PW_PAIN_MIXED, .src = {"Condition", "c1", ""}};
    struct pw_referral r = {.at = ref_at, .src = {"ServiceRequest", "s1", "1"}};
    struct pw_med_order o;

    memset(&o, 0, sizeof(o));
    o.src = (struct pw_ref){"MedicationRequest", "m1", "1"};
    o.classes = PW_MED_OPIOID;
    o.role = PW_ROLE_BASELINE;
    o.start = start;
    o.end = end;
    pw_timeline_init(&tl, "Patient/p1");
    assert_int_equal(pw_timeline_add_score(&tl, &s), 0);
    assert_int_equal(pw_timeline_add_pain_type(&tl, &t), 0);
    assert_int_equal(pw_timeline_add_referral(&tl, &r), 0);
    assert_int_equal(pw_timeline_add_order(&tl, &o), 0);
    assert_int_equal(pw_timeline_encode(&tl, out), 0);
    pw_timeline_cleanup(&tl);
}

static int decode_times(int64_t score_at, int64_t type_at, int64_t ref_at, int64_t start,
                        int64_t end)
{
    struct pw_bytes b = {0};
    struct pw_timeline tl;

    with_times(&b, score_at, type_at, ref_at, start, end);
    pw_timeline_init(&tl, "Patient/p1");
    int rc = pw_timeline_decode(&tl, b.v, b.n);
    if (rc != 0) {
        assert_int_equal(tl.scores.n + tl.pain_types.n + tl.orders.n + tl.referrals.n, 0);
    }
    pw_timeline_cleanup(&tl);
    pw_bytes_cleanup(&b);
    return rc;
}

/* Issue 18 finding 11: a damaged store's time near the ends of int64 is refused, not decoded. */
static void test_times_out_of_range_refused(void **state)
{
    const int64_t t = 1780000000;         /* 2026 */
    const int64_t y0000 = -62167219200LL; /* 0000-01-01 */
    const int64_t y9999 = 253402300799LL; /* 9999-12-31T23:59:59Z, an EHR's "open end" */
    (void)state;

    assert_int_equal(decode_times(t, t, t, t, t + 1), 0);
    /* what normalize writes: absent times, an order still current, any year FHIR can name */
    assert_int_equal(decode_times(t, PW_TIME_NONE, PW_TIME_NONE, PW_TIME_NONE, PW_TIME_NONE), 0);
    assert_int_equal(decode_times(y0000, y0000, y9999, y0000, PW_TIME_FOREVER), 0);
    assert_int_equal(decode_times(t, t, t, t, y9999 + 14 * 3600), 0);
    /* the fuzzer's order: an end near INT64_MIN */
    assert_int_equal(decode_times(t, t, t, t, INT64_MIN + 1), PW_EJSON);
    assert_int_equal(decode_times(t, t, t, INT64_MIN + 1, t), PW_EJSON);
    assert_int_equal(decode_times(t, t, t, t, INT64_MAX - 1), PW_EJSON);
    assert_int_equal(decode_times(t, t, t, PW_TIME_FOREVER, PW_TIME_FOREVER), PW_EJSON);
    assert_int_equal(decode_times(t, t, t, y0000 - 2 * 86400, t), PW_EJSON);
    assert_int_equal(decode_times(t, t, t, t, y9999 + 2 * 86400), PW_EJSON);
    assert_int_equal(decode_times(PW_TIME_NONE, t, t, t, t), PW_EJSON);
    assert_int_equal(decode_times(PW_TIME_FOREVER, t, t, t, t), PW_EJSON);
    assert_int_equal(decode_times(t, PW_TIME_FOREVER, t, t, t), PW_EJSON);
    assert_int_equal(decode_times(t, t, INT64_MIN + 1, t, t), PW_EJSON);
    assert_int_equal(decode_times(t, INT64_MAX - 1, t, t, t), PW_EJSON);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_rule_cases),
        cmocka_unit_test(test_fields_survive),
        cmocka_unit_test(test_damage_is_refused_whole),
        cmocka_unit_test(test_times_out_of_range_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
