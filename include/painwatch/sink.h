/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sinks: where findings become writes. A sink formats the resource (pure) and classifies the
 * server's answer (pure); the outbox does the delivery. Local sinks (the shadow-mode file) also
 * write synchronously. Adapters: fhir-flag (default), file (NDJSON, shadow mode).
 */
#ifndef PAINWATCH_SINK_H
#define PAINWATCH_SINK_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "painwatch/conf_map.h"
#include "painwatch/defaults.h"
#include "painwatch/finding.h"
#include "painwatch/limits.h"
#include "painwatch/store.h"

/* PW_FLAG_IDENTIFIER_SYSTEM, PW_FLAG_CODE_SYSTEM, PW_FLAG_AUTHOR: defaults.h. */

/*
 * Id prefix the file sink records in the flag map: an episode "delivered" in shadow mode has no
 * Flag in the EHR, so after go-live (shadow mode off) it is created there for real.
 */
#define PW_SINK_SHADOW_ID_PREFIX "shadow-"

/** Tri-state delivery outcome (Fluent Bit's OK / RETRY / ERROR). */
enum pw_outcome {
    PW_DELIVERED = 0, /* 2xx: done */
    PW_RETRY,         /* 408, 429, 5xx, timeout, transport error: try again later */
    PW_REJECTED,      /* any other 4xx: dead-letter, keep the OperationOutcome for review */
};

/** One rule written to another target than the sink's own (config sink.rules). Borrowed. */
struct pw_sink_rule_target {
    const char *rule;   /* rule id */
    const char *target; /* "fhir-flag" or "detected-issue" */
};

/**
 * Settings every sink takes (the kind's own: config sink.identifier_system, sink.flag_author).
 * Strings are copied by pw_sink_new(); NULL takes the default.
 */
struct pw_sink_conf {
    const char *identifier_system; /* Flag.identifier.system (episode keys live there) */
    const char *code_system;       /* Flag.code.coding.system (rule ids live there) */
    const char *author;            /* Flag.author reference, a Device for the gateway */
    const char *author_display;    /* Flag.author.display, may be NULL */
    /*
     * The sink's config object: {"type": ..., the adapter's keys (its config_map)}, e.g. the file
     * sink's {"file": "/var/lib/painwatch/flags.ndjson"}. Borrowed; the sink keeps a reference
     * (its context borrows strings from it). NULL: every key at its default.
     */
    const json_t *section;
    /* issue 21 (write targets) */
    const char *target;        /* file sink: the resource it carries ("fhir-flag", "detected-issue",
                                  "auto"); NULL: fhir-flag. Ignored by the FHIR sinks. */
    const char *closed_status; /* config sink.closed_status: DetectedIssue.status painwatch closes
                                  with; NULL: cancelled */
    const struct pw_sink_rule_target *rule_targets; /* config sink.rules; may be NULL */
    size_t n_rule_targets;
};

/** What a local sink returns for a write: stands in for the server's id and version. */
struct pw_sink_written {
    char id[PW_ID_MAX];
    char version[PW_ID_MAX];
};

struct pw_sink;

struct pw_sink_ops {
    /* Must stay first. Name ("fhir-flag", "file"), config_map, ctx_size (conf_map.h). */
    struct pw_adapter adapter;
    /* true: delivered over HTTP by the outbox; false: delivered by write(). */
    bool remote;
    /* Validate conf, open files. @return 0 or PW_ECONFIG / negated errno. */
    int (*init)(struct pw_sink *sink);
    /* Release what init acquired. */
    void (*cleanup)(struct pw_sink *sink);
    /*
     * The resource to create for @p f (status active). *out is a new reference owned by the
     * caller. @return 0, PW_EINVAL (finding unusable: no key/patient/rule) or PW_ENOMEM.
     */
    int (*format)(const struct pw_sink *sink, const struct pw_finding *f, json_t **out);
    /*
     * The resource for an update of @p created (what format() built, borrowed): RESOLVE sets
     * status inactive and period.end = @p at; REACTIVATE sets status active again without
     * period.end. *out is a new reference. "id" and "meta" are left to the deliverer.
     */
    int (*update)(const struct pw_sink *sink, const json_t *created, enum pw_outbox_op op,
                  int64_t at, json_t **out);
    /* @p err: 0 when a response arrived (then @p status), else a PW_E* transport error. */
    enum pw_outcome (*classify)(const struct pw_sink *sink, int err, long status);
    /*
     * Local sinks only (remote == false): write @p row (its payload is the resource) durably
     * before returning, and say what id/version stand for it. @return 0 or negated errno.
     */
    int (*write)(struct pw_sink *sink, const struct pw_outbox_row *row, int64_t now,
                 struct pw_sink_written *out);
    /* issue 21: the FHIR resource type format() builds ("Flag", "DetectedIssue"); NULL for a
     * sink that carries another one's resources (file, auto). */
    const char *resource_type;
    /*
     * Read back (FHIR sinks): what @p res, one of painwatch's resources as the server holds it,
     * says about its episode in Flag terms: "active" (open), "inactive" (closed, or
     * acknowledged by someone), "entered-in-error"; NULL when it says nothing usable.
     */
    const char *(*episode_status)(const json_t *res);
    /* issue 20 (r20): true for the local sink shadow mode writes to, whatever sink.type says
     * (pw_sink_shadow_type()); one adapter says so. */
    bool shadow;
};

/** A configured sink. Fields are read-only after pw_sink_new(). */
struct pw_sink {
    const struct pw_sink_ops *ops;
    char *identifier_system;
    char *code_system;
    char *author;
    char *author_display; /* may be NULL */
    const char *path;     /* a local sink's output, set by its init (audit trail); may be NULL */
    /* The adapter's context: ctx_size bytes, zeroed and filled from its config_map before init;
     * pw_sink_free() frees it after cleanup. NULL when ctx_size is 0. */
    void *ctx;
    json_t *section; /* the config object the context borrows from (a reference), may be NULL */
    /* issue 21: the sink building the resources (fhir-flag, detected-issue); NULL while an
     * `auto` sink waits for /metadata (pw_sink_choose_target()). */
    const struct pw_sink_ops *target;
    char *closed_status; /* DetectedIssue.status when painwatch closes one */
    struct pw_sink_rule_ops *rule_targets;
    size_t n_rule_targets;
};

/** A per-rule write target, resolved. */
struct pw_sink_rule_ops {
    char *rule;
    const struct pw_sink_ops *ops;
};

/* The Flag builder other sinks of Flags reuse (format, update). */
extern const struct pw_sink_ops pw_sink_fhir_flag;

/**
 * The sink registry: fhir-flag, file (daemon/core/sink.c: one line per adapter, which also
 * declares its ops; pw_adapter_register() for adapters outside the tree).
 */
extern struct pw_adapter_kind pw_sink_kind;

/**
 * Create the sink named @p name ("fhir-flag", "file"; NULL: conf->section's "type") with
 * @p conf (may be NULL). Caller owns the result; free with pw_sink_free(). @return 0,
 * PW_ECONFIG (unknown name or bad conf, logged), PW_ENOMEM or a negated errno from the
 * adapter's init.
 */
int pw_sink_new(struct pw_sink **out, const char *name, const struct pw_sink_conf *conf);

/**
 * The configured sink from the effective `sink` section (pw_conf_daemon()->sink.section): the
 * kind's keys and the adapter's, generically. @p type overrides the section's "type" (shadow
 * mode writes to "file" whatever the section says); NULL: the section's; @p code_system:
 * Flag.code.coding.system (NULL: the default). Same contract as pw_sink_new().
 */
int pw_sink_from_conf(struct pw_sink **out, const json_t *section, const char *type,
                      const char *code_system);
void pw_sink_free(struct pw_sink *sink);

/** The classification every FHIR sink uses: 2xx / 408,429,5xx,transport / other 4xx. */
enum pw_outcome pw_sink_classify_http(int err, long status);

/** pw_sink_classify_http() as a classify op (the FHIR sinks' own). */
enum pw_outcome pw_sink_classify_fhir(const struct pw_sink *sink, int err, long status);

/** "delivered", "retry", "rejected". */
const char *pw_outcome_name(enum pw_outcome o);

/** Format @p t (s since epoch, UTC) as a FHIR instant "2026-01-02T03:04:05Z" into @p out. */
void pw_fhir_instant(int64_t t, char out[32]);

/* ---- issue 21: write targets (Flag, DetectedIssue, chosen per rule or from /metadata) ---- */

/** The status a DetectedIssue gets when painwatch closes it, unless the site configures another. */
#define PW_SINK_RULE_TARGETS_MAX    64 /* config sink.rules entries */
#define PW_DI_CLOSED_STATUS_DEFAULT "cancelled"

/** Whether @p status may be configured as the status painwatch closes a DetectedIssue with. */
bool pw_sink_closed_status_valid(const char *status);

/**
 * The resource for finding @p f: built by the rule's own target (sink.rules) or else the
 * sink's. *out is a new reference. @return as format(), or PW_EAGAIN while an `auto` sink has
 * not chosen yet (the caller's page is repeated later).
 */
int pw_sink_format(const struct pw_sink *sink, const struct pw_finding *f, json_t **out);

/**
 * The update of @p created by the sink that builds its resourceType (an episode keeps the
 * resource type it was created with, whatever the sink is now). @return as update(), PW_EINVAL
 * for a resource no sink builds.
 */
int pw_sink_update(const struct pw_sink *sink, const json_t *created, enum pw_outbox_op op,
                   int64_t at, json_t **out);

/** The sink that builds resources of type @p type ("Flag", "DetectedIssue"), or NULL. */
const struct pw_sink_ops *pw_sink_for_resource(const char *type);

/**
 * What one of painwatch's resources read back says about its episode ("active", "inactive",
 * "entered-in-error"; see episode_status), or NULL (not a type painwatch writes, no status).
 */
const char *pw_sink_episode_status(const json_t *res);

/** What a server's /metadata says about the write targets (create and update advertised). */
struct pw_sink_caps {
    bool known; /* /metadata was read */
    bool flag;  /* Flag create + update */
    bool detected_issue;
};

/**
 * `sink.type: auto`: DetectedIssue when the server advertises its create and update (the
 * resource FHIR meant for a problem with a specific therapy: implicated orders, severity,
 * mitigation), else Flag (also when /metadata is unknown or advertises neither: the
 * long-standing default, whose writes then fail visibly). A sink that has a target keeps it.
 * @return the target in use.
 */
const struct pw_sink_ops *pw_sink_choose_target(struct pw_sink *sink,
                                                const struct pw_sink_caps *caps);

/**
 * True when findings of some rule may be written as @p resource_type ("Flag", "DetectedIssue"):
 * core asks by resource type, never by adapter.
 */
bool pw_sink_uses(const struct pw_sink *sink, const char *resource_type);

/** issue 20 (r20): the name of the sink shadow mode writes to (the one with .shadow), or NULL. */
const char *pw_sink_shadow_type(void);

/** issue 20 (r20): the FHIR resource types a configured sink writes to the server. */
#define PW_SINK_WRITES_MAX 4
struct pw_sink_writes {
    const char *types[PW_SINK_WRITES_MAX]; /* "Flag", "DetectedIssue": static, the adapters' */
    size_t n;
    bool any; /* one of them suffices: the sink picks a writable one from /metadata (auto) */
};

/**
 * What the sink configured by the effective `sink` section @p section (NULL: every key at its
 * default) writes, or would write outside shadow mode: the types its adapter builds (a local
 * sink: what its target builds; a remote one that builds none chooses among every adapter that
 * does), and those of its per-rule targets (sink.rules). Core asks by section, never by adapter:
 * the derived SMART scope and the /metadata check follow it.
 */
void pw_sink_conf_writes(const json_t *section, struct pw_sink_writes *out);

#endif
