/* SPDX-License-Identifier: Apache-2.0 */
/* Dosage parsing: doseAndRate preference, Timing to administrations per day, PRN caps. */
#include "clinical/dosage.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "painwatch/fhir.h"
#include "painwatch/timeline.h"

double pw_dosage_unit_days(const char *unit)
{
    static const struct {
        const char *u;
        double days;
    } units[] = {
        {"s", 1.0 / 86400}, {"min", 1.0 / 1440}, {"h", 1.0 / 24}, {"d", 1},
        {"wk", 7},          {"mo", 30},          {"a", 365},
    };
    for (size_t i = 0; unit && i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(units[i].u, unit) == 0) {
            return units[i].days;
        }
    }
    return NAN;
}

double pw_dosage_code_per_day(const char *code)
{
    /* v3 GTSAbbreviation codes and their common spellings. */
    static const struct {
        const char *code;
        double per_day;
    } codes[] = {
        {"QD", 1},        {"DAILY", 1},  {"QAM", 1},        {"AM", 1},       {"QPM", 1},
        {"PM", 1},        {"QHS", 1},    {"HS", 1},         {"BED", 1},      {"BID", 2},
        {"TID", 3},       {"QID", 4},    {"QOD", 0.5},      {"Q1H", 24},     {"Q2H", 12},
        {"Q3H", 8},       {"Q4H", 6},    {"Q6H", 4},        {"Q8H", 3},      {"Q12H", 2},
        {"Q24H", 1},      {"Q48H", 0.5}, {"Q72H", 1.0 / 3}, {"WK", 1.0 / 7}, {"QWK", 1.0 / 7},
        {"MO", 1.0 / 30},
    };
    for (size_t i = 0; code && i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (strcasecmp(codes[i].code, code) == 0) {
            return codes[i].per_day;
        }
    }
    return NAN;
}

/* Event codes of Timing.repeat.when that stand for three meals a day. */
static double when_count(const json_t *when)
{
    double n = 0;
    size_t i;
    const json_t *w;
    json_array_foreach(when, i, w)
    {
        const char *s = json_string_value(w);
        if (s == NULL) {
            continue;
        }
        n += (strcmp(s, "C") == 0 || strcmp(s, "AC") == 0 || strcmp(s, "PC") == 0) ? 3 : 1;
    }
    return n;
}

static double repeat_per_day(const json_t *rep)
{
    double freq = NAN, fmax = NAN, period = NAN;
    pw_fhir_num(rep, "frequency", &freq);
    pw_fhir_num(rep, "frequencyMax", &fmax);
    pw_fhir_num(rep, "period", &period);
    double udays = pw_dosage_unit_days(pw_fhir_str(rep, "periodUnit"));
    double per_day = NAN;
    /* "3 times" without a period is not a rate: per_day stays unknown. */
    if (period > 0 && udays > 0) {
        /* The most often allowed: the highest frequency over the shortest period. */
        double f = fmax > 0 ? fmax : (freq > 0 ? freq : 1);
        per_day = f / (period * udays);
    }
    const json_t *tod = json_object_get(rep, "timeOfDay");
    double n_tod = json_is_array(tod) ? (double)json_array_size(tod) : 0;
    double n_when = when_count(json_object_get(rep, "when"));
    double listed = n_tod > n_when ? n_tod : n_when;
    if (listed > 0 && (isnan(per_day) || listed > per_day)) {
        per_day = listed;
    }
    /* dayOfWeek: a daily schedule given on some days only, averaged over the week. */
    const json_t *dow = json_object_get(rep, "dayOfWeek");
    if (json_is_array(dow) && json_array_size(dow) > 0 && json_array_size(dow) < 7 &&
        isfinite(per_day) && per_day >= 1) {
        per_day = per_day * (double)json_array_size(dow) / 7.0;
    }
    return per_day;
}

static double timing_per_day(const json_t *timing)
{
    if (!json_is_object(timing)) {
        return NAN;
    }
    const json_t *rep = json_object_get(timing, "repeat");
    double per_day = json_is_object(rep) ? repeat_per_day(rep) : NAN;
    if (isfinite(per_day)) {
        return per_day;
    }
    const json_t *code = json_object_get(timing, "code");
    const json_t *codings = json_object_get(code, "coding");
    size_t i;
    const json_t *c;
    json_array_foreach(codings, i, c)
    {
        double v = pw_dosage_code_per_day(pw_fhir_str(c, "code"));
        if (isfinite(v)) {
            return v;
        }
    }
    return pw_dosage_code_per_day(pw_fhir_str(code, "text"));
}

static bool read_quantity(const json_t *q, struct pw_dose_qty *out)
{
    double v;
    if (!json_is_object(q) || !pw_fhir_num(q, "value", &v)) {
        return false;
    }
    out->low = out->high = v;
    out->rate = false;
    pw_fhir_copy(out->code, sizeof(out->code), pw_fhir_str(q, "code"));
    pw_fhir_copy(out->unit, sizeof(out->unit), pw_fhir_str(q, "unit"));
    return true;
}

/*
 * A rateRatio (2 mg / 1 h, 50 mcg / 30 min) as an amount per hour: "mg/h", "mcg/h", "mL/h". A
 * denominator in other units than time is not a rate (false).
 */
static bool read_rate_ratio(const json_t *ratio, struct pw_dose_qty *out)
{
    struct pw_dose_qty num;
    if (!json_is_object(ratio) || !read_quantity(json_object_get(ratio, "numerator"), &num)) {
        return false;
    }
    const json_t *den = json_object_get(ratio, "denominator");
    double dv = 1;
    pw_fhir_num(den, "value", &dv);
    const char *du = pw_fhir_str(den, "code") ? pw_fhir_str(den, "code") : pw_fhir_str(den, "unit");
    double days = pw_dosage_unit_days(du);
    if (du != NULL && (strcmp(du, "hr") == 0 || strcmp(du, "hour") == 0)) {
        days = 1.0 / 24;
    }
    if (!(dv > 0) || !(days > 0)) {
        return false;
    }
    double per_hour = num.low / (dv * days * 24.0);
    const char *nu = num.code[0] ? num.code : num.unit;
    *out = num;
    out->low = out->high = per_hour;
    snprintf(out->code, sizeof(out->code), "%.24s/h", nu);
    snprintf(out->unit, sizeof(out->unit), "%.24s/h", num.unit[0] ? num.unit : nu);
    return true;
}

static bool read_dose(const json_t *dr, struct pw_dose_qty *out)
{
    memset(out, 0, sizeof(*out));
    /* A rate (infusion, "mg/h") stands for the dose when there is no dose. */
    if (read_quantity(json_object_get(dr, "doseQuantity"), out)) {
        return true;
    }
    if (json_object_get(dr, "doseRange") == NULL &&
        (read_quantity(json_object_get(dr, "rateQuantity"), out) ||
         read_rate_ratio(json_object_get(dr, "rateRatio"), out) ||
         read_quantity(json_object_get(json_object_get(dr, "rateRange"), "high"), out))) {
        out->rate = true;
        return true;
    }
    const json_t *range = json_object_get(dr, "doseRange");
    struct pw_dose_qty lo, hi;
    bool has_lo = read_quantity(json_object_get(range, "low"), &lo);
    bool has_hi = read_quantity(json_object_get(range, "high"), &hi);
    if (!has_lo && !has_hi) {
        return false;
    }
    *out = has_hi ? hi : lo;
    out->low = has_lo ? lo.low : hi.low;
    if (!has_hi) {
        out->high = lo.low;
    }
    if (has_lo && has_hi && (lo.code[0] || lo.unit[0]) && !(hi.code[0] || hi.unit[0])) {
        memcpy(out->code, lo.code, sizeof(out->code));
        memcpy(out->unit, lo.unit, sizeof(out->unit));
    }
    return true;
}

/* The doseAndRate type ("ordered", "calculated"), from a coding code or the text. */
static bool dr_type_is(const json_t *dr, const char *want)
{
    const json_t *type = json_object_get(dr, "type");
    if (pw_fhir_cc_has(type, NULL, want)) {
        return true;
    }
    const char *text = pw_fhir_str(type, "text");
    return text && strcasecmp(text, want) == 0;
}

static void add_cand(struct pw_dosage *out, const struct pw_dose_qty *q)
{
    if (out->n_cand < PW_DOSE_CAND_MAX) {
        out->cand[out->n_cand++] = *q;
    }
}

/* An Epic dose extension (…/ordered-dose or …/admin-amount) on @p obj, if any. */
static bool epic_ext(const json_t *obj, const char *suffix, struct pw_dose_qty *out)
{
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(obj, "extension"), i, e)
    {
        const char *url = pw_fhir_str(e, "url");
        size_t ul = url ? strlen(url) : 0, sl = strlen(suffix);
        if (ul >= sl && strcmp(url + ul - sl, suffix) == 0) {
            memset(out, 0, sizeof(*out));
            return read_quantity(json_object_get(e, "valueQuantity"), out);
        }
    }
    return false;
}

static void collect_doses(const json_t *dosage, struct pw_dosage *out)
{
    const json_t *drs = json_object_get(dosage, "doseAndRate");
    static const char *const types[] = {"ordered", "calculated"};
    struct pw_dose_qty q;
    bool used[64] = {false};
    size_t n = json_is_array(drs) ? json_array_size(drs) : 0;
    if (n > 64) {
        n = 64;
    }
    for (size_t t = 0; t < 2; t++) {
        for (size_t i = 0; i < n; i++) {
            const json_t *dr = json_array_get(drs, i);
            if (!used[i] && dr_type_is(dr, types[t]) && read_dose(dr, &q)) {
                add_cand(out, &q);
                used[i] = true;
            }
        }
    }
    if (epic_ext(dosage, "/ordered-dose", &q)) {
        add_cand(out, &q);
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *dr = json_array_get(drs, i);
        if (!used[i] && read_dose(dr, &q)) {
            add_cand(out, &q);
        }
        if (epic_ext(dr, "/ordered-dose", &q)) {
            add_cand(out, &q);
        }
    }
    if (epic_ext(dosage, "/admin-amount", &q)) {
        add_cand(out, &q);
    }
    for (size_t i = 0; i < n; i++) {
        if (epic_ext(json_array_get(drs, i), "/admin-amount", &q)) {
            add_cand(out, &q);
        }
    }
}

/* maxDosePerPeriod (a Ratio; R5 and some servers send an array) as an amount per day. */
static void read_max(const json_t *dosage, struct pw_dosage *out)
{
    const json_t *m = json_object_get(dosage, "maxDosePerPeriod");
    if (json_is_array(m)) {
        m = json_array_get(m, 0);
    }
    struct pw_dose_qty num;
    double den = 1;
    if (!json_is_object(m) || !read_quantity(json_object_get(m, "numerator"), &num)) {
        return;
    }
    const json_t *dq = json_object_get(m, "denominator");
    pw_fhir_num(dq, "value", &den);
    const char *du = pw_fhir_str(dq, "code");
    double days = pw_dosage_unit_days(du ? du : pw_fhir_str(dq, "unit"));
    if (isnan(days)) {
        days = 1; /* a denominator without unit: per day, the usual meaning */
    }
    if (!(den > 0)) {
        return;
    }
    num.low = num.high = num.low / (den * days);
    out->max_per_day = num;
    out->has_max = true;
}

bool pw_dosage_prn(const json_t *dosage)
{
    return json_is_true(json_object_get(dosage, "asNeededBoolean")) ||
           json_is_object(json_object_get(dosage, "asNeededCodeableConcept"));
}

void pw_dosage_parse(const json_t *dosage, struct pw_dosage *out)
{
    memset(out, 0, sizeof(*out));
    out->per_day = NAN;
    if (!json_is_object(dosage)) {
        return;
    }
    const json_t *seq = json_object_get(dosage, "sequence");
    if (json_is_integer(seq)) {
        out->has_sequence = true;
        out->sequence = (long)json_integer_value(seq);
    }
    out->has_text = pw_fhir_str(dosage, "text") != NULL;
    out->bounds_start = out->bounds_end = PW_TIME_NONE;
    out->bounds_seconds = NAN;
    const json_t *rep = json_object_get(json_object_get(dosage, "timing"), "repeat");
    const json_t *bp = json_object_get(rep, "boundsPeriod");
    int64_t t;
    if (pw_fhir_parse_time(pw_fhir_str(bp, "start"), &t) == 0) {
        out->bounds_start = t;
    }
    if (pw_fhir_parse_time(pw_fhir_str(bp, "end"), &t) == 0) {
        out->bounds_end = t;
    }
    const json_t *bd = json_object_get(rep, "boundsDuration");
    double bv;
    const char *bu = pw_fhir_str(bd, "code") ? pw_fhir_str(bd, "code") : pw_fhir_str(bd, "unit");
    double bdays = pw_dosage_unit_days(bu);
    if (pw_fhir_num(bd, "value", &bv) && bv > 0 && isfinite(bdays) && bv * bdays < 36500) {
        out->bounds_seconds = bv * bdays * 86400.0;
    }
    out->prn = pw_dosage_prn(dosage);
    out->per_day = timing_per_day(json_object_get(dosage, "timing"));
    collect_doses(dosage, out);
    read_max(dosage, out);
}
