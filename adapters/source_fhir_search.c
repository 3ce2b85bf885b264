/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The FHIR search source adapter (pw_source_fhir_search, source.h): its configuration and
 * dialects, search URL building and FHIR instants, all pure. The cursor/seen-set state and Bundle
 * page filtering are in source_fhir_search_page.c. Its runs (paging, requests through the driver)
 * are in source_fhir_search_run.c, its /metadata check in source_fhir_search_capability.c; the
 * driver that schedules them is daemon/core/scheduler.c.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

#include "painwatch/conf.h"
#include "painwatch/datetime.h"
#include "painwatch/err.h"
#include "painwatch/fhir.h"
#include "painwatch/fhir_search.h"
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

int pw_fhir_search_conf_init(struct pw_fhir_search_conf *conf, const char *name, const char *base)
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
    conf->pages_max = PW_PAGES_PER_RUN_MAX;
    if (set_str(&conf->name, name) || set_str(&conf->base, base) ||
        set_str(&conf->types[0].type, "Observation") ||
        set_str(&conf->types[0].codes, default_obs_codes) ||
        set_str(&conf->types[1].type, "MedicationRequest")) {
        pw_fhir_search_conf_cleanup(conf);
        return PW_ENOMEM;
    }
    conf->ntypes = 2;
    conf->writes = (struct pw_sink_writes){.types = {"Flag"}, .n = 1};
    return 0;
}

void pw_fhir_search_conf_cleanup(struct pw_fhir_search_conf *conf)
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

int pw_fhir_search_conf_copy(struct pw_fhir_search_conf *dst, const struct pw_fhir_search_conf *src)
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
    pw_fhir_search_conf_cleanup(dst);
    return PW_ENOMEM;
}

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

/* A FHIR resource type name: an upper-case letter then letters (R4 names are all like that). */
static bool is_type_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || s[0] < 'A' || s[0] > 'Z') {
        return false;
    }
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == n;
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

static int from_daemon_types(struct pw_fhir_search_conf *conf, const struct pw_conf_server *cs,
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

/*
 * The searches of server @p cs from the source's keys (its config_map, filled from servers[i]),
 * the server's resources and the site's pain @p codes: Observation searches are filtered by the
 * pain score codes plus the pain type, sedation and vital-sign codes (NULL: the built-in pain
 * score codes); other types are not code-filtered.
 */
static int conf_from_keys(struct pw_fhir_search_conf *conf, const struct pw_fhir_search_keys *keys,
                          const struct pw_conf_server *cs, const struct pw_conf_pain_codes *codes,
                          char *errbuf, size_t errlen)
{
    if (!cs->name || !cs->base_url) {
        memset(conf, 0, sizeof(*conf));
        return conf_err(errbuf, errlen, "servers: name and base_url are required");
    }
    int err = pw_fhir_search_conf_init(conf, cs->name, cs->base_url);
    if (err) {
        return err;
    }
    const struct pw_fhir_search_dialect_keys *d = &keys->dialect;
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
    if (keys->lookback_ms > 0) {
        conf->lookback_ms = (uint64_t)keys->lookback_ms;
    }
    if (keys->overlap_ms >= 0) {
        conf->overlap_ms = (uint64_t)keys->overlap_ms;
    }
    size_t n = strlen(conf->base);
    while (n > 0 && conf->base[n - 1] == '/') {
        conf->base[--n] = '\0';
    }
    err = from_daemon_types(conf, cs, codes, errbuf, errlen);
    if (err) {
        pw_fhir_search_conf_cleanup(conf);
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

static int window_params(CURLU *u, const struct pw_fhir_search_conf *conf, const char *type,
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

static int url_params(CURLU *u, const struct pw_fhir_search_conf *conf,
                      const struct pw_search_type *t, const char *patient,
                      const struct pw_search_window *win)
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

int pw_search_url(const struct pw_fhir_search_conf *conf, size_t type, const char *patient,
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

/*
 * The adapter.
 */

/* Its configuration keys (conf_map.h): in servers[] beside the server's own; `config describe`
 * and the schema take them from here. */
#define SEC                1000.0
#define HOUR               (3600 * SEC)
#define DAY                (24 * HOUR)
#define FILL(type, member) .offset = offsetof(type, member)

static const char *const patient_params[] = {"patient", "subject", NULL};

static const struct pw_conf_field dialect_map[] = {
    {.name = "patient_param",
     .type = PW_CONF_ENUM,
     .def = "patient",
     .allowed = patient_params,
     FILL(struct pw_fhir_search_dialect_keys, patient_param),
     .help = "search parameter naming the patient"},
    {.name = "last_updated",
     .type = PW_CONF_BOOL,
     .def = "true",
     FILL(struct pw_fhir_search_dialect_keys, last_updated),
     .help = "server supports _lastUpdated=gt"},
    {.name = "sort",
     .type = PW_CONF_BOOL,
     .def = "true",
     FILL(struct pw_fhir_search_dialect_keys, sort),
     .help = "server supports _sort=_lastUpdated"},
    {.name = "code_in",
     .type = PW_CONF_BOOL,
     .def = "false",
     FILL(struct pw_fhir_search_dialect_keys, code_in),
     .help = "server supports code:in=<ValueSet>"},
    {.name = "include",
     .type = PW_CONF_BOOL,
     .def = "false",
     FILL(struct pw_fhir_search_dialect_keys, include),
     .help = "server supports _include"},
    {.name = "date_params",
     .type = PW_CONF_BOOL,
     .def = "true",
     FILL(struct pw_fhir_search_dialect_keys, date_params),
     .help = "first-sync lookback by date / authoredon (else by _lastUpdated)"},
    {.name = "max_count",
     .type = PW_CONF_INT,
     .def = "100",
     .min = 1,
     .max = 1000,
     FILL(struct pw_fhir_search_dialect_keys, max_count),
     .help = "largest _count the server honours"},
    {0},
};

static const struct pw_conf_field config_map[] = {
    {.name = "dialect",
     .type = PW_CONF_SECTION,
     .sub = dialect_map,
     .offset = PW_CONF_NOFILL, /* filled by fs_init() (a section) */
     .help = "what the server's search supports"},
    {.name = "lookback",
     .type = PW_CONF_DURATION,
     .def = "14d",
     .min = HOUR,
     .max = 365 * DAY,
     FILL(struct pw_fhir_search, keys.lookback_ms),
     .help = "clinical history fetched at first sync"},
    {.name = "overlap",
     .type = PW_CONF_DURATION,
     .def = "5m",
     .min = 0,
     .max = DAY,
     FILL(struct pw_fhir_search, keys.overlap_ms),
     .help = "re-read window for skew and late commits"},
    {0},
};
#undef FILL

static int fs_init(void *ctx, const struct pw_source_env *env, char *errbuf, size_t errlen)
{
    struct pw_fhir_search *fs = ctx;
    const struct pw_fhir_search_conf *typed = env->typed;
    int err;

    if (typed) {
        err = pw_fhir_search_conf_copy(&fs->conf, typed);
    } else if (env->server && env->section) {
        /* The scalar keys are in fs->keys already (pw_source_new); the dialect is a section. */
        const json_t *dialect = json_object_get(env->section, "dialect");
        err = pw_conf_fill_scalars(dialect_map, dialect, &fs->keys.dialect) ? PW_ECONFIG : 0;
        if (err) {
            conf_err(errbuf, errlen, "servers.%s.dialect: a value has the wrong shape",
                     env->server->name);
        } else {
            err = conf_from_keys(&fs->conf, &fs->keys, env->server, env->codes, errbuf, errlen);
        }
        memset(&fs->keys, 0, sizeof(fs->keys)); /* its strings are the section's */
    } else {
        err = PW_EINVAL;
    }
    if (!err && (!fs->conf.name || !fs->conf.base || fs->conf.ntypes == 0)) {
        err = PW_EINVAL;
    }
    if (!err && env->writes) {
        fs->conf.writes = *env->writes;
    }
    if (fs->conf.pages_max == 0 || fs->conf.pages_max > PW_PAGES_PER_RUN_MAX) {
        fs->conf.pages_max = PW_PAGES_PER_RUN_MAX;
    }
    return err;
}

static void fs_close(void *ctx)
{
    struct pw_fhir_search *fs = ctx;
    pw_fhir_search_conf_cleanup(&fs->conf);
}

static const char *fs_stream_type(const void *ctx, size_t i)
{
    const struct pw_fhir_search *fs = ctx;
    return i < fs->conf.ntypes ? fs->conf.types[i].type : NULL;
}

/* A reload keeps what /metadata and the server's answers taught (its types are the new conf's). */
static void fs_adopt(void *ctx, const void *old)
{
    struct pw_fhir_search *fs = ctx;
    const struct pw_fhir_search *prev = old;
    fs->no_status_search = prev->no_status_search;
}

const struct pw_source_ops pw_source_fhir_search = {
    .adapter =
        {
            .name = "fhir-search",
            .config_map = config_map,
            .ctx_size = sizeof(struct pw_fhir_search),
            .help = "FHIR REST search, incremental by _lastUpdated, per patient and type",
        },
    .init = fs_init,
    .close = fs_close,
    .stream_type = fs_stream_type,
    .run_start = pw_fhir_search_run_start,
    .run_page_done = pw_fhir_search_run_page_done,
    .run_cleanup = pw_fhir_search_run_cleanup,
    .capability = pw_fhir_search_capability,
    .adopt = fs_adopt,
};
