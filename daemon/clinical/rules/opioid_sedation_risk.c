/* SPDX-License-Identifier: Apache-2.0 */
/* opioid-sedation-risk: sedation or slow breathing within 72 h of an opioid increase or start. */
#include <stdio.h>
#include <string.h>

#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"

enum { P_WINDOW_H, P_POSS, P_RASS, P_RR, P_SPO2 };

static const struct pw_rule_param params[] = {
    [P_WINDOW_H] = {"window_h", 72, 1, 720,
                    "hours after a baseline increase, a new opioid or a conversion during which "
                    "sedation is watched (guide: the main danger of titration; site)"},
    [P_POSS] = {"poss_min", 3, 1, 4,
                "Pasero Opioid-induced Sedation Scale score from which sedation is unacceptable "
                "(POSS 3: frequently drowsy, drifts off during conversation)"},
    [P_RASS] = {"rass_max", -2, -5, 0,
                "Richmond Agitation-Sedation Scale score at or below which sedation is reported "
                "(RASS -2: light sedation, brief awakening to voice; site)"},
    [P_RR] = {"resp_rate_below", 10, 4, 20,
              "respiratory rate (/min, LOINC 9279-1) below which breathing is too slow (site)"},
    [P_SPO2] = {"spo2_below", 90, 50, 100,
                "oxygen saturation (%, LOINC 59408-5, 2708-6) below which it is low (site)"},
};

/* The latest opioid change at or before now: a baseline step, or the start of any opioid. */
static int64_t last_change(const struct pw_rule_input *in, const struct pw_steps *steps)
{
    int64_t at = PW_TIME_NONE;
    for (size_t i = 0; i < steps->n; i++) {
        if (pw_step_is_increase(&steps->v[i]) || steps->v[i].new_mme > 0) {
            at = steps->v[i].at > at ? steps->v[i].at : at;
        }
    }
    for (size_t i = 0; i < in->tl->orders.n; i++) {
        const struct pw_med_order *o = &in->tl->orders.v[i];
        if ((o->classes & PW_MED_OPIOID) && o->start != PW_TIME_NONE && o->start <= in->now &&
            o->start > at) {
            at = o->start;
        }
    }
    return at;
}

static bool alarming(const struct pw_context *c, const double *p)
{
    switch (c->kind) {
    case PW_CTX_SEDATION:
        return strcmp(c->detail, "RASS") == 0 ? c->value <= p[P_RASS] : c->value >= p[P_POSS];
    case PW_CTX_RESP_RATE:
        return c->value < p[P_RR];
    case PW_CTX_SPO2:
        return c->value < p[P_SPO2];
    default:
        return false;
    }
}

static int eval(const struct pw_rule *rule, const struct pw_rule_input *in, struct pw_findings *out)
{
    const struct pw_timeline *tl = in->tl;
    /* Issue 16: no opioid-use-disorder exemption (pw_ru_oud): sedation or slow breathing after
     * an opioid increase is a danger whatever the opioid is for (a safety rule). */
    bool any = false;
    for (size_t i = 0; i < tl->context.n && !any; i++) {
        any = tl->context.v[i].at <= in->now && alarming(&tl->context.v[i], in->params);
    }
    if (!any) {
        return 0; /* nothing alarming on record: no need to build the titration steps */
    }
    struct pw_steps steps;
    int err = pw_steps_build(tl, in->now, &steps);
    if (err) {
        return err;
    }
    int64_t change = last_change(in, &steps);
    pw_steps_cleanup(&steps);
    if (change == PW_TIME_NONE || (double)(in->now - change) > in->params[P_WINDOW_H] * PW_HOUR) {
        return 0;
    }
    struct pw_finding f;
    char t[32], v[32], c[32];
    pw_ru_finding_init(&f, rule, PW_SEV_HIGH);
    size_t n = 0;
    for (size_t i = 0; i < tl->context.n; i++) {
        const struct pw_context *x = &tl->context.v[i];
        if (x->at <= change || x->at > in->now || !alarming(x, in->params)) {
            continue;
        }
        pw_ru_cat(f.text, sizeof(f.text), "%s%s %s%s on %s", n ? "; " : "", x->detail,
                  pw_ru_num(v, x->value),
                  x->kind == PW_CTX_SPO2        ? "%"
                  : x->kind == PW_CTX_RESP_RATE ? "/min"
                                                : "",
                  pw_ru_time(t, x->at));
        pw_ru_sit_ref(f.situation, sizeof(f.situation), &x->src);
        pw_finding_add_evidence(&f, &x->src);
        if (n == 0) {
            f.since = x->at;
        }
        n++;
    }
    if (n == 0) {
        return 0;
    }
    char lead[PW_TEXT_MAX];
    snprintf(lead, sizeof(lead), "%s", f.text);
    f.text[0] = '\0';
    pw_ru_cat(f.text, sizeof(f.text),
              "%s within %s of an opioid change on %s. Assess now; hold or reduce the next "
              "dose. Guide: sedation that persists or worsens after a dose increase must be "
              "reported (it comes before respiratory depression).",
              lead, pw_ru_dur(c, (int64_t)(in->params[P_WINDOW_H] * PW_HOUR)),
              pw_ru_time(t, change));
    pw_ru_sit(f.situation, sizeof(f.situation), "|change:%lld", (long long)change);
    pw_ru_evidence_regimen(&f, tl, in->now);
    pw_finding_add_number(&f, "hours_since_change", (double)(f.since - change) / PW_HOUR);
    pw_finding_add_number(&f, "baseline_mme_per_day", pw_ru_tdd(tl, in->now));
    return pw_findings_push(out, &f);
}

const struct pw_rule pw_rule_opioid_sedation_risk = {
    .id = "opioid-sedation-risk",
    .title = "Sedation or slow breathing after an opioid change",
    .category = "clinical",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .eval = eval,
    .reads = PW_RES_OBSERVATION | PW_RES_MEDICATION_REQUEST,
    .absence = 0,
};
