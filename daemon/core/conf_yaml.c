/* SPDX-License-Identifier: Apache-2.0 */
/*
 * YAML (and JSON) text -> raw jansson tree with a position for every key and value. Built on
 * libyaml's event parser; typing is left to the schema (conf.c), so `no` never becomes false.
 */
#include <stdio.h>
#include <string.h>

#include <yaml.h>

#include "core/conf_int.h"
#include "painwatch/err.h"

struct yparse {
    yaml_parser_t parser;
    struct pw_conf_ctx *ctx;
    int depth;
};

static int next_event(struct yparse *y, yaml_event_t *ev)
{
    if (yaml_parser_parse(&y->parser, ev)) {
        return 0;
    }
    if (y->parser.error == YAML_MEMORY_ERROR) {
        return PW_ENOMEM;
    }
    /* libyaml marks are 0-based; editors count from 1. */
    pw_conf_error_pos(y->ctx, (int)y->parser.problem_mark.line + 1,
                      (int)y->parser.problem_mark.column + 1, "", "YAML syntax: %s%s%s",
                      y->parser.problem ? y->parser.problem : "parse error",
                      y->parser.context ? " " : "", y->parser.context ? y->parser.context : "");
    return PW_ECONFIG;
}

static int child_path(char *buf, size_t size, const char *parent, const char *key, long index)
{
    int n;

    if (index >= 0) {
        n = snprintf(buf, size, "%s[%ld]", parent, index);
    } else if (parent[0]) {
        n = snprintf(buf, size, "%s.%s", parent, key);
    } else {
        n = snprintf(buf, size, "%s", key);
    }
    return (n < 0 || (size_t)n >= size) ? PW_E2BIG : 0;
}

static bool is_null_scalar(const char *v, bool plain)
{
    return plain && (!v[0] || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
                     strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0);
}

static int parse_node(struct yparse *y, yaml_event_t *ev, const char *path, int kline, int kcol,
                      json_t **out);

/* Reject what a configuration never needs and that makes positions and sizes unpredictable. */
static int refuse_extras(struct yparse *y, const yaml_event_t *ev, const char *path)
{
    const yaml_char_t *anchor = NULL;
    const yaml_char_t *tag = NULL;
    int line = (int)ev->start_mark.line + 1;
    int col = (int)ev->start_mark.column + 1;

    if (ev->type == YAML_ALIAS_EVENT) {
        pw_conf_error_pos(y->ctx, line, col, path, "aliases (*name) are not supported");
        return PW_ECONFIG;
    }
    if (ev->type == YAML_SCALAR_EVENT) {
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
    } else if (ev->type == YAML_MAPPING_START_EVENT) {
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
    } else if (ev->type == YAML_SEQUENCE_START_EVENT) {
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
    }
    if (anchor) {
        pw_conf_error_pos(y->ctx, line, col, path, "anchors (&name) are not supported");
        return PW_ECONFIG;
    }
    if (tag) {
        pw_conf_error_pos(y->ctx, line, col, path, "tags (%s) are not supported",
                          (const char *)tag);
        return PW_ECONFIG;
    }
    return 0;
}

static int parse_mapping(struct yparse *y, const char *path, json_t *obj)
{
    for (;;) {
        yaml_event_t kev;
        yaml_event_t vev;
        char cpath[PW_CONF_PATH_MAX];
        json_t *child = NULL;
        int err = next_event(y, &kev);

        if (err) {
            return err;
        }
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return 0;
        }
        int kline = (int)kev.start_mark.line + 1;
        int kcol = (int)kev.start_mark.column + 1;
        if (kev.type != YAML_SCALAR_EVENT) {
            pw_conf_error_pos(y->ctx, kline, kcol, path, "a key must be a plain string");
            yaml_event_delete(&kev);
            return PW_ECONFIG;
        }
        const char *key = (const char *)kev.data.scalar.value;
        if (kev.data.scalar.length != strlen(key) || !key[0] ||
            child_path(cpath, sizeof(cpath), path, key, -1)) {
            pw_conf_error_pos(y->ctx, kline, kcol, path, "invalid or too long key");
            yaml_event_delete(&kev);
            return PW_ECONFIG;
        }
        if (json_object_get(obj, key)) {
            pw_conf_error_pos(y->ctx, kline, kcol, cpath, "duplicate key");
            yaml_event_delete(&kev);
            return PW_ECONFIG;
        }
        err = next_event(y, &vev);
        if (!err) {
            err = parse_node(y, &vev, cpath, kline, kcol, &child);
        }
        if (!err && json_object_set_new(obj, key, child)) {
            err = PW_ENOMEM;
        }
        yaml_event_delete(&kev);
        if (err) {
            return err;
        }
    }
}

static int parse_sequence(struct yparse *y, const char *path, json_t *arr)
{
    for (long i = 0;; i++) {
        yaml_event_t ev;
        char cpath[PW_CONF_PATH_MAX];
        json_t *child = NULL;
        int err = next_event(y, &ev);

        if (err) {
            return err;
        }
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        if (child_path(cpath, sizeof(cpath), path, NULL, i)) {
            yaml_event_delete(&ev);
            pw_conf_error_pos(y->ctx, 0, 0, path, "key path too long");
            return PW_ECONFIG;
        }
        err = parse_node(y, &ev, cpath, 0, 0, &child);
        if (!err && json_array_append_new(arr, child)) {
            err = PW_ENOMEM;
        }
        if (err) {
            return err;
        }
    }
}

static int parse_scalar(struct yparse *y, const yaml_event_t *ev, const char *path, json_t **out)
{
    const char *v = (const char *)ev->data.scalar.value;
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    int line = (int)ev->start_mark.line + 1;
    int col = (int)ev->start_mark.column + 1;

    if (ev->data.scalar.length > PW_CONF_SCALAR_MAX) {
        pw_conf_error_pos(y->ctx, line, col, path, "value longer than %d bytes",
                          PW_CONF_SCALAR_MAX);
        return PW_ECONFIG;
    }
    if (ev->data.scalar.length != strlen(v)) {
        pw_conf_error_pos(y->ctx, line, col, path, "value contains a NUL character");
        return PW_ECONFIG;
    }
    *out = is_null_scalar(v, plain) ? json_null() : json_stringn(v, ev->data.scalar.length);
    return *out ? 0 : PW_ENOMEM;
}

/* Consumes @p ev (deleted on every path). */
static int parse_node(struct yparse *y, yaml_event_t *ev, const char *path, int kline, int kcol,
                      json_t **out)
{
    int line = (int)ev->start_mark.line + 1;
    int col = (int)ev->start_mark.column + 1;
    bool plain = false;
    int err = refuse_extras(y, ev, path);

    *out = NULL;
    if (err) {
        goto out;
    }
    if (ev->type == YAML_SCALAR_EVENT) {
        plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        err = parse_scalar(y, ev, path, out);
    } else if (ev->type == YAML_MAPPING_START_EVENT || ev->type == YAML_SEQUENCE_START_EVENT) {
        bool map = ev->type == YAML_MAPPING_START_EVENT;
        if (++y->depth > PW_CONF_DEPTH_MAX) {
            pw_conf_error_pos(y->ctx, line, col, path, "nested deeper than %d levels",
                              PW_CONF_DEPTH_MAX);
            err = PW_ECONFIG;
            goto out;
        }
        *out = map ? json_object() : json_array();
        if (!*out) {
            err = PW_ENOMEM;
            goto out;
        }
        err = map ? parse_mapping(y, path, *out) : parse_sequence(y, path, *out);
        y->depth--;
    } else {
        pw_conf_error_pos(y->ctx, line, col, path, "unexpected YAML event");
        err = PW_ECONFIG;
    }
    if (!err && path[0]) {
        err = pw_conf_pos_set(y->ctx, path, line, col, kline ? kline : line, kline ? kcol : col,
                              plain);
    }
out:
    yaml_event_delete(ev);
    if (err) {
        json_decref(*out);
        *out = NULL;
    }
    return err;
}

static int expect(struct yparse *y, yaml_event_type_t type, const char *what)
{
    yaml_event_t ev;
    int err = next_event(y, &ev);

    if (err) {
        return err;
    }
    if (ev.type != type) {
        pw_conf_error_pos(y->ctx, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1, "",
                          "%s", what);
        err = PW_ECONFIG;
    }
    yaml_event_delete(&ev);
    return err;
}

/* Stream: one optional document whose root is a mapping. */
static int parse_stream(struct yparse *y, json_t **out)
{
    yaml_event_t ev;
    int err = expect(y, YAML_STREAM_START_EVENT, "not a YAML stream");

    if (!err) {
        err = next_event(y, &ev);
    }
    if (err) {
        return err;
    }
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        *out = json_object(); /* an empty file: every default */
        return *out ? 0 : PW_ENOMEM;
    }
    yaml_event_delete(&ev); /* DOCUMENT_START */
    err = next_event(y, &ev);
    if (err) {
        return err;
    }
    int line = (int)ev.start_mark.line + 1;
    int col = (int)ev.start_mark.column + 1;
    bool is_map = ev.type == YAML_MAPPING_START_EVENT;
    bool is_null =
        ev.type == YAML_SCALAR_EVENT && is_null_scalar((const char *)ev.data.scalar.value, true);
    err = parse_node(y, &ev, "", 0, 0, out);
    if (!err && is_null) {
        json_decref(*out); /* a document that is only "~" or "null": no settings */
        *out = json_object();
        err = *out ? 0 : PW_ENOMEM;
    } else if (!err && !is_map) {
        pw_conf_error_pos(y->ctx, line, col, "", "the top level must be a mapping of keys");
        err = PW_ECONFIG;
    }
    if (!err) {
        err = expect(y, YAML_DOCUMENT_END_EVENT, "trailing content after the document");
    }
    if (!err) {
        err = expect(y, YAML_STREAM_END_EVENT, "only one YAML document is allowed per file");
    }
    if (err) {
        json_decref(*out);
        *out = NULL;
    }
    return err;
}

int pw_conf_yaml_parse(struct pw_conf_ctx *ctx, const char *text, size_t len, json_t **out)
{
    struct yparse y = {.ctx = ctx};
    int err;

    *out = NULL;
    if (!yaml_parser_initialize(&y.parser)) {
        return PW_ENOMEM;
    }
    yaml_parser_set_input_string(&y.parser, (const unsigned char *)text, len);
    yaml_parser_set_encoding(&y.parser, YAML_UTF8_ENCODING);
    err = parse_stream(&y, out);
    yaml_parser_delete(&y.parser);
    return err;
}
