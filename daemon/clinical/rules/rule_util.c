/* SPDX-License-Identifier: Apache-2.0 */
/* Pure helpers shared by the rules (see rule_util.h). No I/O, no clock. */
#include "clinical/rules/rule_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "painwatch/err.h"
#include "painwatch/hex.h"

static bool known_time(int64_t t)
{
    return t != PW_TIME_NONE && t != PW_TIME_FOREVER;
}

double pw_ru_tdd(const struct pw_timeline *tl, int64_t t)
{
    /* pw_timeline_baseline_mme_at() skips orders whose dose is unknown; a rule must not judge
     * a step or a percentage from a partial sum, so an unknown dose makes the TDD unknown. */
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if (o->role == PW_ROLE_BASELINE && pw_order_active_at(o, t) && !isfinite(o->mme_per_day)) {
            return NAN;
        }
    }
    return pw_timeline_baseline_mme_at(tl, t);
}

/* One start (+) or end (-) of a baseline order; an unknown dose counts in `unknown`. */
struct change {
    int64_t t;
    double mme;
    int unknown;
};

static int cmp_change(const void *a, const void *b)
{
    const struct change *x = a;
    const struct change *y = b;
    return (x->t > y->t) - (x->t < y->t);
}

/*
 * The baseline changes at or before @p now, sorted, plus the TDD in force before the first one
 * (orders with an unknown start count from the beginning of time).
 */
static int changes(const struct pw_timeline *tl, int64_t now, struct change **out, size_t *n,
                   struct change *initial)
{
    struct change *v = malloc((tl->orders.n * 2 + 1) * sizeof(*v));
    if (!v) {
        return PW_ENOMEM;
    }
    size_t k = 0;
    *initial = (struct change){.t = PW_TIME_NONE};
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if (o->role != PW_ROLE_BASELINE || o->end <= o->start || o->start > now) {
            continue; /* never active, or not yet */
        }
        bool unknown = !isfinite(o->mme_per_day);
        double mme = unknown ? 0 : o->mme_per_day;
        if (o->start == PW_TIME_NONE) {
            initial->mme += mme;
            initial->unknown += unknown;
        } else {
            v[k++] = (struct change){.t = o->start, .mme = mme, .unknown = unknown};
        }
        if (known_time(o->end) && o->end <= now) {
            v[k++] = (struct change){.t = o->end, .mme = -mme, .unknown = -(int)unknown};
        }
    }
    qsort(v, k, sizeof(*v), cmp_change);
    *out = v;
    *n = k;
    return 0;
}

/*
 * One sweep over the sorted changes keeps the running TDD, so building the steps costs
 * O(n log n) even for a patient at the timeline cap. The running sum is snapped to the nearest
 * 1e-6 MME so that adding and removing doses cannot leave a rounding residue.
 */
int pw_steps_build(const struct pw_timeline *tl, int64_t now, struct pw_steps *out)
{
    struct change *v = NULL;
    struct change run;
    size_t n = 0;
    out->v = NULL;
    out->n = 0;
    int err = changes(tl, now, &v, &n, &run);
    if (err) {
        return err;
    }
    out->v = malloc((n ? n : 1) * sizeof(*out->v));
    if (!out->v) {
        free(v);
        return PW_ENOMEM;
    }
    size_t i = 0;
    while (i < n) {
        struct pw_step s = {
            .first = v[i].t,
            .old_mme = run.unknown > 0 ? NAN : run.mme,
        };
        size_t j = i;
        while (j < n && v[j].t - v[i].t <= PW_STEP_COALESCE_S) {
            run.mme = round((run.mme + v[j].mme) * 1e6) / 1e6;
            run.unknown += v[j].unknown;
            j++;
        }
        s.at = v[j - 1].t;
        s.new_mme = run.unknown > 0 ? NAN : run.mme;
        if (isfinite(s.old_mme) && isfinite(s.new_mme) &&
            fabs(s.new_mme - s.old_mme) >= PW_MME_EPS) {
            out->v[out->n++] = s;
        }
        i = j;
    }
    free(v);
    return 0;
}

void pw_steps_cleanup(struct pw_steps *s)
{
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

bool pw_step_is_increase(const struct pw_step *s)
{
    return s->new_mme > s->old_mme;
}

double pw_step_pct(const struct pw_step *s)
{
    if (s->old_mme < PW_MME_EPS) {
        return NAN;
    }
    return (s->new_mme - s->old_mme) / s->old_mme * 100.0;
}

long pw_steps_last_increase(const struct pw_steps *s, long before)
{
    for (long i = before; i >= 0; i--) {
        if ((size_t)i < s->n && pw_step_is_increase(&s->v[i])) {
            return i;
        }
    }
    return -1;
}

const struct pw_pain_score *pw_ru_score_at(const struct pw_timeline *tl, int64_t t)
{
    const struct pw_pain_score *best = NULL;
    /* Scores are sorted by time; scan all so an unsorted timeline still gives the latest. */
    for (size_t i = 0; i < tl->scores.n; i++) {
        const struct pw_pain_score *s = &tl->scores.v[i];
        /* A score without a time cannot be placed before or after anything. */
        if (s->at != PW_TIME_NONE && s->at <= t && (!best || s->at >= best->at)) {
            best = s;
        }
    }
    return best;
}

bool pw_ru_active(const struct pw_timeline *tl, int64_t t, unsigned classes, int role)
{
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if ((o->classes & classes) && (role < 0 || (int)o->role == role) &&
            pw_order_active_at(o, t)) {
            return true;
        }
    }
    return false;
}

int64_t pw_ru_exposure_start(const struct pw_timeline *tl, int64_t t, unsigned classes)
{
    if (!pw_ru_active(tl, t, classes, -1)) {
        return PW_TIME_NONE;
    }
    /* Walk back: the stretch starts at the earliest start among active orders, and extends
     * further back while another matching order covered the instant just before it. */
    int64_t start = t;
    bool moved = true;
    while (moved) {
        moved = false;
        for (size_t i = 0; i < tl->orders.n; i++) {
            const struct pw_med_order *o = &tl->orders.v[i];
            if ((o->classes & classes) && o->start < start && o->end >= start) {
                start = o->start;
                moved = true;
            }
        }
        if (start == PW_TIME_NONE) {
            break;
        }
    }
    return start;
}

int64_t pw_ru_last_end(const struct pw_timeline *tl, int64_t t, unsigned classes)
{
    int64_t last = PW_TIME_NONE;
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if ((o->classes & classes) && known_time(o->end) && o->end <= t && o->end > last) {
            last = o->end;
        }
    }
    return last;
}

void pw_ru_cat(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strnlen(buf, size);
    if (len + 1 >= size) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    /* Truncation is the documented behaviour: a finding text is capped, never an error.
     * (The analyzer loses track of va_start here: a known false positive.) */
    (void)vsnprintf(buf + len, size - len, fmt, ap); /* NOLINT(clang-analyzer-valist.*) */
    va_end(ap);
}

void pw_ru_sit(char *sit, size_t size, const char *fmt, ...)
{
    char add[PW_SITUATION_MAX * 2];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(add, sizeof(add), fmt, ap); /* NOLINT(clang-analyzer-valist.*) */
    va_end(ap);
    size_t len = strnlen(sit, size);
    size_t add_len = strlen(add);
    if (len + add_len < size) {
        memcpy(sit + len, add, add_len + 1);
        return;
    }
    /* Too long to keep verbatim (long EHR ids, many orders): fold what is there and what comes
     * into a digest, so two different situations never share a truncated prefix. */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) && EVP_DigestUpdate(ctx, sit, len) &&
             EVP_DigestUpdate(ctx, add, add_len) && EVP_DigestFinal_ex(ctx, md, &md_len);
    EVP_MD_CTX_free(ctx);
    if (!ok || size < (size_t)md_len * 2 + 2) {
        return; /* keeps the shorter, still deterministic, string */
    }
    sit[0] = '#';
    pw_hex_encode(md, md_len, sit + 1);
}

void pw_ru_sit_ref(char *sit, size_t size, const struct pw_ref *ref)
{
    pw_ru_sit(sit, size, "%s/%s@%s;", ref->type, ref->id, ref->version);
}

void pw_ru_sit_regimen(char *sit, size_t size, const struct pw_timeline *tl, int64_t t)
{
    pw_ru_sit(sit, size, "regimen:");
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if (o->role == PW_ROLE_BASELINE && pw_order_active_at(o, t)) {
            pw_ru_sit_ref(sit, size, &o->src);
        }
    }
    pw_ru_sit(sit, size, "|");
}

void pw_ru_evidence_regimen(struct pw_finding *f, const struct pw_timeline *tl, int64_t t)
{
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if (o->role == PW_ROLE_BASELINE && pw_order_active_at(o, t)) {
            pw_finding_add_evidence(f, &o->src);
        }
    }
}

const char *pw_ru_num(char buf[static 32], double v)
{
    if (!isfinite(v)) {
        (void)snprintf(buf, 32, "unknown"); /* issue 16: texts never carry "?" */
        return buf;
    }
    double r = round(v * 10.0) / 10.0;
    if (fabs(r - round(r)) < 1e-9) {
        (void)snprintf(buf, 32, "%.0f", r);
    } else {
        (void)snprintf(buf, 32, "%.1f", r);
    }
    /* Small doses (fentanyl mcg, hydromorphone) must not round to 0. */
    if (v > 0 && r == 0) {
        (void)snprintf(buf, 32, "%.2g", v);
    }
    return buf;
}

const char *pw_ru_time(char buf[static 32], int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    /* issue 21: local time in the configured timezone (pw_timezone_set), with its abbreviation */
    if (!known_time(t) || !localtime_r(&tt, &tm)) {
        (void)snprintf(buf, 32, "unknown time");
        return buf;
    }
    (void)strftime(buf, 32, "%Y-%m-%d %H:%M %Z", &tm);
    return buf;
}

const char *pw_ru_dur(char buf[static 32], int64_t seconds)
{
    char n[32];
    if (seconds >= (int64_t)365 * PW_DAY) {
        /* issue 17: never "2124.1 days" */
        (void)snprintf(buf, 32, "%s years", pw_ru_num(n, (double)seconds / (365.25 * PW_DAY)));
    } else if (seconds > (int64_t)72 * PW_HOUR) {
        (void)snprintf(buf, 32, "%s days", pw_ru_num(n, (double)seconds / PW_DAY));
    } else {
        (void)snprintf(buf, 32, "%s h", pw_ru_num(n, (double)seconds / PW_HOUR));
    }
    return buf;
}

void pw_ru_finding_init(struct pw_finding *f, const struct pw_rule *rule, enum pw_severity sev)
{
    memset(f, 0, sizeof(*f));
    f->rule = rule->id;
    f->category = rule->category;
    f->severity = sev;
    f->since = PW_TIME_NONE;
}

int pw_steps_recent_increase(const struct pw_rule_input *in, double window_h,
                             struct pw_steps *steps, const struct pw_step **out, double *pct)
{
    int err = pw_steps_build(in->tl, in->now, steps);

    *out = NULL;
    *pct = NAN;
    if (err) {
        return err;
    }
    long li = pw_steps_last_increase(steps, (long)steps->n - 1);
    if (li < 0) {
        return 0;
    }
    const struct pw_step *s = &steps->v[li];
    double p = pw_step_pct(s);
    if (!isfinite(p) || (double)(in->now - s->at) > window_h * PW_HOUR) {
        return 0;
    }
    *out = s;
    *pct = p;
    return 0;
}

int pw_ru_titration_step(const struct pw_rule_input *in, double window_h, double conv_h,
                         struct pw_step *out, double *pct)
{
    struct pw_steps steps;
    const struct pw_step *s;
    int err = pw_steps_recent_increase(in, window_h, &steps, &s, pct);
    if (err) {
        return err;
    }
    int found = s && !pw_ru_oud(in->tl, in->now) && !pw_ru_step_is_conversion(in->tl, s, conv_h);
    if (found) {
        *out = *s;
    }
    pw_steps_cleanup(&steps);
    return found;
}

void pw_ru_step_context(struct pw_finding *f, const struct pw_timeline *tl, const struct pw_step *s)
{
    pw_ru_sit(f->situation, sizeof(f->situation), "step:%lld|", (long long)s->at);
    pw_ru_sit_regimen(f->situation, sizeof(f->situation), tl, s->at);
    f->since = s->at;
    pw_ru_evidence_regimen(f, tl, s->at);
}

void pw_ru_step_numbers(struct pw_finding *f, const struct pw_step *s, double pct)
{
    pw_finding_add_number(f, "old_baseline_mme_per_day", s->old_mme);
    pw_finding_add_number(f, "new_baseline_mme_per_day", s->new_mme);
    pw_finding_add_number(f, "step_pct", pct);
}

int pw_ru_push_about(struct pw_findings *out, struct pw_finding *f, const char *what,
                     const struct pw_ref *ref, int64_t since, const char *name, double value)
{
    pw_ru_sit(f->situation, sizeof(f->situation), "%s:", what);
    pw_ru_sit_ref(f->situation, sizeof(f->situation), ref);
    f->since = since;
    pw_finding_add_evidence(f, ref);
    pw_finding_add_number(f, name, value);
    return pw_findings_push(out, f);
}

/* ---- Issue 16 ---- */

bool pw_ru_oud(const struct pw_timeline *tl, int64_t t)
{
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if ((o->flags & PW_ORDER_OUD) && pw_order_active_at(o, t)) {
            return true;
        }
    }
    return false;
}

bool pw_ru_regimen_flag(const struct pw_timeline *tl, int64_t t, unsigned flags)
{
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if (o->role == PW_ROLE_BASELINE && (o->flags & flags) && pw_order_active_at(o, t)) {
            return true;
        }
    }
    return false;
}

bool pw_ru_regimen_class(const struct pw_timeline *tl, int64_t t, unsigned classes)
{
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if (o->role == PW_ROLE_BASELINE && (o->classes & classes) && pw_order_active_at(o, t)) {
            return true;
        }
    }
    return false;
}

bool pw_ru_same_drug_route(const struct pw_med_order *a, const struct pw_med_order *b)
{
    bool same = a->ingredient_rxcui[0] && b->ingredient_rxcui[0]
                    ? strcmp(a->ingredient_rxcui, b->ingredient_rxcui) == 0
                    : strcmp(a->ingredient, b->ingredient) == 0;
    return same && strcmp(a->route, b->route) == 0;
}

bool pw_ru_step_is_conversion(const struct pw_timeline *tl, const struct pw_step *s,
                              double window_h)
{
    int64_t w = (int64_t)(window_h * PW_HOUR);
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *b = &tl->orders.v[i];
        if (b->role != PW_ROLE_BASELINE || !known_time(b->start) || b->start < s->first ||
            b->start > s->at) {
            continue;
        }
        for (size_t k = 0; k < tl->orders.n; k++) {
            const struct pw_med_order *a = &tl->orders.v[k];
            if (a->role != PW_ROLE_BASELINE || !known_time(a->end) || a->start >= b->start ||
                pw_ru_same_drug_route(a, b)) {
                continue;
            }
            if (llabs(a->end - b->start) <= w) {
                return true;
            }
        }
    }
    return false;
}

const char *pw_ru_route_word(const char *route)
{
    if (route == NULL || route[0] == '\0') {
        return "";
    }
    return strcmp(route, "parenteral") == 0 ? "IV/SC" : route;
}

const char *pw_ru_tdd_why(const struct pw_timeline *tl, int64_t t)
{
    /* The most specific reason among the baseline orders without an MME. */
    static const struct {
        unsigned flag;
        const char *why;
    } reasons[] = {
        {PW_ORDER_IMPLAUSIBLE,
         "MME not computed: an order's dose is implausible and must be verified"},
        {PW_ORDER_BUPRENORPHINE, "MME not computable for buprenorphine"},
        {PW_ORDER_NO_MME, "MME not computed: no conversion factor for an order's drug and route"},
        {0, "MME not computed: an order's dose could not be read"},
    };
    const char *best = "";
    size_t rank = sizeof(reasons) / sizeof(reasons[0]);
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if (o->role != PW_ROLE_BASELINE || !pw_order_active_at(o, t) || isfinite(o->mme_per_day)) {
            continue;
        }
        for (size_t r = 0; r < rank; r++) {
            if (reasons[r].flag == 0 || (o->flags & reasons[r].flag)) {
                rank = r;
                best = reasons[r].why;
                break;
            }
        }
    }
    return best;
}

double pw_ru_nice_mg(double v)
{
    double step = v >= 20 ? 5 : v >= 5 ? 2.5 : v >= 2 ? 1 : v >= 0.5 ? 0.25 : 0.05;
    double r = round(v / step) * step;
    return r > 0 ? r : step;
}

double pw_ru_practical_mg(double mg, double unit)
{
    if (!isfinite(unit) || unit <= 0) {
        return pw_ru_nice_mg(mg);
    }
    double k = round(mg / unit);
    return (k < 1 ? 1 : k) * unit;
}

/* ---- Issue 17: clinical context ---- */

const struct pw_context *pw_ru_end_of_life(const struct pw_timeline *tl, int64_t t)
{
    for (size_t i = 0; i < tl->context.n; i++) {
        const struct pw_context *c = &tl->context.v[i];
        if ((c->kind == PW_CTX_END_OF_LIFE || c->kind == PW_CTX_BENZO_INFUSION) &&
            (c->at == PW_TIME_NONE || c->at <= t) && (c->end == PW_TIME_NONE || c->end > t)) {
            return c;
        }
    }
    return NULL;
}

const struct pw_context *pw_ru_encounter_at(const struct pw_timeline *tl, int64_t t)
{
    const struct pw_context *best = NULL;
    for (size_t i = 0; i < tl->context.n; i++) {
        const struct pw_context *c = &tl->context.v[i];
        if (c->kind == PW_CTX_ENCOUNTER && c->at <= t && (c->end == PW_TIME_NONE || t <= c->end) &&
            (!best || c->at >= best->at)) {
            best = c;
        }
    }
    return best;
}

const struct pw_context *pw_ru_next_encounter(const struct pw_timeline *tl, int64_t t, int64_t now)
{
    for (size_t i = 0; i < tl->context.n; i++) { /* sorted by start */
        const struct pw_context *c = &tl->context.v[i];
        if (c->kind == PW_CTX_ENCOUNTER && c->at > t && c->at <= now) {
            return c;
        }
    }
    return NULL;
}

bool pw_ru_acute_setting(const struct pw_context *enc)
{
    return enc &&
           ((int)enc->value == PW_SETTING_INPATIENT || (int)enc->value == PW_SETTING_EMERGENCY);
}

bool pw_ru_visit_setting(const struct pw_context *enc)
{
    return enc &&
           ((int)enc->value == PW_SETTING_AMBULATORY || (int)enc->value == PW_SETTING_VIRTUAL);
}

const struct pw_pain_score *pw_ru_score_between(const struct pw_timeline *tl, int64_t from,
                                                int64_t to)
{
    for (size_t i = 0; i < tl->scores.n; i++) {
        if (tl->scores.v[i].at >= from && tl->scores.v[i].at <= to) {
            return &tl->scores.v[i];
        }
    }
    return NULL;
}
