/* SPDX-License-Identifier: Apache-2.0 */
/* Operational log writer: one line per event on stderr, journald prefixes, rate limiting. */
#include "painwatch/log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>

#include <systemd/sd-journal.h>

#include "painwatch/check.h"
#include "painwatch/limits.h"

int pw_log_level = LOG_INFO;

static FILE *log_stream;
static bool log_journal;
static uint64_t (*log_clock)(void);

static const char *const comp_tags[] = {
#define PW_LOG_COMP_TAG(name, tag) tag,
    PW_LOG_COMPONENTS(PW_LOG_COMP_TAG)
#undef PW_LOG_COMP_TAG
};

static const char *const level_names[] = {"emerg",   "alert",  "crit", "err",
                                          "warning", "notice", "info", "debug"};

/*
 * Rate limiting: a small table keyed by the hash of (component, message template), the format
 * string before its arguments: lines that differ only in an index, an id or a count are one
 * kind of line. The first PW_LOG_RATE_BURST lines of a kind in a window pass; later ones are
 * counted, and the count is summarised once the window ends (on the next line of that kind or
 * pw_log_flush()), after the head of the first line of the window.
 */
#define RATE_SLOTS 64
struct rate_slot {
    uint64_t hash;
    uint64_t window_start;
    unsigned passed;
    unsigned suppressed;
    int level;
    enum pw_log_comp comp;
    char text[96]; /* head of the window's first line, for the summary */
};
static struct rate_slot rate_table[RATE_SLOTS];

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t now_ms(void)
{
    return log_clock ? log_clock() : monotonic_ms();
}

void pw_log_set_level(int level)
{
    if (level < LOG_EMERG) {
        level = LOG_EMERG;
    }
    if (level > LOG_DEBUG) {
        level = LOG_DEBUG;
    }
    pw_log_level = level;
}

int pw_log_level_from_name(const char *name)
{
    if (!name) {
        return -1;
    }
    for (size_t i = 0; i < PW_ARRAY_SIZE(level_names); i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            return (int)i;
        }
    }
    if (strcasecmp(name, "error") == 0) {
        return LOG_ERR;
    }
    if (strcasecmp(name, "warn") == 0) {
        return LOG_WARNING;
    }
    return -1;
}

void pw_log_set_output(FILE *stream, bool journal)
{
    log_stream = stream;
    log_journal = journal;
}

void pw_log_set_clock(uint64_t (*clock_fn)(void))
{
    log_clock = clock_fn;
}

void pw_log_init(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    const char *lvl = getenv("PAINWATCH_LOG_LEVEL");
    int level = pw_log_level_from_name(lvl);

    log_stream = NULL;
    log_journal = js != NULL && js[0] != '\0';
    if (level >= 0) {
        pw_log_level = level;
    }
    memset(rate_table, 0, sizeof(rate_table));
}

static bool emit_fields(int level, const char *tag, const char *text);

static void emit(int level, enum pw_log_comp comp, const char *text)
{
    FILE *out = log_stream ? log_stream : stderr;
    const char *tag = (unsigned)comp < PW_LOG_COMP_COUNT ? comp_tags[comp] : "?";

    if (log_journal && emit_fields(level, tag, text)) {
        return; /* issue 19: sent to journald with its PW_* fields */
    }
    if (log_journal) {
        fprintf(out, "<%d>[%s] %s\n", level, tag, text);
    } else {
        fprintf(out, "%s: [%s] %s\n", level_names[level & 7], tag, text);
    }
    fflush(out);
}

static uint64_t hash_line(enum pw_log_comp comp, const char *s)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)comp; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h ? h : 1;
}

static void summarise(struct rate_slot *slot)
{
    char line[PW_LOG_LINE_MAX];

    if (slot->suppressed == 0) {
        return;
    }
    snprintf(line, sizeof(line), "%s ... (suppressed %u similar lines)", slot->text,
             slot->suppressed);
    emit(slot->level, slot->comp, line);
    slot->suppressed = 0;
}

/* Returns true when the line @p text, made from @p fmt, may be written now. */
static bool rate_admit(int level, enum pw_log_comp comp, const char *fmt, const char *text)
{
    uint64_t h = hash_line(comp, fmt);
    uint64_t now = now_ms();
    struct rate_slot *slot = &rate_table[h % RATE_SLOTS];

    if (slot->hash != h) {
        summarise(slot); /* evicting another line: say what was held back */
        memset(slot, 0, sizeof(*slot));
        slot->hash = h;
        slot->window_start = now;
        slot->level = level;
        slot->comp = comp;
        snprintf(slot->text, sizeof(slot->text), "%s", text);
    }
    if (now - slot->window_start >= PW_LOG_RATE_WINDOW_MS) {
        summarise(slot);
        slot->window_start = now;
        slot->passed = 0;
        snprintf(slot->text, sizeof(slot->text), "%s", text);
    }
    if (slot->passed < PW_LOG_RATE_BURST) {
        slot->passed++;
        return true;
    }
    slot->suppressed++;
    return false;
}

void pw_log_flush(void)
{
    uint64_t now = now_ms();

    for (size_t i = 0; i < RATE_SLOTS; i++) {
        struct rate_slot *slot = &rate_table[i];
        if (slot->hash && slot->suppressed && now - slot->window_start >= PW_LOG_RATE_WINDOW_MS) {
            summarise(slot);
            slot->window_start = now;
            slot->passed = 0;
        }
    }
}

void pw_log_flush_final(void)
{
    for (size_t i = 0; i < RATE_SLOTS; i++) {
        summarise(&rate_table[i]);
    }
}

void pw_log_write(int level, enum pw_log_comp comp, const char *fmt, ...)
{
    char line[PW_LOG_LINE_MAX];
    va_list ap;

    if (level > pw_log_level) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* One event, one line: a newline inside the text would let it forge another entry. */
    for (char *p = line; *p; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }
    if (rate_admit(level, comp, fmt, line)) {
        emit(level, comp, line);
    }
}

void pw_check_fail(bool fatal, const char *expr, const char *func, const char *file, int line)
{
    pw_log_write(LOG_CRIT, PW_LOG_MAIN, "%s check failed: %s in %s() at %s:%d",
                 fatal ? "required" : "recoverable", expr, func, file, line);
    if (fatal) {
        abort();
    }
}

/* ---- issue 19: journal fields ------------------------------------------------------------- */

static const char *ctx_server;
static const char *ctx_rule;
static const char *ctx_rtype;
static pw_log_journal_fn *journal_sink; /* NULL: sd_journal_sendv */

void pw_log_context(const char *server, const char *rule, const char *resource_type)
{
    ctx_server = server && server[0] ? server : NULL;
    ctx_rule = rule && rule[0] ? rule : NULL;
    ctx_rtype = resource_type && resource_type[0] ? resource_type : NULL;
}

void pw_log_set_journal_sink(pw_log_journal_fn *fn)
{
    journal_sink = fn;
}

/*
 * With a context (pw_log_context), a journald line goes as a structured entry: MESSAGE,
 * PRIORITY, SYSLOG_IDENTIFIER and PW_SERVER / PW_RULE / PW_RESOURCE_TYPE, so an operator can
 * `journalctl PW_SERVER=ehr`. Without one (or when journald refuses) the stream line is used.
 * @return true when sent.
 */
static bool emit_fields(int level, const char *tag, const char *text)
{
    char f[6][PW_LOG_LINE_MAX + 64];
    struct iovec iov[6];
    size_t n = 0;

    if (!ctx_server && !ctx_rule && !ctx_rtype) {
        return false;
    }
    snprintf(f[n++], sizeof(f[0]), "MESSAGE=[%s] %s", tag, text);
    snprintf(f[n++], sizeof(f[0]), "PRIORITY=%d", level & 7);
    snprintf(f[n++], sizeof(f[0]), "SYSLOG_IDENTIFIER=painwatchd");
    if (ctx_server) {
        snprintf(f[n++], sizeof(f[0]), "PW_SERVER=%s", ctx_server);
    }
    if (ctx_rule) {
        snprintf(f[n++], sizeof(f[0]), "PW_RULE=%s", ctx_rule);
    }
    if (ctx_rtype) {
        snprintf(f[n++], sizeof(f[0]), "PW_RESOURCE_TYPE=%s", ctx_rtype);
    }
    for (size_t i = 0; i < n; i++) {
        iov[i].iov_base = f[i];
        iov[i].iov_len = strlen(f[i]);
    }
    if (journal_sink) {
        return journal_sink(iov, (int)n) >= 0;
    }
    return sd_journal_sendv(iov, (int)n) >= 0;
}
