/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Adapters declare themselves (issue 20; Fluent Bit's config_map): every adapter ops struct
 * (auth, cohort, sink, store, source) starts with a struct pw_adapter naming its config "type",
 * its config field table (the conf engine's own struct pw_conf_field, offsets into the adapter's
 * context) and the size of that context. The configuration engine checks, defaults and documents
 * a section of a kind (servers[].auth, sink, ...) from the registry of that kind; core builds
 * instances generically with pw_adapter_instantiate(). Adding an adapter is one file declaring
 * its ops and one line in its kind's registry (or pw_adapter_register() outside the tree).
 */
#ifndef PAINWATCH_CONF_MAP_H
#define PAINWATCH_CONF_MAP_H

#include <stddef.h>

#include <jansson.h>

#include "painwatch/conf.h"

/** A production risk an adapter's advise() reports: a warning, not an error. */
typedef void pw_adapter_warn_fn(void *arg, const char *key, const char *text);

/**
 * An adapter's declaration: the first member of its ops struct (`.adapter = {...}`), so a
 * registry of pw_adapter pointers leads back to the ops (pw_adapter_ops()).
 */
struct pw_adapter {
    const char *name; /* the section's "type" value: "bearer", "file", "group" */
    /*
     * The keys of the section besides "type", NULL-terminated (NULL: none). Offsets point into the
     * adapter's context (PW_CONF_NOFILL: checked only). Scalar types only (no lists, sections):
     * the context borrows strings from the section. Help texts describe the key for this type.
     * PW_CONF_F_REQUIRED means "required with this type".
     */
    const struct pw_conf_field *config_map;
    size_t ctx_size; /* core callocs this much, fills it from config_map, then the adapter starts */
    /* Optional cross-field check of the effective section when this type is chosen. */
    pw_conf_check_fn *check;
    const char *help; /* one line: what this type does (`painwatch config describe`) */
    /*
     * Optional: the production risks of this type's effective section @p section (key path
     * @p path), for `painwatch config check` and the daemon's startup validation: one @p warn
     * call each (@p key the key path it is about, @p text what is wrong and what to do).
     */
    void (*advise)(const json_t *section, const char *path, pw_adapter_warn_fn *warn, void *arg);
};

/* Registered adapters per kind, built-in and pw_adapter_register()ed together. */
#define PW_ADAPTERS_MAX 32

/**
 * An adapter kind: the registry a PW_CONF_ADAPTER field (.kind) checks its section against.
 * Defined (statically) by the kind's core file, e.g. pw_sink_kind in daemon/core/sink.c.
 */
struct pw_adapter_kind {
    const char *name;      /* "auth", "cohort", "sink", "store": messages and logs */
    const char *type_help; /* help of the section's "type" key */
    /*
     * Keys every type of the kind takes (core's own settings of the kind, e.g. a sink's
     * identifier_system), checked with the type's config_map; NULL: none. Offsets are core's.
     */
    const struct pw_conf_field *common;
    /* The registry: built-in lines first (static initializer), then pw_adapter_register(). */
    const struct pw_adapter *adapters[PW_ADAPTERS_MAX];
};

/* A registry line's entry: the adapter of the ops struct named @p ops (see below). */
#define PW_ADAPTER_ENTRY(ops) &ops.adapter,

/*
 * Declaring an adapter (one file):
 *
 *     struct echo_ctx { const char *prefix; int64_t repeat; };   // the adapter's context
 *     static const struct pw_conf_field echo_map[] = {
 *         {.name = "prefix", .type = PW_CONF_STRING, .def = "> ",
 *          .offset = offsetof(struct echo_ctx, prefix), .help = "written before each line"},
 *         {0},
 *     };
 *     const struct pw_sink_ops pw_sink_echo = {
 *         .adapter = {.name = "echo", .config_map = echo_map,
 *                     .ctx_size = sizeof(struct echo_ctx), .help = "..."},
 *         .init = echo_init, ...
 *     };
 *
 * and one registry line in daemon/core/sink.c (`X(pw_sink_echo)` in its SINKS list, which
 * declares the ops and lists PW_ADAPTER_ENTRY(pw_sink_echo)). The configuration then
 * accepts `sink: {type: echo, prefix: "# "}`, `config describe` lists sink.prefix, and the daemon
 * builds it with no further edit.
 */

/**
 * The adapter of @p kind named @p type, or NULL. "type" values are compared exactly.
 */
const struct pw_adapter *pw_adapter_find(const struct pw_adapter_kind *kind, const char *type);

/**
 * Add @p adapter (static, must outlive every use) to @p kind: for adapters outside the tree
 * (embedders, the test adapters in tests/). Call before loading a configuration that uses it.
 * @return 0, PW_EEXIST (a type of that name is registered) or PW_E2BIG (registry full).
 */
int pw_adapter_register(struct pw_adapter_kind *kind, const struct pw_adapter *adapter);

/**
 * The generic "instantiate an adapter from its config object": find the adapter named @p type
 * (NULL: the one @p section's "type" names) in @p kind, allocate its context (ctx_size bytes,
 * zeroed) and fill it from
 * @p section with the adapter's config_map. Defaults come from the configuration engine (the
 * effective section has every key); a key absent from a section built by hand (tests,
 * embedders) leaves its member zero: NULL, 0, false.
 * Strings in the context are borrowed from @p section: keep a reference to it (json_incref) as
 * long as the context lives.
 * @param out_adapter the adapter found (static); the caller maps it to its ops (pw_adapter_ops)
 * @param out_ctx     the filled context; caller owns, free() (NULL when ctx_size is 0)
 * @param errbuf      why, on PW_ECONFIG ("sink.type: 'x' is not one of: fhir-flag, file")
 * @return 0, PW_ECONFIG (no such type, a value of the wrong shape) or PW_ENOMEM.
 */
int pw_adapter_instantiate(const struct pw_adapter_kind *kind, const json_t *section,
                           const char *type, const struct pw_adapter **out_adapter, void **out_ctx,
                           char *errbuf, size_t errlen);

/**
 * Fill @p out (an adapter context, or a core struct for the kind's common keys) from @p section
 * with @p table: pw_conf_fill() without a pw_conf, scalars only. Absent (or null) keys leave
 * their member untouched. @return 0, PW_EINVAL (a list or section field, a value of the wrong
 * JSON type).
 */
int pw_conf_fill_scalars(const struct pw_conf_field *table, const json_t *section, void *out);

/** @p section without const, for read-only iteration (jansson's iterators are not const). */
static inline json_t *pw_conf_mut_json(const json_t *section)
{
    union {
        const json_t *c;
        json_t *m;
    } u = {.c = section};
    return u.m;
}

/**
 * A new reference to the borrowed config object @p section (NULL: NULL), for an instance whose
 * context borrows strings from it; release with json_decref().
 */
static inline json_t *pw_conf_ref(const json_t *section)
{
    return json_incref(pw_conf_mut_json(section));
}

/**
 * The ops struct whose first member is @p adapter (every ops struct starts with its
 * struct pw_adapter). Cast the result to the kind's ops type.
 */
static inline const void *pw_adapter_ops(const struct pw_adapter *adapter)
{
    return adapter;
}

#endif
