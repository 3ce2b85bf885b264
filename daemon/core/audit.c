/* SPDX-License-Identifier: Apache-2.0 */
/* Audit trail writer: seal (n, prev, hmac), one write() + fsync per record or batch, rotation,
 * chain recovery from the live file's tail, and the fail-closed state. */
#include "painwatch/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#include "core/audit_int.h"
#include "painwatch/array.h"
#include "painwatch/datetime.h"
#include "painwatch/err.h"
#include "painwatch/hex.h"
#include "painwatch/limits.h"
#include "painwatch/log.h"
#include "painwatch/metrics.h"

/*
 * PHI rule for this file: log lines name the trail path, the failing call, errno text and
 * counts. They never print a record, a field of a record, or anything a caller passed in.
 */

const char pw_audit_zero_digest[PW_AUDIT_DIGEST_HEX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

#define AUDIT_KEY_MIN 16

struct pw_audit {
    char *path;
    unsigned char *key;
    size_t key_len;
    char *device;
    char *site;
    uint64_t rotate_bytes;
    int64_t rotate_ms;
    int64_t (*clock_ms)(void);

    int fd;                  /* -1 while closed (failed state, or before the first open) */
    uint64_t size;           /* bytes of the live file, written (durable unless `unsynced`) */
    uint64_t seq;            /* sequence number of the live file */
    bool have_seq;           /* false until a file was started or adopted */
    uint64_t n;              /* number of the next record */
    uint64_t file_first_n;   /* n of the live file's header */
    int64_t file_created_ms; /* when the live file was started (its header's "created") */
    char last[PW_AUDIT_DIGEST_HEX + 1]; /* digest of the last record written */
    EVP_MAC_CTX *mac;                   /* HMAC-SHA256 keyed once, restarted per record; NULL:
                                           pw_audit_mac() (the same digest, keyed every time) */

    bool failed;
    int64_t failed_since;
    uint64_t failed_appends;
    uint64_t epoch; /* failures so far: pw_audit_sync() refuses a mark from before one */
    bool unsynced;  /* pw_audit_batch_write() left lines the kernel has not made durable */
    struct pw_audit_head durable; /* the last record known durable (n == UINT64_MAX: none) */

    /* A batch: sealed lines waiting for one write + fsync. */
    bool batching;
    size_t batch_max; /* PW_AUDIT_BATCH_MAX unless the opts said less */
    char *batch;
    size_t batch_len;
    size_t batch_cap;
    uint64_t batch_n;
    char batch_last[PW_AUDIT_DIGEST_HEX + 1];
};

static int open_live(struct pw_audit *a, const char *why_new);

/* ---- small helpers ------------------------------------------------------------------------- */

static int64_t now_ms(const struct pw_audit *a)
{
    struct timespec ts;

    if (a->clock_ms) {
        return a->clock_ms();
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Everything written so far is on disk: the chain head a store may anchor (issue 18). Called
 * after the state (seq, n, last) is updated, so never inside a batch's unwritten lines. */
static void mark_durable(struct pw_audit *a)
{
    if (a->n > 0 && a->have_seq) {
        a->durable.seq = a->seq;
        a->durable.n = a->n - 1;
        memcpy(a->durable.digest, a->last, sizeof(a->durable.digest));
    }
}

static void format_time(int64_t ms, char *buf, size_t len)
{
    pw_time_format(ms, PW_TIME_FMT_MS, buf, len);
}

bool pw_audit_is_digest(const char *s)
{
    size_t i;

    if (!s) {
        return false;
    }
    for (i = 0; i < PW_AUDIT_DIGEST_HEX; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return s[i] == '\0';
}

int pw_audit_mac(const unsigned char *key, size_t key_len, const char *prev, const char *canon,
                 size_t canon_len, char *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    unsigned char *msg = malloc(PW_AUDIT_DIGEST_HEX + canon_len);

    if (!msg) {
        return PW_ENOMEM;
    }
    memcpy(msg, prev, PW_AUDIT_DIGEST_HEX);
    memcpy(msg + PW_AUDIT_DIGEST_HEX, canon, canon_len);
    if (!HMAC(EVP_sha256(), key, (int)key_len, msg, PW_AUDIT_DIGEST_HEX + canon_len, mac,
              &mac_len) ||
        mac_len != PW_AUDIT_DIGEST_HEX / 2) {
        free(msg);
        return PW_ENOMEM;
    }
    free(msg);
    pw_hex_encode(mac, mac_len, out);
    return 0;
}

/* The HMAC context of @p key, keyed once for every record of a trail; NULL when OpenSSL cannot
 * make one (pw_audit_mac() does the same work per record). */
static EVP_MAC_CTX *mac_keyed_new(const unsigned char *key, size_t key_len)
{
    char digest[] = "SHA256";
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                           OSSL_PARAM_construct_end()};

    EVP_MAC_free(m); /* the context keeps its own reference */
    if (ctx && !EVP_MAC_init(ctx, key, key_len, params)) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

/* pw_audit_mac() with the context of mac_keyed_new(): restarted with its key (no fetch, no key
 * schedule, no copy of the message). */
static int mac_keyed(EVP_MAC_CTX *ctx, const char *prev, const char *canon, size_t canon_len,
                     char *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;

    if (!EVP_MAC_init(ctx, NULL, 0, NULL) ||
        !EVP_MAC_update(ctx, (const unsigned char *)prev, PW_AUDIT_DIGEST_HEX) ||
        !EVP_MAC_update(ctx, (const unsigned char *)canon, canon_len) ||
        !EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac)) || mac_len != PW_AUDIT_DIGEST_HEX / 2) {
        return PW_ENOMEM;
    }
    pw_hex_encode(mac, mac_len, out);
    return 0;
}

static void set_why(char *why, size_t len, const char *msg)
{
    snprintf(why, len, "%s", msg);
}

static int check_fields(const json_t *rec, char *why, size_t why_len)
{
    json_t *n = json_object_get(rec, "n");

    if (!json_is_string(json_object_get(rec, "type"))) {
        set_why(why, why_len, "no \"type\" string");
        return PW_EVERIFY;
    }
    if (!json_is_integer(n) || json_integer_value(n) < 0) {
        set_why(why, why_len, "no record number \"n\"");
        return PW_EVERIFY;
    }
    if (!pw_audit_is_digest(json_string_value(json_object_get(rec, "prev")))) {
        set_why(why, why_len, "no valid \"prev\" digest");
        return PW_EVERIFY;
    }
    if (!pw_audit_is_digest(json_string_value(json_object_get(rec, "hmac")))) {
        set_why(why, why_len, "no valid \"hmac\" digest");
        return PW_EVERIFY;
    }
    return 0;
}

int pw_audit_check_line(const unsigned char *key, size_t key_len, const char *line, size_t len,
                        json_t **out, char *why, size_t why_len)
{
    json_error_t jerr;
    json_t *rec = NULL;
    char *canon = NULL;
    char mac[PW_AUDIT_DIGEST_HEX + 1];
    char claimed[PW_AUDIT_DIGEST_HEX + 1];
    int rc = PW_EVERIFY;

    if (len == 0) {
        set_why(why, why_len, "empty line");
        return PW_EVERIFY;
    }
    if (len > PW_AUDIT_RECORD_MAX) {
        snprintf(why, why_len, "line longer than the record cap (%u bytes)", PW_AUDIT_RECORD_MAX);
        return PW_EVERIFY;
    }
    rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!rec || !json_is_object(rec)) {
        /* Not jerr.text: jansson quotes the bytes near the error, which may be patient data,
         * and this reason reaches the operational log when the writer checks its tail. */
        if (rec) {
            set_why(why, why_len, "not a JSON object");
        } else {
            snprintf(why, why_len, "not valid JSON (at column %d)", jerr.column);
        }
        goto out;
    }
    rc = check_fields(rec, why, why_len);
    if (rc) {
        goto out;
    }
    /*
     * Byte-exact: the line must be the canonical dump of what it parses to without "hmac"
     * (keys sorted, compact), with "hmac" appended last; older trails (schema of session 1) have it
     * in its sorted place, also accepted. The MAC covers that canonical dump.
     */
    snprintf(claimed, sizeof(claimed), "%s", json_string_value(json_object_get(rec, "hmac")));
    json_object_del(rec, "hmac");
    canon = json_dumps(rec, PW_AUDIT_JSON_FLAGS);
    if (!canon) {
        rc = PW_ENOMEM;
        goto out;
    }
    if (!pw_audit_line_is(canon, claimed, line, len)) {
        json_object_set_new(rec, "hmac", json_string(claimed));
        char *sorted = json_dumps(rec, PW_AUDIT_JSON_FLAGS);
        bool same = sorted && strlen(sorted) == len && memcmp(sorted, line, len) == 0;
        free(sorted);
        json_object_del(rec, "hmac");
        if (!same) {
            set_why(why, why_len, "record is not in canonical form (bytes were changed)");
            rc = PW_EVERIFY;
            goto out;
        }
    }
    rc = pw_audit_mac(key, key_len, json_string_value(json_object_get(rec, "prev")), canon,
                      strlen(canon), mac);
    if (rc) {
        goto out;
    }
    if (CRYPTO_memcmp(mac, claimed, PW_AUDIT_DIGEST_HEX) != 0) {
        set_why(why, why_len, "HMAC does not verify (record modified, forged, or another key)");
        rc = PW_EVERIFY;
        goto out;
    }
    json_object_set_new(rec, "hmac", json_string(claimed));
    if (out) {
        *out = rec;
        rec = NULL;
    }
    rc = 0;
out:
    free(canon);
    json_decref(rec);
    return rc;
}

/* ---- key ------------------------------------------------------------------------------------ */

int pw_audit_key_load(const char *path, unsigned char **out, size_t *out_len)
{
    struct stat st;
    unsigned char *buf = NULL;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        pw_log_err(AUDIT, "audit key %s: %s", path, strerror(errno));
        return PW_ESECRET;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        pw_log_err(AUDIT, "audit key %s: not a regular file", path);
        goto fail;
    }
    if (st.st_mode & (S_IROTH | S_IWOTH)) {
        pw_log_err(AUDIT, "audit key %s: accessible by other users (mode %03o); chmod o-rw", path,
                   (unsigned)(st.st_mode & 0777));
        goto fail;
    }
    if ((uint64_t)st.st_size > PW_SECRET_FILE_MAX) {
        pw_log_err(AUDIT, "audit key %s: larger than %u bytes", path, PW_SECRET_FILE_MAX);
        goto fail;
    }
    buf = malloc(PW_SECRET_FILE_MAX + 1);
    if (!buf) {
        close(fd);
        return PW_ENOMEM;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, PW_SECRET_FILE_MAX + 1 - len);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            pw_log_err(AUDIT, "audit key %s: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0) {
            break;
        }
        len += (size_t)r;
        if (len > PW_SECRET_FILE_MAX) {
            pw_log_err(AUDIT, "audit key %s: larger than %u bytes", path, PW_SECRET_FILE_MAX);
            goto fail;
        }
    }
    if (len > 0 && buf[len - 1] == '\n') {
        len--;
        if (len > 0 && buf[len - 1] == '\r') {
            len--;
        }
    }
    if (len < AUDIT_KEY_MIN) {
        pw_log_err(AUDIT, "audit key %s: shorter than %d bytes", path, AUDIT_KEY_MIN);
        goto fail;
    }
    close(fd);
    *out = buf;
    *out_len = len;
    return 0;
fail:
    pw_audit_key_free(buf, PW_SECRET_FILE_MAX + 1);
    close(fd);
    return PW_ESECRET;
}

void pw_audit_key_free(unsigned char *key, size_t len)
{
    if (key) {
        OPENSSL_cleanse(key, len);
        free(key);
    }
}

/* ---- failure state -------------------------------------------------------------------------- */

static void close_fd(struct pw_audit *a)
{
    if (a->fd >= 0) {
        /* Whatever closes the file (rotation, reopen, a resync) makes its lines durable first;
         * when that fails, the writers that rely on them are told at pw_audit_sync(). */
        if (a->unsynced && fsync(a->fd) != 0) {
            a->epoch++;
        } else if (a->unsynced) {
            mark_durable(a);
        }
        a->unsynced = false;
        close(a->fd);
        a->fd = -1;
    }
}

/* Enter the failed state. The fd is dropped: after a failed fsync the page cache state of that
 * descriptor is unknown, so recovery always starts from a fresh open and the file's own tail. */
static int fail(struct pw_audit *a, const char *what, int err)
{
    if (!a->failed) {
        a->failed = true;
        a->failed_since = now_ms(a);
        a->failed_appends = 0;
    }
    /* Lines written without fsync may be lost with the descriptor: their writers find out at
     * pw_audit_sync(). */
    a->epoch++;
    a->unsynced = false;
    close_fd(a);
    pw_log_crit(AUDIT,
                "audit trail %s: %s failed: %s; nothing is written to the EHR until the trail "
                "is writable again",
                a->path, what, strerror(err));
    return PW_EAUDIT;
}

static void fsync_dir(const struct pw_audit *a)
{
    char *copy = strdup(a->path);
    int dfd;

    if (!copy) {
        return;
    }
    dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(copy);
}

/*
 * Write @p len bytes (one write() unless the kernel cuts it short) and, when @p sync, fsync them
 * (and every line written before without). On any failure the file is cut back to its size
 * before the write, so no partial line and no record the caller was told failed remains, and
 * the trail enters the failed state.
 */
static int write_lines(struct pw_audit *a, const char *buf, size_t len, bool sync)
{
    size_t done = 0;
    int err = 0;

    while (done < len) {
        ssize_t w = write(a->fd, buf + done, len - done);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            err = w < 0 ? errno : EIO;
            break;
        }
        done += (size_t)w;
    }
    if (done == len) {
        if (!sync) {
            a->size += len;
            a->unsynced = true;
            return 0;
        }
        if (fsync(a->fd) == 0) {
            a->size += len;
            a->unsynced = false;
            return 0;
        }
        err = errno;
    }
    if (done > 0 && ftruncate(a->fd, (off_t)a->size) != 0) {
        pw_log_crit(AUDIT, "audit trail %s: cannot cut back a failed write: %s", a->path,
                    strerror(errno));
    }
    return fail(a, done == len ? "fsync" : "write", err);
}

static int write_durable(struct pw_audit *a, const char *buf, size_t len)
{
    return write_lines(a, buf, len, true);
}

/* ---- sealing -------------------------------------------------------------------------------- */

/*
 * Stamp @p rec as record @p n after @p prev and serialise it: the line (with its newline) goes to
 * *line (caller frees), the new digest to @p digest. @p rec is borrowed and modified.
 */
/* The line of a record whose canonical dump (without "hmac") is @p canon: "hmac" goes last. */
#define HMAC_TAIL ",\"hmac\":\"" /* then the digest, then "\"}" */

bool pw_audit_line_is(const char *canon, const char *hmac, const char *line, size_t len)
{
    size_t c = strlen(canon);
    size_t t = sizeof(HMAC_TAIL) - 1;
    size_t h = strlen(hmac);

    return c >= 2 && len == c - 1 + t + h + 2 && memcmp(line, canon, c - 1) == 0 &&
           memcmp(line + c - 1, HMAC_TAIL, t) == 0 && memcmp(line + c - 1 + t, hmac, h) == 0 &&
           memcmp(line + c - 1 + t + h, "\"}", 2) == 0;
}

/*
 * Seal @p rec as record @p n after @p prev: one canonical dump (keys sorted, compact, no
 * "hmac"), its MAC, and the line is that dump with "hmac" appended last (one dump, not two).
 */
static int seal(struct pw_audit *a, json_t *rec, uint64_t n, const char *prev, char **line,
                size_t *len, char *digest)
{
    char *canon = NULL;
    char *text;
    size_t c, t = sizeof(HMAC_TAIL) - 1;
    int rc;

    json_object_del(rec, "hmac");
    if (json_object_set_new(rec, "n", json_integer((json_int_t)n)) ||
        json_object_set_new(rec, "prev", json_string(prev))) {
        return PW_ENOMEM;
    }
    canon = json_dumps(rec, PW_AUDIT_JSON_FLAGS);
    if (!canon) {
        return PW_EINVAL; /* e.g. a NaN or invalid UTF-8 a caller put in */
    }
    c = strlen(canon);
    rc = a->mac ? mac_keyed(a->mac, prev, canon, c, digest)
                : pw_audit_mac(a->key, a->key_len, prev, canon, c, digest);
    if (rc == 0 && json_object_set_new(rec, "hmac", json_string(digest))) {
        rc = PW_ENOMEM;
    }
    /* canon ends with '}': replace it by the tail, the digest, '"}' and the newline. */
    *len = c - 1 + t + PW_AUDIT_DIGEST_HEX + 3;
    if (rc == 0 && *len - 1 > PW_AUDIT_RECORD_MAX) {
        rc = PW_E2BIG;
    }
    text = rc == 0 ? realloc(canon, *len + 1) : NULL;
    if (!text) {
        free(canon);
        return rc ? rc : PW_ENOMEM;
    }
    memcpy(text + c - 1, HMAC_TAIL, t);
    memcpy(text + c - 1 + t, digest, PW_AUDIT_DIGEST_HEX);
    memcpy(text + c - 1 + t + PW_AUDIT_DIGEST_HEX, "\"}\n", 4);
    *line = text;
    return 0;
}

static bool has_source_agent(const json_t *agents)
{
    size_t i;
    json_t *ag;

    json_array_foreach(agents, i, ag)
    {
        const char *role = json_string_value(json_object_get(ag, "role"));
        if (role && strcmp(role, "source") == 0) {
            return true;
        }
    }
    return false;
}

/* painwatch is always the requesting agent and the observer (BALP), unless the caller said who. */
static int add_defaults(struct pw_audit *a, json_t *rec)
{
    char ts[40];

    /* Always the writer's clock: a caller cannot back-date a record. */
    format_time(now_ms(a), ts, sizeof(ts));
    if (json_object_set_new(rec, "recorded", json_string(ts))) {
        return PW_ENOMEM;
    }
    if (!has_source_agent(json_object_get(rec, "agent"))) {
        json_t *agent = json_object_get(rec, "agent");
        json_t *self =
            json_pack("{s:s,s:s,s:b}", "role", "source", "who", a->device, "requestor", 1);
        if (!json_is_array(agent)) {
            agent = json_array();
            json_object_set_new(rec, "agent", agent);
        }
        if (json_array_insert_new(agent, 0, self)) {
            return PW_ENOMEM;
        }
    }
    if (!json_object_get(rec, "source")) {
        json_t *src = json_pack("{s:s}", "observer", a->device);
        if (src && a->site) {
            json_object_set_new(src, "site", json_string(a->site));
        }
        if (json_object_set_new(rec, "source", src)) {
            return PW_ENOMEM;
        }
    }
    return 0;
}

/* ---- files ---------------------------------------------------------------------------------- */

/* Write the header of a new, empty live file. Takes ownership of @p anomaly (may be NULL). */
static int start_file(struct pw_audit *a, const char *reason, json_t *anomaly)
{
    char ts[40];
    char digest[PW_AUDIT_DIGEST_HEX + 1];
    char *line = NULL;
    size_t len = 0;
    uint64_t seq = a->have_seq ? a->seq + 1 : 0;
    bool had_anomaly;
    int64_t created;
    json_t *hdr;
    int rc;

    created = now_ms(a);
    format_time(created, ts, sizeof(ts));
    hdr = json_pack("{s:s,s:s,s:I,s:s,s:s}", "type", "header", "format", PW_AUDIT_FORMAT, "seq",
                    (json_int_t)seq, "created", ts, "reason", reason);
    if (!hdr) {
        json_decref(anomaly);
        return PW_ENOMEM;
    }
    had_anomaly = anomaly != NULL;
    if (anomaly) {
        json_object_set_new(hdr, "anomaly", anomaly);
    }
    rc = seal(a, hdr, a->n, a->last, &line, &len, digest);
    json_decref(hdr);
    if (rc) {
        return rc;
    }
    a->size = 0;
    rc = write_durable(a, line, len);
    free(line);
    if (rc) {
        return rc;
    }
    fsync_dir(a);
    a->seq = seq;
    a->have_seq = true;
    a->file_first_n = a->n;
    a->file_created_ms = created;
    a->n++;
    memcpy(a->last, digest, sizeof(a->last));
    mark_durable(a);
    if (had_anomaly) {
        pw_log_warn(AUDIT, "audit trail %s: started file %" PRIu64 " after an anomaly (%s)",
                    a->path, seq, reason);
    }
    return 0;
}

/* Rename the live file out of the way without overwriting anything. Returns 0 or -errno. */
static int set_aside(struct pw_audit *a, char *name, size_t name_len)
{
    for (unsigned k = 0; k < 1000; k++) {
        if (k == 0) {
            snprintf(name, name_len, "%s.%" PRIu64, a->path, a->have_seq ? a->seq : 0);
        } else {
            snprintf(name, name_len, "%s.%" PRIu64 ".%u", a->path, a->have_seq ? a->seq : 0, k);
        }
        if (link(a->path, name) == 0) {
            int rc = unlink(a->path) == 0 ? 0 : -errno;
            fsync_dir(a);
            return rc;
        }
        if (errno != EEXIST) {
            return -errno;
        }
    }
    return -EEXIST;
}

/* The facts read back from a non-empty live file. */
struct tail {
    bool header_ok;
    uint64_t seq;
    uint64_t first_n;
    int64_t created_ms;
    bool last_ok; /* the last complete line verifies */
    uint64_t n;
    char digest[PW_AUDIT_DIGEST_HEX + 1];
    char prev[PW_AUDIT_DIGEST_HEX + 1];
    uint64_t torn; /* bytes after the last newline */
    char why[256];
};

static void read_header(struct pw_audit *a, const char *buf, size_t got, struct tail *t)
{
    const char *nl = memchr(buf, '\n', got);
    json_t *rec = NULL;

    if (!nl) {
        set_why(t->why, sizeof(t->why), "first line is not a complete header");
        return;
    }
    if (pw_audit_check_line(a->key, a->key_len, buf, (size_t)(nl - buf), &rec, t->why,
                            sizeof(t->why)) != 0) {
        return;
    }
    if (strcmp(json_string_value(json_object_get(rec, "type")), "header") != 0 ||
        !json_is_integer(json_object_get(rec, "seq"))) {
        set_why(t->why, sizeof(t->why), "first line is not a header");
    } else {
        t->header_ok = true;
        t->seq = (uint64_t)json_integer_value(json_object_get(rec, "seq"));
        t->first_n = (uint64_t)json_integer_value(json_object_get(rec, "n"));
        if (pw_audit_parse_time(json_string_value(json_object_get(rec, "created")),
                                &t->created_ms) != 0) {
            t->created_ms = now_ms(a);
        }
    }
    json_decref(rec);
}

static void read_last(struct pw_audit *a, const char *buf, size_t got, bool whole, struct tail *t)
{
    size_t end = got;
    size_t start;
    json_t *rec = NULL;

    while (end > 0 && buf[end - 1] != '\n') {
        end--;
    }
    t->torn = got - end;
    if (end == 0) {
        set_why(t->why, sizeof(t->why), "no complete line at the end of the file");
        return;
    }
    start = end - 1;
    while (start > 0 && buf[start - 1] != '\n') {
        start--;
    }
    if (start == 0 && !whole) {
        set_why(t->why, sizeof(t->why), "last line is longer than the record cap");
        return;
    }
    if (pw_audit_check_line(a->key, a->key_len, buf + start, end - 1 - start, &rec, t->why,
                            sizeof(t->why)) != 0) {
        return;
    }
    t->last_ok = true;
    t->n = (uint64_t)json_integer_value(json_object_get(rec, "n"));
    snprintf(t->digest, sizeof(t->digest), "%s", json_string_value(json_object_get(rec, "hmac")));
    snprintf(t->prev, sizeof(t->prev), "%s", json_string_value(json_object_get(rec, "prev")));
    json_decref(rec);
}

static int read_tail(struct pw_audit *a, uint64_t size, struct tail *t)
{
    size_t win = 2 * (PW_AUDIT_RECORD_MAX + 2);
    size_t got;
    uint64_t off;
    char *buf = malloc(win);
    ssize_t r;

    if (!buf) {
        return PW_ENOMEM;
    }
    memset(t, 0, sizeof(*t));
    r = pread(a->fd, buf, size < PW_AUDIT_RECORD_MAX + 2 ? (size_t)size : PW_AUDIT_RECORD_MAX + 2,
              0);
    if (r < 0) {
        free(buf);
        return -errno;
    }
    read_header(a, buf, (size_t)r, t);
    off = size > win ? size - win : 0;
    got = (size_t)(size - off);
    r = pread(a->fd, buf, got, (off_t)off);
    if (r != (ssize_t)got) {
        free(buf);
        return r < 0 ? -errno : PW_EIO;
    }
    if (t->header_ok) {
        read_last(a, buf, got, off == 0, t);
    }
    free(buf);
    return 0;
}

/*
 * Does the live file continue our chain? At start anything verifying does; later the tail must
 * be our last record or the record right after it (one we reported as failed whose bytes did
 * reach the disk: it is honest and stays).
 */
static bool tail_continues(const struct pw_audit *a, const struct tail *t, bool at_start)
{
    if (!t->header_ok || !t->last_ok || t->torn) {
        return false;
    }
    if (at_start) {
        return true;
    }
    return strcmp(t->digest, a->last) == 0 || strcmp(t->prev, a->last) == 0;
}

/* Adopt a non-empty live file, or set it aside and start a new one that says why. */
static int sync_with_file(struct pw_audit *a, uint64_t size, bool at_start)
{
    struct tail t;
    char aside[4200];
    json_t *anomaly;
    int rc = read_tail(a, size, &t);

    if (rc) {
        return fail(a, "read", rc < 0 && rc > -4096 ? -rc : EIO);
    }
    if (tail_continues(a, &t, at_start)) {
        a->size = size;
        a->seq = t.seq;
        a->have_seq = true;
        a->n = t.n + 1;
        a->file_first_n = t.first_n;
        a->file_created_ms = t.created_ms;
        memcpy(a->last, t.digest, sizeof(a->last));
        if (at_start && fsync(a->fd) == 0) {
            /* Written by an earlier process (maybe killed before its fsync): durable now. */
            mark_durable(a);
        }
        return 0;
    }
    if (t.header_ok && !a->have_seq) {
        a->seq = t.seq;
        a->have_seq = true;
    }
    if (t.header_ok && t.last_ok && at_start) {
        /* Torn tail after a good record: the new file links to that record. */
        memcpy(a->last, t.digest, sizeof(a->last));
        a->n = t.n + 1;
    }
    rc = set_aside(a, aside, sizeof(aside));
    close_fd(a);
    if (rc) {
        return fail(a, "set aside a damaged file", -rc);
    }
    if (t.why[0] == '\0') {
        set_why(t.why, sizeof(t.why),
                t.torn ? "torn last record" : "the file does not continue this writer's chain");
    }
    anomaly = json_pack("{s:s,s:s,s:I}", "file", aside, "problem", t.why, "torn_bytes",
                        (json_int_t)t.torn);
    pw_log_crit(AUDIT, "audit trail %s: set aside as %s: %s", a->path, aside, t.why);
    return open_live(a, NULL) == 0 ? start_file(a, "recovered", anomaly)
                                   : (json_decref(anomaly), PW_EAUDIT);
}

/*
 * Open the live file by name. An empty file gets a header (reason @p why_new, or "new" /
 * "reopened"), a non-empty one is checked against the chain. With @p why_new == NULL and a
 * non-empty file the caller only wants the descriptor (used right after set_aside()).
 */
static int open_live(struct pw_audit *a, const char *why_new)
{
    struct stat st;
    bool at_start = !a->have_seq && a->n == 0;
    int fd;

    close_fd(a);
    fd = open(a->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        return fail(a, "open", errno);
    }
    a->fd = fd;
    if (fstat(fd, &st) != 0) {
        return fail(a, "stat", errno);
    }
    if (!S_ISREG(st.st_mode)) {
        return fail(a, "open (not a regular file)", EINVAL);
    }
    if (why_new == NULL) {
        a->size = (uint64_t)st.st_size;
        return 0;
    }
    if (st.st_size == 0) {
        return start_file(a, why_new, NULL);
    }
    return sync_with_file(a, (uint64_t)st.st_size, at_start);
}

/* Re-open after the live file was removed or changed under us; the new file says so. */
static int resync(struct pw_audit *a, const char *problem)
{
    close_fd(a);
    if (open_live(a, NULL) != 0) {
        return PW_EAUDIT;
    }
    if (a->size == 0) {
        return start_file(a, "recovered", json_pack("{s:s}", "problem", problem));
    }
    return sync_with_file(a, a->size, false);
}

/*
 * Before each write: the descriptor must still name a linked file of the size we wrote. A file
 * removed under us, or changed by someone else (copytruncate), is re-opened and re-synchronised,
 * with the anomaly recorded in the trail.
 */
static int prepare(struct pw_audit *a)
{
    struct stat st;

    if (a->fd < 0) {
        return open_live(a, "reopened");
    }
    if (fstat(a->fd, &st) != 0) {
        return fail(a, "stat", errno);
    }
    if (st.st_nlink == 0) {
        pw_log_crit(AUDIT, "audit trail %s: the live file was removed while open", a->path);
        return resync(a, "the previous live file was removed while open");
    }
    if ((uint64_t)st.st_size != a->size) {
        pw_log_crit(AUDIT,
                    "audit trail %s: changed by another writer (size %lld, expected %" PRIu64 ")",
                    a->path, (long long)st.st_size, a->size);
        return resync(a, "the live file was changed by another writer");
    }
    if (a->rotate_bytes && a->size >= a->rotate_bytes) {
        return pw_audit_rotate(a);
    }
    /* By age, but never a file that holds only its header. */
    if (a->rotate_ms && a->n > a->file_first_n + 1 &&
        now_ms(a) - a->file_created_ms >= a->rotate_ms) {
        return pw_audit_rotate(a);
    }
    return 0;
}

/* ---- public --------------------------------------------------------------------------------- */

int pw_audit_open(struct pw_audit **out, const struct pw_audit_opts *opts)
{
    struct pw_audit *a;
    int rc;

    if (!out || !opts || !opts->path || !opts->key_path || !opts->device) {
        return PW_EINVAL;
    }
    a = calloc(1, sizeof(*a));
    if (!a) {
        return PW_ENOMEM;
    }
    a->fd = -1;
    a->path = strdup(opts->path);
    a->device = strdup(opts->device);
    a->site = opts->site ? strdup(opts->site) : NULL;
    a->rotate_bytes = opts->rotate_bytes;
    a->rotate_ms =
        opts->rotate_seconds > INT64_MAX / 1000 ? 0 : (int64_t)opts->rotate_seconds * 1000;
    a->clock_ms = opts->clock_ms;
    a->batch_max = opts->batch_max && opts->batch_max < PW_AUDIT_BATCH_MAX ? opts->batch_max
                                                                           : PW_AUDIT_BATCH_MAX;
    memcpy(a->last, pw_audit_zero_digest, sizeof(a->last));
    a->durable.n = UINT64_MAX;
    if (!a->path || !a->device || (opts->site && !a->site)) {
        rc = PW_ENOMEM;
        goto fail;
    }
    rc = pw_audit_key_load(opts->key_path, &a->key, &a->key_len);
    if (rc) {
        goto fail;
    }
    a->mac = mac_keyed_new(a->key, a->key_len);
    rc = open_live(a, "new");
    if (rc) {
        goto fail;
    }
    *out = a;
    return 0;
fail:
    pw_audit_free(a);
    return rc;
}

void pw_audit_free(struct pw_audit *a)
{
    if (!a) {
        return;
    }
    if (a->fd >= 0) {
        fsync(a->fd);
    }
    close_fd(a);
    EVP_MAC_CTX_free(a->mac); /* clears its key copy */
    pw_audit_key_free(a->key, a->key_len);
    free(a->batch);
    free(a->path);
    free(a->device);
    free(a->site);
    free(a);
}

bool pw_audit_writable(const struct pw_audit *a)
{
    return a && !a->failed;
}

const char *pw_audit_last_digest(const struct pw_audit *a)
{
    return a->last;
}

int pw_audit_durable_head(const struct pw_audit *a, struct pw_audit_head *out)
{
    if (a->durable.n == UINT64_MAX) {
        return PW_ENOENT;
    }
    *out = a->durable;
    return 0;
}

const char *pw_audit_path(const struct pw_audit *a)
{
    return a->path;
}

const unsigned char *pw_audit_key(const struct pw_audit *a, size_t *len)
{
    *len = a->key_len;
    return a->key;
}

int pw_audit_retry(struct pw_audit *a)
{
    char since[40];
    int64_t since_ms;
    uint64_t lost;
    int rc;

    if (!a->failed) {
        return 0;
    }
    if (open_live(a, "reopened") != 0 || a->fd < 0) {
        return PW_EAUDIT;
    }
    since_ms = a->failed_since;
    lost = a->failed_appends;
    format_time(since_ms, since, sizeof(since));
    /* The outage ends only once this record is durable. If it is not, the outage goes on with
     * its original start and count (this internal record is not counted as a lost append). */
    a->failed = false;
    rc = pw_audit_event(a, "audit-resumed", 'E', PW_AUDIT_SUCCESS, "audit trail writable again",
                        json_pack("{s:{s:s,s:I}}", "painwatch", "failed_since", since,
                                  "failed_appends", (json_int_t)lost));
    if (rc) {
        a->failed = true;
        a->failed_since = since_ms;
        a->failed_appends = lost;
        return PW_EAUDIT;
    }
    pw_log_notice(AUDIT, "audit trail %s: writable again after %" PRIu64 " failed appends", a->path,
                  lost);
    return 0;
}

int pw_audit_reopen(struct pw_audit *a)
{
    if (a->batching) {
        return PW_EINVAL;
    }
    if (a->failed) {
        return pw_audit_retry(a);
    }
    return open_live(a, "reopened");
}

int pw_audit_rotate(struct pw_audit *a)
{
    char aside[4200];
    int rc;

    if (a->fd < 0 || a->batching) {
        return a->fd < 0 ? PW_EAUDIT : PW_EINVAL;
    }
    if (fsync(a->fd) != 0) {
        return fail(a, "fsync", errno);
    }
    a->unsynced = false;
    mark_durable(a);
    rc = set_aside(a, aside, sizeof(aside));
    if (rc) {
        return fail(a, "rotate", -rc);
    }
    pw_log_info(AUDIT, "audit trail %s: rotated to %s", a->path, aside);
    close_fd(a);
    return open_live(a, "rotated");
}

static int append_line(struct pw_audit *a, const char *line, size_t len)
{
    if (a->batch_len + len > a->batch_max) {
        return PW_E2BIG;
    }
    if (pw_array_reserve_from(&a->batch, &a->batch_cap, a->batch_len + len, 1, 4096) < 0) {
        return PW_ENOMEM;
    }
    memcpy(a->batch + a->batch_len, line, len);
    a->batch_len += len;
    return 0;
}

static bool record_ok(const json_t *rec)
{
    const char *type = json_string_value(json_object_get(rec, "type"));

    return json_is_object(rec) && type && strcmp(type, "header") != 0 &&
           json_is_string(json_object_get(rec, "subtype"));
}

int pw_audit_append_new(struct pw_audit *a, json_t *record)
{
    char digest[PW_AUDIT_DIGEST_HEX + 1];
    char *line = NULL;
    size_t len = 0;
    int rc;

    if (!a || !record_ok(record)) {
        json_decref(record);
        return PW_EINVAL;
    }
    if (a->failed && !a->batching && pw_audit_retry(a) != 0) {
        a->failed_appends++;
        json_decref(record);
        return PW_EAUDIT;
    }
    rc = add_defaults(a, record);
    if (rc) {
        goto out;
    }
    if (a->batching) {
        rc = seal(a, record, a->batch_n, a->batch_last, &line, &len, digest);
        if (rc == 0) {
            rc = append_line(a, line, len);
        }
        if (rc == 0) {
            a->batch_n++;
            memcpy(a->batch_last, digest, sizeof(digest));
        }
        goto out;
    }
    rc = prepare(a);
    if (rc) {
        goto out;
    }
    rc = seal(a, record, a->n, a->last, &line, &len, digest);
    if (rc) {
        goto out;
    }
    rc = write_durable(a, line, len);
    if (rc == 0) {
        a->n++;
        memcpy(a->last, digest, sizeof(digest));
        mark_durable(a);
        pw_metric_inc(PW_M_AUDIT_RECORDS, NULL);
    }
out:
    if (rc == PW_EAUDIT) {
        a->failed_appends++;
    }
    free(line);
    json_decref(record);
    return rc;
}

int pw_audit_batch_begin(struct pw_audit *a)
{
    int rc;

    if (a->batching) {
        return PW_EINVAL;
    }
    if (a->failed && pw_audit_retry(a) != 0) {
        return PW_EAUDIT;
    }
    rc = prepare(a);
    if (rc) {
        return rc;
    }
    a->batching = true;
    a->batch_len = 0;
    a->batch_n = a->n;
    memcpy(a->batch_last, a->last, sizeof(a->last));
    return 0;
}

static int batch_end(struct pw_audit *a, bool sync)
{
    uint64_t queued;
    int rc;

    if (!a->batching) {
        return PW_EINVAL;
    }
    a->batching = false;
    queued = a->batch_n - a->n;
    if (a->batch_len == 0) {
        return 0;
    }
    /* The chain was sealed against the file as prepare() left it: it must still be so. */
    rc = a->failed || a->fd < 0 ? PW_EAUDIT : write_lines(a, a->batch, a->batch_len, sync);
    a->batch_len = 0;
    if (rc) {
        a->failed_appends += queued;
        return PW_EAUDIT;
    }
    a->n = a->batch_n;
    memcpy(a->last, a->batch_last, sizeof(a->last));
    if (sync) {
        mark_durable(a);
    }
    pw_metric_add(PW_M_AUDIT_RECORDS, (double)queued, NULL);
    return 0;
}

int pw_audit_batch_commit(struct pw_audit *a)
{
    return batch_end(a, true);
}

int pw_audit_batch_write(struct pw_audit *a)
{
    return batch_end(a, false);
}

uint64_t pw_audit_epoch(const struct pw_audit *a)
{
    return a->epoch;
}

int pw_audit_sync(struct pw_audit *a, uint64_t epoch)
{
    if (a->failed || a->epoch != epoch) {
        return PW_EAUDIT; /* a failure since the mark: what was written then may be gone */
    }
    if (!a->unsynced) {
        return 0;
    }
    if (a->fd < 0 || fsync(a->fd) != 0) {
        return fail(a, "fsync", a->fd < 0 ? EBADF : errno);
    }
    a->unsynced = false;
    mark_durable(a);
    return 0;
}

void pw_audit_batch_abort(struct pw_audit *a)
{
    /* Nothing queued was written: the chain stays where the last commit left it. */
    a->batching = false;
    a->batch_len = 0;
}
