/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A resource's timeline events as stored bytes: normalized once when the page arrives, decoded
 * at every evaluation (parsing the JSON again cost 3x jansson's parse per resource, issue 9).
 * Layout: magic "PWT2", then five sections (scores, pain types, orders, referrals, data
 * quality), each a u32 count and its events field by field: i64/f64/u32 little-endian, strings
 * as u16 length + bytes. Decoding checks every length against its field and every time against
 * the range a FHIR dateTime can name (see time_ok); a bad buffer adds nothing. A sixth section
 * (clinical context, issue 17) follows when there is context.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "painwatch/array.h"
#include "painwatch/err.h"
#include "painwatch/timeline.h"

#define CODEC_MAGIC     "PWT2"
#define CODEC_MAGIC_LEN 4
#define CODEC_MAGIC_V1  "PWT1" /* issue 16: orders without route, part, factor row, flags */

void pw_timeline_clear(struct pw_timeline *tl)
{
    tl->scores.n = 0;
    tl->pain_types.n = 0;
    tl->orders.n = 0;
    tl->referrals.n = 0;
    tl->dq.n = 0;
    tl->context.n = 0;
}

void pw_bytes_cleanup(struct pw_bytes *b)
{
    free(b->v);
    memset(b, 0, sizeof(*b));
}

/* ---- writer ------------------------------------------------------------------------------ */

struct wr {
    struct pw_bytes *b;
    int err;
};

static void put(struct wr *w, const void *p, size_t n)
{
    if (w->err) {
        return;
    }
    if (n > w->b->cap - w->b->n &&
        (n > SIZE_MAX - w->b->n ||
         pw_array_reserve_from(&w->b->v, &w->b->cap, w->b->n + n, 1, 256) < 0)) {
        w->err = PW_ENOMEM;
        return;
    }
    memcpy(w->b->v + w->b->n, p, n);
    w->b->n += n;
}

static void put_u64(struct wr *w, uint64_t v)
{
    unsigned char le[8];
    for (int i = 0; i < 8; i++) {
        le[i] = (unsigned char)(v >> (8 * i));
    }
    put(w, le, sizeof(le));
}

static void put_i64(struct wr *w, int64_t v)
{
    put_u64(w, (uint64_t)v);
}

static void put_u32(struct wr *w, uint32_t v)
{
    unsigned char le[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                           (unsigned char)(v >> 24)};
    put(w, le, sizeof(le));
}

static void put_f64(struct wr *w, double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof(v));
    put_u64(w, v);
}

/* @p s lives in a char[cap] field, so its length fits in u16 (every field is < 64 KiB). */
static void put_str(struct wr *w, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap - 1);
    unsigned char le[2] = {(unsigned char)n, (unsigned char)(n >> 8)};
    put(w, le, sizeof(le));
    put(w, s, n);
}

#define PUT_STR(w, field) put_str((w), (field), sizeof(field))

static void put_ref(struct wr *w, const struct pw_ref *r)
{
    PUT_STR(w, r->type);
    PUT_STR(w, r->id);
    PUT_STR(w, r->version);
}

static void put_order(struct wr *w, const struct pw_med_order *o)
{
    put_ref(w, &o->src);
    put_u32(w, o->classes);
    put_u32(w, (uint32_t)o->role);
    put_u32(w, o->prn ? 1u : 0u);
    PUT_STR(w, o->drug_rxcui);
    PUT_STR(w, o->drug_name);
    PUT_STR(w, o->ingredient_rxcui);
    PUT_STR(w, o->ingredient);
    put_i64(w, o->start);
    put_i64(w, o->end);
    PUT_STR(w, o->prior);
    put_f64(w, o->mg_per_dose);
    put_f64(w, o->mg_per_dose_high);
    put_f64(w, o->mg_per_day);
    put_f64(w, o->mcg_per_hour);
    put_f64(w, o->mme_factor);
    put_f64(w, o->mme_per_day);
    put_f64(w, o->mme_per_dose);
    PUT_STR(w, o->route);
    put_u32(w, (uint32_t)o->part);
    PUT_STR(w, o->factor_row);
    put_u32(w, o->flags);
    PUT_STR(w, o->dose_written);
    put_f64(w, o->min_dose_mg);
}

int pw_timeline_encode(const struct pw_timeline *tl, struct pw_bytes *out)
{
    struct wr w = {.b = out};
    size_t i;

    out->n = 0;
    put(&w, CODEC_MAGIC, CODEC_MAGIC_LEN);
    put_u32(&w, (uint32_t)tl->scores.n);
    for (i = 0; i < tl->scores.n; i++) {
        put_i64(&w, tl->scores.v[i].at);
        put_f64(&w, tl->scores.v[i].value);
        put_ref(&w, &tl->scores.v[i].src);
    }
    put_u32(&w, (uint32_t)tl->pain_types.n);
    for (i = 0; i < tl->pain_types.n; i++) {
        put_i64(&w, tl->pain_types.v[i].at);
        put_u32(&w, (uint32_t)tl->pain_types.v[i].kind);
        put_ref(&w, &tl->pain_types.v[i].src);
    }
    put_u32(&w, (uint32_t)tl->orders.n);
    for (i = 0; i < tl->orders.n; i++) {
        put_order(&w, &tl->orders.v[i]);
    }
    put_u32(&w, (uint32_t)tl->referrals.n);
    for (i = 0; i < tl->referrals.n; i++) {
        put_i64(&w, tl->referrals.v[i].at);
        put_ref(&w, &tl->referrals.v[i].src);
    }
    put_u32(&w, (uint32_t)tl->dq.n);
    for (i = 0; i < tl->dq.n; i++) {
        PUT_STR(&w, tl->dq.v[i].code);
        put_ref(&w, &tl->dq.v[i].src);
        PUT_STR(&w, tl->dq.v[i].detail);
    }
    /* issue 17: the context section, written only when there is context (older encodings end
     * after the data-quality section and still decode) */
    if (tl->context.n > 0) {
        put_u32(&w, (uint32_t)tl->context.n);
    }
    for (i = 0; i < tl->context.n; i++) {
        const struct pw_context *c = &tl->context.v[i];
        put_i64(&w, c->at);
        put_i64(&w, c->end);
        put_u32(&w, (uint32_t)c->kind);
        put_f64(&w, c->value);
        put_u32(&w, (c->finished ? 1u : 0u) | (c->prn_rescue ? 2u : 0u));
        PUT_STR(&w, c->link);
        PUT_STR(&w, c->detail);
        put_ref(&w, &c->src);
    }
    return w.err;
}

/* ---- reader ------------------------------------------------------------------------------ */

struct rd {
    const unsigned char *p, *end;
    bool bad;
};

static const unsigned char *take(struct rd *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return NULL;
    }
    const unsigned char *at = r->p;
    r->p += n;
    return at;
}

static uint64_t get_u64(struct rd *r)
{
    const unsigned char *le = take(r, 8);
    /* Spelled out, it compiles to one load (the loop it was took ~70 instructions). */
    return le ? (uint64_t)le[0] | (uint64_t)le[1] << 8 | (uint64_t)le[2] << 16 |
                    (uint64_t)le[3] << 24 | (uint64_t)le[4] << 32 | (uint64_t)le[5] << 40 |
                    (uint64_t)le[6] << 48 | (uint64_t)le[7] << 56
              : 0;
}

static int64_t get_i64(struct rd *r)
{
    return (int64_t)get_u64(r);
}

static uint32_t get_u32(struct rd *r)
{
    const unsigned char *le = take(r, 4);
    return le ? (uint32_t)le[0] | (uint32_t)le[1] << 8 | (uint32_t)le[2] << 16 |
                    (uint32_t)le[3] << 24
              : 0;
}

static double get_f64(struct rd *r)
{
    uint64_t v = get_u64(r);
    double d;
    memcpy(&d, &v, sizeof(d));
    return d;
}

static void get_str(struct rd *r, char *out, size_t cap)
{
    const unsigned char *le = take(r, 2);
    size_t n = le ? (size_t)le[0] | (size_t)le[1] << 8 : 0;
    const unsigned char *s = n < cap ? take(r, n) : NULL;
    if (s == NULL) {
        r->bad = true;
        out[0] = '\0';
        return;
    }
    memcpy(out, s, n);
    out[n] = '\0';
}

#define GET_STR(r, field) get_str((r), (field), sizeof(field))

static void get_ref(struct rd *r, struct pw_ref *ref)
{
    GET_STR(r, ref->type);
    GET_STR(r, ref->id);
    GET_STR(r, ref->version);
}

/*
 * Issue 18: a time must lie where a FHIR dateTime can put it (years 0000-9999, a day's slack for
 * the zone offset), or be one of the sentinels @p sentinels allows (bit 0 PW_TIME_NONE, bit 1
 * PW_TIME_FOREVER). Anything else is damage, not input: a time near the ends of int64 would
 * overflow the rules' arithmetic. The range is not narrower on purpose: normalize takes any
 * year a server sends (EHRs write 9999-12-31 for an open end), and a time it stored must decode.
 */
#define TIME_ABSENT  1u
#define TIME_FOREVER 2u
#define TIME_MIN     (-62167219200LL - 86400) /* 0000-01-01T00:00:00Z minus a day */
#define TIME_MAX     (253402300800LL + 86400) /* 10000-01-01T00:00:00Z plus a day */

static bool time_ok(int64_t t, unsigned sentinels)
{
    return (t >= TIME_MIN && t <= TIME_MAX) || (t == PW_TIME_NONE && (sentinels & TIME_ABSENT)) ||
           (t == PW_TIME_FOREVER && (sentinels & TIME_FOREVER));
}

static int64_t get_time(struct rd *r, unsigned sentinels)
{
    int64_t t = get_i64(r);
    r->bad = r->bad || !time_ok(t, sentinels);
    return t;
}

static void get_order(struct rd *r, struct pw_med_order *o, bool v1)
{
    get_ref(r, &o->src);
    o->classes = get_u32(r);
    uint32_t role = get_u32(r);
    r->bad = r->bad || role > PW_ROLE_RESCUE;
    o->role = (enum pw_order_role)role;
    o->prn = get_u32(r) != 0;
    GET_STR(r, o->drug_rxcui);
    GET_STR(r, o->drug_name);
    GET_STR(r, o->ingredient_rxcui);
    GET_STR(r, o->ingredient);
    o->start = get_time(r, TIME_ABSENT);
    o->end = get_time(r, TIME_ABSENT | TIME_FOREVER);
    GET_STR(r, o->prior);
    o->mg_per_dose = get_f64(r);
    o->mg_per_dose_high = get_f64(r);
    o->mg_per_day = get_f64(r);
    o->mcg_per_hour = get_f64(r);
    o->mme_factor = get_f64(r);
    o->mme_per_day = get_f64(r);
    o->mme_per_dose = get_f64(r);
    if (v1) {
        o->min_dose_mg = NAN; /* an older encoding: the issue 16 fields are absent */
        return;
    }
    GET_STR(r, o->route);
    o->part = (int)get_u32(r);
    r->bad = r->bad || o->part < 0;
    GET_STR(r, o->factor_row);
    o->flags = get_u32(r);
    GET_STR(r, o->dose_written);
    o->min_dose_mg = get_f64(r);
}

/* A section count: never more events than bytes left could hold (each is >= 8 bytes). */
static uint32_t get_count(struct rd *r)
{
    uint32_t n = get_u32(r);
    if (!r->bad && n > (size_t)(r->end - r->p) / 8) {
        r->bad = true;
        return 0;
    }
    return n;
}

/* One pass over @p buf; events are added to @p tl only when it is not NULL (the second pass). */
static int decode_pass(struct pw_timeline *tl, const void *buf, size_t len)
{
    struct rd r = {.p = buf, .end = (const unsigned char *)buf + len};
    int rc = 0;
    uint32_t i, n;

    if (!pw_timeline_is_encoded(buf, len)) {
        return PW_EJSON;
    }
    bool v1 = memcmp(buf, CODEC_MAGIC_V1, CODEC_MAGIC_LEN) == 0;
    take(&r, CODEC_MAGIC_LEN);
    n = get_count(&r);
    for (i = 0; i < n && !r.bad && rc == 0; i++) {
        struct pw_pain_score ev = {0};
        ev.at = get_time(&r, 0);
        ev.value = get_f64(&r);
        get_ref(&r, &ev.src);
        rc = tl && !r.bad ? pw_timeline_add_score(tl, &ev) : 0;
    }
    n = get_count(&r);
    for (i = 0; i < n && !r.bad && rc == 0; i++) {
        struct pw_pain_type ev = {0};
        ev.at = get_time(&r, TIME_ABSENT);
        uint32_t kind = get_u32(&r);
        r.bad = r.bad || kind < PW_PAIN_NEUROPATHIC || kind > PW_PAIN_MIXED;
        ev.kind = (enum pw_pain_kind)kind;
        get_ref(&r, &ev.src);
        rc = tl && !r.bad ? pw_timeline_add_pain_type(tl, &ev) : 0;
    }
    n = get_count(&r);
    for (i = 0; i < n && !r.bad && rc == 0; i++) {
        struct pw_med_order ev;
        memset(&ev, 0, sizeof(ev));
        get_order(&r, &ev, v1);
        rc = tl && !r.bad ? pw_timeline_add_order(tl, &ev) : 0;
    }
    n = get_count(&r);
    for (i = 0; i < n && !r.bad && rc == 0; i++) {
        struct pw_referral ev = {0};
        ev.at = get_time(&r, TIME_ABSENT);
        get_ref(&r, &ev.src);
        rc = tl && !r.bad ? pw_timeline_add_referral(tl, &ev) : 0;
    }
    n = get_count(&r);
    for (i = 0; i < n && !r.bad && rc == 0; i++) {
        struct pw_dq_event ev;
        memset(&ev, 0, sizeof(ev));
        GET_STR(&r, ev.code);
        get_ref(&r, &ev.src);
        GET_STR(&r, ev.detail);
        rc = tl && !r.bad ? pw_timeline_add_dq(tl, &ev) : 0;
    }
    n = r.p < r.end && !r.bad ? get_count(&r) : 0;
    for (i = 0; i < n && !r.bad && rc == 0; i++) {
        struct pw_context ev;
        memset(&ev, 0, sizeof(ev));
        ev.at = get_i64(&r);
        ev.end = get_i64(&r);
        uint32_t kind = get_u32(&r);
        r.bad = r.bad || kind < PW_CTX_CANCER || kind > PW_CTX_KIND_MAX;
        ev.kind = (enum pw_ctx_kind)kind;
        ev.value = get_f64(&r);
        uint32_t bits = get_u32(&r);
        ev.finished = (bits & 1u) != 0;
        ev.prn_rescue = (bits & 2u) != 0;
        GET_STR(&r, ev.link);
        GET_STR(&r, ev.detail);
        get_ref(&r, &ev.src);
        rc = tl && !r.bad ? pw_timeline_add_context(tl, &ev) : 0;
    }
    if (rc == 0 && (r.bad || r.p != r.end)) {
        rc = PW_EJSON;
    }
    return rc;
}

int pw_timeline_decode(struct pw_timeline *tl, const void *buf, size_t len)
{
    int rc = decode_pass(NULL, buf, len);
    return rc < 0 ? rc : decode_pass(tl, buf, len);
}

bool pw_timeline_is_encoded(const void *buf, size_t len)
{
    return buf != NULL && len >= CODEC_MAGIC_LEN &&
           (memcmp(buf, CODEC_MAGIC, CODEC_MAGIC_LEN) == 0 ||
            memcmp(buf, CODEC_MAGIC_V1, CODEC_MAGIC_LEN) == 0);
}
