/* SPDX-License-Identifier: Apache-2.0 */
/* The metrics registry: fixed-capacity families of labelled series behind one mutex. */
#include "painwatch/metrics.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "painwatch/array.h"
#include "painwatch/check.h"
#include "painwatch/err.h"
#include "painwatch/limits.h"
#include "painwatch/log.h"

struct series {
    char *key;       /* label values joined by '\x1f' (a byte no value may contain) */
    double value;    /* a histogram's: the count of observations */
    double *buckets; /* histograms: observations per bucket of hist_le (not cumulative) */
    double sum;      /* histograms: the sum of observations */
};

/* Histogram bucket bounds (seconds: HTTP latency, from a loopback answer to a slow search). */
static const double hist_le[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

struct family {
    char *name;
    char *help;
    enum pw_metric_type type;
    size_t n_labels;
    char *labels[PW_METRIC_LABELS_MAX];
    struct series *series;
    size_t n_series;
    size_t cap_series;
    bool builtin;
    bool age; /* issue 19: values are Unix times, rendered as seconds since (lag at scrape) */
};

static const struct {
    const char *name;
    enum pw_metric_type type;
    const char *labels;
    const char *help;
} builtins[] = {
    {PW_M_BUILD_INFO, PW_METRIC_GAUGE, "version", "painwatch build; the value is always 1"},
    {PW_M_START_TIME, PW_METRIC_GAUGE, "", "Unix time the process started"},
    {PW_M_HTTP_REQUESTS, PW_METRIC_COUNTER, "server,status",
     "HTTP requests to FHIR servers by outcome (status code, timeout or error)"},
    {PW_M_AUTH_FAILURES, PW_METRIC_COUNTER, "server", "failed token requests and 401 responses"},
    {PW_M_SERVER_UP, PW_METRIC_GAUGE, "server", "1 while the server is healthy, 0 when failing"},
    {PW_M_SYNC_LAG, PW_METRIC_GAUGE, "server,resource",
     "seconds between now and the sync cursor (newest meta.lastUpdated received)"},
    {PW_M_SYNC_LAST_SUCCESS, PW_METRIC_GAUGE, "server", "Unix time of the last complete sync"},
    {PW_M_INGESTED, PW_METRIC_COUNTER, "server,resource", "resources received and stored"},
    {PW_M_FINDINGS, PW_METRIC_COUNTER, "rule", "findings raised by rule"},
    {PW_M_FLAGS_CREATED, PW_METRIC_COUNTER, "rule", "Flags created in the EHR (or file sink)"},
    {PW_M_FLAGS_RESOLVED, PW_METRIC_COUNTER, "rule", "Flags set inactive because resolved"},
    {PW_M_OUTBOX_DEPTH, PW_METRIC_GAUGE, "server",
     "writes waiting in the outbox (pending or retry), by the server they go to"},
    {PW_M_DEAD_LETTERS, PW_METRIC_GAUGE, "server",
     "writes rejected by the server, kept for review"},
    {PW_M_AUDIT_RECORDS, PW_METRIC_COUNTER, "", "audit records written and synced"},
    {PW_M_AUDIT_WRITABLE, PW_METRIC_GAUGE, "", "1 while the audit trail accepts records"},
    {PW_M_CONFIG_RELOADS, PW_METRIC_COUNTER, "result",
     "configuration reloads by result (ok, error)"},
    {PW_M_SYNC_PAGE_FAILURES, PW_METRIC_COUNTER, "server",
     "sync runs ended by a page that could not be used (not JSON even at _count=1, not a Bundle)"},
    {PW_M_UNREADABLE, PW_METRIC_COUNTER, "server,resource",
     "resources skipped because a value could not be read (number out of range, bad UTF-8)"},
    /* issue 19 */
    {PW_M_WRITES_PAUSED, PW_METRIC_GAUGE, "",
     "1 while EHR writes are paused (painwatch writes pause)"},
    {PW_M_SHADOW_MODE, PW_METRIC_GAUGE, "", "1 while findings go to the shadow file, not the EHR"},
    {PW_M_PROCESS_CPU, PW_METRIC_COUNTER, "", "user and system CPU time spent, in seconds"},
    {PW_M_PROCESS_RSS, PW_METRIC_GAUGE, "", "resident memory size in bytes"},
    {PW_M_PROCESS_FDS, PW_METRIC_GAUGE, "", "open file descriptors"},
    {PW_M_PROCESS_MAX_FDS, PW_METRIC_GAUGE, "", "the open file descriptor limit"},
    {PW_M_PROCESS_START, PW_METRIC_GAUGE, "", "Unix time the process started, in seconds"},
    {PW_M_HTTP_DURATION, PW_METRIC_HISTOGRAM, "server,operation",
     "HTTP exchange time with FHIR servers and token endpoints, by operation (search, read, "
     "create, update, metadata, token)"},
    {PW_M_DATA_QUALITY, PW_METRIC_COUNTER, "code",
     "data-quality events recorded in the audit trail (once per episode of an event), by code"},
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct family families[PW_METRIC_FAMILIES_MAX];
static size_t n_families;
static bool initialized;

static bool valid_name(const char *s, bool label)
{
    if (!s || !*s) {
        return false;
    }
    for (const char *p = s; *p; p++) {
        bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                     (!label && *p == ':');
        if (!alpha && !(p != s && *p >= '0' && *p <= '9')) {
            return false;
        }
    }
    return true;
}

static struct family *find_family(const char *name)
{
    for (size_t i = 0; i < n_families; i++) {
        if (strcmp(families[i].name, name) == 0) {
            return &families[i];
        }
    }
    return NULL;
}

static void free_family(struct family *f)
{
    for (size_t i = 0; i < f->n_series; i++) {
        free(f->series[i].key);
        free(f->series[i].buckets);
    }
    free(f->series);
    for (size_t i = 0; i < f->n_labels; i++) {
        free(f->labels[i]);
    }
    free(f->name);
    free(f->help);
    memset(f, 0, sizeof(*f));
}

/* Called with the lock held. */
static int register_locked(const char *name, enum pw_metric_type type, const char *help,
                           const char *labels, bool builtin)
{
    struct family *f = find_family(name);
    char buf[256];
    size_t n = 0;

    if (f) {
        return f->type == type ? 0 : PW_EEXIST;
    }
    if (!valid_name(name, false) || !help || strlen(labels) >= sizeof(buf)) {
        return PW_EINVAL;
    }
    if (n_families == PW_METRIC_FAMILIES_MAX) {
        return PW_E2BIG;
    }
    f = &families[n_families];
    snprintf(buf, sizeof(buf), "%s", labels);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == PW_METRIC_LABELS_MAX || !valid_name(t, true) || !(f->labels[n] = strdup(t))) {
            free_family(f);
            return n == PW_METRIC_LABELS_MAX ? PW_E2BIG : PW_EINVAL;
        }
        f->n_labels = ++n;
    }
    f->name = strdup(name);
    f->help = strdup(help);
    if (!f->name || !f->help) {
        free_family(f);
        return PW_ENOMEM;
    }
    f->type = type;
    f->builtin = builtin;
    n_families++;
    return 0;
}

static void set_locked(const char *name, double value, const char *v1);
static void init_locked(void);

/* ---- process_* (issue 19): the names every Prometheus client library exports --------------- */

/* The process's start: /proc/self/stat field 22 (clock ticks after boot) + btime of /proc/stat. */
static double process_start_time(void)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    unsigned long long ticks = 0;
    unsigned long long btime = 0;
    const char *p;

    if (f) {
        fclose(f);
    }
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the command name may hold spaces: fields count from after it */
    for (int field = 2; p && *p && field < 22; p++) {
        if (*p == ' ') {
            field++;
        }
    }
    if (p) {
        ticks = strtoull(p, NULL, 10);
    }
    f = fopen("/proc/stat", "r");
    while (f && fgets(buf, sizeof(buf), f)) {
        if (strncmp(buf, "btime ", 6) == 0) {
            btime = strtoull(buf + 6, NULL, 10);
        }
    }
    if (f) {
        fclose(f);
    }
    if (!btime || !ticks) {
        return (double)time(NULL);
    }
    return (double)btime + (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

/* An unlabelled series, counter or gauge (the registry's own values: no type check). */
static void set_plain(const char *name, double value)
{
    struct family *f;

    pthread_mutex_lock(&lock);
    init_locked();
    f = find_family(name);
    if (f && f->n_series) {
        f->series[0].value = value;
    } else {
        set_locked(name, value, NULL);
    }
    pthread_mutex_unlock(&lock);
}

static void process_collect(void)
{
    struct rusage ru;
    struct rlimit rl;
    long pages = 0;
    double fds = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    DIR *dir;

    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        set_plain(PW_M_PROCESS_CPU, (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                                        (double)ru.ru_stime.tv_sec +
                                        (double)ru.ru_stime.tv_usec / 1e6);
    }
    if (f) {
        if (fscanf(f, "%*s %ld", &pages) == 1) {
            set_plain(PW_M_PROCESS_RSS, (double)pages * (double)sysconf(_SC_PAGESIZE));
        }
        fclose(f);
    }
    dir = opendir("/proc/self/fd");
    if (dir) {
        for (struct dirent *e; (e = readdir(dir));) {
            fds += e->d_name[0] != '.';
        }
        closedir(dir);
        set_plain(PW_M_PROCESS_FDS, fds - 1); /* less the one opendir holds */
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        set_plain(PW_M_PROCESS_MAX_FDS,
                  rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
    }
}

static void init_locked(void)
{
    if (initialized) {
        return;
    }
    initialized = true;
    for (size_t i = 0; i < PW_ARRAY_SIZE(builtins); i++) {
        register_locked(builtins[i].name, builtins[i].type, builtins[i].help, builtins[i].labels,
                        true);
    }
    /* Set as Unix times, rendered as seconds since (see struct family). */
    struct family *lag = find_family(PW_M_SYNC_LAG);
    if (lag) {
        lag->age = true;
    }
    set_locked(PW_M_BUILD_INFO, 1, PW_VERSION);
    set_locked(PW_M_START_TIME, (double)time(NULL), NULL);
    set_locked(PW_M_PROCESS_START, process_start_time(), NULL);
}

int pw_metric_register(const char *name, enum pw_metric_type type, const char *help,
                       const char *labels)
{
    int err;

    pthread_mutex_lock(&lock);
    init_locked();
    err = register_locked(name, type, help, labels ? labels : "", false);
    pthread_mutex_unlock(&lock);
    return err;
}

/*
 * Find or create the series named by the label values in @p ap. NULL when the call is wrong
 * (reported) or the family is full. Called with the lock held.
 */
static struct series *series_locked(struct family *f, const char *first, va_list ap)
{
    char key[PW_METRIC_LABELS_MAX * (PW_METRIC_VALUE_MAX + 1)];
    size_t used = 0;
    size_t n = 0;

    key[0] = '\0';
    for (const char *v = first; v; v = va_arg(ap, const char *)) {
        size_t len = strlen(v);
        if (PW_CHECK(n < f->n_labels) || PW_CHECK(len < PW_METRIC_VALUE_MAX) ||
            PW_CHECK(!strchr(v, '\x1f'))) {
            return NULL;
        }
        if (n) {
            key[used++] = '\x1f';
        }
        memcpy(key + used, v, len + 1);
        used += len;
        n++;
    }
    if (PW_CHECK(n == f->n_labels)) {
        return NULL;
    }
    for (size_t i = 0; i < f->n_series; i++) {
        if (strcmp(f->series[i].key, key) == 0) {
            return &f->series[i];
        }
    }
    if (f->n_series == PW_METRIC_SERIES_MAX) {
        pw_log_warn(HEALTH, "metric %s: more than %d series, new ones dropped", f->name,
                    PW_METRIC_SERIES_MAX);
        return NULL;
    }
    if (pw_array_reserve(&f->series, &f->cap_series, f->n_series + 1, sizeof(*f->series)) < 0) {
        return NULL;
    }
    struct series *s = &f->series[f->n_series];
    s->key = strdup(key);
    s->buckets = NULL;
    s->sum = 0;
    if (s->key && f->type == PW_METRIC_HISTOGRAM &&
        !(s->buckets = calloc(PW_ARRAY_SIZE(hist_le), sizeof(double)))) {
        free(s->key);
        s->key = NULL;
    }
    if (!s->key) {
        return NULL;
    }
    s->value = 0;
    f->n_series++;
    return s;
}

static void update(const char *name, double v, bool set, const char *first, va_list ap)
{
    struct family *f;
    struct series *s;

    pthread_mutex_lock(&lock);
    init_locked();
    f = find_family(name);
    if (PW_CHECK(f != NULL) || PW_CHECK(f->type != PW_METRIC_HISTOGRAM) ||
        PW_CHECK(set || f->type == PW_METRIC_GAUGE || v >= 0) ||
        PW_CHECK(!set || f->type == PW_METRIC_GAUGE)) {
        goto out;
    }
    s = series_locked(f, first, ap);
    if (s) {
        s->value = set ? v : s->value + v;
    }
out:
    pthread_mutex_unlock(&lock);
}

/* For init_locked: a gauge with at most one label, lock already held. */
static void set_locked(const char *name, double value, const char *v1)
{
    struct family *f = find_family(name);
    char key[PW_METRIC_VALUE_MAX];

    snprintf(key, sizeof(key), "%s", v1 ? v1 : "");
    if (f && !f->n_series && (f->series = calloc(1, sizeof(*f->series)))) {
        f->cap_series = 1;
        f->series[0].key = strdup(key);
        f->series[0].value = value;
        f->n_series = f->series[0].key ? 1 : 0;
    }
}

void pw_metric_add(const char *name, double delta, ...)
{
    va_list ap;

    va_start(ap, delta);
    update(name, delta, false, va_arg(ap, const char *), ap);
    va_end(ap);
}

void pw_metric_inc(const char *name, ...)
{
    va_list ap;

    va_start(ap, name);
    update(name, 1, false, va_arg(ap, const char *), ap);
    va_end(ap);
}

void pw_metric_set(const char *name, double value, ...)
{
    va_list ap;

    va_start(ap, value);
    update(name, value, true, va_arg(ap, const char *), ap);
    va_end(ap);
}

void pw_metric_observe(const char *name, double v, ...)
{
    struct family *f;
    struct series *s = NULL;
    va_list ap;

    pthread_mutex_lock(&lock);
    init_locked();
    f = find_family(name);
    va_start(ap, v);
    if (!PW_CHECK(f && f->type == PW_METRIC_HISTOGRAM) && !isnan(v)) {
        s = series_locked(f, va_arg(ap, const char *), ap);
    }
    va_end(ap);
    if (s) {
        size_t k = 0;
        while (k < PW_ARRAY_SIZE(hist_le) && v > hist_le[k]) {
            k++;
        }
        if (k < PW_ARRAY_SIZE(hist_le)) {
            s->buckets[k]++;
        }
        s->value++;
        s->sum += v;
    }
    pthread_mutex_unlock(&lock);
}

double pw_metric_get(const char *name, ...)
{
    va_list ap;
    double v = 0;
    struct family *f;

    pthread_mutex_lock(&lock);
    init_locked();
    f = find_family(name);
    va_start(ap, name);
    if (f) {
        /* A lookup creates the series at 0; harmless, and it keeps one code path. */
        struct series *s = series_locked(f, va_arg(ap, const char *), ap);
        v = s ? s->value : 0;
    }
    va_end(ap);
    pthread_mutex_unlock(&lock);
    return v;
}

/* ---- rendering ------------------------------------------------------------------------------ */

struct buf {
    char *data;
    size_t len;
    size_t cap;
    bool oom;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (b->oom) {
        return;
    }
    if (pw_array_reserve_from(&b->data, &b->cap, b->len + n + 1, 1, 4096) < 0) {
        b->oom = true;
        return;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* Escaping per the exposition format: HELP escapes \ and newline; label values also ". */
static void put_escaped(struct buf *b, const char *s, size_t n, bool quote)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\') {
            puts_(b, "\\\\");
        } else if (s[i] == '\n') {
            puts_(b, "\\n");
        } else if (quote && s[i] == '"') {
            puts_(b, "\\\"");
        } else {
            put(b, s + i, 1);
        }
    }
}

static void put_value(struct buf *b, double v)
{
    char num[64];

    if (isnan(v)) {
        snprintf(num, sizeof(num), "NaN");
    } else if (isinf(v)) {
        snprintf(num, sizeof(num), "%sInf", v > 0 ? "+" : "-");
    } else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        snprintf(num, sizeof(num), "%.0f", v);
    } else {
        snprintf(num, sizeof(num), "%.17g", v);
    }
    puts_(b, num);
}

/* The labels of series @p key as `{a="x",b="y"` (no closing brace), or "" without labels. */
static void put_labels(struct buf *b, const struct family *f, const char *v)
{
    for (size_t l = 0; l < f->n_labels; l++) {
        size_t n = strcspn(v, "\x1f");
        puts_(b, l ? "," : "{");
        puts_(b, f->labels[l]);
        puts_(b, "=\"");
        put_escaped(b, v, n, true);
        puts_(b, "\"");
        v += n + (v[n] ? 1 : 0);
    }
}

/* name_bucket{...,le="x"} (cumulative), name_bucket{...,le="+Inf"}, name_sum, name_count. */
static void render_histogram(struct buf *b, const struct family *f)
{
    for (size_t i = 0; i < f->n_series; i++) {
        const struct series *s = &f->series[i];
        double cum = 0;

        for (size_t k = 0; k <= PW_ARRAY_SIZE(hist_le); k++) {
            char le[32];
            cum += k < PW_ARRAY_SIZE(hist_le) ? s->buckets[k] : 0;
            if (k < PW_ARRAY_SIZE(hist_le)) {
                snprintf(le, sizeof(le), "%g", hist_le[k]);
            } else {
                snprintf(le, sizeof(le), "+Inf");
                cum = s->value;
            }
            puts_(b, f->name);
            puts_(b, "_bucket");
            put_labels(b, f, s->key);
            puts_(b, f->n_labels ? ",le=\"" : "{le=\"");
            puts_(b, le);
            puts_(b, "\"} ");
            put_value(b, cum);
            puts_(b, "\n");
        }
        puts_(b, f->name);
        puts_(b, "_sum");
        put_labels(b, f, s->key);
        puts_(b, f->n_labels ? "} " : " ");
        put_value(b, s->sum);
        puts_(b, "\n");
        puts_(b, f->name);
        puts_(b, "_count");
        put_labels(b, f, s->key);
        puts_(b, f->n_labels ? "} " : " ");
        put_value(b, s->value);
        puts_(b, "\n");
    }
}

static void render_family(struct buf *b, const struct family *f, double now)
{
    puts_(b, "# HELP ");
    puts_(b, f->name);
    puts_(b, " ");
    put_escaped(b, f->help, strlen(f->help), false);
    puts_(b, "\n# TYPE ");
    puts_(b, f->name);
    puts_(b, f->type == PW_METRIC_COUNTER     ? " counter\n"
             : f->type == PW_METRIC_HISTOGRAM ? " histogram\n"
                                              : " gauge\n");
    if (f->type == PW_METRIC_HISTOGRAM) {
        render_histogram(b, f);
        return;
    }
    for (size_t i = 0; i < f->n_series; i++) {
        const char *v = f->series[i].key;
        puts_(b, f->name);
        for (size_t l = 0; l < f->n_labels; l++) {
            size_t n = strcspn(v, "\x1f");
            puts_(b, l ? "," : "{");
            puts_(b, f->labels[l]);
            puts_(b, "=\"");
            put_escaped(b, v, n, true);
            puts_(b, "\"");
            v += n + (v[n] ? 1 : 0);
        }
        puts_(b, f->n_labels ? "} " : " ");
        put_value(b, f->age ? fmax(0, now - f->series[i].value) : f->series[i].value);
        puts_(b, "\n");
    }
}

static pw_metrics_collect_fn *collect_fn;
static void *collect_arg;

void pw_metrics_set_collect(pw_metrics_collect_fn *fn, void *arg)
{
    pthread_mutex_lock(&lock);
    collect_fn = fn;
    collect_arg = arg;
    pthread_mutex_unlock(&lock);
}

char *pw_metrics_render(size_t *len)
{
    struct buf b = {0};
    pw_metrics_collect_fn *fn;
    void *arg;

    pthread_mutex_lock(&lock);
    fn = collect_fn;
    arg = collect_arg;
    pthread_mutex_unlock(&lock);
    process_collect();
    if (fn) {
        fn(arg); /* values computed at scrape time (outside the lock: it sets metrics) */
    }
    pthread_mutex_lock(&lock);
    init_locked();
    for (size_t i = 0; i < n_families; i++) {
        render_family(&b, &families[i], (double)time(NULL));
    }
    pthread_mutex_unlock(&lock);
    if (b.oom || !b.data) {
        free(b.data);
        return NULL;
    }
    if (len) {
        *len = b.len;
    }
    return b.data;
}

void pw_metrics_reset(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_families; i++) {
        free_family(&families[i]);
    }
    n_families = 0;
    initialized = false;
    init_locked();
    pthread_mutex_unlock(&lock);
}
