/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The FHIR search source, pure parts: server configuration and dialects, search URL building,
 * FHIR instants, the cursor/seen-set state and Bundle page filtering. No I/O, no loop: the run
 * that drives them is daemon/core/scheduler.c.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

#include "painwatch/conf.h"
#include "painwatch/datetime.h"
#include "painwatch/err.h"
#include "painwatch/http.h"
#include "painwatch/limits.h"
#include "painwatch/log.h"
#include "painwatch/source.h"

/* Pain intensity (LOINC 72514-3 NRS 0-10, 38208-5 pain severity) are the default Observation
 * filter; sites add their pain-type codes in the config. */
static const char default_obs_codes[] = "http://loinc.org|72514-3,http://loinc.org|38208-5";

/* Every MedicationRequest status (R4): stopped and completed orders are titration history. */
static const char med_statuses[] =
    "active,on-hold,cancelled,completed,entered-in-error,stopped,draft,unknown";

/* The orders still in force: what the first sync fetches whatever their date. */
static const char med_statuses_active[] = "active,on-hold";

static int set_str(char **dst, const char *src)
{
    char *copy = NULL;
    if (src) {
        copy = strdup(src);
        if (!copy) {
            return PW_ENOMEM;
        }
    }
    free(*dst);
    *dst = copy;
    return 0;
}

/* Append ",tok" (or "tok" first) at dst[*len]; the caller sized dst for every token. */
static void append_token(char *dst, size_t *len, const char *tok)
{
    size_t n = strlen(tok);
    if (*len) {
        dst[(*len)++] = ',';
    }
    memcpy(dst + *len, tok, n + 1);
    *len += n;
}

static void type_cleanup(struct pw_search_type *t)
{
    free(t->type);
    free(t->codes);
    free(t->valueset);
    memset(t, 0, sizeof(*t));
}

int pw_source_conf_init(struct pw_source_conf *conf, const char *name, const char *base)
{
    memset(conf, 0, sizeof(*conf));
    conf->dialect = (struct pw_fhir_dialect){
        .last_updated = true,
        .date_params = true,
        .status_list = true,
        .count_max = 1000,
    };
    conf->count = 100;
    conf->overlap_ms = 5u * 60u * 1000u;
    conf->lookback_ms = 14ull * 24u * 3600u * 1000u;
    conf->poll_ms = 5u * 60u * 1000u;
    conf->jitter = 0.1;
    conf->backoff_base_ms = 5000;
    conf->backoff_cap_ms = 15u * 60u * 1000u;
    conf->unhealthy_after = 3;
    conf->parallel = 2;
    conf->pages_max = PW_PAGES_PER_RUN_MAX;
    conf->group_refresh_ms = 3600u * 1000u;
    if (set_str(&conf->name, name) || set_str(&conf->base, base) ||
        set_str(&conf->types[0].type, "Observation") ||
        set_str(&conf->types[0].codes, default_obs_codes) ||
        set_str(&conf->types[1].type, "MedicationRequest")) {
        pw_source_conf_cleanup(conf);
        return PW_ENOMEM;
    }
    conf->ntypes = 2;
    return 0;
}

void pw_source_conf_cleanup(struct pw_source_conf *conf)
{
    if (!conf) {
        return;
    }
    free(conf->name);
    free(conf->base);
    for (size_t i = 0; i < PW_SYNC_TYPES_MAX; i++) {
        type_cleanup(&conf->types[i]);
    }
    memset(conf, 0, sizeof(*conf));
}

int pw_source_conf_copy(struct pw_source_conf *dst, const struct pw_source_conf *src)
{
    *dst = *src;
    dst->name = NULL;
    dst->base = NULL;
    memset(dst->types, 0, sizeof(dst->types));
    if (set_str(&dst->name, src->name) || set_str(&dst->base, src->base)) {
        goto fail;
    }
    for (size_t i = 0; i < src->ntypes; i++) {
        if (set_str(&dst->types[i].type, src->types[i].type) ||
            set_str(&dst->types[i].codes, src->types[i].codes) ||
            set_str(&dst->types[i].valueset, src->types[i].valueset)) {
            goto fail;
        }
    }
    return 0;
fail:
    pw_source_conf_cleanup(dst);
    return PW_ENOMEM;
}

/*
 * Configuration from a JSON object. Each key is declared once in a table; unknown keys fail.
 */

enum conf_kind { K_STR, K_UINT, K_SECONDS, K_DAYS, K_FRACTION };

struct conf_field {
    const char *key;
    enum conf_kind kind;
    size_t off;
    uint64_t max; /* inclusive cap for numbers */
};

#define F(key, kind, member, max)                               \
    {                                                           \
        key, kind, offsetof(struct pw_source_conf, member), max \
    }
static const struct conf_field conf_fields[] = {
    F("name", K_STR, name, 0),
    F("base", K_STR, base, 0),
    F("count", K_UINT, count, 1000),
    F("overlap_s", K_SECONDS, overlap_ms, 24u * 3600u),
    F("lookback_days", K_DAYS, lookback_ms, 3650),
    F("poll_s", K_SECONDS, poll_ms, 7u * 24u * 3600u),
    F("jitter", K_FRACTION, jitter, 0),
    F("backoff_base_s", K_SECONDS, backoff_base_ms, 3600),
    F("backoff_cap_s", K_SECONDS, backoff_cap_ms, 24u * 3600u),
    F("unhealthy_after", K_UINT, unhealthy_after, 1000),
    F("parallel", K_UINT, parallel, 64),
    F("pages_max", K_UINT, pages_max, PW_PAGES_PER_RUN_MAX),
    F("group_refresh_s", K_SECONDS, group_refresh_ms, 7u * 24u * 3600u),
};
#undef F

static int conf_err(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int conf_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (errbuf && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return PW_ECONFIG;
}

/* jansson's iteration macros take a non-const json_t even when they only read. */
static json_t *unconst(const json_t *j)
{
    union {
        const json_t *c;
        json_t *m;
    } u = {.c = j};
    return u.m;
}

static int conf_field_set(struct pw_source_conf *conf, const struct conf_field *f, json_t *v,
                          char *errbuf, size_t errlen)
{
    char *base = (char *)conf + f->off;

    if (f->kind == K_STR) {
        if (!json_is_string(v) || json_string_length(v) == 0) {
            return conf_err(errbuf, errlen, "%s: expected a non-empty string", f->key);
        }
        return set_str((char **)(void *)base, json_string_value(v)) ? PW_ENOMEM : 0;
    }
    if (f->kind == K_FRACTION) {
        if (!json_is_number(v) || json_number_value(v) < 0.0 || json_number_value(v) > 0.5) {
            return conf_err(errbuf, errlen, "%s: expected a number in [0, 0.5]", f->key);
        }
        *(double *)(void *)base = json_number_value(v);
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) > f->max ||
        (f->kind == K_UINT && json_integer_value(v) == 0)) {
        return conf_err(errbuf, errlen, "%s: expected an integer in range", f->key);
    }
    uint64_t n = (uint64_t)json_integer_value(v);
    if (f->kind == K_UINT) {
        *(unsigned *)(void *)base = (unsigned)n;
    } else {
        *(uint64_t *)(void *)base = n * (f->kind == K_DAYS ? 86400000u : 1000u);
    }
    return 0;
}

static int conf_dialect(struct pw_fhir_dialect *d, json_t *obj, char *errbuf, size_t errlen)
{
    static const struct {
        const char *key;
        size_t off;
    } flags[] = {
        {"last_updated", offsetof(struct pw_fhir_dialect, last_updated)},
        {"sort", offsetof(struct pw_fhir_dialect, sort)},
        {"code_in", offsetof(struct pw_fhir_dialect, code_in)},
        {"include", offsetof(struct pw_fhir_dialect, include)},
        {"date_params", offsetof(struct pw_fhir_dialect, date_params)},
        {"status_list", offsetof(struct pw_fhir_dialect, status_list)},
    };
    const char *key;
    json_t *v;

    if (!json_is_object(obj)) {
        return conf_err(errbuf, errlen, "dialect: expected a mapping");
    }
    json_object_foreach(obj, key, v)
    {
        size_t i;
        if (strcmp(key, "patient_param") == 0) {
            const char *s = json_string_value(v);
            if (!s || (strcmp(s, "patient") != 0 && strcmp(s, "subject") != 0)) {
                return conf_err(errbuf, errlen, "dialect.%s: expected patient or subject", key);
            }
            d->subject = strcmp(s, "subject") == 0;
            continue;
        }
        if (strcmp(key, "count_max") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 10000) {
                return conf_err(errbuf, errlen, "dialect.%s: expected 1..10000", key);
            }
            d->count_max = (unsigned)json_integer_value(v);
            continue;
        }
        for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
            if (strcmp(key, flags[i].key) == 0) {
                break;
            }
        }
        if (i == sizeof(flags) / sizeof(flags[0])) {
            return conf_err(errbuf, errlen, "dialect.%s: unknown key", key);
        }
        if (!json_is_boolean(v)) {
            return conf_err(errbuf, errlen, "dialect.%s: expected true or false", key);
        }
        *(bool *)(void *)((char *)d + flags[i].off) = json_is_true(v);
    }
    return 0;
}

/* A FHIR resource type name: an upper-case letter then letters (R4 names are all like that). */
static bool is_type_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || s[0] < 'A' || s[0] > 'Z') {
        return false;
    }
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == n;
}

static int conf_type(struct pw_search_type *t, json_t *obj, size_t idx, char *errbuf, size_t errlen)
{
    char where[32];
    const char *key;
    json_t *v;

    snprintf(where, sizeof(where), "types[%zu]", idx);
    if (!json_is_object(obj)) {
        return conf_err(errbuf, errlen, "%s: expected a mapping", where);
    }
    json_object_foreach(obj, key, v)
    {
        if (strcmp(key, "type") == 0) {
            if (!json_is_string(v) || !is_type_name(json_string_value(v))) {
                return conf_err(errbuf, errlen, "%s.type: expected a resource type", where);
            }
            if (set_str(&t->type, json_string_value(v))) {
                return PW_ENOMEM;
            }
        } else if (strcmp(key, "valueset") == 0) {
            if (!json_is_string(v) || json_string_length(v) == 0) {
                return conf_err(errbuf, errlen, "%s.valueset: expected a URL", where);
            }
            if (set_str(&t->valueset, json_string_value(v))) {
                return PW_ENOMEM;
            }
        } else if (strcmp(key, "codes") == 0) {
            /* A list of "system|code" tokens, joined with ',' (FHIR OR) for `code=`. */
            if (!json_is_array(v)) {
                return conf_err(errbuf, errlen, "%s.codes: expected a list", where);
            }
            size_t i;
            json_t *c;
            size_t total = 1;
            json_array_foreach(v, i, c)
            {
                const char *s = json_string_value(c);
                if (!s || !*s || strchr(s, ',') || strlen(s) > PW_CODE_MAX * 2) {
                    return conf_err(errbuf, errlen, "%s.codes: bad code token", where);
                }
                total += strlen(s) + 1;
            }
            char *joined = calloc(1, total);
            if (!joined) {
                return PW_ENOMEM;
            }
            size_t len = 0;
            json_array_foreach(v, i, c)
            {
                append_token(joined, &len, json_string_value(c));
            }
            free(t->codes);
            t->codes = json_array_size(v) ? joined : NULL;
            if (!t->codes) {
                free(joined);
            }
        } else {
            return conf_err(errbuf, errlen, "%s.%s: unknown key", where, key);
        }
    }
    if (!t->type) {
        return conf_err(errbuf, errlen, "%s.type: required", where);
    }
    return 0;
}

static int conf_types(struct pw_source_conf *conf, json_t *arr, char *errbuf, size_t errlen)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0 ||
        json_array_size(arr) > PW_SYNC_TYPES_MAX) {
        return conf_err(errbuf, errlen, "types: expected a list of 1..8 entries");
    }
    for (size_t i = 0; i < PW_SYNC_TYPES_MAX; i++) {
        type_cleanup(&conf->types[i]);
    }
    conf->ntypes = 0;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        int err = conf_type(&conf->types[i], v, i, errbuf, errlen);
        conf->ntypes = i + 1;
        if (err) {
            return err;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(conf->types[j].type, conf->types[i].type) == 0) {
                return conf_err(errbuf, errlen, "types: %s listed twice", conf->types[i].type);
            }
        }
    }
    return 0;
}

int pw_source_conf_from_json(struct pw_source_conf *conf, const json_t *obj, char *errbuf,
                             size_t errlen)
{
    const char *key;
    json_t *v;

    if (!json_is_object(obj)) {
        return conf_err(errbuf, errlen, "server: expected a mapping");
    }
    json_object_foreach(unconst(obj), key, v)
    {
        int err;
        if (strcmp(key, "dialect") == 0) {
            err = conf_dialect(&conf->dialect, v, errbuf, errlen);
        } else if (strcmp(key, "types") == 0) {
            err = conf_types(conf, v, errbuf, errlen);
        } else {
            size_t i;
            for (i = 0; i < sizeof(conf_fields) / sizeof(conf_fields[0]); i++) {
                if (strcmp(key, conf_fields[i].key) == 0) {
                    break;
                }
            }
            if (i == sizeof(conf_fields) / sizeof(conf_fields[0])) {
                return conf_err(errbuf, errlen, "%s: unknown key", key);
            }
            err = conf_field_set(conf, &conf_fields[i], v, errbuf, errlen);
        }
        if (err) {
            return err;
        }
    }
    if (!conf->name || !conf->base) {
        return conf_err(errbuf, errlen, "server: name and base are required");
    }
    if (strncmp(conf->base, "https://", 8) != 0 && strncmp(conf->base, "http://", 7) != 0) {
        return conf_err(errbuf, errlen, "base: expected an http(s) URL, got %s", conf->base);
    }
    size_t n = strlen(conf->base);
    while (n > 0 && conf->base[n - 1] == '/') {
        conf->base[--n] = '\0';
    }
    if (conf->backoff_cap_ms < conf->backoff_base_ms) {
        return conf_err(errbuf, errlen, "backoff_cap_s: below backoff_base_s");
    }
    return 0;
}

/* "a,b" joined from two "system|code" lists. NULL when both are empty. */
static int join_codes(char **out, const char *const *a, size_t na, const char *const *b, size_t nb)
{
    size_t total = 1;
    for (size_t i = 0; i < na; i++) {
        total += strlen(a[i]) + 1;
    }
    for (size_t i = 0; i < nb; i++) {
        total += strlen(b[i]) + 1;
    }
    *out = NULL;
    if (na + nb == 0) {
        return 0;
    }
    char *s = calloc(1, total);
    if (!s) {
        return PW_ENOMEM;
    }
    size_t len = 0;
    for (size_t i = 0; i < na + nb; i++) {
        const char *c = i < na ? a[i] : b[i - na];
        if (!*c || strchr(c, ',')) {
            free(s);
            return PW_ECONFIG;
        }
        append_token(s, &len, c);
    }
    *out = s;
    return 0;
}

/*
 * The Observation code filter: pain scores and types, and (issue 17) the sedation scales and the
 * vital signs opioid-sedation-risk reads (respiratory rate, SpO2).
 */
static int obs_codes(char **out, const struct pw_conf_pain_codes *codes)
{
    static const char *const vitals[] = {"http://loinc.org|9279-1", "http://loinc.org|59408-5",
                                         "http://loinc.org|2708-6"};
    size_t nv = sizeof(vitals) / sizeof(vitals[0]);
    size_t n = codes->n_score + codes->n_type + codes->n_poss + codes->n_rass + nv;
    const char **rest = calloc(n, sizeof(*rest));
    char **score = calloc(codes->n_score + 1, sizeof(*score));
    size_t k = 0;
    int err = 0;
    if (!rest || !score) {
        free(rest);
        free(score);
        return PW_ENOMEM;
    }
    /* A score code may carry its scale maximum ("system|code|max"): not part of the search. */
    for (size_t i = 0; i < codes->n_score && !err; i++) {
        const char *bar = strchr(codes->score[i], '|');
        const char *max = bar ? strchr(bar + 1, '|') : NULL;
        size_t len = max ? (size_t)(max - codes->score[i]) : strlen(codes->score[i]);
        score[i] = strndup(codes->score[i], len);
        err = score[i] ? 0 : PW_ENOMEM;
        rest[k++] = score[i];
    }
    for (size_t i = 0; i < codes->n_type; i++) {
        rest[k++] = codes->type[i];
    }
    for (size_t i = 0; i < codes->n_poss; i++) {
        rest[k++] = codes->poss[i];
    }
    for (size_t i = 0; i < codes->n_rass; i++) {
        rest[k++] = codes->rass[i];
    }
    for (size_t i = 0; i < nv; i++) {
        rest[k++] = vitals[i];
    }
    if (!err) {
        err = join_codes(out, rest, k, NULL, 0);
    }
    for (size_t i = 0; i < codes->n_score; i++) {
        free(score[i]);
    }
    free(score);
    free(rest);
    return err;
}

static int from_daemon_types(struct pw_source_conf *conf, const struct pw_conf_server *cs,
                             const struct pw_conf_pain_codes *codes, char *errbuf, size_t errlen)
{
    if (cs->n_resources == 0 || cs->n_resources > PW_SYNC_TYPES_MAX) {
        return conf_err(errbuf, errlen, "servers.%s.resources: 1..%d types", cs->name,
                        PW_SYNC_TYPES_MAX);
    }
    for (size_t i = 0; i < PW_SYNC_TYPES_MAX; i++) {
        type_cleanup(&conf->types[i]);
    }
    conf->ntypes = cs->n_resources;
    for (size_t i = 0; i < cs->n_resources; i++) {
        const char *type = cs->resources[i];
        if (!is_type_name(type)) {
            return conf_err(errbuf, errlen, "servers.%s.resources[%zu]: not a resource type",
                            cs->name, i);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cs->resources[j], type) == 0) {
                return conf_err(errbuf, errlen, "servers.%s.resources: %s listed twice", cs->name,
                                type);
            }
        }
        if (set_str(&conf->types[i].type, type)) {
            return PW_ENOMEM;
        }
        if (strcmp(type, "Observation") != 0) {
            continue;
        }
        int err = codes ? obs_codes(&conf->types[i].codes, codes)
                        : set_str(&conf->types[i].codes, default_obs_codes);
        if (err == PW_ECONFIG) {
            return conf_err(errbuf, errlen, "pain_codes: a code token is empty or has a comma");
        }
        if (err) {
            return err;
        }
    }
    return 0;
}

int pw_source_conf_from_daemon(struct pw_source_conf *conf, const struct pw_conf_server *cs,
                               const struct pw_conf_pain_codes *codes, char *errbuf, size_t errlen)
{
    if (!cs->name || !cs->base_url) {
        memset(conf, 0, sizeof(*conf));
        return conf_err(errbuf, errlen, "servers: name and base_url are required");
    }
    int err = pw_source_conf_init(conf, cs->name, cs->base_url);
    if (err) {
        return err;
    }
    const struct pw_conf_dialect *d = &cs->dialect;
    conf->dialect.subject = d->patient_param && strcmp(d->patient_param, "subject") == 0;
    conf->dialect.last_updated = d->last_updated;
    conf->dialect.sort = d->sort;
    conf->dialect.code_in = d->code_in;
    conf->dialect.include = d->include;
    conf->dialect.date_params = d->date_params;
    if (d->max_count > 0) {
        /* Ask for the largest page the server honours: fewer round trips per resource. */
        conf->dialect.count_max = (unsigned)d->max_count;
        conf->count = conf->dialect.count_max;
    }
    if (cs->poll_interval_ms > 0) {
        conf->poll_ms = (uint64_t)cs->poll_interval_ms;
    }
    if (cs->lookback_ms > 0) {
        conf->lookback_ms = (uint64_t)cs->lookback_ms;
    }
    if (cs->overlap_ms >= 0) {
        conf->overlap_ms = (uint64_t)cs->overlap_ms;
    }
    if (cs->max_concurrent > 0) {
        conf->parallel = (unsigned)cs->max_concurrent;
    }
    if (cs->cohort.refresh_ms > 0) {
        conf->group_refresh_ms = (uint64_t)cs->cohort.refresh_ms;
    }
    size_t n = strlen(conf->base);
    while (n > 0 && conf->base[n - 1] == '/') {
        conf->base[--n] = '\0';
    }
    err = from_daemon_types(conf, cs, codes, errbuf, errlen);
    if (err) {
        pw_source_conf_cleanup(conf);
    }
    return err;
}

/*
 * FHIR instants.
 */

/* Second precision, floored: "gt" on a floored value can only widen the window. */
static void instant_seconds(int64_t ms, char *buf, size_t len)
{
    pw_time_format(ms, 0, buf, len);
}

/*
 * Cursor and seen-set.
 */

int pw_sync_state_init(struct pw_sync_state *st)
{
    st->cursor_ms = PW_SYNC_NO_CURSOR;
    st->seen = json_object();
    return st->seen ? 0 : PW_ENOMEM;
}

void pw_sync_state_cleanup(struct pw_sync_state *st)
{
    if (st) {
        json_decref(st->seen);
        st->seen = NULL;
    }
}

int pw_sync_state_load(struct pw_sync_state *st, const char *text)
{
    json_error_t jerr;
    json_t *root;
    json_t *seen;
    json_int_t ms;
    int version;

    if (!text) {
        st->cursor_ms = PW_SYNC_NO_CURSOR;
        json_object_clear(st->seen);
        return 0;
    }
    root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        return PW_EJSON;
    }
    seen = NULL;
    const char *at = NULL; /* human-readable copy of ms, not read back */
    if (json_unpack_ex(root, &jerr, JSON_STRICT, "{s:i, s:I, s?s, s:o}", "v", &version, "ms", &ms,
                       "cursor", &at, "seen", &seen) != 0 ||
        version != 1 || !json_is_object(seen)) {
        json_decref(root);
        return PW_EJSON;
    }
    const char *k;
    json_t *v;
    json_object_foreach(seen, k, v)
    {
        if (!json_is_integer(v)) {
            json_decref(root);
            return PW_EJSON;
        }
    }
    json_decref(st->seen);
    st->seen = json_incref(seen);
    st->cursor_ms = ms;
    json_decref(root);
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Drop the oldest entries until at most @p max remain. */
static int seen_trim(json_t *seen, size_t max)
{
    size_t n = json_object_size(seen);
    if (n <= max) {
        return 0;
    }
    int64_t *all = malloc(n * sizeof(*all));
    if (!all) {
        return PW_ENOMEM;
    }
    size_t i = 0;
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach(seen, k, v)
    {
        all[i++] = json_integer_value(v);
    }
    qsort(all, n, sizeof(*all), cmp_i64);
    int64_t keep_from = all[n - max];
    size_t excess = n - max;
    free(all);
    /* Entries equal to the threshold survive unless the excess still needs them gone. */
    json_object_foreach_safe(seen, tmp, k, v)
    {
        if (excess && json_integer_value(v) <= keep_from) {
            json_object_del(seen, k);
            excess--;
        }
    }
    return 0;
}

static char *state_text(const struct pw_sync_state *st)
{
    char at[40] = "";
    if (st->cursor_ms != PW_SYNC_NO_CURSOR) {
        pw_fhir_instant_format(st->cursor_ms, at, sizeof(at));
    }
    json_t *root = json_pack("{s:i, s:I, s:s, s:O}", "v", 1, "ms", (json_int_t)st->cursor_ms,
                             "cursor", at, "seen", st->seen);
    char *text = root ? json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    return text;
}

int pw_sync_state_dump(struct pw_sync_state *st, uint64_t overlap_ms, char **out)
{
    if (st->cursor_ms != PW_SYNC_NO_CURSOR) {
        int64_t floor_ms = st->cursor_ms - (int64_t)overlap_ms;
        const char *k;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(st->seen, tmp, k, v)
        {
            if (json_integer_value(v) < floor_ms) {
                json_object_del(st->seen, k);
            }
        }
    }
    size_t max = PW_SYNC_SEEN_MAX;
    for (;;) {
        if (seen_trim(st->seen, max)) {
            return PW_ENOMEM;
        }
        char *text = state_text(st);
        if (!text) {
            return PW_ENOMEM;
        }
        if (strlen(text) < PW_SYNC_CURSOR_MAX) {
            *out = text;
            return 0;
        }
        free(text);
        /* Very long ids: keep the newest half. A dropped entry costs at most a duplicate
         * delivery (the store is idempotent), never a lost resource or a stuck cursor. */
        max = json_object_size(st->seen) / 2;
    }
}

size_t pw_sync_state_prune(struct pw_sync_state *st, int64_t floor_ms, const json_t *keep)
{
    size_t dropped = 0;
    const char *k;
    json_t *v;
    void *tmp;

    json_object_foreach_safe(st->seen, tmp, k, v)
    {
        if (json_integer_value(v) < floor_ms && !json_object_get(keep, k)) {
            json_object_del(st->seen, k);
            dropped++;
        }
    }
    return dropped;
}

/*
 * One page.
 */

static const char *str_at(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* The seen-set key "type/id/version"; false when the resource cannot be identified. @p type and
 * @p id are the resource's own (the page filter has them at hand already). */
static bool seen_key(const json_t *res, const char *type, const char *id, char *buf, size_t len,
                     int64_t *lu_ms, bool *has_lu)
{
    const json_t *meta = json_object_get(res, "meta");
    const char *vid = str_at(meta, "versionId");
    const char *lu = str_at(meta, "lastUpdated");

    *has_lu = lu && pw_fhir_instant_parse(lu, lu_ms) == 0;
    if (!type || !id || (!vid && !*has_lu)) {
        return false;
    }
    /* "Type/id/version" or "Type/id/@lastUpdated", joined by hand: once per resource. */
    const char *parts[] = {type, "/", id, vid ? "/" : "/@", vid ? vid : lu};
    size_t n = 0;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        size_t k = strlen(parts[i]);
        if (n + k >= len) {
            return false;
        }
        memcpy(buf + n, parts[i], k);
        n += k;
    }
    buf[n] = '\0';
    return true;
}

bool pw_sync_seen_key(const json_t *res, char *buf, size_t len)
{
    int64_t lu_ms;
    bool has_lu;
    return seen_key(res, str_at(res, "resourceType"), str_at(res, "id"), buf, len, &lu_ms, &has_lu);
}

static const char *next_link(const json_t *bundle)
{
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(bundle, "link"), i, l)
    {
        const char *rel = str_at(l, "relation");
        if (rel && strcmp(rel, "next") == 0) {
            return str_at(l, "url");
        }
    }
    return NULL;
}

int pw_sync_page_filter(struct pw_sync_state *st, const json_t *bundle, json_t **out_resources,
                        const char **out_next, int64_t *max_ms, struct pw_page_stats *stats)
{
    const char *rt = str_at(bundle, "resourceType");
    const char *bt = str_at(bundle, "type");
    const json_t *entries = json_object_get(bundle, "entry");

    memset(stats, 0, sizeof(*stats));
    if (!rt || strcmp(rt, "Bundle") != 0 || (bt && strcmp(bt, "searchset") != 0) ||
        (entries && !json_is_array(entries))) {
        return PW_EFHIR;
    }
    json_t *out = json_array();
    if (!out) {
        return PW_ENOMEM;
    }
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e)
    {
        json_t *res = json_object_get(e, "resource");
        const char *type = str_at(res, "resourceType");
        const char *mode = str_at(json_object_get(e, "search"), "mode");
        char key[PW_REF_MAX + 64];
        int64_t lu_ms = 0;
        bool has_lu;

        stats->entries++;
        if (!json_is_object(res) || !type) {
            /* A malformed entry is skipped, not fatal: failing would pin the cursor forever.
             * Counted, not logged one by one: the caller logs one summary per page. */
            stats->no_resource++;
            continue;
        }
        if (strcmp(type, "OperationOutcome") == 0 || (mode && strcmp(mode, "outcome") == 0)) {
            stats->outcomes++;
            continue;
        }
        const char *id = str_at(res, "id");
        if (!id) {
            stats->no_id++;
            continue;
        }
        if (seen_key(res, type, id, key, sizeof(key), &lu_ms, &has_lu)) {
            if (json_object_get(st->seen, key)) {
                stats->duplicates++;
                continue;
            }
            if (json_object_set_new(st->seen, key, json_integer(lu_ms))) {
                json_decref(out);
                return PW_ENOMEM;
            }
        } else {
            /* No versionId and no lastUpdated: it cannot be deduped here; the store is
             * idempotent on (type, id, versionId) anyway. */
            pw_log_debug(SYNC, "%s/%s has no meta.versionId or lastUpdated", type, id);
        }
        if (has_lu && lu_ms > *max_ms) {
            *max_ms = lu_ms;
        }
        if (json_array_append(out, res)) {
            json_decref(out);
            return PW_ENOMEM;
        }
        stats->delivered++;
    }
    *out_next = next_link(bundle);
    *out_resources = out;
    return 0;
}

/* @p n with thousands separators ("1,000,000"): a count an operator reads at a glance. */
static const char *grouped(size_t n, char buf[32])
{
    char digits[24];
    int nd = snprintf(digits, sizeof(digits), "%zu", n);
    size_t o = 0;

    for (int i = 0; i < nd; i++) {
        if (i && (nd - i) % 3 == 0) {
            buf[o++] = ',';
        }
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

size_t pw_page_stats_summary(const struct pw_page_stats *ps, char *buf, size_t len)
{
    char g[32];
    const struct {
        size_t n;
        const char *what;
    } parts[] = {
        {ps->no_id, "no id"},
        {ps->no_resource, "no resource"},
        {ps->unreadable, "unreadable"},
        {ps->outcomes, "OperationOutcome from the server"},
    };
    size_t total = 0;
    size_t off;
    int w;

    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        total += parts[i].n;
    }
    if (len) {
        buf[0] = '\0';
    }
    if (total == 0 || len == 0) {
        return total;
    }
    w = snprintf(buf, len, "%s %s rejected:", grouped(total, g), total == 1 ? "entry" : "entries");
    off = w > 0 && (size_t)w < len ? (size_t)w : len - 1;
    for (size_t i = 0, k = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (parts[i].n == 0) {
            continue;
        }
        w = snprintf(buf + off, len - off, "%s %s %s", k++ ? "," : "", grouped(parts[i].n, g),
                     parts[i].what);
        off += w > 0 && (size_t)w < len - off ? (size_t)w : len - 1 - off;
    }
    return total;
}

/*
 * URLs.
 */

static int query_add(CURLU *u, const char *name, const char *value)
{
    char buf[PW_SYNC_URL_MAX];
    /* Only the value is percent-encoded: names like "code:in" must reach the server as is. */
    char *esc = pw_http_escape(value);
    if (!esc) {
        return PW_ENOMEM;
    }
    int n = snprintf(buf, sizeof(buf), "%s=%s", name, esc);
    pw_http_escape_free(esc);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        return PW_E2BIG;
    }
    CURLUcode rc = curl_url_set(u, CURLUPART_QUERY, buf, CURLU_APPENDQUERY);
    return rc == CURLUE_OK ? 0 : rc == CURLUE_OUT_OF_MEMORY ? PW_ENOMEM : PW_EINVAL;
}

/* The clinical-date search parameter of @p type, or NULL when it has none we rely on. */
static const char *date_param(const char *type)
{
    if (strcmp(type, "Observation") == 0) {
        return "date";
    }
    if (strcmp(type, "MedicationRequest") == 0) {
        return "authoredon";
    }
    if (strcmp(type, "ServiceRequest") == 0) {
        return "authored";
    }
    if (strcmp(type, "Condition") == 0) {
        return "recorded-date";
    }
    return NULL;
}

static int window_params(CURLU *u, const struct pw_source_conf *conf, const char *type,
                         const struct pw_search_window *win)
{
    const struct pw_fhir_dialect *d = &conf->dialect;
    char at[48];
    char val[64];

    if (win->cursor_ms != PW_SYNC_NO_CURSOR && d->last_updated && !win->active_orders) {
        instant_seconds(win->cursor_ms - (int64_t)conf->overlap_ms, at, sizeof(at));
        snprintf(val, sizeof(val), "gt%s", at);
        return query_add(u, "_lastUpdated", val);
    }
    /*
     * First sync (or a server without _lastUpdated): only the clinical lookback. The orders in
     * force are searched on the other side of the same bound (lt), so the two queries never
     * return the same order twice: together they cover every order the server dates.
     */
    if (win->active_orders && strcmp(type, "Condition") == 0) {
        /* The problem list (issue 17): active problems whatever their date (a cancer recorded
         * years ago); some have no recorded date at all, so no date bound. */
        return 0;
    }
    instant_seconds(win->now_ms - (int64_t)conf->lookback_ms, at, sizeof(at));
    snprintf(val, sizeof(val), "%s%s", win->active_orders ? "lt" : "ge", at);
    const char *dp = date_param(type);
    if (d->date_params && dp) {
        return query_add(u, dp, val);
    }
    if (d->last_updated) {
        return query_add(u, "_lastUpdated", val);
    }
    if (!win->active_orders) {
        pw_log_warn(SYNC, "%s %s: no date or _lastUpdated search, the lookback cannot be bounded",
                    conf->name, type);
    }
    return 0;
}

static int url_params(CURLU *u, const struct pw_source_conf *conf, const struct pw_search_type *t,
                      const char *patient, const struct pw_search_window *win)
{
    const struct pw_fhir_dialect *d = &conf->dialect;
    char buf[PW_ID_MAX + 16];
    int err = 0;

    if (patient) {
        snprintf(buf, sizeof(buf), "Patient/%s", patient);
        err = d->subject ? query_add(u, "subject", buf) : query_add(u, "patient", patient);
    }
    if (!err) {
        err = window_params(u, conf, t->type, win);
    }
    if (!err && t->valueset && d->code_in) {
        err = query_add(u, "code:in", t->valueset);
    } else if (!err && t->codes) {
        err = query_add(u, "code", t->codes);
    }
    if (!err && win->active_orders && strcmp(t->type, "Condition") == 0) {
        err = query_add(u, "clinical-status", "active,recurrence,relapse");
    }
    if (!err && strcmp(t->type, "MedicationRequest") == 0) {
        if (win->active_orders) {
            err = query_add(u, "status", med_statuses_active);
        } else if (d->status_list) {
            err = query_add(u, "status", med_statuses);
        }
        if (!err && d->include) {
            err = query_add(u, "_include", "MedicationRequest:medication");
        }
    }
    if (!err && d->sort && d->last_updated) {
        err = query_add(u, "_sort", "_lastUpdated");
    }
    if (!err) {
        unsigned count = conf->count < d->count_max ? conf->count : d->count_max;
        snprintf(buf, sizeof(buf), "%u", count ? count : 1);
        err = query_add(u, "_count", buf);
    }
    return err;
}

int pw_search_url_halve_count(const char *url, unsigned dflt, char **out, unsigned *count)
{
    CURLU *u = curl_url();
    char *query = NULL;
    char *s = NULL;
    unsigned was = dflt;
    int err = PW_EINVAL;

    *out = NULL;
    if (!u) {
        return PW_ENOMEM;
    }
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
        goto out;
    }
    CURLUcode qrc = curl_url_get(u, CURLUPART_QUERY, &query, 0);
    if (qrc != CURLUE_OK && qrc != CURLUE_NO_QUERY) {
        goto out;
    }
    /* The query's other parameters are kept, in order (curl may lower-case percent-escapes);
     * only _count changes. */
    size_t qlen = query ? strlen(query) : 0;
    char *kept = calloc(1, qlen + 1);
    if (!kept) {
        err = PW_ENOMEM;
        goto out;
    }
    size_t klen = 0;
    for (char *p = query, *tok; p && *p; p = tok) {
        tok = strchr(p, '&');
        size_t n = tok ? (size_t)(tok - p) : strlen(p);
        if (n > 7 && strncmp(p, "_count=", 7) == 0) {
            char *end;
            unsigned long v = strtoul(p + 7, &end, 10);
            if (end == p + n && v > 0 && v <= 100000) {
                was = (unsigned)v;
            }
        } else if (n > 0) {
            if (klen) {
                kept[klen++] = '&';
            }
            memcpy(kept + klen, p, n);
            klen += n;
        }
        tok = tok ? tok + 1 : NULL;
    }
    kept[klen] = '\0';
    if (was <= 1) {
        free(kept);
        err = PW_ERANGE;
        goto out;
    }
    char param[32];
    snprintf(param, sizeof(param), "_count=%u", was / 2);
    err = curl_url_set(u, CURLUPART_QUERY, klen ? kept : NULL, 0) == CURLUE_OK &&
                  curl_url_set(u, CURLUPART_QUERY, param, CURLU_APPENDQUERY) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK
              ? 0
              : PW_ENOMEM;
    free(kept);
    if (!err) {
        *out = strdup(s);
        err = *out ? 0 : PW_ENOMEM;
        *count = was / 2;
    }
out:
    curl_free(s);
    curl_free(query);
    curl_url_cleanup(u);
    return err;
}

int pw_search_url(const struct pw_source_conf *conf, size_t type, const char *patient,
                  const struct pw_search_window *win, char **out)
{
    char buf[PW_SYNC_URL_MAX];
    char *s = NULL;
    int err;

    if (type >= conf->ntypes || !conf->base ||
        (patient && (!*patient || strlen(patient) >= PW_ID_MAX ||
                     strspn(patient, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789-.") != strlen(patient)))) {
        return PW_EINVAL;
    }
    const struct pw_search_type *t = &conf->types[type];
    if (win->active_orders && strcmp(t->type, "MedicationRequest") != 0 &&
        strcmp(t->type, "Condition") != 0) {
        return PW_EINVAL;
    }
    int n = snprintf(buf, sizeof(buf), "%s/%s", conf->base, t->type);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        return PW_E2BIG;
    }
    CURLU *u = curl_url();
    if (!u) {
        return PW_ENOMEM;
    }
    err = curl_url_set(u, CURLUPART_URL, buf, 0) == CURLUE_OK ? 0 : PW_EINVAL;
    if (!err) {
        err = url_params(u, conf, t, patient, win);
    }
    if (!err) {
        err = curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK ? 0 : PW_ENOMEM;
    }
    curl_url_cleanup(u);
    if (err) {
        return err;
    }
    if (strlen(s) >= PW_SYNC_URL_MAX) {
        curl_free(s);
        return PW_E2BIG;
    }
    *out = strdup(s);
    curl_free(s);
    return *out ? 0 : PW_ENOMEM;
}

struct origin {
    char *scheme;
    char *host;
    char *port;
};

static void origin_free(struct origin *o)
{
    curl_free(o->scheme);
    curl_free(o->host);
    curl_free(o->port);
}

static bool origin_get(const char *url, struct origin *o)
{
    CURLU *u = curl_url();
    char *user = NULL;
    bool ok = false;

    memset(o, 0, sizeof(*o));
    if (!u) {
        return false;
    }
    /* Only absolute http(s) URLs without credentials count: a next link is followed verbatim. */
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &o->scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &o->host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &o->port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_NO_USER) {
        ok = strcasecmp(o->scheme, "https") == 0 || strcasecmp(o->scheme, "http") == 0;
    }
    curl_free(user);
    curl_url_cleanup(u);
    return ok;
}

bool pw_url_same_origin(const char *url, const char *base)
{
    struct origin a;
    struct origin b;
    bool same = false;

    if (!url || !base || strlen(url) >= PW_SYNC_URL_MAX) {
        return false;
    }
    /* Both parses run so both structs are initialized whatever the outcome. */
    bool ok_a = origin_get(url, &a);
    bool ok_b = origin_get(base, &b);
    if (ok_a && ok_b) {
        same = strcasecmp(a.scheme, b.scheme) == 0 && strcasecmp(a.host, b.host) == 0 &&
               strcmp(a.port, b.port) == 0;
    }
    origin_free(&b);
    origin_free(&a);
    return same;
}
