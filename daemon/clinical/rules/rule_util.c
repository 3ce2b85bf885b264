/* SPDX-License-Identifier: Apache-2.0 */
/* Pure helpers shared by the rules (see rule_util.h). No I/O, no clock. */
#include "clinical/rules/rule_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "painwatch/err.h"

static bool known_time(int64_t t)
{
    return t != PW_TIME_NONE && t != PW_TIME_FOREVER;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;
    return (x > y) - (x < y);
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

/* Sorted change points of the baseline (starts and ends of baseline orders, <= now). */
static int change_points(const struct pw_timeline *tl, int64_t now, int64_t **out, size_t *n)
{
    int64_t *pts = malloc((tl->orders.n * 2 + 1) * sizeof(*pts));
    if (!pts) {
        return PW_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if (o->role != PW_ROLE_BASELINE) {
            continue;
        }
        if (known_time(o->start) && o->start <= now) {
            pts[k++] = o->start;
        }
        if (known_time(o->end) && o->end <= now && o->end > o->start) {
            pts[k++] = o->end;
        }
    }
    qsort(pts, k, sizeof(*pts), cmp_i64);
    *out = pts;
    *n = k;
    return 0;
}

int pw_steps_build(const struct pw_timeline *tl, int64_t now, struct pw_steps *out)
{
    int64_t *pts = NULL;
    size_t n = 0;
    out->v = NULL;
    out->n = 0;
    int err = change_points(tl, now, &pts, &n);
    if (err) {
        return err;
    }
    out->v = malloc((n ? n : 1) * sizeof(*out->v));
    if (!out->v) {
        free(pts);
        return PW_ENOMEM;
    }
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j + 1 < n && pts[j + 1] - pts[i] <= PW_STEP_COALESCE_S) {
            j++;
        }
        struct pw_step s = {
            .first = pts[i],
            .at = pts[j],
            .old_mme = pw_ru_tdd(tl, pts[i] - 1),
            .new_mme = pw_ru_tdd(tl, pts[j]),
        };
        if (isfinite(s.old_mme) && isfinite(s.new_mme) &&
            fabs(s.new_mme - s.old_mme) >= PW_MME_EPS) {
            out->v[out->n++] = s;
        }
        i = j + 1;
    }
    free(pts);
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
        if (s->at <= t && (!best || s->at >= best->at)) {
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
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

void pw_ru_sit_ref(char *sit, size_t size, const struct pw_ref *ref)
{
    pw_ru_cat(sit, size, "%s/%s@%s;", ref->type, ref->id, ref->version);
}

void pw_ru_sit_regimen(char *sit, size_t size, const struct pw_timeline *tl, int64_t t)
{
    pw_ru_cat(sit, size, "regimen:");
    for (size_t i = 0; i < tl->orders.n; i++) {
        const struct pw_med_order *o = &tl->orders.v[i];
        if (o->role == PW_ROLE_BASELINE && pw_order_active_at(o, t)) {
            pw_ru_sit_ref(sit, size, &o->src);
        }
    }
    pw_ru_cat(sit, size, "|");
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
        snprintf(buf, 32, "?");
        return buf;
    }
    double r = round(v * 10.0) / 10.0;
    if (fabs(r - round(r)) < 1e-9) {
        snprintf(buf, 32, "%.0f", r);
    } else {
        snprintf(buf, 32, "%.1f", r);
    }
    /* Small doses (fentanyl mcg, hydromorphone) must not round to 0. */
    if (v > 0 && r == 0) {
        snprintf(buf, 32, "%.2g", v);
    }
    return buf;
}

const char *pw_ru_time(char buf[static 32], int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!known_time(t) || !gmtime_r(&tt, &tm)) {
        snprintf(buf, 32, "unknown time");
        return buf;
    }
    strftime(buf, 32, "%Y-%m-%d %H:%M UTC", &tm);
    return buf;
}

const char *pw_ru_dur(char buf[static 32], int64_t seconds)
{
    char n[32];
    if (seconds > 72 * PW_HOUR) {
        snprintf(buf, 32, "%s days", pw_ru_num(n, (double)seconds / PW_DAY));
    } else {
        snprintf(buf, 32, "%s h", pw_ru_num(n, (double)seconds / PW_HOUR));
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
