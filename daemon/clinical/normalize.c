/* SPDX-License-Identifier: Apache-2.0 */
/* Normalize: pain scores, pain types, palliative referrals, patient references, the context. */
#include "painwatch/normalize.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "clinical/normalize_impl.h"
#include "painwatch/array.h"
#include "painwatch/err.h"
#include "painwatch/hex.h"
#include "painwatch/mme.h"

int pw_code_set_add(struct pw_code_set *s, const char *system, const char *code)
{
    if (code == NULL || *code == '\0') {
        return PW_EINVAL;
    }
    if (PW_ARRAY_GROW(s) < 0) {
        return PW_ENOMEM;
    }
    pw_fhir_copy(s->v[s->n].system, sizeof(s->v[s->n].system), system ? system : "");
    pw_fhir_copy(s->v[s->n].code, sizeof(s->v[s->n].code), code);
    s->n++;
    return 0;
}

void pw_code_set_clear(struct pw_code_set *s)
{
    free(s->v);
    memset(s, 0, sizeof(*s));
}

int pw_word_set_add(struct pw_word_set *s, const char *word)
{
    if (word == NULL || *word == '\0') {
        return PW_EINVAL;
    }
    if (PW_ARRAY_GROW(s) < 0) {
        return PW_ENOMEM;
    }
    char *w = s->v[s->n];
    pw_fhir_copy(w, sizeof(s->v[0]), word);
    for (; *w; w++) {
        *w = (char)tolower((unsigned char)*w);
    }
    s->n++;
    return 0;
}

static void word_set_clear(struct pw_word_set *s)
{
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static int add_codes(struct pw_code_set *s, const char *system, const char *const *codes)
{
    for (; *codes; codes++) {
        int rc = pw_code_set_add(s, system, *codes);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int add_words(struct pw_word_set *s, const char *const *words)
{
    for (; *words; words++) {
        int rc = pw_word_set_add(s, *words);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

int pw_norm_ctx_init(struct pw_norm_ctx *ctx, const struct pw_terminology *term,
                     const char *factor_set)
{
    static const char *const pain[] = {"72514-3", "38208-5", "38221-8", "38214-3", NULL};
    static const char *const neuro[] = {"247398009", NULL};
    static const char *const neuro_w[] = {"neuropathic", "burning",   "shooting",
                                          "tingling",    "electric",  "pins and needles",
                                          "neuropathy",  "neuralgia", NULL};
    static const char *const somatic_w[] = {"somatic", "nociceptive", "bone pain", "aching", NULL};
    static const char *const somatic_c[] = {"12584003", NULL}; /* Bone pain */
    static const char *const visceral_w[] = {"visceral", NULL};
    static const char *const mixed_w[] = {"mixed pain", "mixed", NULL};
    /* therapies-indicating-end-of-life-care (palliative members) + hospice-procedure. */
    static const char *const pall[] = {"103735009", "395669003", "395670002", "395694002",
                                       "395695001", "443761007", "385763009", "306205009",
                                       "305336008", "183919006", "183920000", NULL};
    static const char *const pall_w[] = {"palliative", "hospice", NULL};
    memset(ctx, 0, sizeof(*ctx));
    ctx->term = term;
    ctx->factor_set = factor_set ? factor_set : PW_MME_DEFAULT_SET;
    if (term != NULL && !pw_mme_set_known(term, ctx->factor_set)) {
        return PW_EINVAL;
    }
    int rc = add_codes(&ctx->pain_intensity, PW_FHIR_LOINC, pain);
    if (rc == 0) {
        rc = add_codes(&ctx->neuropathic, PW_FHIR_SNOMED, neuro);
    }
    if (rc == 0) {
        rc = add_codes(&ctx->palliative, PW_FHIR_SNOMED, pall);
    }
    if (rc == 0) {
        rc = add_codes(&ctx->somatic, PW_FHIR_SNOMED, somatic_c);
    }
    if (rc == 0) {
        rc = add_words(&ctx->neuropathic_words, neuro_w);
    }
    if (rc == 0) {
        rc = add_words(&ctx->somatic_words, somatic_w);
    }
    if (rc == 0) {
        rc = add_words(&ctx->visceral_words, visceral_w);
    }
    if (rc == 0) {
        rc = add_words(&ctx->mixed_words, mixed_w);
    }
    if (rc == 0) {
        rc = add_words(&ctx->palliative_words, pall_w);
    }
    if (rc < 0) {
        pw_norm_ctx_cleanup(ctx);
    }
    return rc;
}

static int digest_codes(EVP_MD_CTX *md, const struct pw_code_set *s)
{
    int ok = EVP_DigestUpdate(md, "codes", 6);
    for (size_t i = 0; ok && i < s->n; i++) {
        ok = EVP_DigestUpdate(md, s->v[i].system, strlen(s->v[i].system) + 1) &&
             EVP_DigestUpdate(md, s->v[i].code, strlen(s->v[i].code) + 1);
    }
    return ok;
}

static int digest_words(EVP_MD_CTX *md, const struct pw_word_set *s)
{
    int ok = EVP_DigestUpdate(md, "words", 6);
    for (size_t i = 0; ok && i < s->n; i++) {
        ok = EVP_DigestUpdate(md, s->v[i], strlen(s->v[i]) + 1);
    }
    return ok;
}

/*
 * The release is part of the identity: a new painwatch may normalize a resource differently,
 * and stored events are then re-derived rather than trusted.
 */
int pw_norm_ctx_digest(const struct pw_norm_ctx *ctx, char out[PW_NORM_DIGEST_MAX])
{
    unsigned char term[32] = {0}, md[32];
    unsigned int len = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();

    if (ctx->term != NULL && pw_terminology_digest(ctx->term, term) < 0) {
        EVP_MD_CTX_free(c);
        return PW_ENOMEM;
    }
    int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(c, "painwatch-events|" PW_VERSION "|",
                              sizeof("painwatch-events|" PW_VERSION "|")) &&
             EVP_DigestUpdate(c, ctx->factor_set, strlen(ctx->factor_set) + 1) &&
             EVP_DigestUpdate(c, term, sizeof(term)) && digest_codes(c, &ctx->pain_intensity) &&
             digest_codes(c, &ctx->neuropathic) && digest_codes(c, &ctx->somatic) &&
             digest_codes(c, &ctx->visceral) && digest_codes(c, &ctx->mixed) &&
             digest_codes(c, &ctx->palliative) && digest_words(c, &ctx->neuropathic_words) &&
             digest_words(c, &ctx->somatic_words) && digest_words(c, &ctx->visceral_words) &&
             digest_words(c, &ctx->mixed_words) && digest_words(c, &ctx->palliative_words) &&
             digest_codes(c, &ctx->sedation_poss) && digest_codes(c, &ctx->sedation_rass) &&
             EVP_DigestFinal_ex(c, md, &len);
    EVP_MD_CTX_free(c);
    if (!ok || len != sizeof(md)) {
        return PW_ENOMEM;
    }
    pw_hex_encode(md, (PW_NORM_DIGEST_MAX - 1) / 2, out);
    return 0;
}

void pw_norm_ctx_cleanup(struct pw_norm_ctx *ctx)
{
    pw_code_set_clear(&ctx->pain_intensity);
    pw_code_set_clear(&ctx->neuropathic);
    pw_code_set_clear(&ctx->somatic);
    pw_code_set_clear(&ctx->visceral);
    pw_code_set_clear(&ctx->mixed);
    pw_code_set_clear(&ctx->palliative);
    word_set_clear(&ctx->neuropathic_words);
    word_set_clear(&ctx->somatic_words);
    word_set_clear(&ctx->visceral_words);
    word_set_clear(&ctx->mixed_words);
    word_set_clear(&ctx->palliative_words);
    pw_code_set_clear(&ctx->sedation_poss);
    pw_code_set_clear(&ctx->sedation_rass);
}

int pw_norm_dq(struct pw_timeline *tl, const struct pw_ref *src, const char *code, const char *fmt,
               ...)
{
    struct pw_dq_event ev;
    memset(&ev, 0, sizeof(ev));
    pw_fhir_copy(ev.code, sizeof(ev.code), code);
    ev.src = *src;
    va_list ap;
    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): va_start is right above. */
    vsnprintf(ev.detail, sizeof(ev.detail), fmt, ap);
    va_end(ap);
    return pw_timeline_add_dq(tl, &ev);
}

int pw_normalize_patient(const json_t *res, const struct pw_resolver *refs, char *out, size_t n)
{
    return pw_normalize_patient_of(res, pw_fhir_str(res, "resourceType"), pw_fhir_str(res, "id"),
                                   refs, out, n);
}

int pw_normalize_patient_of(const json_t *res, const char *type, const char *id,
                            const struct pw_resolver *refs, char *out, size_t n)
{
    if (type && id && strcmp(type, "Patient") == 0) {
        snprintf(out, n, "Patient/%s", id);
        return 0;
    }
    const json_t *subj = json_object_get(res, "subject");
    if (subj == NULL) {
        subj = json_object_get(res, "patient");
    }
    const char *ref = pw_fhir_str(subj, "reference");
    if (ref == NULL) {
        return PW_ENOENT;
    }
    const json_t *target = pw_resolve(refs, ref);
    if (target != NULL && pw_fhir_str(target, "id") != NULL) {
        const char *tt = pw_fhir_str(target, "resourceType");
        if (tt == NULL || strcmp(tt, "Patient") != 0) {
            return PW_ENOENT;
        }
        snprintf(out, n, "Patient/%s", pw_fhir_str(target, "id"));
        return 0;
    }
    char rel[PW_REF_MAX];
    if (pw_fhir_ref_relative(ref, rel, sizeof(rel)) < 0 || strncmp(rel, "Patient/", 8) != 0) {
        return PW_ENOENT;
    }
    pw_fhir_copy(out, n, rel);
    return 0;
}

static bool code_in(const struct pw_code_set *s, const json_t *cc)
{
    for (size_t i = 0; i < s->n; i++) {
        if (pw_fhir_cc_has(cc, s->v[i].system, s->v[i].code)) {
            return true;
        }
    }
    return false;
}

/* Whole-word, case-insensitive occurrence of @p word in @p text. */
static bool word_in_text(const char *word, const char *text)
{
    size_t n = strlen(word);
    for (const char *p = text; p && *p; p++) {
        if (strncasecmp(p, word, n) == 0 && (p == text || !isalpha((unsigned char)p[-1])) &&
            !isalpha((unsigned char)p[n])) {
            return true;
        }
    }
    return false;
}

/* Issue 17: a word in a negation scope ("no burning", "denies shooting") does not count. */
static bool words_in_text(const struct pw_word_set *s, const char *text)
{
    for (size_t i = 0; text && i < s->n; i++) {
        if (pw_norm_word_affirmed(s->v[i], text)) {
            return true;
        }
    }
    return false;
}

/* Words in a CodeableConcept's text or any coding display. */
static bool words_in_cc(const struct pw_word_set *s, const json_t *cc)
{
    if (words_in_text(s, pw_fhir_str(cc, "text"))) {
        return true;
    }
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(cc, "coding"), i, c)
    {
        if (words_in_text(s, pw_fhir_str(c, "display"))) {
            return true;
        }
    }
    return false;
}

/* Parse the first of @p keys present in @p obj; "x.start" reads a Period's start. */
static int64_t first_time(const json_t *obj, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t t;
        const char *dot = strchr(keys[i], '.');
        const char *v;
        if (dot != NULL) {
            char k[32];
            size_t kl = (size_t)(dot - keys[i]);
            if (kl >= sizeof(k)) {
                continue;
            }
            memcpy(k, keys[i], kl);
            k[kl] = '\0';
            v = pw_fhir_str(json_object_get(obj, k), dot + 1);
        } else {
            v = pw_fhir_str(obj, keys[i]);
        }
        if (v != NULL && pw_fhir_parse_time(v, &t) == 0) {
            return t;
        }
    }
    return PW_TIME_NONE;
}

/* The clinically relevant time of an Observation (effective, else issued) or a Condition. */
static int64_t event_time(const json_t *res)
{
    static const char *const keys[] = {
        "effectiveDateTime", "effectivePeriod.start", "effectiveInstant", "issued",
        "onsetDateTime",     "onsetPeriod.start",     "recordedDate"};
    return first_time(res, keys, sizeof(keys) / sizeof(keys[0]));
}

static bool status_usable(const char *status)
{
    return status && (strcmp(status, "final") == 0 || strcmp(status, "amended") == 0 ||
                      strcmp(status, "corrected") == 0);
}

/* "6", "6/10", "6 / 10": the score (and a "/10" denominator only). */
static bool score_text(const char *s, double *out)
{
    char *end = NULL;
    if (s == NULL) {
        return false;
    }
    while (isspace((unsigned char)*s)) {
        s++;
    }
    if (!isdigit((unsigned char)*s)) {
        return false;
    }
    double v = strtod(s, &end);
    while (isspace((unsigned char)*end)) {
        end++;
    }
    if (*end == '/') {
        end++;
        while (isspace((unsigned char)*end)) {
            end++;
        }
        if (strncmp(end, "10", 2) != 0 || isdigit((unsigned char)end[2])) {
            return false;
        }
        end += 2;
        while (isspace((unsigned char)*end)) {
            end++;
        }
    }
    if (*end != '\0') {
        return false;
    }
    *out = v;
    return true;
}

/* LOINC answer list LL2335-9 (0-10 pain scale): LA codes to their number. */
static bool score_answer(const json_t *cc, double *out)
{
    static const struct {
        const char *code;
        double v;
    } la[] = {{"LA6111-4", 0},  {"LA6112-2", 1},  {"LA6113-0", 2},  {"LA6114-8", 3},
              {"LA6115-5", 4},  {"LA10137-0", 5}, {"LA10138-8", 6}, {"LA10139-6", 7},
              {"LA10140-4", 8}, {"LA10141-2", 9}, {"LA13942-0", 10}};
    for (size_t i = 0; i < sizeof(la) / sizeof(la[0]); i++) {
        if (pw_fhir_cc_has(cc, PW_FHIR_LOINC, la[i].code)) {
            *out = la[i].v;
            return true;
        }
    }
    if (score_text(pw_fhir_str(cc, "text"), out)) {
        return true;
    }
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(cc, "coding"), i, c)
    {
        if (score_text(pw_fhir_str(c, "display"), out)) {
            return true;
        }
    }
    return false;
}

/*
 * valueQuantity (a 0-100 mm VAS is scaled to 0-10), valueInteger, a valueString "7" or "7/10",
 * a valueCodeableConcept (LOINC answer code, numeric text or display).
 */
static bool score_value(const json_t *obj, double *out)
{
    const json_t *vi = json_object_get(obj, "valueInteger");
    const json_t *vq = json_object_get(obj, "valueQuantity");
    if (pw_fhir_num(vq, "value", out)) {
        const char *unit = pw_fhir_str(vq, "code");
        unit = unit ? unit : pw_fhir_str(vq, "unit");
        if (unit && (strcmp(unit, "mm") == 0 || strcmp(unit, "[mm]") == 0)) {
            *out /= 10.0; /* VAS 0-100 mm */
        }
        return true;
    }
    if (json_is_integer(vi)) {
        *out = (double)json_integer_value(vi);
        return true;
    }
    if (score_text(pw_fhir_str(obj, "valueString"), out)) {
        return true;
    }
    return score_answer(json_object_get(obj, "valueCodeableConcept"), out);
}

/*
 * The scale maximum of a pain-intensity code (issue 17): a site code may carry its own as
 * "code|max" ("http://site|faces|5" in pain_codes.score); 10 otherwise. NAN: not a pain score.
 */
static double pain_scale_max(const struct pw_norm_ctx *ctx, const json_t *cc)
{
    for (size_t i = 0; i < ctx->pain_intensity.n; i++) {
        const struct pw_code *c = &ctx->pain_intensity.v[i];
        const char *bar = strchr(c->code, '|');
        char code[sizeof(c->code)];
        size_t len = bar ? (size_t)(bar - c->code) : strlen(c->code);
        memcpy(code, c->code, len);
        code[len] = '\0';
        if (pw_fhir_cc_has(cc, c->system, code)) {
            double max = bar ? strtod(bar + 1, NULL) : 10.0;
            return max > 0 && max <= 1000 ? max : 10.0;
        }
    }
    return NAN;
}

/* A pain-intensity component of a panel (vital signs, a nursing flowsheet row). */
static const json_t *pain_component(const struct pw_norm_ctx *ctx, const json_t *res)
{
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(res, "component"), i, c)
    {
        if (!isnan(pain_scale_max(ctx, json_object_get(c, "code")))) {
            return c;
        }
    }
    return NULL;
}

/*
 * One pain score from @p res: the value from @p valued (the resource itself, or a component),
 * status and time from the resource.
 */
static int pain_score(const json_t *res, const json_t *valued, const struct pw_ref *ref,
                      struct pw_timeline *tl, double max)
{
    const char *status = pw_fhir_str(res, "status");
    if (!status_usable(status)) {
        return 0; /* preliminary, cancelled, entered-in-error: not a documented score */
    }
    struct pw_pain_score ev = {.src = *ref};
    ev.at = event_time(res);
    if (ev.at == PW_TIME_NONE) {
        return pw_norm_dq(tl, ref, "no-time", "pain score without effective time or issued");
    }
    if (!score_value(valued, &ev.value)) {
        return pw_norm_dq(tl, ref, "missing-value", "pain score without a numeric value");
    }
    if (!(ev.value >= 0 && ev.value <= max)) {
        return pw_norm_dq(tl, ref, "value-out-of-range", "pain score %g outside 0-%g", ev.value,
                          max);
    }
    ev.value = ev.value * 10.0 / max; /* issue 17: a site scale 0-max read as 0-10 */
    return pw_timeline_add_score(tl, &ev);
}

/* @p word in a CodeableConcept's text or displays. */
static bool cc_mentions(const json_t *cc, const char *word)
{
    if (word_in_text(word, pw_fhir_str(cc, "text"))) {
        return true;
    }
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(cc, "coding"), i, c)
    {
        if (word_in_text(word, pw_fhir_str(c, "display"))) {
            return true;
        }
    }
    return false;
}

/* A RASS answer given as signed text ("-3", "-2 light sedation"). */
static bool rass_text(const json_t *obj, double *out)
{
    const char *s = pw_fhir_str(obj, "valueString");
    const json_t *cc = json_object_get(obj, "valueCodeableConcept");
    const char *t = s ? s : pw_fhir_str(cc, "text");
    char *end = NULL;
    if (t == NULL) {
        return false;
    }
    double v = strtod(t, &end);
    if (end == t || !(v >= -5 && v <= 4)) {
        return false;
    }
    *out = v;
    return true;
}

/* "pain" in a CodeableConcept's text or displays. */
static bool cc_mentions_pain(const json_t *cc)
{
    if (word_in_text("pain", pw_fhir_str(cc, "text"))) {
        return true;
    }
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(cc, "coding"), i, c)
    {
        if (word_in_text("pain", pw_fhir_str(c, "display"))) {
            return true;
        }
    }
    return false;
}

/*
 * ICD-10-CM neuropathic pain and its descendants (prefixes): G89.0 central pain, G50-G64 nerve,
 * root, plexus disorders and polyneuropathies (G62.0 drug-induced, e.g. chemotherapy-induced),
 * B02.2 postherpetic, M54.1 radiculopathy, M79.2 neuralgia, G90.5 CRPS I.
 */
static bool icd_neuropathic(const json_t *cc)
{
    static const char *const pre[] = {"G89.0", "G50", "G51",   "G52",   "G53",   "G54",   "G55",
                                      "G56",   "G57", "G58",   "G59",   "G60",   "G61",   "G62",
                                      "G63",   "G64", "B02.2", "M54.1", "M79.2", "G90.5", NULL};
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(cc, "coding"), i, c)
    {
        const char *sys = pw_fhir_str(c, "system"), *code = pw_fhir_str(c, "code");
        if (!sys || !code || strcmp(sys, "http://hl7.org/fhir/sid/icd-10-cm") != 0) {
            continue;
        }
        for (const char *const *p = pre; *p; p++) {
            if (strncmp(code, *p, strlen(*p)) == 0) {
                return true;
            }
        }
    }
    return false;
}

/*
 * Pain type from codes (code, valueCodeableConcept) or, when the resource is about pain, from
 * descriptor words in its texts ("Burning pain", "Pain character: shooting"). 0 when none.
 */
static enum pw_pain_kind pain_kind(const struct pw_norm_ctx *ctx, const json_t *res)
{
    const json_t *code = json_object_get(res, "code");
    const json_t *val = json_object_get(res, "valueCodeableConcept");
    const char *vs = pw_fhir_str(res, "valueString");
    struct {
        const struct pw_code_set *codes;
        const struct pw_word_set *words;
        enum pw_pain_kind kind;
    } kinds[] = {
        {&ctx->mixed, &ctx->mixed_words, PW_PAIN_MIXED},
        {&ctx->neuropathic, &ctx->neuropathic_words, PW_PAIN_NEUROPATHIC},
        {&ctx->visceral, &ctx->visceral_words, PW_PAIN_VISCERAL},
        {&ctx->somatic, &ctx->somatic_words, PW_PAIN_SOMATIC},
    };
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        if (code_in(kinds[k].codes, code) || code_in(kinds[k].codes, val)) {
            return kinds[k].kind;
        }
    }
    if (icd_neuropathic(code)) {
        return PW_PAIN_NEUROPATHIC;
    }
    if (!cc_mentions_pain(code) && !cc_mentions_pain(val) && !word_in_text("pain", vs)) {
        return 0;
    }
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        if (words_in_cc(kinds[k].words, code) || words_in_cc(kinds[k].words, val) ||
            words_in_text(kinds[k].words, vs)) {
            return kinds[k].kind;
        }
    }
    return 0;
}

static int pain_type(const json_t *res, const struct pw_ref *ref, struct pw_timeline *tl,
                     enum pw_pain_kind kind)
{
    const char *type = pw_fhir_str(res, "resourceType");
    if (strcmp(type, "Observation") == 0 && !status_usable(pw_fhir_str(res, "status"))) {
        return 0;
    }
    if (strcmp(type, "Condition") == 0 && !pw_norm_condition_counts(res)) {
        return 0;
    }
    struct pw_pain_type ev = {.src = *ref, .kind = kind};
    ev.at = event_time(res);
    if (ev.at == PW_TIME_NONE) {
        const json_t *meta = json_object_get(res, "meta");
        if (pw_fhir_parse_time(pw_fhir_str(meta, "lastUpdated"), &ev.at) < 0) {
            ev.at = PW_TIME_NONE;
        }
    }
    return pw_timeline_add_pain_type(tl, &ev);
}

static int referral(const struct pw_norm_ctx *ctx, const json_t *res, const struct pw_ref *ref,
                    struct pw_timeline *tl)
{
    const char *type = pw_fhir_str(res, "resourceType");
    const char *status = pw_fhir_str(res, "status");
    if (status && (strcmp(status, "entered-in-error") == 0 || strcmp(status, "draft") == 0 ||
                   strcmp(status, "revoked") == 0 || strcmp(status, "cancelled") == 0)) {
        return 0;
    }
    bool hit = false;
    if (strcmp(type, "ServiceRequest") == 0) {
        const json_t *code = json_object_get(res, "code");
        /* "Palliative radiotherapy" names a treatment, not a palliative care referral. */
        static const char *const treatments[] = {
            "radiotherapy", "radiation", "chemotherapy", "chemo",     "surgery",     "resection",
            "stent",        "stenting",  "embolization", "procedure", "irradiation", NULL};
        bool treatment = false;
        for (const char *const *t = treatments; *t && !treatment; t++) {
            treatment = word_in_text(*t, pw_fhir_str(code, "text"));
            size_t ci;
            const json_t *c;
            json_array_foreach(json_object_get(code, "coding"), ci, c)
            {
                treatment = treatment || word_in_text(*t, pw_fhir_str(c, "display"));
            }
        }
        hit = code_in(&ctx->palliative, code) ||
              (!treatment && words_in_cc(&ctx->palliative_words, code));
    } else {
        const char *keys[] = {"serviceType", "type", "reasonCode"};
        for (size_t k = 0; k < 3 && !hit; k++) {
            const json_t *v = json_object_get(res, keys[k]);
            const json_t *one = json_is_array(v) ? NULL : v;
            size_t i;
            const json_t *cc;
            if (one != NULL) {
                hit = code_in(&ctx->palliative, one) || words_in_cc(&ctx->palliative_words, one);
            }
            json_array_foreach(v, i, cc)
            {
                hit =
                    hit || code_in(&ctx->palliative, cc) || words_in_cc(&ctx->palliative_words, cc);
            }
        }
    }
    if (!hit) {
        return 0;
    }
    static const char *const keys[] = {"authoredOn", "occurrenceDateTime", "occurrencePeriod.start",
                                       "period.start"};
    struct pw_referral ev = {.src = *ref};
    ev.at = first_time(res, keys, sizeof(keys) / sizeof(keys[0]));
    return pw_timeline_add_referral(tl, &ev);
}

int pw_normalize_resource(const struct pw_norm_ctx *ctx, const json_t *res,
                          const struct pw_resolver *refs, struct pw_timeline *tl)
{
    const char *type = pw_fhir_str(res, "resourceType");
    if (type == NULL) {
        return 0;
    }
    struct pw_ref ref;
    pw_fhir_ref_of(res, &ref);
    return pw_normalize_resource_of(ctx, res, type, &ref, refs, tl);
}

int pw_normalize_resource_of(const struct pw_norm_ctx *ctx, const json_t *res, const char *type,
                             const struct pw_ref *ref_in, const struct pw_resolver *refs,
                             struct pw_timeline *tl)
{
    if (type == NULL) {
        return 0;
    }
    struct pw_ref ref = *ref_in;
    if (strcmp(type, "Observation") == 0) {
        const json_t *code = json_object_get(res, "code");
        double max = pain_scale_max(ctx, code);
        if (!isnan(max)) {
            return pain_score(res, res, &ref, tl, max);
        }
        const json_t *comp = pain_component(ctx, res);
        if (comp != NULL) {
            return pain_score(res, comp, &ref, tl,
                              pain_scale_max(ctx, json_object_get(comp, "code")));
        }
        int rc = pw_norm_vital_context(ctx, res, &ref, tl);
        if (rc != 1) {
            return rc; /* a vital sign or sedation score (0), or an error */
        }
        enum pw_pain_kind kind = pain_kind(ctx, res);
        return kind ? pain_type(res, &ref, tl, kind) : 0;
    }
    if (strcmp(type, "Condition") == 0) {
        int oud = pw_norm_oud_condition(res, &ref, tl); /* issue 16 */
        if (oud != 0) {
            return oud < 0 ? oud : 0;
        }
        int rc = pw_norm_condition_context(ctx, res, &ref, tl); /* issue 17 */
        enum pw_pain_kind kind = rc == 0 ? pain_kind(ctx, res) : 0;
        return kind ? pain_type(res, &ref, tl, kind) : rc;
    }
    if (strcmp(type, "ServiceRequest") == 0 || strcmp(type, "Encounter") == 0) {
        int rc = referral(ctx, res, &ref, tl);
        return rc == 0 ? pw_norm_encounter_context(ctx, res, &ref, tl) : rc;
    }
    if (strcmp(type, "MedicationAdministration") == 0 || strcmp(type, "Goal") == 0 ||
        strcmp(type, "CarePlan") == 0) {
        return pw_norm_other_context(ctx, res, &ref, tl);
    }
    if (strcmp(type, "MedicationRequest") == 0) {
        int rc = pw_norm_medication_request(ctx, res, &ref, refs, tl);
        return rc == 0 ? pw_norm_other_context(ctx, res, &ref, tl) : rc;
    }
    return 0;
}

bool pw_normalize_reads_type(const char *type)
{
    static const char *const types[] = {"Patient",
                                        "Observation",
                                        "Condition",
                                        "MedicationRequest",
                                        "ServiceRequest",
                                        "Encounter",
                                        "MedicationAdministration",
                                        "Goal",
                                        "CarePlan"};

    for (size_t i = 0; type && i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(type, types[i]) == 0) {
            return true;
        }
    }
    return false;
}

bool pw_normalize_resolves_type(const char *type)
{
    return type && strcmp(type, "Medication") == 0;
}

/*
 * Vital signs and sedation scores (issue 17): respiratory rate (LOINC 9279-1), SpO2 (59408-5,
 * 2708-6), sedation (site codes in sedation_poss / sedation_rass, else "POSS" / "Pasero" /
 * "RASS" / "Richmond" in the code's text or display). A vital-signs panel's components too.
 * @return 1 when @p res is none of them.
 */
int pw_norm_vital_context(const struct pw_norm_ctx *ctx, const json_t *res,
                          const struct pw_ref *src, struct pw_timeline *tl)
{
    const char *status = pw_fhir_str(res, "status");
    int64_t at = event_time(res);
    int found = 1;
    const json_t *comps = json_object_get(res, "component");
    for (size_t i = 0; i <= json_array_size(comps); i++) {
        const json_t *obj = i == 0 ? res : json_array_get(comps, i - 1);
        const json_t *code = json_object_get(obj, "code");
        enum pw_ctx_kind kind = 0;
        const char *scale = "";
        if (pw_fhir_cc_has(code, PW_FHIR_LOINC, "9279-1")) {
            kind = PW_CTX_RESP_RATE;
            scale = "RR";
        } else if (pw_fhir_cc_has(code, PW_FHIR_LOINC, "59408-5") ||
                   pw_fhir_cc_has(code, PW_FHIR_LOINC, "2708-6")) {
            kind = PW_CTX_SPO2;
            scale = "SpO2";
        } else if (code_in(&ctx->sedation_poss, code) || cc_mentions(code, "POSS") ||
                   cc_mentions(code, "Pasero")) {
            kind = PW_CTX_SEDATION;
            scale = "POSS";
        } else if (code_in(&ctx->sedation_rass, code) || cc_mentions(code, "RASS") ||
                   cc_mentions(code, "Richmond")) {
            kind = PW_CTX_SEDATION;
            scale = "RASS";
        }
        if (kind == 0) {
            continue;
        }
        found = 0;
        double v;
        if (!status_usable(status) || at == PW_TIME_NONE) {
            continue;
        }
        if (!score_value(obj, &v) && !rass_text(obj, &v)) {
            int rc = pw_norm_dq(tl, src, "missing-value", "%s without a numeric value", scale);
            if (rc < 0) {
                return rc;
            }
            continue;
        }
        struct pw_context ev;
        memset(&ev, 0, sizeof(ev));
        ev.src = *src;
        ev.kind = kind;
        ev.at = at;
        ev.end = at;
        ev.value = v;
        pw_fhir_copy(ev.detail, sizeof(ev.detail), scale);
        int rc = pw_timeline_add_context(tl, &ev);
        if (rc < 0) {
            return rc;
        }
    }
    return found;
}
