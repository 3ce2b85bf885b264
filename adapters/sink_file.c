/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The file sink (shadow mode): every write painwatch would send to the EHR becomes one NDJSON
 * line {time, op, key, patient, rule, outbox_id, resource}, appended and fsync'd.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "painwatch/err.h"
#include "painwatch/log.h"
#include "painwatch/sink.h"

struct file_ctx {
    const char *path; /* config: file */
    int fd;
};

static const struct pw_conf_field file_map[] = {
    {.name = "file",
     .type = PW_CONF_PATH,
     .def = "flags.ndjson",
     .flags = PW_CONF_F_STATE,
     .offset = offsetof(struct file_ctx, path),
     .help = "the NDJSON output (also shadow mode's, whatever the type), relative to state_dir"},
    {0},
};

/* fsync the directory once, so the file's creation itself survives a power loss. */
static int sync_dir(const char *path)
{
    char *copy = strdup(path);
    int fd;
    int err = 0;

    if (!copy) {
        return PW_ENOMEM;
    }
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        err = -errno;
    }
    if (fd >= 0) {
        close(fd);
    }
    free(copy);
    return err;
}

static int file_init(struct pw_sink *sink)
{
    struct file_ctx *ctx = sink->ctx;
    int err;

    if (!ctx->path || !ctx->path[0]) {
        pw_log_err(SINK, "file sink: 'file' is required");
        return PW_ECONFIG;
    }
    ctx->fd = open(ctx->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (ctx->fd < 0) {
        err = -errno;
        pw_log_err(SINK, "file sink: %s: %s", ctx->path, strerror(errno));
        return err;
    }
    err = sync_dir(ctx->path);
    if (err) {
        pw_log_err(SINK, "file sink: %s: cannot sync directory: %s", ctx->path, pw_strerror(err));
        close(ctx->fd);
        return err;
    }
    sink->path = ctx->path;
    return 0;
}

static void file_cleanup(struct pw_sink *sink)
{
    struct file_ctx *ctx = sink->ctx;

    close(ctx->fd);
}

static int file_format(const struct pw_sink *sink, const struct pw_finding *f, json_t **out)
{
    return pw_sink_format(sink, f, out); /* the resources of the configured target */
}

static int file_update(const struct pw_sink *sink, const json_t *created, enum pw_outbox_op op,
                       int64_t at, json_t **out)
{
    return pw_sink_update(sink, created, op, at, out);
}

static enum pw_outcome file_classify(const struct pw_sink *sink, int err, long status)
{
    (void)sink;
    (void)status;
    /* A local write either happened or may succeed later (disk full, permissions fixed). */
    return err ? PW_RETRY : PW_DELIVERED;
}

/* Write all of @p s with O_APPEND; a short write is finished, an error leaves a partial line. */
static int write_all(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t k = write(fd, s, len);

        if (k < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        s += k;
        len -= (size_t)k;
    }
    return 0;
}

static int file_write(struct pw_sink *sink, const struct pw_outbox_row *row, int64_t now,
                      struct pw_sink_written *out)
{
    struct file_ctx *ctx = sink->ctx;
    json_error_t jerr;
    json_t *resource = json_loads(row->payload ? row->payload : "", 0, &jerr);
    json_t *line;
    char when[32];
    char *text;
    char *line_buf;
    size_t len;
    int err;

    if (!resource) {
        pw_log_err(SINK, "file sink: outbox row %" PRId64 ": payload is not JSON (line %d)",
                   row->id, jerr.line);
        return PW_EJSON;
    }
    pw_fhir_instant(now, when);
    line = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:o}", "time", when, "op",
                     pw_outbox_op_name(row->op), "key", row->key, "patient", row->patient, "rule",
                     row->rule, "outbox_id", (json_int_t)row->id, "resource", resource);
    text = line ? json_dumps(line, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(line);
    if (!text) {
        return PW_ENOMEM;
    }
    /* One write of the whole line, newline included, so a crash never leaves two halves. */
    len = strlen(text);
    line_buf = realloc(text, len + 2);
    if (!line_buf) {
        free(text);
        return PW_ENOMEM;
    }
    line_buf[len] = '\n';
    err = write_all(ctx->fd, line_buf, len + 1);
    free(line_buf);
    if (!err && fsync(ctx->fd) != 0) {
        err = -errno;
    }
    if (err) {
        pw_log_err(SINK, "file sink: %s: %s", ctx->path, pw_strerror(err));
        return err;
    }
    /* The episode key stands in for the server id: there is no server in shadow mode. */
    snprintf(out->id, sizeof(out->id), PW_SINK_SHADOW_ID_PREFIX "%.56s", row->key);
    snprintf(out->version, sizeof(out->version), "%" PRId64, row->id);
    return 0;
}

const struct pw_sink_ops pw_sink_file = {
    .adapter = {.name = "file",
                .config_map = file_map,
                .ctx_size = sizeof(struct file_ctx),
                .help = "NDJSON lines appended to `file`, nothing sent (what shadow mode uses)"},
    .remote = false,
    .init = file_init,
    .cleanup = file_cleanup,
    .format = file_format,
    .update = file_update,
    .classify = file_classify,
    .write = file_write,
    .shadow = true,
};
