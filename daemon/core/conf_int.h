/* SPDX-License-Identifier: Apache-2.0 */
/* Private to the configuration module: the load context shared by conf_yaml.c and conf.c. */
#ifndef PAINWATCH_CORE_CONF_INT_H
#define PAINWATCH_CORE_CONF_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "painwatch/conf.h"

/* Nesting depth of mappings and sequences a config may use (ours needs 4). */
#define PW_CONF_DEPTH_MAX 32
/* Longest key path we build ("servers[12].auth.private_key_file"). */
#define PW_CONF_PATH_MAX 256
/* Longest scalar accepted anywhere in the configuration. */
#define PW_CONF_SCALAR_MAX 4096
/* Error lines kept per load; later errors are counted only. */
#define PW_CONF_ERRORS_MAX 64

/*
 * One load. The side table `pos` maps a key path to [value line, value column, key line,
 * key column, plain]: jansson shares its true/false/null singletons, so positions cannot be
 * keyed by json_t pointer. "plain" is 1 for an unquoted YAML scalar, which is what lets the
 * schema tell the number 80 from the string "80".
 */
struct pw_conf_ctx {
    const char *name;      /* file name as given, for messages */
    const char *base_dir;  /* relative paths resolve here */
    const char *state_dir; /* PW_CONF_F_STATE paths resolve here (set once known) */
    json_t *pos;
    struct pw_conf_errors *errs;
    bool oom; /* an allocation failed: the load fails with PW_ENOMEM, not PW_ECONFIG */
};

/** Record an allocation failure at @p path (reported as an error too, so nothing passes). */
void pw_conf_out_of_memory(struct pw_conf_ctx *ctx, const char *path);

/**
 * Parse YAML (JSON is a subset we accept) into a raw tree: mappings -> objects, sequences ->
 * arrays, scalars -> strings (null for empty, "~" and "null"), recording positions in ctx->pos.
 * Anchors, aliases, tags other than the core ones, duplicate keys and multiple documents are
 * errors. @return 0 with *out a new reference, or PW_ECONFIG (errors reported) / PW_ENOMEM.
 */
int pw_conf_yaml_parse(struct pw_conf_ctx *ctx, const char *text, size_t len, json_t **out);

/** Report at an explicit position (line/col 1-based; 0 = unknown). */
void pw_conf_error_pos(struct pw_conf_ctx *ctx, int line, int col, const char *path,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/** Like pw_conf_error(), at the key's position rather than its value's (unknown keys). */
void pw_conf_error_key(struct pw_conf_ctx *ctx, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Record the positions of @p path. */
int pw_conf_pos_set(struct pw_conf_ctx *ctx, const char *path, int line, int col, int kline,
                    int kcol, bool plain);

/** Whether the scalar at @p path was written unquoted (true when unknown, e.g. defaults). */
bool pw_conf_pos_plain(const struct pw_conf_ctx *ctx, const char *path);

/*
 * jansson's iterators take non-const pointers even for reads; this drops const without a cast
 * (which -Wcast-qual rejects). Only for read-only iteration.
 */
static inline json_t *pw_conf_mut(const json_t *j)
{
    union {
        const json_t *c;
        json_t *m;
    } u = {.c = j};
    return u.m;
}

/** Checks across the top-level sections (unique server names). In conf_schema.c. */
pw_conf_check_fn pw_conf_check_top;

#endif
