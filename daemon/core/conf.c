/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Configuration core: checks the raw tree from conf_yaml.c against field tables, fills in
 * defaults, resolves paths and secrets, and offers the effective tree, its hash and typed views.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/conf_int.h"
#include "painwatch/array.h"
#include "painwatch/check.h"
#include "painwatch/conf_map.h"
#include "painwatch/err.h"
#include "painwatch/hex.h"
#include "painwatch/limits.h"
#include "painwatch/log.h"
#include "painwatch/metrics.h"

struct pw_conf {
    json_t *root;
    char *source;
    char hash[2 * 32 + 1];
    struct pw_conf_daemon daemon;
    void **allocs; /* arrays made by pw_conf_fill, freed with the conf */
    size_t n_allocs;
    size_t allocs_cap;
};

/* ---- errors and positions ------------------------------------------------------------------ */

void pw_conf_errors_cleanup(struct pw_conf_errors *errs)
{
    if (!errs) {
        return;
    }
    for (size_t i = 0; i < errs->n; i++) {
        free(errs->lines[i]);
    }
    free(errs->lines);
    memset(errs, 0, sizeof(*errs));
}

static void add_error(struct pw_conf_ctx *ctx, int line, int col, const char *path, const char *msg)
{
    struct pw_conf_errors *e = ctx->errs;
    char head[PW_CONF_PATH_MAX + 64];
    char *text;
    size_t len;

    e->count++;
    if (e->n >= PW_CONF_ERRORS_MAX) {
        return;
    }
    if (!e->lines) {
        e->lines = calloc(PW_CONF_ERRORS_MAX, sizeof(*e->lines));
        if (!e->lines) {
            return;
        }
    }
    if (line > 0) {
        snprintf(head, sizeof(head), ":%d:%d: %s%s", line, col, path, path[0] ? ": " : "");
    } else {
        snprintf(head, sizeof(head), ": %s%s", path, path[0] ? ": " : "");
    }
    len = strlen(ctx->name) + strlen(head) + strlen(msg) + 1;
    text = malloc(len);
    if (text) {
        snprintf(text, len, "%s%s%s", ctx->name, head, msg);
        e->lines[e->n++] = text;
    }
}

void pw_conf_error_pos(struct pw_conf_ctx *ctx, int line, int col, const char *path,
                       const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    add_error(ctx, line, col, path, msg);
}

int pw_conf_pos_set(struct pw_conf_ctx *ctx, const char *path, int line, int col, int kline,
                    int kcol, bool plain)
{
    json_t *p = json_pack("[iiiib]", line, col, kline, kcol, plain);

    return json_object_set_new(ctx->pos, path, p) ? PW_ENOMEM : 0;
}

bool pw_conf_pos_plain(const struct pw_conf_ctx *ctx, const char *path)
{
    const json_t *p = json_object_get(ctx->pos, path);

    return !p || json_is_true(json_array_get(p, 4));
}

/* Position of @p path, or of its closest ancestor that has one. */
static void lookup_pos(const struct pw_conf_ctx *ctx, const char *path, bool at_key, int *line,
                       int *col)
{
    char buf[PW_CONF_PATH_MAX];

    *line = 0;
    *col = 0;
    snprintf(buf, sizeof(buf), "%s", path);
    while (buf[0]) {
        const json_t *p = json_object_get(ctx->pos, buf);
        if (p) {
            size_t i = at_key ? 2 : 0;
            *line = (int)json_integer_value(json_array_get(p, i));
            *col = (int)json_integer_value(json_array_get(p, i + 1));
            return;
        }
        /* An ancestor's value position is where its mapping starts: the best we have. */
        at_key = false;
        char *cut = strrchr(buf, '.');
        char *br = strrchr(buf, '[');
        if (br && (!cut || br > cut)) {
            cut = br;
        }
        if (!cut) {
            break;
        }
        *cut = '\0';
    }
}

/* Format one error and place it at the key (@p at_key) or at the value of @p path. */
static void vreport(struct pw_conf_ctx *ctx, const char *path, bool at_key, const char *fmt,
                    va_list ap) __attribute__((format(printf, 4, 0)));

static void vreport(struct pw_conf_ctx *ctx, const char *path, bool at_key, const char *fmt,
                    va_list ap)
{
    char msg[1024];
    int line;
    int col;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    lookup_pos(ctx, path, at_key, &line, &col);
    add_error(ctx, line, col, path, msg);
}

static void report(struct pw_conf_ctx *ctx, const char *path, bool at_key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(struct pw_conf_ctx *ctx, const char *path, bool at_key, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(ctx, path, at_key, fmt, ap);
    va_end(ap);
}

void pw_conf_error_key(struct pw_conf_ctx *ctx, const char *path, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(ctx, path, true, fmt, ap);
    va_end(ap);
}

void pw_conf_error(struct pw_conf_ctx *ctx, const char *path, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(ctx, path, false, fmt, ap);
    va_end(ap);
}

void pw_conf_out_of_memory(struct pw_conf_ctx *ctx, const char *path)
{
    ctx->oom = true;
    pw_conf_error(ctx, path, "out of memory");
}

/* ---- scalar parsers ------------------------------------------------------------------------ */

int pw_conf_parse_duration(const char *text, int64_t *ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    int64_t total = 0;
    const char *p = text;

    if (!text || !*text) {
        return PW_EINVAL;
    }
    if (strcmp(text, "0") == 0) {
        *ms = 0;
        return 0;
    }
    while (*p) {
        char *end;
        size_t i;
        if (*p < '0' || *p > '9') {
            return PW_EINVAL;
        }
        long long n = strtoll(p, &end, 10);
        if (end == p || n < 0 || n > 1000000000LL) {
            return PW_EINVAL;
        }
        p = end;
        for (i = 0; i < PW_ARRAY_SIZE(units); i++) {
            size_t ul = strlen(units[i].unit);
            /* "m" must not swallow the "m" of "ms". */
            if (strncmp(p, units[i].unit, ul) == 0 && !(ul == 1 && p[0] == 'm' && p[1] == 's')) {
                break;
            }
        }
        if (i == PW_ARRAY_SIZE(units)) {
            return PW_EINVAL;
        }
        total += (int64_t)n * units[i].ms;
        if (total > (int64_t)1000 * 86400000) { /* 1000 days: past any sane setting */
            return PW_EINVAL;
        }
        p += strlen(units[i].unit);
    }
    *ms = total;
    return 0;
}

void pw_conf_format_duration(int64_t ms, char *buf, size_t size)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    size_t used = 0;

    if (size == 0) {
        return;
    }
    buf[0] = '\0';
    if (ms <= 0) {
        snprintf(buf, size, "0");
        return;
    }
    for (size_t i = 0; i < PW_ARRAY_SIZE(units) && ms > 0 && used < size; i++) {
        int64_t n = ms / units[i].ms;
        if (n > 0) {
            int w = snprintf(buf + used, size - used, "%lld%s", (long long)n, units[i].unit);
            if (w < 0) {
                return;
            }
            used += (size_t)w;
            ms -= n * units[i].ms;
        }
    }
}

static int parse_size(const char *text, int64_t *out)
{
    static const struct {
        const char *unit;
        int64_t mult;
    } units[] = {
        {"", 1},      {"B", 1},     {"KiB", 1024},   {"MiB", 1048576},  {"GiB", 1073741824},
        {"kB", 1000}, {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000}};
    char *end;
    long long n;

    if (!text || *text < '0' || *text > '9') {
        return PW_EINVAL;
    }
    n = strtoll(text, &end, 10);
    if (n < 0 || n > (1LL << 40)) {
        return PW_EINVAL;
    }
    for (size_t i = 0; i < PW_ARRAY_SIZE(units); i++) {
        if (strcmp(end, units[i].unit) == 0) {
            *out = (int64_t)n * units[i].mult;
            return 0;
        }
    }
    return PW_EINVAL;
}

static bool parse_int(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (!*s) {
        return false;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end) {
        return false;
    }
    *out = (int64_t)v;
    return true;
}

static bool parse_double(const char *s, double *out)
{
    char *end;
    double v;

    if (!*s) {
        return false;
    }
    errno = 0;
    v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) {
        return false;
    }
    *out = v;
    return true;
}

/* ---- paths and secrets --------------------------------------------------------------------- */

static char *join_path(const char *base, const char *rel)
{
    size_t len;
    char *out;

    if (rel[0] == '/' || !base || !base[0]) {
        return strdup(rel);
    }
    while (rel[0] == '.' && rel[1] == '/') {
        rel += 2;
    }
    len = strlen(base) + 1 + strlen(rel) + 1;
    out = malloc(len);
    if (out) {
        snprintf(out, len, "%s%s%s", base, base[strlen(base) - 1] == '/' ? "" : "/", rel);
    }
    return out;
}

static bool looks_inline_secret(const char *v)
{
    return strstr(v, "-----BEGIN") || strchr(v, '\n') || strchr(v, ' ') || strchr(v, '\t') ||
           strlen(v) > PATH_MAX;
}

/* Resolve and check a secret file. @return the absolute path (new string) or NULL (reported). */
static char *resolve_secret(struct pw_conf_ctx *ctx, const char *v, const char *path)
{
    struct stat st;
    char *abs;

    if (looks_inline_secret(v)) {
        report(ctx, path, false,
               "looks like an inline secret; secrets are never written in the configuration: "
               "give the path of a file holding it (or a systemd credential name)");
        return NULL;
    }
    if (!strchr(v, '/')) {
        const char *creds = getenv("CREDENTIALS_DIRECTORY");
        if (!creds || !creds[0]) {
            report(ctx, path, false,
                   "'%s' names a systemd credential but $CREDENTIALS_DIRECTORY is not set "
                   "(add LoadCredential=%s:/path to the unit, or give a path)",
                   v, v);
            return NULL;
        }
        abs = join_path(creds, v);
    } else {
        abs = join_path(ctx->base_dir, v);
    }
    if (!abs) {
        report(ctx, path, false, "out of memory");
        return NULL;
    }
    if (stat(abs, &st) != 0) {
        report(ctx, path, false, "secret file %s: %s", abs, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        report(ctx, path, false, "secret file %s is not a regular file", abs);
        goto fail;
    }
    if (st.st_mode & (S_IROTH | S_IWOTH)) {
        report(ctx, path, false, "file is world-%s (mode %04o): chmod o-rwx %s",
               (st.st_mode & S_IROTH) ? "readable" : "writable", (unsigned)(st.st_mode & 07777),
               abs);
        goto fail;
    }
    if (access(abs, R_OK) != 0) {
        report(ctx, path, false, "secret file %s: %s", abs, strerror(errno));
        goto fail;
    }
    if (st.st_size > (off_t)PW_SECRET_FILE_MAX) {
        report(ctx, path, false, "secret file %s is larger than %u bytes", abs, PW_SECRET_FILE_MAX);
        goto fail;
    }
    return abs;
fail:
    free(abs);
    return NULL;
}

static json_t *convert_path(struct pw_conf_ctx *ctx, const struct pw_conf_field *f, const char *v,
                            const char *path, bool explicit)
{
    struct stat st;
    const char *base =
        (f->flags & PW_CONF_F_STATE) && ctx->state_dir ? ctx->state_dir : ctx->base_dir;
    char *abs;
    json_t *out = NULL;

    if (!v[0]) {
        report(ctx, path, false, "empty path");
        return NULL;
    }
    abs = join_path(base, v);
    if (!abs) {
        report(ctx, path, false, "out of memory");
        return NULL;
    }
    /* Defaults are trusted (they may point at what the daemon creates); given values are checked.
     */
    if (explicit && (f->flags & PW_CONF_F_MUST_EXIST)) {
        if (stat(abs, &st) != 0) {
            report(ctx, path, false, "%s: %s", abs, strerror(errno));
            goto out;
        }
        if ((f->flags & PW_CONF_F_DIR) && !S_ISDIR(st.st_mode)) {
            report(ctx, path, false, "%s is not a directory", abs);
            goto out;
        }
        if (!(f->flags & PW_CONF_F_DIR) && !S_ISREG(st.st_mode)) {
            report(ctx, path, false, "%s is not a regular file", abs);
            goto out;
        }
        if (access(abs, R_OK) != 0) {
            report(ctx, path, false, "%s: %s", abs, strerror(errno));
            goto out;
        }
    }
    out = json_string(abs);
out:
    free(abs);
    return out;
}

/* ---- field conversion ---------------------------------------------------------------------- */

static const char *kind_of(const json_t *v)
{
    if (json_is_object(v)) {
        return "a mapping";
    }
    if (json_is_array(v)) {
        return "a list";
    }
    return "a scalar";
}

static const char *type_name(const struct pw_conf_field *f)
{
    switch (f->type) {
    case PW_CONF_BOOL:
        return "true or false";
    case PW_CONF_INT:
        return "an integer";
    case PW_CONF_DOUBLE:
        return "a number";
    case PW_CONF_DURATION:
        return "a duration like 500ms, 30s, 5m, 24h, 14d";
    case PW_CONF_SIZE:
        return "a size like 1048576, 64KiB, 16MiB";
    case PW_CONF_PATH:
    case PW_CONF_SECRET_PATH:
        return "a file path";
    case PW_CONF_STRLIST:
        return "a list of strings";
    case PW_CONF_SECTION:
    case PW_CONF_ADAPTER:
        return "a mapping";
    case PW_CONF_SECTION_LIST:
        return "a list of mappings";
    default:
        return "a string";
    }
}

static bool ranged(const struct pw_conf_field *f)
{
    return f->min < f->max;
}

static bool check_range(struct pw_conf_ctx *ctx, const struct pw_conf_field *f, double v,
                        const char *path, const char *shown)
{
    if (!ranged(f) || (v >= f->min && v <= f->max)) {
        return true;
    }
    if (f->type == PW_CONF_DURATION) {
        char lo[32];
        char hi[32];
        pw_conf_format_duration((int64_t)f->min, lo, sizeof(lo));
        pw_conf_format_duration((int64_t)f->max, hi, sizeof(hi));
        report(ctx, path, false, "%s is out of range: must be between %s and %s", shown, lo, hi);
    } else {
        report(ctx, path, false, "%s is out of range: must be between %g and %g", shown, f->min,
               f->max);
    }
    return false;
}

static json_t *convert(struct pw_conf_ctx *ctx, const struct pw_conf_field *f, const json_t *raw,
                       const char *path, bool explicit);
static json_t *check_table(struct pw_conf_ctx *ctx, const struct pw_conf_field *table,
                           pw_conf_check_fn *check, const json_t *raw, const char *path);
static json_t *check_adapter(struct pw_conf_ctx *ctx, const struct pw_conf_field *f,
                             const json_t *raw, const char *path);

static json_t *convert_scalar(struct pw_conf_ctx *ctx, const struct pw_conf_field *f, const char *s,
                              bool plain, const char *path, bool explicit)
{
    int64_t i;
    double d;

    switch (f->type) {
    case PW_CONF_BOOL:
        if (plain && (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))) {
            return json_true();
        }
        if (plain && (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))) {
            return json_false();
        }
        break;
    case PW_CONF_INT:
        if (plain && parse_int(s, &i)) {
            return check_range(ctx, f, (double)i, path, s) ? json_integer(i) : NULL;
        }
        break;
    case PW_CONF_DOUBLE:
        if (plain && parse_double(s, &d)) {
            return check_range(ctx, f, d, path, s) ? json_real(d) : NULL;
        }
        break;
    case PW_CONF_DURATION:
        if (pw_conf_parse_duration(s, &i) == 0) {
            char buf[64];
            pw_conf_format_duration(i, buf, sizeof(buf));
            return check_range(ctx, f, (double)i, path, s) ? json_string(buf) : NULL;
        }
        if (plain && parse_int(s, &i)) {
            report(ctx, path, false, "%s needs a unit (ms, s, m, h, d), e.g. %ss", s, s);
            return NULL;
        }
        break;
    case PW_CONF_SIZE:
        if (parse_size(s, &i) == 0) {
            return check_range(ctx, f, (double)i, path, s) ? json_integer(i) : NULL;
        }
        break;
    case PW_CONF_PATH:
        return convert_path(ctx, f, s, path, explicit);
    case PW_CONF_SECRET_PATH: {
        char *abs = resolve_secret(ctx, s, path);
        json_t *out = abs ? json_string(abs) : NULL;
        free(abs);
        return out;
    }
    case PW_CONF_ENUM:
        for (const char *const *a = f->allowed; a && *a; a++) {
            if (strcmp(*a, s) == 0) {
                return json_string(s);
            }
        }
        {
            char list[512] = "";
            for (const char *const *a = f->allowed; a && *a; a++) {
                size_t used = strlen(list);
                snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "", *a);
            }
            report(ctx, path, false, "'%s' is not one of: %s", s, list);
        }
        return NULL;
    default:
        return json_string(s);
    }
    report(ctx, path, false, "expected %s, got %s'%s'", type_name(f),
           plain ? "" : "the quoted string ", s);
    return NULL;
}

static json_t *convert_strlist(struct pw_conf_ctx *ctx, const struct pw_conf_field *f,
                               const json_t *raw, const char *path)
{
    json_t *out = json_array();
    size_t i;
    const json_t *item;

    if (!out) {
        return NULL;
    }
    json_array_foreach(raw, i, item)
    {
        char ipath[PW_CONF_PATH_MAX];
        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        if (!json_is_string(item) || !json_string_length(item)) {
            report(ctx, ipath, false, "expected a non-empty string, got %s",
                   json_is_string(item) || json_is_null(item) ? "nothing" : kind_of(item));
            json_decref(out);
            return NULL;
        }
        if (json_array_append(out, pw_conf_mut(item))) {
            pw_conf_out_of_memory(ctx, ipath);
            json_decref(out);
            return NULL;
        }
    }
    if (!check_range(ctx, f, (double)json_array_size(out), path, "the number of items")) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/*
 * Issue 20: a SECTION_LIST with a .kind (servers[]: the source adapters) is a list of adapter
 * sections whose keys sit beside the list's own (.sub, the kind's common keys): "type" picks the
 * adapter (default: the kind's first), its config_map adds keys at the same level.
 */
static json_t *check_adapter_item(struct pw_conf_ctx *ctx, const struct pw_conf_field *f,
                                  const json_t *item, const char *path)
{
    struct pw_adapter_kind kind = *f->kind;
    struct pw_conf_field g = *f;

    kind.common = f->sub;
    g.kind = &kind;
    g.def = kind.adapters[0] ? kind.adapters[0]->name : NULL;
    return check_adapter(ctx, &g, item, path);
}

static json_t *convert_section_list(struct pw_conf_ctx *ctx, const struct pw_conf_field *f,
                                    const json_t *raw, const char *path)
{
    json_t *out = json_array();
    size_t i;
    const json_t *item;
    bool ok = true;

    if (!out) {
        return NULL;
    }
    json_array_foreach(raw, i, item)
    {
        char ipath[PW_CONF_PATH_MAX];
        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        if (!json_is_object(item)) {
            report(ctx, ipath, false, "expected a mapping, got %s", kind_of(item));
            ok = false;
            continue;
        }
        json_t *sec = f->kind ? check_adapter_item(ctx, f, item, ipath)
                              : check_table(ctx, f->sub, f->check, item, ipath);
        if (!sec) {
            ok = false;
            continue;
        }
        if (json_array_append_new(out, sec)) {
            pw_conf_out_of_memory(ctx, ipath);
            ok = false;
        }
    }
    if (ok && !check_range(ctx, f, (double)json_array_size(raw), path, "the number of entries")) {
        ok = false;
    }
    if (!ok) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* Convert a raw value (present and not null) for field @p f. NULL: reported. */
static json_t *convert(struct pw_conf_ctx *ctx, const struct pw_conf_field *f, const json_t *raw,
                       const char *path, bool explicit)
{
    switch (f->type) {
    case PW_CONF_SECTION:
        if (!json_is_object(raw)) {
            report(ctx, path, false, "expected a mapping, got %s", kind_of(raw));
            return NULL;
        }
        return check_table(ctx, f->sub, f->check, raw, path);
    case PW_CONF_ADAPTER:
        if (!json_is_object(raw)) {
            report(ctx, path, false, "expected a mapping, got %s", kind_of(raw));
            return NULL;
        }
        return check_adapter(ctx, f, raw, path);
    case PW_CONF_SECTION_LIST:
    case PW_CONF_STRLIST:
        if (!json_is_array(raw)) {
            report(ctx, path, false, "expected %s, got %s", type_name(f), kind_of(raw));
            return NULL;
        }
        return f->type == PW_CONF_STRLIST ? convert_strlist(ctx, f, raw, path)
                                          : convert_section_list(ctx, f, raw, path);
    case PW_CONF_JSON:
        return f->convert ? f->convert(ctx, raw, path) : json_deep_copy(raw);
    default:
        if (!json_is_string(raw)) {
            report(ctx, path, false, "expected %s, got %s", type_name(f), kind_of(raw));
            return NULL;
        }
        return convert_scalar(ctx, f, json_string_value(raw), pw_conf_pos_plain(ctx, path), path,
                              explicit);
    }
}

/* Value for an absent (or null) key: its default, an empty container, or null. */
static json_t *absent(struct pw_conf_ctx *ctx, const struct pw_conf_field *f, const char *path)
{
    if (f->flags & PW_CONF_F_REQUIRED) {
        report(ctx, path, false, "required key is missing");
        return NULL;
    }
    switch (f->type) {
    case PW_CONF_SECTION:
        return check_table(ctx, f->sub, f->check, NULL, path);
    case PW_CONF_ADAPTER:
        return check_adapter(ctx, f, NULL, path);
    case PW_CONF_SECTION_LIST:
        if (ranged(f) && f->min > 0) {
            report(ctx, path, false, "at least %g entr%s required", f->min,
                   f->min == 1 ? "y is" : "ies are");
            return NULL;
        }
        return json_array();
    case PW_CONF_STRLIST: {
        json_t *out = json_array();
        char *copy = f->def ? strdup(f->def) : NULL;
        char *save = NULL;
        for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t;
             t = strtok_r(NULL, ",", &save)) {
            if (json_array_append_new(out, json_string(t))) {
                json_decref(out);
                out = NULL; /* check_table reports it */
                break;
            }
        }
        free(copy);
        return out;
    }
    case PW_CONF_JSON:
        return f->convert ? f->convert(ctx, NULL, path) : json_object();
    default:
        if (!f->def) {
            return json_null();
        }
        return convert_scalar(ctx, f, f->def, true, path, false);
    }
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a);
    size_t lb = strlen(b);
    size_t row[64];

    if (la >= 63 || lb >= 63) {
        return 99;
    }
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t sub = prev + (a[i - 1] != b[j - 1]);
            size_t best = row[j] + 1 < row[j - 1] + 1 ? row[j] + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            prev = cur;
        }
    }
    return row[lb];
}

static void report_unknown(struct pw_conf_ctx *ctx, const struct pw_conf_field *table,
                           const char *key, const char *path)
{
    const struct pw_conf_field *best = NULL;
    size_t best_d = 3;
    char want[PW_CONF_PATH_MAX];

    /* "private_key: ..." next to a "private_key_file" field is a secret written inline. */
    snprintf(want, sizeof(want), "%s_file", key);
    for (const struct pw_conf_field *f = table; f->name; f++) {
        if (f->type == PW_CONF_SECRET_PATH && strcmp(f->name, want) == 0) {
            report(ctx, path, true,
                   "secrets are not accepted inline; put the secret in a file (mode 0600) and "
                   "set %s to its path or to a systemd credential name",
                   want);
            return;
        }
        size_t d = edit_distance(key, f->name);
        if (d < best_d) {
            best_d = d;
            best = f;
        }
    }
    if (best) {
        report(ctx, path, true, "unknown key (did you mean '%s'?)", best->name);
    } else {
        report(ctx, path, true, "unknown key");
    }
}

/* Check @p raw (an object, or NULL when absent) against @p table; return the effective object. */
static json_t *check_table(struct pw_conf_ctx *ctx, const struct pw_conf_field *table,
                           pw_conf_check_fn *check, const json_t *raw, const char *path)
{
    json_t *eff = json_object();
    const char *key;
    const json_t *val;
    size_t before = ctx->errs->count;

    if (!eff) {
        pw_conf_out_of_memory(ctx, path);
        return NULL;
    }
    json_object_foreach(pw_conf_mut(raw), key, val)
    {
        const struct pw_conf_field *f = table;
        while (f->name && strcmp(f->name, key) != 0) {
            f++;
        }
        if (!f->name) {
            char kpath[PW_CONF_PATH_MAX];
            snprintf(kpath, sizeof(kpath), "%s%s%s", path, path[0] ? "." : "", key);
            report_unknown(ctx, table, key, kpath);
        }
    }
    for (const struct pw_conf_field *f = table; f->name; f++) {
        char kpath[PW_CONF_PATH_MAX];
        const json_t *rv = raw ? json_object_get(raw, f->name) : NULL;
        json_t *v;

        snprintf(kpath, sizeof(kpath), "%s%s%s", path, path[0] ? "." : "", f->name);
        size_t field_before = ctx->errs->count;
        v = rv && !json_is_null(rv) ? convert(ctx, f, rv, kpath, true) : absent(ctx, f, kpath);
        /* NULL without a reported error, or a failed insert, can only be an allocation. */
        if ((!v && ctx->errs->count == field_before) ||
            (v && json_object_set_new(eff, f->name, v))) {
            pw_conf_out_of_memory(ctx, kpath);
        }
    }
    /* Cross-field checks only make sense on a section whose fields all converted. */
    if (check && ctx->errs->count == before) {
        check(ctx, eff, path);
    }
    if (ctx->errs->count != before) {
        json_decref(eff);
        return NULL;
    }
    return eff;
}

/* ---- adapter sections (issue 20, conf_map.h) ------------------------------------------------ */

/*
 * One table for a section of @p f's kind: "type" (an enum of the registered names, default
 * f->def, required without one), the kind's common keys, then every key some adapter of the
 * kind declares (first declaration wins; "required" is checked for the chosen type only). Every
 * adapter's keys are accepted whatever the type, as the shared table of old did. Caller frees.
 */
static struct pw_conf_field *adapter_table(const struct pw_conf_field *f,
                                           const char *names[PW_ADAPTERS_MAX + 1])
{
    const struct pw_adapter_kind *kind = f->kind;
    size_t n = 2;
    size_t k = 0;
    struct pw_conf_field *t;

    for (const struct pw_conf_field *c = kind->common; c && c->name; c++) {
        n++;
    }
    for (size_t i = 0; i < PW_ADAPTERS_MAX && kind->adapters[i]; i++) {
        names[i] = kind->adapters[i]->name;
        names[i + 1] = NULL;
        for (const struct pw_conf_field *c = kind->adapters[i]->config_map; c && c->name; c++) {
            n++;
        }
    }
    t = calloc(n, sizeof(*t));
    if (!t) {
        return NULL;
    }
    t[k++] = (struct pw_conf_field){.name = "type",
                                    .type = PW_CONF_ENUM,
                                    .def = f->def,
                                    .flags = f->def ? 0 : PW_CONF_F_REQUIRED,
                                    .allowed = names,
                                    .offset = PW_CONF_NOFILL,
                                    .help = kind->type_help};
    for (const struct pw_conf_field *c = kind->common; c && c->name; c++) {
        t[k++] = *c;
    }
    for (size_t i = 0; i < PW_ADAPTERS_MAX && kind->adapters[i]; i++) {
        for (const struct pw_conf_field *c = kind->adapters[i]->config_map; c && c->name; c++) {
            size_t j = 0;
            while (j < k && strcmp(t[j].name, c->name) != 0) {
                j++;
            }
            if (j == k) {
                t[k] = *c;
                t[k++].flags &= ~PW_CONF_F_REQUIRED;
            }
        }
    }
    return t;
}

/* Check @p raw (an object, or NULL when absent) as a section of @p f's adapter kind. */
static json_t *check_adapter(struct pw_conf_ctx *ctx, const struct pw_conf_field *f,
                             const json_t *raw, const char *path)
{
    const char *names[PW_ADAPTERS_MAX + 1] = {NULL};
    struct pw_conf_field *table = adapter_table(f, names);
    size_t before = ctx->errs->count;
    const struct pw_adapter *a;
    json_t *eff;

    if (!table) {
        pw_conf_out_of_memory(ctx, path);
        return NULL;
    }
    eff = check_table(ctx, table, NULL, raw, path);
    free(table);
    if (!eff) {
        return NULL;
    }
    a = pw_adapter_find(f->kind, json_string_value(json_object_get(eff, "type")));
    for (const struct pw_conf_field *c = a ? a->config_map : NULL; c && c->name; c++) {
        if ((c->flags & PW_CONF_F_REQUIRED) && json_is_null(json_object_get(eff, c->name))) {
            char kpath[PW_CONF_PATH_MAX];
            snprintf(kpath, sizeof(kpath), "%s.%s", path, c->name);
            report(ctx, kpath, false, "required with type %s", a->name);
        }
    }
    /* Every field converted: the checks see a well-typed section (all problems at once). */
    if (a && a->check) {
        a->check(ctx, eff, path);
    }
    if (f->check) {
        f->check(ctx, eff, path);
    }
    if (ctx->errs->count != before) {
        json_decref(eff);
        return NULL;
    }
    return eff;
}

void pw_conf_need(struct pw_conf_ctx *ctx, const json_t *section, const char *path, const char *key,
                  const char *why)
{
    char kpath[PW_CONF_PATH_MAX];

    if (!json_string_value(json_object_get(section, key))) {
        snprintf(kpath, sizeof(kpath), "%s.%s", path, key);
        pw_conf_error(ctx, kpath, "required %s", why);
    }
}

/* ---- load ---------------------------------------------------------------------------------- */

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char cwd[PATH_MAX];

    if (path[0] == '/') {
        return strndup(path, slash == path ? 1 : (size_t)(slash - path));
    }
    if (!getcwd(cwd, sizeof(cwd))) {
        return NULL;
    }
    if (!slash) {
        return strdup(cwd);
    }
    size_t len = strlen(cwd) + 1 + (size_t)(slash - path) + 1;
    char *out = malloc(len);
    if (out) {
        snprintf(out, len, "%s/%.*s", cwd, (int)(slash - path), path);
    }
    return out;
}

/* state_dir when the file does not set it: systemd's StateDirectory=, else ./painwatch-state. */
static int default_state_dir(json_t *raw)
{
    const char *sd = getenv("STATE_DIRECTORY");
    char buf[PATH_MAX];
    const json_t *given = json_object_get(raw, "state_dir");

    if (given && !json_is_null(given)) {
        return 0;
    }
    if (sd && sd[0]) {
        /* StateDirectory= with several entries gives a colon-separated list; ours is first. */
        snprintf(buf, sizeof(buf), "%.*s", (int)strcspn(sd, ":"), sd);
    } else {
        char cwd[PATH_MAX - 32];
        if (!getcwd(cwd, sizeof(cwd))) {
            return PW_EIO;
        }
        snprintf(buf, sizeof(buf), "%s/painwatch-state", cwd);
    }
    return json_object_set_new(raw, "state_dir", json_string(buf)) ? PW_ENOMEM : 0;
}

/* json_dump_callback sink that hashes the canonical text as it is produced. */
struct hash_sink {
    EVP_MD_CTX *md;
    bool failed;
};

static int hash_chunk(const char *buf, size_t size, void *arg)
{
    struct hash_sink *sink = arg;

    if (!EVP_DigestUpdate(sink->md, buf, size)) {
        sink->failed = true;
        return -1;
    }
    return 0;
}

/*
 * SHA-256 over the canonical text (compact, sorted keys, ASCII). Streamed through a callback
 * rather than json_dumps(): jansson 2.14 (Debian 12) returns a corrupted dump when one of its
 * internal buffer allocations fails (an object key goes missing; seen with a failing allocator),
 * and this hash is evidence in the audit trail.
 */
static int compute_hash(struct pw_conf *conf)
{
    struct hash_sink sink = {.md = EVP_MD_CTX_new()};
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int rc;

    if (!sink.md || !EVP_DigestInit_ex(sink.md, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(sink.md);
        return PW_ENOMEM;
    }
    rc = json_dump_callback(conf->root, hash_chunk, &sink,
                            JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    if (rc || sink.failed || !EVP_DigestFinal_ex(sink.md, md, &mdlen) || mdlen != 32) {
        EVP_MD_CTX_free(sink.md);
        return PW_ENOMEM;
    }
    EVP_MD_CTX_free(sink.md);
    pw_hex_encode(md, mdlen, conf->hash);
    return 0;
}

int pw_conf_load_string(struct pw_conf **out, const char *name, const char *base_dir,
                        const char *text, size_t len, struct pw_conf_errors *errs)
{
    struct pw_conf_errors local = {0};
    struct pw_conf_ctx ctx = {.name = name, .errs = errs ? errs : &local};
    char cwd[PATH_MAX];
    json_t *raw = NULL;
    struct pw_conf *conf = NULL;
    int err;

    *out = NULL;
    if (errs) {
        memset(errs, 0, sizeof(*errs));
    }
    if (!base_dir) {
        base_dir = getcwd(cwd, sizeof(cwd)) ? cwd : ".";
    }
    ctx.base_dir = base_dir;
    ctx.pos = json_object();
    conf = calloc(1, sizeof(*conf));
    if (!ctx.pos || !conf || !(conf->source = strdup(name))) {
        err = PW_ENOMEM;
        goto fail;
    }
    if (len > PW_CONFIG_FILE_MAX) {
        pw_conf_error_pos(&ctx, 0, 0, "", "larger than %u bytes", PW_CONFIG_FILE_MAX);
        err = PW_E2BIG;
        goto fail;
    }
    err = pw_conf_yaml_parse(&ctx, text, len, &raw);
    if (!err) {
        err = default_state_dir(raw);
    }
    if (err) {
        goto fail;
    }
    /* state_dir first: PW_CONF_F_STATE paths elsewhere resolve against it. */
    /* A state_dir of the wrong type is reported once, by check_table below. */
    const json_t *raw_sd = json_object_get(raw, "state_dir");
    json_t *sd = json_is_string(raw_sd)
                     ? convert(&ctx, &pw_conf_schema[0], raw_sd, "state_dir", false)
                     : NULL;
    PW_REQUIRE(strcmp(pw_conf_schema[0].name, "state_dir") == 0);
    if (json_is_string(raw_sd) && !sd && !ctx.errs->count) {
        pw_conf_out_of_memory(&ctx, "state_dir");
    }
    ctx.state_dir = json_string_value(sd);
    conf->root = check_table(&ctx, pw_conf_schema, pw_conf_check_top, raw, "");
    json_decref(sd);
    if (!conf->root || ctx.errs->count) {
        err = ctx.oom ? PW_ENOMEM : PW_ECONFIG;
        goto fail;
    }
    err = compute_hash(conf);
    if (!err) {
        err = pw_conf_fill(conf, pw_conf_schema, conf->root, &conf->daemon);
    }
    if (err) {
        goto fail;
    }
    json_decref(raw);
    json_decref(ctx.pos);
    pw_conf_errors_cleanup(&local);
    *out = conf;
    return 0;
fail:
    json_decref(raw);
    json_decref(ctx.pos);
    pw_conf_errors_cleanup(&local);
    pw_conf_free(conf);
    return err;
}

int pw_conf_load_file(struct pw_conf **out, const char *path, struct pw_conf_errors *errs)
{
    FILE *f = NULL;
    char *text = NULL;
    char *dir = NULL;
    size_t len;
    int err;

    *out = NULL;
    if (errs) {
        memset(errs, 0, sizeof(*errs));
    }
    f = fopen(path, "rb");
    if (!f) {
        err = errno == ENOENT ? PW_ENOENT : errno == EACCES ? PW_EACCES : PW_EIO;
        goto report;
    }
    text = malloc(PW_CONFIG_FILE_MAX + 1);
    if (!text) {
        err = PW_ENOMEM;
        goto out;
    }
    len = fread(text, 1, PW_CONFIG_FILE_MAX + 1, f);
    if (ferror(f)) {
        err = PW_EIO;
        goto report;
    }
    if (len > PW_CONFIG_FILE_MAX) {
        err = PW_E2BIG;
        goto report;
    }
    dir = dir_of(path);
    err = dir ? pw_conf_load_string(out, path, dir, text, len, errs) : PW_ENOMEM;
    goto out;
report:
    if (errs) {
        struct pw_conf_ctx ctx = {.name = path, .errs = errs};
        pw_conf_error_pos(&ctx, 0, 0, "", "cannot read: %s",
                          err == PW_E2BIG ? "larger than the 1 MiB cap" : pw_strerror(err));
    }
out:
    if (f) {
        fclose(f);
    }
    free(text);
    free(dir);
    return err;
}

int pw_conf_reload(struct pw_conf **conf, const char *path, struct pw_conf **old)
{
    struct pw_conf_errors errs = {0};
    struct pw_conf *fresh = NULL;
    int err = pw_conf_load_file(&fresh, path, &errs);

    *old = NULL;
    if (err) {
        /* Key paths and file positions only: a configuration carries no patient data. */
        for (size_t i = 0; i < errs.n; i++) {
            pw_log_err(CONF, "%s", errs.lines[i]);
        }
        pw_log_err(CONF, "reload of %s refused (%zu error%s): keeping the running configuration",
                   path, errs.count, errs.count == 1 ? "" : "s");
        pw_metric_inc(PW_M_CONFIG_RELOADS, "error", NULL);
        pw_conf_errors_cleanup(&errs);
        return err;
    }
    pw_conf_errors_cleanup(&errs);
    *old = *conf;
    *conf = fresh;
    pw_log_notice(CONF, "reloaded %s (sha256:%s)", path, pw_conf_hash(fresh));
    pw_metric_inc(PW_M_CONFIG_RELOADS, "ok", NULL);
    return 0;
}

void pw_conf_free(struct pw_conf *conf)
{
    if (!conf) {
        return;
    }
    for (size_t i = 0; i < conf->n_allocs; i++) {
        free(conf->allocs[i]);
    }
    free(conf->allocs);
    json_decref(conf->root);
    free(conf->source);
    free(conf);
}

/* ---- access -------------------------------------------------------------------------------- */

const json_t *pw_conf_root(const struct pw_conf *conf)
{
    return conf->root;
}

const char *pw_conf_hash(const struct pw_conf *conf)
{
    return conf->hash;
}

const char *pw_conf_source(const struct pw_conf *conf)
{
    return conf->source;
}

const struct pw_conf_daemon *pw_conf_daemon(const struct pw_conf *conf)
{
    return &conf->daemon;
}

const json_t *pw_conf_get(const struct pw_conf *conf, const char *path)
{
    const json_t *node = conf->root;
    const char *p = path;

    while (node && *p) {
        if (*p == '[') {
            char *end;
            unsigned long idx = strtoul(p + 1, &end, 10);
            if (*end != ']') {
                return NULL;
            }
            node = json_array_get(node, idx);
            p = end + 1;
        } else {
            size_t n = strcspn(p, ".[");
            char key[PW_CONF_PATH_MAX];
            if (n >= sizeof(key)) {
                return NULL;
            }
            memcpy(key, p, n);
            key[n] = '\0';
            node = json_object_get(node, key);
            p += n;
        }
        if (*p == '.') {
            p++;
        }
    }
    return node;
}

static void mask_tree(json_t *eff, const struct pw_conf_field *table)
{
    for (const struct pw_conf_field *f = table; f && f->name; f++) {
        json_t *v = json_object_get(eff, f->name);
        size_t i;
        json_t *item;
        if (!v) {
            continue;
        }
        if ((f->flags & PW_CONF_F_MASK) && !json_is_null(v)) {
            json_object_set_new(eff, f->name, json_string("********"));
        } else if (f->type == PW_CONF_SECTION) {
            mask_tree(v, f->sub);
        } else if (f->type == PW_CONF_ADAPTER) {
            mask_tree(v, f->kind->common);
            for (size_t a = 0; a < PW_ADAPTERS_MAX && f->kind->adapters[a]; a++) {
                mask_tree(v, f->kind->adapters[a]->config_map);
            }
        } else if (f->type == PW_CONF_SECTION_LIST) {
            json_array_foreach(v, i, item)
            {
                mask_tree(item, f->sub);
            }
        }
    }
}

char *pw_conf_dump(const struct pw_conf *conf, bool mask)
{
    json_t *copy = json_deep_copy(conf->root);
    char *out;

    if (!copy) {
        return NULL;
    }
    if (mask) {
        mask_tree(copy, pw_conf_schema);
    }
    out = json_dumps(copy, JSON_INDENT(2));
    json_decref(copy);
    return out;
}

/* ---- typed fill ---------------------------------------------------------------------------- */

static void *arena_calloc(struct pw_conf *conf, size_t n, size_t size)
{
    void *p;

    if (pw_array_reserve(&conf->allocs, &conf->allocs_cap, conf->n_allocs + 1,
                         sizeof(*conf->allocs)) != 0) {
        return NULL;
    }
    p = calloc(n ? n : 1, size);
    if (p) {
        conf->allocs[conf->n_allocs++] = p;
    }
    return p;
}

static int fill_list(struct pw_conf *conf, const struct pw_conf_field *f, const json_t *v,
                     char *dst)
{
    size_t n = json_array_size(v);

    if (f->type == PW_CONF_STRLIST) {
        const char **arr = arena_calloc(conf, n + 1, sizeof(*arr));
        if (!arr) {
            return PW_ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            arr[i] = json_string_value(json_array_get(v, i));
        }
        *(const char ***)(void *)dst = arr;
    } else {
        char *arr = arena_calloc(conf, n, f->elem_size);
        if (!arr) {
            return PW_ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            int err = pw_conf_fill(conf, f->sub, json_array_get(v, i), arr + i * f->elem_size);
            if (err) {
                return err;
            }
        }
        *(void **)(void *)dst = arr;
    }
    return 0;
}

int pw_conf_fill(struct pw_conf *conf, const struct pw_conf_field *table, const json_t *section,
                 void *out)
{
    char *base = out;

    for (const struct pw_conf_field *f = table; f->name; f++) {
        const json_t *v = json_object_get(section, f->name);
        char *dst;
        int64_t ms = 0;
        int err = 0;

        if (f->offset == PW_CONF_NOFILL) {
            continue;
        }
        dst = base + f->offset;
        switch (f->type) {
        case PW_CONF_BOOL:
            *(bool *)(void *)dst = json_is_true(v);
            break;
        case PW_CONF_INT:
        case PW_CONF_SIZE:
            *(int64_t *)(void *)dst = json_integer_value(v);
            break;
        case PW_CONF_DOUBLE:
            *(double *)(void *)dst = json_number_value(v);
            break;
        case PW_CONF_DURATION:
            if (json_is_string(v)) {
                pw_conf_parse_duration(json_string_value(v), &ms);
            }
            *(int64_t *)(void *)dst = ms;
            break;
        case PW_CONF_SECTION:
            err = pw_conf_fill(conf, f->sub, v, dst);
            break;
        case PW_CONF_STRLIST:
        case PW_CONF_SECTION_LIST:
            err = fill_list(conf, f, v, dst);
            if (f->count_offset != PW_CONF_NOFILL) {
                *(size_t *)(void *)(base + f->count_offset) = json_array_size(v);
            }
            break;
        case PW_CONF_JSON:
            *(const json_t **)(void *)dst = v;
            break;
        case PW_CONF_ADAPTER:
            *(struct pw_conf_adapter_ref *)(void *)dst = (struct pw_conf_adapter_ref){
                .type = json_string_value(json_object_get(v, "type")), .section = v};
            break;
        default:
            *(const char **)(void *)dst = json_string_value(v);
            break;
        }
        if (err) {
            return err;
        }
    }
    return 0;
}
