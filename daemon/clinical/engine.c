/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rule engine: the registry built from rules/rule_list.h, per-engine parameter values and
 * on/off switches, and evaluation of one timeline into findings with their episode keys.
 */
#include "painwatch/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"
#include "painwatch/fhir.h"
#include "painwatch/finding_text.h"
#include "painwatch/hex.h"
#include "painwatch/log.h"

#define PW_RULE(n) extern const struct pw_rule pw_rule_##n;
#include "clinical/rules/rule_list.h"
#undef PW_RULE

static const struct pw_rule *const registry[] = {
#define PW_RULE(n) &pw_rule_##n,
#include "clinical/rules/rule_list.h"
#undef PW_RULE
};

#define N_RULES (sizeof(registry) / sizeof(registry[0]))

struct pw_engine {
    bool enabled[N_RULES];
    size_t param_off[N_RULES]; /* index of the rule's first value in params */
    double *params;
    const char *factor_set; /* a static name, or factor_buf */
    char factor_buf[32];
    enum pw_scope scope;
    enum pw_severity post_min; /* issue 21: findings below it go to the audit trail only */
};

/* Known factor sets map to static strings, so findings stay valid after the engine is freed. */
static const char *const known_factor_sets[] = {"cdc2022", "cdc2016"};

const struct pw_rule *const *pw_rules_all(size_t *count)
{
    *count = N_RULES;
    return registry;
}

static int rule_index(const char *id)
{
    for (size_t i = 0; i < N_RULES; i++) {
        if (strcmp(registry[i]->id, id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const struct pw_rule *pw_rule_find(const char *id)
{
    int i = id ? rule_index(id) : -1;
    return i < 0 ? NULL : registry[i];
}

int pw_engine_new(struct pw_engine **out, const char *factor_set)
{
    struct pw_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        return PW_ENOMEM;
    }
    e->post_min = PW_SEV_LOW; /* issue 21: info findings go to the audit trail only */
    size_t total = 0;
    for (size_t i = 0; i < N_RULES; i++) {
        e->enabled[i] = true;
        e->param_off[i] = total;
        total += registry[i]->n_params;
    }
    e->params = calloc(total ? total : 1, sizeof(double));
    if (!e->params) {
        free(e);
        return PW_ENOMEM;
    }
    for (size_t i = 0; i < N_RULES; i++) {
        for (size_t p = 0; p < registry[i]->n_params; p++) {
            e->params[e->param_off[i] + p] = registry[i]->params[p].def;
        }
    }
    const char *fs = factor_set && factor_set[0] ? factor_set : known_factor_sets[0];
    for (size_t i = 0; i < sizeof(known_factor_sets) / sizeof(known_factor_sets[0]); i++) {
        if (strcmp(fs, known_factor_sets[i]) == 0) {
            e->factor_set = known_factor_sets[i];
        }
    }
    if (!e->factor_set) {
        /* A site-defined set: copied (truncated); its findings are valid while the engine
         * lives. */
        size_t len = strlen(fs);
        if (len >= sizeof(e->factor_buf)) {
            len = sizeof(e->factor_buf) - 1;
        }
        memcpy(e->factor_buf, fs, len);
        e->factor_buf[len] = '\0';
        e->factor_set = e->factor_buf;
    }
    *out = e;
    return 0;
}

void pw_engine_free(struct pw_engine *engine)
{
    if (!engine) {
        return;
    }
    free(engine->params);
    free(engine);
}

int pw_engine_set_param(struct pw_engine *engine, const char *rule, const char *param, double value)
{
    int i = rule ? rule_index(rule) : -1;
    if (i < 0 || !param) {
        return PW_ENOENT;
    }
    const struct pw_rule *r = registry[i];
    for (size_t p = 0; p < r->n_params; p++) {
        if (strcmp(r->params[p].name, param) != 0) {
            continue;
        }
        /* NaN fails both comparisons, so it is rejected too. */
        if (!(value >= r->params[p].min && value <= r->params[p].max)) {
            return PW_ERANGE;
        }
        engine->params[engine->param_off[i] + p] = value;
        return 0;
    }
    return PW_ENOENT;
}

int pw_engine_enable(struct pw_engine *engine, const char *rule, bool on)
{
    int i = rule ? rule_index(rule) : -1;
    if (i < 0) {
        return PW_ENOENT;
    }
    engine->enabled[i] = on;
    return 0;
}

const char *pw_engine_factor_set(const struct pw_engine *engine)
{
    return engine->factor_set;
}

/* key = lowercase hex SHA-256 of "rule|patient|situation". */
static int episode_key(struct pw_finding *f)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, f->rule, strlen(f->rule)) && EVP_DigestUpdate(ctx, "|", 1) &&
             EVP_DigestUpdate(ctx, f->patient, strlen(f->patient)) &&
             EVP_DigestUpdate(ctx, "|", 1) &&
             EVP_DigestUpdate(ctx, f->situation, strlen(f->situation)) &&
             EVP_DigestFinal_ex(ctx, md, &md_len);
    EVP_MD_CTX_free(ctx);
    if (!ok || md_len * 2 + 1 > sizeof(f->key)) {
        return PW_ENOMEM;
    }
    pw_hex_encode(md, md_len, f->key);
    return 0;
}

/* Fill what the engine owns on the findings one rule appended (from index first on). */
/*
 * finding.h promises a static factor_set: findings outlive the engine (they go to the outbox and
 * the audit trail after a reload replaced it). Known sets map to literals.
 */
static const char *static_factor_set(const char *name)
{
    static const char *const known[] = {"cdc2022", "cdc2016"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(name, known[i]) == 0) {
            return known[i];
        }
    }
    return "other";
}

static int finish_findings(const struct pw_engine *engine, const struct pw_rule *r,
                           const struct pw_timeline *tl, struct pw_findings *out, size_t first)
{
    for (size_t k = first; k < out->n; k++) {
        struct pw_finding *f = &out->v[k];
        f->rule = r->id;
        if (!f->category) {
            f->category = r->category;
        }
        size_t len = strlen(tl->patient);
        if (len >= sizeof(f->patient)) {
            len = sizeof(f->patient) - 1;
        }
        memcpy(f->patient, tl->patient, len);
        f->patient[len] = '\0';
        f->factor_set = static_factor_set(engine->factor_set);
        int err = episode_key(f);
        if (err) {
            return err;
        }
    }
    return 0;
}

/* The absence types of rule @p r that were not synced for @p tl (0: the rule may run). */
static unsigned missing_types(const struct pw_rule *r, const struct pw_timeline *tl)
{
    return tl->synced.known ? r->absence & ~tl->synced.synced : 0;
}

int pw_engine_eval(const struct pw_engine *engine, const struct pw_timeline *tl, int64_t now,
                   struct pw_findings *out)
{
    int first_err = 0;
    if (!pw_engine_in_scope(engine, tl, now)) {
        return 0;
    }
    for (size_t i = 0; i < N_RULES; i++) {
        if (!engine->enabled[i] || missing_types(registry[i], tl) != 0) {
            continue;
        }
        const struct pw_rule *r = registry[i];
        struct pw_rule_input in = {
            .tl = tl,
            .now = now,
            .params = &engine->params[engine->param_off[i]],
            .factor_set = engine->factor_set,
        };
        size_t first = out->n;
        int err = r->eval(r, &in, out);
        if (!err) {
            err = finish_findings(engine, r, tl, out, first);
        }
        for (size_t k = first; !err && k < out->n; k++) {
            pw_finding_complete(&out->v[k], r, tl, now, engine->post_min); /* issue 21 */
        }
        if (err) {
            /* A failing rule must not hide the others: drop its partial output, log, go on. */
            out->n = first;
            pw_log_err(RULE, "%s: %s", r->id, pw_strerror(err));
            if (!first_err) {
                first_err = err;
            }
        }
    }
    return first_err;
}

/* ---- issue 17: evidence and scope --------------------------------------------------------- */

static const char *const res_names[PW_RES_COUNT] = {
    "Observation", "MedicationRequest", "MedicationAdministration",
    "Condition",   "ServiceRequest",    "Encounter",
};

const char *pw_res_type_name(unsigned bit)
{
    for (unsigned i = 0; i < PW_RES_COUNT; i++) {
        if (bit == 1u << i) {
            return res_names[i];
        }
    }
    return NULL;
}

unsigned pw_res_type_bit(const char *name)
{
    for (unsigned i = 0; name && i < PW_RES_COUNT; i++) {
        if (strcmp(name, res_names[i]) == 0) {
            return 1u << i;
        }
    }
    return 0;
}

int pw_scope_parse(const char *name, enum pw_scope *out)
{
    if (name && strcmp(name, "cohort") == 0) {
        *out = PW_SCOPE_COHORT;
        return 0;
    }
    if (name && strcmp(name, "problem-list") == 0) {
        *out = PW_SCOPE_PROBLEM_LIST;
        return 0;
    }
    return PW_EINVAL;
}

void pw_engine_set_scope(struct pw_engine *engine, enum pw_scope scope)
{
    engine->scope = scope;
}

void pw_engine_set_post_min(struct pw_engine *engine, enum pw_severity min)
{
    engine->post_min = min;
}

/* An active context event of @p kind at @p now (started, not ended). */
static bool context_active(const struct pw_timeline *tl, enum pw_ctx_kind kind, int64_t now)
{
    for (size_t i = 0; i < tl->context.n; i++) {
        const struct pw_context *c = &tl->context.v[i];
        if (c->kind == kind && (c->at == PW_TIME_NONE || c->at <= now) &&
            (c->end == PW_TIME_NONE || c->end > now)) {
            return true;
        }
    }
    return false;
}

bool pw_engine_in_scope(const struct pw_engine *engine, const struct pw_timeline *tl, int64_t now)
{
    if (engine->scope == PW_SCOPE_COHORT) {
        return true;
    }
    if (context_active(tl, PW_CTX_CANCER, now) || context_active(tl, PW_CTX_PALLIATIVE, now) ||
        context_active(tl, PW_CTX_END_OF_LIFE, now)) {
        return true;
    }
    /* A palliative care referral or visit on record is a palliative context. */
    for (size_t i = 0; i < tl->referrals.n; i++) {
        if (tl->referrals.v[i].at == PW_TIME_NONE || tl->referrals.v[i].at <= now) {
            return true;
        }
    }
    return false;
}

/* Append @p piece when it fits whole in @p buf (never a cut word). @return true when added. */
static bool append_whole(char *buf, size_t size, const char *piece)
{
    size_t len = strlen(buf);
    size_t add = strlen(piece);

    if (len + add + 1 > size) {
        return false;
    }
    memcpy(buf + len, piece, add + 1);
    return true;
}

/*
 * "Observation, Condition not synced (not in resources); Flag refused by the server (HTTP
 * 401/403)": the types of @p types grouped by why they are missing, whole names only.
 */
static void why_types(char *buf, size_t size, const struct pw_synced *s, unsigned types)
{
    static const char *const whys[] = {
        "refused by the server (HTTP 401/403)", "not advertised by the server",
        "could not be read (its sync has not completed yet)", "not synced (not in resources)"};
    unsigned by_why[4] = {0};

    for (unsigned i = 0; i < PW_RES_COUNT; i++) {
        unsigned bit = 1u << i;
        if (types & bit) {
            by_why[(s->refused & bit)        ? 0
                   : (s->unadvertised & bit) ? 1
                   : (s->unread & bit)       ? 2
                                             : 3] |= bit;
        }
    }
    for (size_t w = 0; w < 4; w++) {
        const char *sep = buf[0] ? "; " : "";
        for (unsigned i = 0; i < PW_RES_COUNT; i++) {
            if (by_why[w] & (1u << i)) {
                char piece[64];
                pw_fhir_join(piece, sizeof(piece), sep, NULL, res_names[i]);
                (void)append_whole(buf, size, piece);
                sep = ", ";
            }
        }
        if (by_why[w]) {
            char piece[64];
            pw_fhir_join(piece, sizeof(piece), " ", NULL, whys[w]);
            (void)append_whole(buf, size, piece);
        }
    }
}

static void patient_ref(const struct pw_timeline *tl, struct pw_ref *ref)
{
    memset(ref, 0, sizeof(*ref));
    const char *slash = strchr(tl->patient, '/');
    pw_fhir_copy(ref->type, sizeof(ref->type), "Patient");
    pw_fhir_copy(ref->id, sizeof(ref->id), slash ? slash + 1 : tl->patient);
}

int pw_engine_annotate(const struct pw_engine *engine, struct pw_timeline *tl, int64_t now)
{
    struct pw_dq_event ev;
    memset(&ev, 0, sizeof(ev));
    patient_ref(tl, &ev.src);
    if (!pw_engine_in_scope(engine, tl, now)) {
        pw_fhir_copy(ev.code, sizeof(ev.code), PW_DQ_OUT_OF_SCOPE);
        pw_fhir_copy(ev.detail, sizeof(ev.detail),
                     "no active malignant neoplasm, palliative or hospice context on record "
                     "(scope: problem-list): the cancer-pain rules do not apply");
        return pw_timeline_add_dq(tl, &ev);
    }
    unsigned missing = 0;
    size_t more = 0;
    char rules[110] = "";
    for (size_t i = 0; i < N_RULES; i++) {
        unsigned m = engine->enabled[i] ? missing_types(registry[i], tl) : 0;
        if (m == 0) {
            continue;
        }
        missing |= m;
        /* whole rule ids while they fit, then a count: never a cut id */
        char piece[128];
        pw_fhir_join(piece, sizeof(piece), rules[0] ? ", " : "", NULL, registry[i]->id);
        if (more > 0 || !append_whole(rules, sizeof(rules), piece)) {
            more++;
        }
    }
    if (missing == 0) {
        return 0;
    }
    char why[120] = ""; /* with rules[110] and the words around: within ev.detail (256) */
    why_types(why, sizeof(why), &tl->synced, missing);
    pw_fhir_copy(ev.code, sizeof(ev.code), PW_DQ_RULES_OFF);
    if (more > 0) {
        snprintf(ev.detail, sizeof(ev.detail), "off: %s and %zu more (%s)", rules, more, why);
    } else {
        /* "off: <rules> (<why>)", joined without printf (once per evaluation) */
        char head[sizeof(rules) + 8];
        char tail[sizeof(why) + 4];
        pw_fhir_join(head, sizeof(head), "off: ", rules, " (");
        pw_fhir_join(tail, sizeof(tail), why, ")", NULL);
        pw_fhir_join(ev.detail, sizeof(ev.detail), head, tail, NULL);
    }
    return pw_timeline_add_dq(tl, &ev);
}

static int cmp_offset(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/*
 * The unit a rule parameter's name gives it (s): "<what>_h" or "..._h_<qualifier>" hours,
 * "<what>_days" / "..._d" days, else 0 (not a duration: a score, a percentage, a count). Rule
 * parameter names follow this (rule.h); test_engine checks every registered parameter.
 */
int64_t pw_engine_param_unit(const char *name)
{
    for (const char *p = strchr(name, '_'); p; p = strchr(p + 1, '_')) {
        if (p[1] == 'h' && (p[2] == '\0' || p[2] == '_')) {
            return PW_HOUR;
        }
        if ((p[1] == 'd' && (p[2] == '\0' || p[2] == '_')) ||
            (strncmp(p + 1, "days", 4) == 0 && (p[5] == '\0' || p[5] == '_'))) {
            return PW_DAY;
        }
    }
    return 0;
}

int pw_engine_time_offsets(const struct pw_engine *engine, int64_t **out, size_t *n_out)
{
    static const int64_t fixed[] = PW_RU_FIXED_OFFSETS_S;
    size_t n_all = sizeof(fixed) / sizeof(fixed[0]);
    int64_t *v;
    size_t n = 0, w = 0;

    *out = NULL;
    *n_out = 0;
    for (size_t i = 0; i < N_RULES; i++) {
        n_all += engine->enabled[i] ? registry[i]->n_params : 0;
    }
    v = malloc(n_all * sizeof(*v));
    if (!v) {
        return PW_ENOMEM;
    }
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        v[n++] = fixed[i];
    }
    for (size_t i = 0; i < N_RULES; i++) {
        for (size_t p = 0; engine->enabled[i] && p < registry[i]->n_params; p++) {
            double s = engine->params[engine->param_off[i] + p] *
                       (double)pw_engine_param_unit(registry[i]->params[p].name);
            if (s >= 1 && s < 1e15) {
                /* rules cut with (int64_t) or compare as double: within a second of this */
                v[n++] = (int64_t)s;
            }
        }
    }
    qsort(v, n, sizeof(*v), cmp_offset);
    for (size_t i = 0; i < n; i++) {
        if (w == 0 || v[i] != v[w - 1]) {
            v[w++] = v[i];
        }
    }
    *out = v;
    *n_out = w;
    return 0;
}
