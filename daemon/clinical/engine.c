/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rule engine: the registry built from rules/rule_list.h, per-engine parameter values and
 * on/off switches, and evaluation of one timeline into findings with their episode keys.
 */
#include "painwatch/engine.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "painwatch/err.h"
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
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < md_len; i++) {
        f->key[2 * i] = hex[md[i] >> 4];
        f->key[2 * i + 1] = hex[md[i] & 0xf];
    }
    f->key[(size_t)md_len * 2] = '\0';
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

int pw_engine_eval(const struct pw_engine *engine, const struct pw_timeline *tl, int64_t now,
                   struct pw_findings *out)
{
    int first_err = 0;
    for (size_t i = 0; i < N_RULES; i++) {
        if (!engine->enabled[i]) {
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
