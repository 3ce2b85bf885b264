/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A test sink added the way every adapter is (README "Adding an adapter"): this one file declares
 * its name, keys and context; one line registers it (test_adapter_registry.c). The configuration
 * then checks, defaults and documents `sink: {type: memo, ...}` and core builds it, with no edit
 * to conf_schema.c, conf.h or daemon.c. It writes "<label> <op> <key>" lines to `out`.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>

#include "painwatch/err.h"
#include "painwatch/sink.h"

struct memo {
    const char *label; /* config */
    const char *out;   /* config */
    int64_t max_lines; /* config */
    FILE *f;
    int64_t lines;
};

static const struct pw_conf_field memo_map[] = {
    {.name = "label",
     .type = PW_CONF_STRING,
     .flags = PW_CONF_F_REQUIRED,
     .offset = offsetof(struct memo, label),
     .help = "written at the start of each line"},
    {.name = "out",
     .type = PW_CONF_PATH,
     .def = "memo.txt",
     .flags = PW_CONF_F_STATE,
     .offset = offsetof(struct memo, out),
     .help = "the file written, relative to state_dir"},
    {.name = "max_lines",
     .type = PW_CONF_INT,
     .def = "100",
     .min = 1,
     .max = 1000,
     .offset = offsetof(struct memo, max_lines),
     .help = "lines written at most; later writes are retried"},
    {0},
};

static int memo_init(struct pw_sink *sink)
{
    struct memo *m = sink->ctx;

    if (!m->label || !m->out || m->max_lines < 1) {
        return PW_ECONFIG;
    }
    m->f = fopen(m->out, "a");
    if (!m->f) {
        return -errno;
    }
    sink->path = m->out;
    return 0;
}

static void memo_cleanup(struct pw_sink *sink)
{
    struct memo *m = sink->ctx;

    fclose(m->f);
}

/* A memo is not a FHIR resource: the finding's rule and episode key. */
static int memo_format(const struct pw_sink *sink, const struct pw_finding *f, json_t **out)
{
    (void)sink;
    *out = json_pack("{s:s, s:s, s:s}", "rule", f->rule, "key", f->key, "status", "active");
    return *out ? 0 : PW_ENOMEM;
}

static int memo_update(const struct pw_sink *sink, const json_t *created, enum pw_outbox_op op,
                       int64_t at, json_t **out)
{
    (void)sink;
    (void)at;
    *out = json_deep_copy(created);
    if (!*out || json_object_set_new(*out, "status", json_string(pw_outbox_op_name(op)))) {
        json_decref(*out);
        return PW_ENOMEM;
    }
    return 0;
}

/* Past max_lines a write is refused for good (dead-lettered), anything else is retried. */
static enum pw_outcome memo_classify(const struct pw_sink *sink, int err, long status)
{
    (void)sink;
    (void)status;
    return err == PW_ENOSPC ? PW_REJECTED : err ? PW_RETRY : PW_DELIVERED;
}

static int memo_write(struct pw_sink *sink, const struct pw_outbox_row *row, int64_t now,
                      struct pw_sink_written *out)
{
    struct memo *m = sink->ctx;

    (void)now;
    if (m->lines >= m->max_lines) {
        return PW_ENOSPC;
    }
    if (fprintf(m->f, "%s %s %s\n", m->label, pw_outbox_op_name(row->op), row->key) < 0 ||
        fflush(m->f) != 0) {
        return PW_EIO;
    }
    m->lines++;
    snprintf(out->id, sizeof(out->id), "memo-%lld", (long long)m->lines);
    snprintf(out->version, sizeof(out->version), "1");
    return 0;
}

const struct pw_sink_ops pw_sink_memo = {
    .adapter = {.name = "memo",
                .config_map = memo_map,
                .ctx_size = sizeof(struct memo),
                .help = "test sink: one line per write"},
    .remote = false,
    .init = memo_init,
    .cleanup = memo_cleanup,
    .format = memo_format,
    .update = memo_update,
    .classify = memo_classify,
    .write = memo_write,
};
