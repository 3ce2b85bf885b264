/* SPDX-License-Identifier: Apache-2.0 */
/* FHIR JSON helpers: date/time parsing without the C library's time zone state, references. */
#include "painwatch/fhir.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "painwatch/datetime.h"
#include "painwatch/err.h"

int pw_fhir_parse_time(const char *s, int64_t *out)
{
    int64_t ms;
    int err = pw_time_parse(s, PW_TIME_PARTIAL | PW_TIME_LAX, &ms);
    if (!err) {
        *out = pw_time_ms_to_s(ms);
    }
    return err;
}

void pw_fhir_format_time(int64_t t, char *buf, size_t n)
{
    pw_time_format(t * 1000, 0, buf, n);
}

int pw_fhir_instant_parse(const char *s, int64_t *out_ms)
{
    return pw_time_parse(s, PW_TIME_PARTIAL | PW_TIME_ZONE, out_ms);
}

void pw_fhir_instant_format(int64_t ms, char *buf, size_t len)
{
    pw_time_format(ms, PW_TIME_FMT_MS, buf, len);
}

const char *pw_fhir_str(const json_t *obj, const char *key)
{
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

bool pw_fhir_num(const json_t *obj, const char *key, double *out)
{
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return true;
    }
    if (json_is_string(v)) {
        /* Some servers send decimals as strings to keep their precision. */
        const char *s = json_string_value(v);
        char *end;
        double d = strtod(s, &end);
        if (end != s && *end == '\0') {
            *out = d;
            return true;
        }
    }
    return false;
}

void pw_fhir_copy(char *dst, size_t n, const char *src)
{
    if (n == 0) {
        return;
    }
    size_t len = src ? strlen(src) : 0;
    if (len >= n) {
        len = n - 1;
    }
    if (len) {
        memcpy(dst, src, len);
    }
    dst[len] = '\0';
}

void pw_fhir_join(char *dst, size_t n, const char *a, const char *sep, const char *b)
{
    const char *parts[3] = {a, sep, b};
    size_t at = 0;

    if (n == 0) {
        return;
    }
    for (size_t k = 0; k < 3; k++) {
        size_t len = parts[k] ? strlen(parts[k]) : 0;
        if (len > n - 1 - at) {
            len = n - 1 - at;
        }
        memcpy(dst + at, parts[k] ? parts[k] : "", len);
        at += len;
    }
    dst[at] = '\0';
}

void pw_fhir_ref_of(const json_t *res, struct pw_ref *out)
{
    pw_fhir_copy(out->type, sizeof(out->type), pw_fhir_str(res, "resourceType"));
    pw_fhir_copy(out->id, sizeof(out->id), pw_fhir_str(res, "id"));
    const json_t *meta = json_is_object(res) ? json_object_get(res, "meta") : NULL;
    pw_fhir_copy(out->version, sizeof(out->version), pw_fhir_str(meta, "versionId"));
}

bool pw_fhir_cc_has(const json_t *cc, const char *system, const char *code)
{
    const json_t *codings = json_is_object(cc) ? json_object_get(cc, "coding") : NULL;
    size_t i;
    const json_t *c;
    json_array_foreach(codings, i, c)
    {
        const char *sys = pw_fhir_str(c, "system");
        const char *cd = pw_fhir_str(c, "code");
        if (cd && strcmp(cd, code) == 0 &&
            (system == NULL || *system == '\0' || (sys && strcmp(sys, system) == 0))) {
            return true;
        }
    }
    return false;
}

const json_t *pw_resolve(const struct pw_resolver *r, const char *reference)
{
    if (r == NULL || r->resolve == NULL || reference == NULL) {
        return NULL;
    }
    return r->resolve(r, reference);
}

static bool is_type_name(const char *s, size_t n)
{
    if (n == 0 || !isupper((unsigned char)s[0])) {
        return false;
    }
    for (size_t i = 1; i < n; i++) {
        if (!isalpha((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

int pw_fhir_ref_relative(const char *reference, char *out, size_t n)
{
    if (reference == NULL || *reference == '#' || strncmp(reference, "urn:", 4) == 0) {
        return PW_EINVAL;
    }
    char buf[PW_REF_MAX * 2];
    pw_fhir_copy(buf, sizeof(buf), reference);
    char *hist = strstr(buf, "/_history/");
    if (hist != NULL) {
        *hist = '\0';
    }
    /* The last two segments are Type/id, whatever base URL precedes them. */
    char *slash = strrchr(buf, '/');
    if (slash == NULL || slash[1] == '\0') {
        return PW_EINVAL;
    }
    char *type = slash;
    while (type > buf && type[-1] != '/') {
        type--;
    }
    if (!is_type_name(type, (size_t)(slash - type))) {
        return PW_EINVAL;
    }
    if (strlen(type) >= n) {
        return PW_E2BIG;
    }
    memcpy(out, type, strlen(type) + 1);
    return 0;
}

struct pw_fhir_index {
    json_t *map; /* key -> resource (a reference held) */
};

int pw_fhir_index_new(struct pw_fhir_index **out)
{
    struct pw_fhir_index *idx = calloc(1, sizeof(*idx));
    if (idx == NULL) {
        return PW_ENOMEM;
    }
    idx->map = json_object();
    if (idx->map == NULL) {
        free(idx);
        return PW_ENOMEM;
    }
    *out = idx;
    return 0;
}

void pw_fhir_index_free(struct pw_fhir_index *idx)
{
    if (idx == NULL) {
        return;
    }
    json_decref(idx->map);
    free(idx);
}

int pw_fhir_index_add(struct pw_fhir_index *idx, const char *full_url, json_t *res)
{
    if (full_url != NULL && *full_url != '\0') {
        if (json_object_set(idx->map, full_url, res) < 0) {
            return PW_ENOMEM;
        }
    }
    const char *type = pw_fhir_str(res, "resourceType");
    const char *id = pw_fhir_str(res, "id");
    if (type != NULL && id != NULL) {
        char key[PW_REF_MAX];
        snprintf(key, sizeof(key), "%s/%s", type, id);
        if (json_object_set(idx->map, key, res) < 0) {
            return PW_ENOMEM;
        }
    }
    return 0;
}

const json_t *pw_fhir_index_get(const struct pw_fhir_index *idx, const char *reference)
{
    if (idx == NULL || reference == NULL) {
        return NULL;
    }
    const json_t *r = json_object_get(idx->map, reference);
    if (r != NULL) {
        return r;
    }
    char rel[PW_REF_MAX];
    if (pw_fhir_ref_relative(reference, rel, sizeof(rel)) == 0) {
        return json_object_get(idx->map, rel);
    }
    return NULL;
}

static const json_t *index_resolve(const struct pw_resolver *self, const char *reference)
{
    return pw_fhir_index_get(self->arg, reference);
}

void pw_fhir_index_resolver(struct pw_fhir_index *idx, struct pw_resolver *out)
{
    out->resolve = index_resolve;
    out->arg = idx;
}

bool pw_fhir_id_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    return n >= 1 && n <= 64 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.") == n;
}
