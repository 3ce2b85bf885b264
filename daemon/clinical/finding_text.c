/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue 21: how a finding reads for a clinician, whatever carries it (see finding_text.h): the
 * rule presentation table (definition, summary builder, encounter-bound), evidence in words,
 * the narrative and local times through the C library's timezone handling.
 */
#include "painwatch/finding_text.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clinical/rules/rule_util.h"
#include "painwatch/engine.h"
#include "painwatch/err.h"
#include "painwatch/sink.h"

/*
 * Rule titles come from the engine's registry. Weak references keep the sinks that use these
 * texts, and so the configuration schema that lists the sinks, linkable without the engine (as
 * conf_schema.c and sink_fhir_flag.c do); without the engine a text falls back to the rule id.
 */
#pragma weak pw_rule_find
#pragma weak pw_rules_all

#define XHTML_NS      "http://www.w3.org/1999/xhtml"
#define NARRATIVE_MAX (16u * 1024u)
#define SUMMARY_BUF   512

int pw_severity_parse(const char *name, enum pw_severity *out)
{
    for (int s = PW_SEV_INFO; s <= PW_SEV_HIGH; s++) {
        if (name && strcmp(name, pw_severity_name((enum pw_severity)s)) == 0) {
            *out = (enum pw_severity)s;
            return 0;
        }
    }
    return PW_EINVAL;
}

/* ---- numbers under their clinical names --------------------------------------------------- */

static const struct {
    const char *name;
    const char *label;
} labels[] = {
    {"old_baseline_mme_per_day", "Previous baseline opioid (MME/day)"},
    {"new_baseline_mme_per_day", "New baseline opioid (MME/day)"},
    {"baseline_mme_per_day", "Baseline opioid (MME/day)"},
    {"step_pct", "Size of the increase (%)"},
    {"limit_pct", "Largest increase allowed (%)"},
    {"last_pain_score", "Last pain score before the change (0-10)"},
    {"latest_pain_score", "Latest pain score (0-10)"},
    {"pain_score", "Pain score (0-10)"},
    {"interval_h", "Hours since the previous increase"},
    {"min_interval_h", "Minimum hours between increases"},
    {"opioid_hours", "Hours on an opioid"},
    {"pain_kind", "Pain type"},
    {"new_pct_of_old", "New dose as % of the previous one"},
    {"hours_since_change", "Hours since the dose change"},
    {"severe_scores", "Severe pain scores"},
    {"span_h", "Hours spanned by the severe scores"},
    {"days_with_severe_pain", "Days with severe pain"},
    {"window_days", "Days looked at"},
    {"overdue_h", "Reassessment due within (h)"},
    {"hours_since_score", "Hours since the score"},
    {"rescue_mg_per_dose", "Rescue dose (mg)"},
    {"rescue_mme_per_dose", "Rescue dose (MME)"},
    {"rescue_pct_of_baseline", "Rescue dose as % of the 24-h baseline"},
    {"range_low_mg", "Recommended rescue dose, low end (mg)"},
    {"range_high_mg", "Recommended rescue dose, high end (mg)"},
    {"rescue_doses", "Rescue doses given"},
    {"rescue_mme_per_day", "Rescue opioid given per day (MME)"},
    {"setting", "Care setting"},
};

const char *pw_number_label(const char *name)
{
    for (size_t i = 0; name && i < sizeof(labels) / sizeof(labels[0]); i++) {
        if (strcmp(labels[i].name, name) == 0) {
            return labels[i].label;
        }
    }
    return NULL;
}

static double num(const struct pw_finding *f, const char *name)
{
    for (size_t i = 0; i < f->n_numbers && i < PW_NUMBERS_MAX; i++) {
        if (strcmp(f->numbers[i].name, name) == 0) {
            return f->numbers[i].value;
        }
    }
    return NAN;
}

/* ---- evidence in words -------------------------------------------------------------------- */

static bool same_ref(const struct pw_ref *a, const struct pw_ref *b)
{
    return strcmp(a->type, b->type) == 0 && strcmp(a->id, b->id) == 0;
}

static const struct pw_med_order *order_of(const struct pw_timeline *tl, const struct pw_ref *r)
{
    for (size_t i = 0; tl && i < tl->orders.n; i++) {
        if (same_ref(&tl->orders.v[i].src, r)) {
            return &tl->orders.v[i];
        }
    }
    return NULL;
}

/* The drug as a clinician names it: "oxycodone ER", "fentanyl patch", "senna". */
static void drug_label(const struct pw_med_order *o, char *out, size_t cap)
{
    const char *name = o->ingredient[0] ? o->ingredient : o->drug_name;
    size_t n = 0;

    for (; name[n] && n + 1 < cap && n < 40; n++) {
        out[n] = (char)tolower((unsigned char)name[n]);
    }
    out[n] = '\0';
    if (!name[0]) {
        snprintf(out, cap, "medication");
    }
    if ((o->classes & PW_MED_TRANSDERMAL) && n + 7 < cap) {
        strcat(out, " patch");
    } else if ((o->classes & PW_MED_LONG_ACTING) && !(o->classes & PW_MED_METHADONE) &&
               n + 4 < cap) {
        strcat(out, " ER");
    }
}

/* "20 mg q12h", "5 mg PRN", "25 mcg/h": the dose and how often. */
static void dose_label(const struct pw_med_order *o, char *out, size_t cap)
{
    char a[32];
    char freq[32] = "";

    if ((o->classes & PW_MED_TRANSDERMAL) && isfinite(o->mcg_per_hour) && o->mcg_per_hour > 0) {
        snprintf(out, cap, "%s mcg/h", pw_ru_num(a, o->mcg_per_hour));
        return;
    }
    if (o->prn) {
        snprintf(freq, sizeof(freq), " PRN");
    } else if (isfinite(o->mg_per_day) && isfinite(o->mg_per_dose) && o->mg_per_dose > 0) {
        double per_day = o->mg_per_day / o->mg_per_dose;
        double every = per_day > 0 ? 24.0 / per_day : NAN;
        if (isfinite(every) && fabs(every - round(every)) < 1e-6 && every >= 1) {
            snprintf(freq, sizeof(freq), " q%.0fh", every);
        } else if (isfinite(per_day) && per_day > 0) {
            snprintf(freq, sizeof(freq), " %s times a day", pw_ru_num(a, per_day));
        }
    }
    if (o->dose_written[0]) {
        snprintf(out, cap, "%s%s", o->dose_written, freq);
    } else if (isfinite(o->mg_per_dose)) {
        snprintf(out, cap, "%s mg%s", pw_ru_num(a, o->mg_per_dose), freq);
    } else if (o->classes & PW_MED_OPIOID) {
        snprintf(out, cap, "dose not readable%s", freq);
    } else {
        snprintf(out, cap, "%s", freq[0] ? freq + 1 : ""); /* the product name holds the dose */
    }
}

static const char *setting_word(double v)
{
    switch ((int)v) {
    case PW_SETTING_INPATIENT:
        return "inpatient stay";
    case PW_SETTING_EMERGENCY:
        return "emergency visit";
    case PW_SETTING_AMBULATORY:
        return "clinic visit";
    case PW_SETTING_VIRTUAL:
        return "virtual visit";
    default:
        return "encounter";
    }
}

static const char *pain_kind_word(enum pw_pain_kind k)
{
    switch (k) {
    case PW_PAIN_NEUROPATHIC:
        return "neuropathic pain";
    case PW_PAIN_SOMATIC:
        return "somatic pain";
    case PW_PAIN_VISCERAL:
        return "visceral pain";
    case PW_PAIN_MIXED:
        return "mixed pain";
    }
    return "pain type";
}

static void context_text(const struct pw_context *c, int64_t now, char *out, size_t cap)
{
    char t[40];
    char e[40];
    char a[32];

    switch (c->kind) {
    case PW_CTX_ENCOUNTER:
        if (c->finished || (c->end != PW_TIME_FOREVER && c->end <= now)) {
            snprintf(out, cap, "%s %s to %s", setting_word(c->value), pw_local_time(t, c->at, now),
                     pw_local_time(e, c->end, now));
        } else {
            snprintf(out, cap, "%s since %s (in progress)", setting_word(c->value),
                     pw_local_time(t, c->at, now));
        }
        return;
    case PW_CTX_SEDATION:
        snprintf(out, cap, "sedation score %s%s%s, %s", pw_ru_num(a, c->value),
                 c->detail[0] ? " " : "", c->detail, pw_local_time(t, c->at, now));
        return;
    case PW_CTX_RESP_RATE:
        snprintf(out, cap, "respiratory rate %s/min, %s", pw_ru_num(a, c->value),
                 pw_local_time(t, c->at, now));
        return;
    case PW_CTX_SPO2:
        snprintf(out, cap, "SpO2 %s%%, %s", pw_ru_num(a, c->value), pw_local_time(t, c->at, now));
        return;
    case PW_CTX_ADMINISTRATION:
        snprintf(out, cap, "%sopioid dose given %s", c->prn_rescue ? "rescue " : "",
                 pw_local_time(t, c->at, now));
        return;
    default:
        snprintf(out, cap, "%s%srecorded %s", c->detail, c->detail[0] ? ", " : "",
                 pw_local_time(t, c->at, now));
        return;
    }
}

/* @p r in words from @p tl ("" when the timeline does not hold it). */
static void evidence_text(const struct pw_timeline *tl, const struct pw_ref *r, int64_t now,
                          char *out, size_t cap)
{
    char t[40];
    char drug[64];
    char dose[64];
    const struct pw_med_order *o = order_of(tl, r);

    out[0] = '\0';
    if (o) {
        drug_label(o, drug, sizeof(drug));
        dose_label(o, dose, sizeof(dose));
        snprintf(out, cap, "%s%s%s, ordered %s", drug, dose[0] ? " " : "", dose,
                 pw_local_time(t, o->start, now));
        if (o->end != PW_TIME_FOREVER && o->end != PW_TIME_NONE && o->end <= now) {
            size_t n = strlen(out);
            snprintf(out + n, cap - n, ", ended %s", pw_local_time(t, o->end, now));
        }
        return;
    }
    for (size_t i = 0; i < tl->scores.n; i++) {
        const struct pw_pain_score *s = &tl->scores.v[i];
        if (same_ref(&s->src, r)) {
            char a[32];
            snprintf(out, cap, "pain %s/10, recorded %s", pw_ru_num(a, s->value),
                     pw_local_time(t, s->at, now));
            return;
        }
    }
    for (size_t i = 0; i < tl->pain_types.n; i++) {
        if (same_ref(&tl->pain_types.v[i].src, r)) {
            snprintf(out, cap, "%s documented %s", pain_kind_word(tl->pain_types.v[i].kind),
                     pw_local_time(t, tl->pain_types.v[i].at, now));
            return;
        }
    }
    for (size_t i = 0; i < tl->referrals.n; i++) {
        if (same_ref(&tl->referrals.v[i].src, r)) {
            snprintf(out, cap, "palliative care referral or contact %s",
                     pw_local_time(t, tl->referrals.v[i].at, now));
            return;
        }
    }
    for (size_t i = 0; i < tl->context.n; i++) {
        if (same_ref(&tl->context.v[i].src, r)) {
            context_text(&tl->context.v[i], now, out, cap);
            return;
        }
    }
}

/* ---- encounters ---------------------------------------------------------------------------- */

static bool acute(const struct pw_context *c)
{
    return c->kind == PW_CTX_ENCOUNTER &&
           ((int)c->value == PW_SETTING_INPATIENT || (int)c->value == PW_SETTING_EMERGENCY);
}

static bool in_progress(const struct pw_context *c, int64_t t)
{
    return c->at <= t && !c->finished && (c->end == PW_TIME_FOREVER || c->end > t);
}

/* The inpatient or emergency encounter in progress at @p now (the latest started), or NULL. */
static const struct pw_context *encounter_now(const struct pw_timeline *tl, int64_t now)
{
    const struct pw_context *best = NULL;

    for (size_t i = 0; i < tl->context.n; i++) {
        const struct pw_context *c = &tl->context.v[i];
        if (acute(c) && in_progress(c, now) && (!best || c->at >= best->at)) {
            best = c;
        }
    }
    return best;
}

/* An inpatient/emergency encounter whose period held @p t and which has ended by @p now. */
static const struct pw_context *encounter_ended(const struct pw_timeline *tl, int64_t t,
                                                int64_t now)
{
    for (size_t i = 0; t != PW_TIME_NONE && i < tl->context.n; i++) {
        const struct pw_context *c = &tl->context.v[i];
        if (acute(c) && c->at <= t && t <= c->end && !in_progress(c, now)) {
            return c;
        }
    }
    return NULL;
}

/* ---- summaries ----------------------------------------------------------------------------- */

#define N(buf, name) pw_ru_num(buf, num(f, name))
#define HAS(name)    isfinite(num(f, name))

static void sum_step_large(const struct pw_finding *f, const struct pw_timeline *tl, char *o,
                           size_t cap)
{
    char a[32], b[32], c[32], d[32];
    (void)tl;
    if (!HAS("old_baseline_mme_per_day") || !HAS("step_pct")) {
        snprintf(o, cap, "Opioid titration step too large");
        return;
    }
    snprintf(o, cap, "Opioid step +%s%% (%s -> %s MME/day) with %s%s%s", N(c, "step_pct"),
             N(a, "old_baseline_mme_per_day"), N(b, "new_baseline_mme_per_day"),
             HAS("last_pain_score") ? "pain " : "no pain score",
             HAS("last_pain_score") ? N(d, "last_pain_score") : "",
             HAS("last_pain_score") ? "/10" : "");
}

static void sum_too_soon(const struct pw_finding *f, const struct pw_timeline *tl, char *o,
                         size_t cap)
{
    char a[32], b[32], c[32], d[32];
    (void)tl;
    snprintf(o, cap, "Opioid increased again after %s h (minimum %s h): %s -> %s MME/day",
             N(a, "interval_h"), N(b, "min_interval_h"), N(c, "old_baseline_mme_per_day"),
             N(d, "new_baseline_mme_per_day"));
}

static void sum_step_small(const struct pw_finding *f, const struct pw_timeline *tl, char *o,
                           size_t cap)
{
    char a[32], b[32], c[32], d[32];
    (void)tl;
    snprintf(o, cap, "Opioid step only +%s%% (%s -> %s MME/day) with pain %s/10", N(c, "step_pct"),
             N(a, "old_baseline_mme_per_day"), N(b, "new_baseline_mme_per_day"),
             N(d, "last_pain_score"));
}

static void sum_uncontrolled(const struct pw_finding *f, const struct pw_timeline *tl, char *o,
                             size_t cap)
{
    char a[32], b[32], c[32], d[32];
    (void)tl;
    bool base = HAS("baseline_mme_per_day") && num(f, "baseline_mme_per_day") > 0;
    snprintf(o, cap, "Pain %s/10, %s severe scores over %s h, no opioid increase%s%s%s",
             N(a, "latest_pain_score"), N(b, "severe_scores"), N(c, "span_h"), base ? " (" : "",
             base ? N(d, "baseline_mme_per_day") : "", base ? " MME/day)" : "");
}

static void sum_rescue_missing(const struct pw_finding *f, const struct pw_timeline *tl, char *o,
                               size_t cap)
{
    char a[32];
    (void)tl;
    if (HAS("baseline_mme_per_day")) {
        snprintf(o, cap, "No rescue opioid for breakthrough pain; baseline %s MME/day",
                 N(a, "baseline_mme_per_day"));
    } else {
        snprintf(o, cap, "No rescue opioid for breakthrough pain with a baseline opioid");
    }
}

static void sum_rescue_range(const struct pw_finding *f, const struct pw_timeline *tl, char *o,
                             size_t cap)
{
    char a[32], b[32], c[32], d[32], e[32];
    (void)tl;
    snprintf(o, cap, "Rescue dose %s mg = %s%% of baseline %s MME/day (advised %s-%s mg)",
             N(a, "rescue_mg_per_dose"), N(b, "rescue_pct_of_baseline"),
             N(c, "baseline_mme_per_day"), N(d, "range_low_mg"), N(e, "range_high_mg"));
}

static void sum_bowel(const struct pw_finding *f, const struct pw_timeline *tl, char *o, size_t cap)
{
    char a[32];
    (void)tl;
    if (HAS("opioid_hours")) {
        snprintf(o, cap, "Opioid for %s h without a scheduled laxative", N(a, "opioid_hours"));
    } else {
        snprintf(o, cap, "Opioid without a scheduled laxative");
    }
}

static void sum_adjuvant(const struct pw_finding *f, const struct pw_timeline *tl, char *o,
                         size_t cap)
{
    (void)f;
    (void)tl;
    snprintf(o, cap, "Neuropathic pain documented, no adjuvant analgesic ordered");
}

static void sum_type(const struct pw_finding *f, const struct pw_timeline *tl, char *o, size_t cap)
{
    char a[32];
    (void)tl;
    snprintf(o, cap, "Pain %s/10 and no pain type documented", N(a, "pain_score"));
}

static void sum_reassess_change(const struct pw_finding *f, const struct pw_timeline *tl, char *o,
                                size_t cap)
{
    char a[32], b[32];
    (void)tl;
    snprintf(o, cap, "Pain not reassessed %s h after an opioid dose change (due within %s h)",
             N(a, "hours_since_change"), N(b, "overdue_h"));
}

static void sum_reassess_score(const struct pw_finding *f, const struct pw_timeline *tl, char *o,
                               size_t cap)
{
    char a[32], b[32];
    (void)tl;
    snprintf(o, cap, "Pain %s/10 not reassessed for %s h", N(a, "pain_score"),
             N(b, "hours_since_score"));
}

static void sum_palliative(const struct pw_finding *f, const struct pw_timeline *tl, char *o,
                           size_t cap)
{
    char a[32], b[32];
    (void)tl;
    snprintf(o, cap, "Severe pain on %s of the last %s days; no palliative care involved",
             N(a, "days_with_severe_pain"), N(b, "window_days"));
}

static void sum_rotation(const struct pw_finding *f, const struct pw_timeline *tl, char *o,
                         size_t cap)
{
    char a[32], b[32], c[32];
    (void)tl;
    snprintf(o, cap, "Opioid rotation without reduction: %s -> %s MME/day (%s%% of before)",
             N(a, "old_baseline_mme_per_day"), N(b, "new_baseline_mme_per_day"),
             N(c, "new_pct_of_old"));
}

/* The first evidence order with any of @p classes, or NULL. */
static const struct pw_med_order *evidence_order(const struct pw_finding *f,
                                                 const struct pw_timeline *tl, unsigned classes)
{
    for (size_t i = 0; tl && i < f->n_evidence && i < PW_EVIDENCE_MAX; i++) {
        const struct pw_med_order *o = order_of(tl, &f->evidence[i]);
        if (o && (o->classes & classes)) {
            return o;
        }
    }
    return NULL;
}

static void sum_benzo(const struct pw_finding *f, const struct pw_timeline *tl, char *o, size_t cap)
{
    char a[32];
    char drug[64] = "a benzodiazepine";
    const struct pw_med_order *b = evidence_order(f, tl, PW_MED_BENZODIAZEPINE);
    if (b) {
        drug_label(b, drug, sizeof(drug));
    }
    if (HAS("baseline_mme_per_day")) {
        snprintf(o, cap, "Opioid (%s MME/day) and %s ordered together",
                 N(a, "baseline_mme_per_day"), drug);
    } else {
        snprintf(o, cap, "Opioid and %s ordered together", drug);
    }
}

static void sum_implausible(const struct pw_finding *f, const struct pw_timeline *tl, char *o,
                            size_t cap)
{
    char drug[64];
    char dose[64];
    const struct pw_med_order *m = evidence_order(f, tl, PW_MED_OPIOID);
    if (!m) {
        snprintf(o, cap, "Opioid order dose implausible: verify the order");
        return;
    }
    drug_label(m, drug, sizeof(drug));
    dose_label(m, dose, sizeof(dose));
    snprintf(o, cap, "Implausible dose: %s %s; verify the order", drug, dose);
}

static void sum_methadone(const struct pw_finding *f, const struct pw_timeline *tl, char *o,
                          size_t cap)
{
    char dose[64];
    const struct pw_med_order *m = evidence_order(f, tl, PW_MED_METHADONE);
    if (!m) {
        snprintf(o, cap, "Methadone conversion: specialist review needed");
        return;
    }
    dose_label(m, dose, sizeof(dose));
    snprintf(o, cap, "Methadone %s in a conversion: specialist review needed", dose);
}

static void sum_sedation(const struct pw_finding *f, const struct pw_timeline *tl, char *o,
                         size_t cap)
{
    char a[32];
    (void)tl;
    if (HAS("hours_since_change")) {
        snprintf(o, cap, "Sedation or slow breathing %s h after an opioid change",
                 N(a, "hours_since_change"));
    } else {
        snprintf(o, cap, "Sedation or slow breathing after an opioid change");
    }
}

static void sum_rescue_frequent(const struct pw_finding *f, const struct pw_timeline *tl, char *o,
                                size_t cap)
{
    char a[32], b[32];
    (void)tl;
    if (HAS("rescue_mme_per_day")) {
        snprintf(o, cap, "%s rescue doses (%s MME/day) without a baseline increase",
                 N(a, "rescue_doses"), N(b, "rescue_mme_per_day"));
    } else {
        snprintf(o, cap, "%s rescue doses without a baseline increase", N(a, "rescue_doses"));
    }
}

static void sum_visit(const struct pw_finding *f, const struct pw_timeline *tl, char *o, size_t cap)
{
    (void)tl;
    snprintf(o, cap, "No pain score at a %s while on opioids",
             HAS("setting") ? setting_word(num(f, "setting")) : "visit");
}

static const struct pw_rule_text rule_texts[] = {
    {"titration-step-too-large",
     "The latest increase of the baseline opioid dose (MME/day) is larger than the guide allows "
     "for the last pain score (25-50%, doubling at most for severe pain).",
     sum_step_large, false},
    {"titration-too-soon",
     "The baseline opioid was increased again before the previous increase could reach steady "
     "state (24 h; 72 h for a fentanyl patch).",
     sum_too_soon, false},
    {"titration-step-too-small",
     "A baseline opioid increase too small to help moderate or severe pain.", sum_step_small,
     false},
    {"pain-uncontrolled-no-titration",
     "Severe pain scores persist and the baseline opioid dose was not increased.", sum_uncontrolled,
     false},
    {"rescue-dose-missing",
     "A baseline opioid is active and nothing is ordered for breakthrough pain.",
     sum_rescue_missing, false},
    {"rescue-dose-out-of-range",
     "A rescue (PRN) opioid dose outside 10-20% of the 24-hour baseline opioid dose.",
     sum_rescue_range, false},
    {"bowel-regimen-missing",
     "An opioid has been prescribed for 24 hours or more without a scheduled laxative.", sum_bowel,
     false},
    {"neuropathic-pain-no-adjuvant",
     "Neuropathic pain is documented and no adjuvant analgesic (gabapentinoid, SNRI, TCA, "
     "corticosteroid) is active.",
     sum_adjuvant, false},
    {"pain-type-undocumented",
     "Moderate or worse pain is recorded and the pain type (neuropathic, somatic, visceral) was "
     "never documented.",
     sum_type, false},
    {"reassessment-overdue-after-dose-change",
     "No pain score since the last change of the opioid regimen within the reassessment interval.",
     sum_reassess_change, true},
    {"reassessment-overdue-after-high-score",
     "A severe pain score was not followed by a reassessment within the interval.",
     sum_reassess_score, true},
    {"palliative-referral-suggested",
     "Severe pain on several days and no palliative care referral or contact.", sum_palliative,
     false},
    {"opioid-rotation-without-reduction",
     "A switch to another opioid or route without the dose reduction for incomplete cross-"
     "tolerance.",
     sum_rotation, false},
    {"opioid-benzodiazepine-concurrent", "An opioid and a benzodiazepine are active together.",
     sum_benzo, false},
    {"order-dose-implausible",
     "An opioid order's dose is outside the plausibility table: possibly an ordering slip, no "
     "MME is computed from it.",
     sum_implausible, false},
    {"methadone-conversion-review",
     "Methadone started or increased while converting from another opioid: the conversion is "
     "non-linear and needs specialist input.",
     sum_methadone, false},
    {"opioid-sedation-risk",
     "Sedation or slow breathing recorded within 72 hours of an opioid start or increase.",
     sum_sedation, false},
    {"rescue-use-frequent",
     "Many rescue opioid doses were given and the baseline dose was not raised since.",
     sum_rescue_frequent, false},
    {"pain-not-assessed-at-visit",
     "A finished encounter of a patient on opioids without a pain score.", sum_visit, false},
};

const struct pw_rule_text *pw_rule_text_find(const char *rule_id)
{
    for (size_t i = 0; rule_id && i < sizeof(rule_texts) / sizeof(rule_texts[0]); i++) {
        if (strcmp(rule_texts[i].id, rule_id) == 0) {
            return &rule_texts[i];
        }
    }
    return NULL;
}

size_t pw_finding_summary(const struct pw_finding *f, const struct pw_timeline *tl, char *out,
                          size_t cap)
{
    char buf[SUMMARY_BUF];
    const struct pw_rule_text *rt = pw_rule_text_find(f->rule);
    const struct pw_rule *r = pw_rule_find ? pw_rule_find(f->rule) : NULL;

    buf[0] = '\0';
    if (rt) {
        rt->summary(f, tl, buf, sizeof(buf));
    }
    /* A number the builder needed is not on the finding (pw_ru_num wrote its "unknown"): a
     * number painwatch is not sure of is never shown, so the summary is the rule's title. */
    if (!rt || strstr(buf, "unknown")) {
        snprintf(buf, sizeof(buf), "%s", r && r->title ? r->title : f->rule ? f->rule : "");
    }
    if (cap > 0) {
        snprintf(out, cap, "%s", buf);
    }
    return strlen(buf);
}

/* Cut @p s to PW_SUMMARY_MAX - 1 bytes at a word, with "..." (a builder's defect, tested). */
static void cut_summary(char *s, size_t len)
{
    if (len < PW_SUMMARY_MAX) {
        return;
    }
    size_t n = PW_SUMMARY_MAX - 4;
    while (n > 0 && s[n] != ' ') {
        n--;
    }
    memcpy(s + n, "...", 4);
}

void pw_finding_complete(struct pw_finding *f, const struct pw_rule *r,
                         const struct pw_timeline *tl, int64_t now, enum pw_severity post_min)
{
    char full[SUMMARY_BUF];
    const struct pw_rule_text *rt = pw_rule_text_find(r ? r->id : f->rule);
    const struct pw_context *enc = encounter_now(tl, now);

    size_t len = pw_finding_summary(f, tl, full, sizeof(full));
    cut_summary(full, len);
    snprintf(f->summary, sizeof(f->summary), "%s", full);
    for (size_t i = 0; i < f->n_evidence && i < PW_EVIDENCE_MAX; i++) {
        evidence_text(tl, &f->evidence[i], now, f->evidence_text[i], sizeof(f->evidence_text[i]));
    }
    f->encounter[0] = '\0';
    if (enc) {
        snprintf(f->encounter, sizeof(f->encounter), "%s/%s", enc->src.type, enc->src.id);
    }
    f->encounter_bound = rt && rt->encounter_bound;
    f->audit_only = f->severity < post_min;
    /* An encounter-bound finding that arose during a stay which has ended: its Flag is resolved
     * (the stay is over), it is not raised again after discharge. */
    if (f->encounter_bound && !enc && encounter_ended(tl, f->since, now)) {
        f->audit_only = true;
    }
}

/* ---- the narrative ------------------------------------------------------------------------- */

/* A bounded text buffer: appends past the cap are cut, never overflow. */
struct buf {
    char *s;
    size_t n;
    size_t cap;
};

static void put_n(struct buf *b, const char *s, size_t n)
{
    if (b->n + 1 >= b->cap) {
        return;
    }
    if (n > b->cap - b->n - 1) {
        n = b->cap - b->n - 1;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void put(struct buf *b, const char *s)
{
    put_n(b, s, strlen(s));
}

/* Append @p s with the five XML special characters escaped. */
static void put_esc(struct buf *b, const char *s)
{
    static const char *const ent[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&#39;"};
    static const char specials[] = "&<>\"'";

    while (s && *s) {
        size_t run = strcspn(s, specials);
        put_n(b, s, run);
        s += run;
        if (*s) {
            put(b, ent[strchr(specials, *s) - specials]);
            s++;
        }
    }
}

static void ref_plain(const struct pw_ref *r, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", r->type, r->id); /* the resource, not its _history version */
}

char *pw_finding_narrative(const struct pw_finding *f)
{
    struct buf b = {.s = malloc(NARRATIVE_MAX), .cap = NARRATIVE_MAX};
    const struct pw_rule *r = pw_rule_find ? pw_rule_find(f->rule) : NULL;
    char t[40];
    char v[32];

    if (!b.s) {
        return NULL;
    }
    b.s[0] = '\0';
    put(&b, "<div xmlns=\"" XHTML_NS "\"><p><b>");
    put_esc(&b, r && r->title ? r->title : f->rule);
    put(&b, "</b> (");
    put(&b, pw_severity_name(f->severity));
    put(&b, " priority; painwatch rule ");
    put_esc(&b, f->rule);
    put(&b, ")</p><p>");
    put_esc(&b, f->text[0] ? f->text : f->summary);
    put(&b, "</p>");
    if (f->n_numbers > 0) {
        put(&b, "<p>Figures painwatch used:</p><ul>");
        for (size_t i = 0; i < f->n_numbers && i < PW_NUMBERS_MAX; i++) {
            const char *label = pw_number_label(f->numbers[i].name);
            char plain[64];
            put(&b, "<li>");
            if (!label) { /* a figure without a label yet: its name in words, never raw */
                snprintf(plain, sizeof(plain), "%s", f->numbers[i].name ? f->numbers[i].name : "");
                for (char *c = plain; *c; c++) {
                    *c = *c == '_' ? ' ' : *c;
                }
                plain[0] = (char)toupper((unsigned char)plain[0]);
                label = plain;
            }
            put_esc(&b, label);
            put(&b, ": ");
            /* codes in words: the care setting, the pain type */
            if (strcmp(f->numbers[i].name, "setting") == 0) {
                put(&b, setting_word(f->numbers[i].value));
            } else if (strcmp(f->numbers[i].name, "pain_kind") == 0) {
                put(&b, pain_kind_word((enum pw_pain_kind)f->numbers[i].value));
            } else {
                put(&b, pw_ru_num(v, f->numbers[i].value));
            }
            put(&b, "</li>");
        }
        put(&b, "</ul>");
    }
    if (f->n_evidence > 0) {
        put(&b, "<p>Evidence:</p><ul>");
        for (size_t i = 0; i < f->n_evidence && i < PW_EVIDENCE_MAX; i++) {
            char ref[PW_REF_MAX + 64];
            ref_plain(&f->evidence[i], ref, sizeof(ref));
            put(&b, "<li>");
            if (f->evidence_text[i][0]) {
                put_esc(&b, f->evidence_text[i]);
                put(&b, " (");
                put_esc(&b, ref);
                put(&b, ")");
            } else {
                put_esc(&b, ref);
            }
            put(&b, "</li>");
        }
        put(&b, "</ul>");
    }
    put(&b, "<p>");
    if (f->since != PW_TIME_NONE) {
        put(&b, "Since ");
        put(&b, pw_local_time(t, f->since, PW_TIME_NONE));
        put(&b, ". ");
    }
    if (f->encounter[0]) {
        put(&b, "During ");
        put_esc(&b, f->encounter);
        put(&b, f->encounter_bound ? " (resolved when it ends). " : ". ");
    }
    put(&b, "Times are local (");
    put_esc(&b, pw_timezone_name());
    put(&b, "). MME conversion factors: ");
    put_esc(&b, f->factor_set ? f->factor_set : "none");
    put(&b, ".</p>");
    /* Keep room for the closing tag even when the body was cut. */
    if (b.n + sizeof("</div>") > b.cap) {
        b.n = b.cap - sizeof("</div>");
        b.s[b.n] = '\0';
    }
    put(&b, "</div>");
    return b.s;
}

/* ---- the rule CodeSystem ------------------------------------------------------------------- */

json_t *pw_rule_codesystem(const char *url)
{
    size_t n = 0;
    const struct pw_rule *const *rules = pw_rules_all ? pw_rules_all(&n) : NULL;
    json_t *concepts = json_array();
    json_t *cs;

    for (size_t i = 0; concepts && i < n; i++) {
        const struct pw_rule_text *rt = pw_rule_text_find(rules[i]->id);
        json_t *c = json_pack("{s:s, s:s, s:s}", "code", rules[i]->id, "display", rules[i]->title,
                              "definition", rt ? rt->definition : rules[i]->title);
        if (!c || json_array_append_new(concepts, c) != 0) {
            json_decref(concepts);
            return NULL;
        }
    }
    cs = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:b, s:s, s:I, s:o}", "resourceType",
        "CodeSystem", "id", "painwatch-rule", "url", url && url[0] ? url : PW_FLAG_CODE_SYSTEM,
        "name", "PainwatchRule", "title", "painwatch cancer-pain rules", "status", "active",
        "experimental", 0, "publisher", "painwatch", "description",
        "The rules of painwatch, an open FHIR gateway for cancer pain care: the codes of "
        "Flag.code (and DetectedIssue.code) painwatch writes.",
        "caseSensitive", 1, "content", "complete", "count", (json_int_t)n, "concept", concepts);
    return cs;
}
