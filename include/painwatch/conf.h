/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Configuration: one YAML (or JSON) file, loaded into a jansson tree that remembers the
 * line:column of every key and value, checked against declared field tables, defaults filled in.
 */
#ifndef PAINWATCH_CONF_H
#define PAINWATCH_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct pw_rule;

/**
 * Value types a field can declare. The comment names what the core stores at the field's offset
 * when a section is filled into a struct (pw_conf_fill). Strings are borrowed from the pw_conf
 * and valid until pw_conf_free().
 */
enum pw_conf_type {
    PW_CONF_BOOL,        /* true | false                                 -> bool */
    PW_CONF_INT,         /* decimal integer                              -> int64_t */
    PW_CONF_DOUBLE,      /* number                                       -> double */
    PW_CONF_STRING,      /* any scalar                                   -> const char * */
    PW_CONF_DURATION,    /* "500ms" "30s" "5m" "24h" "14d" "1h30m"       -> int64_t milliseconds */
    PW_CONF_SIZE,        /* bytes, or "64KiB" "16MiB" "1GiB"             -> int64_t bytes */
    PW_CONF_PATH,        /* relative to the config file's directory      -> const char * absolute */
    PW_CONF_SECRET_PATH, /* a secret file (see below)                    -> const char * absolute */
    PW_CONF_ENUM,        /* one of .allowed                              -> const char * */
    PW_CONF_STRLIST, /* sequence of scalars -> const char ** (NULL-terminated), n at .count_offset
                      */
    PW_CONF_SECTION, /* mapping checked against .sub                 -> nested struct at .offset */
    PW_CONF_SECTION_LIST, /* sequence of mappings -> array of .elem_size at .offset, n at
                             .count_offset */
    PW_CONF_JSON,         /* free-form subtree validated elsewhere        -> const json_t * */
    /* issue 20: a mapping whose "type" picks an adapter of .kind (conf_map.h); checked against
       that adapter's config_map and the kind's common keys -> struct pw_conf_adapter_ref */
    PW_CONF_ADAPTER,
};

/*
 * Secret files (PW_CONF_SECRET_PATH): a value without '/' names a systemd credential and resolves
 * to $CREDENTIALS_DIRECTORY/<value> (LoadCredential=); anything else is a path. The file must be a
 * readable regular file that is neither world-readable nor world-writable. A secret written inline
 * (a PEM block, a value with spaces or newlines, or the key without its "_file" suffix) is an
 * error: secrets never live in the configuration itself.
 */

/* Field flags. */
#define PW_CONF_F_REQUIRED   0x01u /* no default: the key must be present */
#define PW_CONF_F_MUST_EXIST 0x02u /* PATH: must exist when the configuration is loaded */
#define PW_CONF_F_DIR        0x04u /* PATH: a directory (with MUST_EXIST: checked) */
#define PW_CONF_F_STATE      0x08u /* PATH: relative to state_dir, not to the config file */
#define PW_CONF_F_MASK       0x10u /* printed as "********" by pw_conf_dump(mask = true) */

/** .offset / .count_offset value for "do not store". */
#define PW_CONF_NOFILL ((size_t)-1)

struct pw_conf_ctx;
struct pw_adapter_kind;

/**
 * Cross-field check of one section (e.g. "auth.type: smart-backend needs client_id"), run after
 * the section's fields were checked and defaulted. @p section is the effective (typed) object,
 * @p path its key path ("servers[0].auth"). Report problems with pw_conf_error(); the return value
 * is ignored (errors are counted by the context).
 */
typedef void pw_conf_check_fn(struct pw_conf_ctx *ctx, const json_t *section, const char *path);

/**
 * Conversion of a PW_CONF_JSON field: check the raw subtree @p raw (scalars are strings, as
 * written) and return its effective form, a new reference, or NULL after pw_conf_error().
 */
typedef json_t *pw_conf_convert_fn(struct pw_conf_ctx *ctx, const json_t *raw, const char *path);

/**
 * One accepted key. Tables are arrays terminated by an entry whose name is NULL. Declare with
 * designated initializers; unset members are 0/NULL, which means "no range", "no default".
 */
struct pw_conf_field {
    const char *name;
    enum pw_conf_type type;
    const char *def;                 /* default in config syntax ("5m", "true"); NULL: none */
    unsigned flags;                  /* PW_CONF_F_* */
    double min;                      /* inclusive range, checked when min < max, in the stored */
    double max;                      /*   unit: ms, bytes, or list items for lists */
    const char *const *allowed;      /* ENUM: NULL-terminated list of accepted values */
    const struct pw_conf_field *sub; /* SECTION, SECTION_LIST: the nested table */
    pw_conf_check_fn *check;         /* SECTION, SECTION_LIST: optional cross-field check */
    pw_conf_convert_fn *convert;     /* JSON: optional; NULL keeps the raw subtree */
    size_t offset;                   /* offsetof(struct, member), or PW_CONF_NOFILL */
    size_t count_offset;             /* STRLIST, SECTION_LIST: offsetof a size_t count */
    size_t elem_size;                /* SECTION_LIST: sizeof one element */
    const char *help;                /* one line for operators */
    /* issue 20 */
    const struct pw_adapter_kind *kind; /* ADAPTER: the registry of the kind (conf_map.h) */
};

/*
 * Declaring a component's keys (a table is hooked into the schema in conf_schema.c as the .sub of
 * a PW_CONF_SECTION field; the section is then checked, defaulted and shown by `config check`):
 *
 *     struct my_ctx { int64_t retry_ms; const char *mode; bool verbose; };
 *     static const char *const modes[] = {"fast", "safe", NULL};
 *     const struct pw_conf_field my_fields[] = {
 *         {.name = "retry", .type = PW_CONF_DURATION, .def = "30s", .min = 1000, .max = 3600000,
 *          .offset = offsetof(struct my_ctx, retry_ms), .help = "delay before a retry"},
 *         {.name = "mode", .type = PW_CONF_ENUM, .def = "safe", .allowed = modes,
 *          .offset = offsetof(struct my_ctx, mode), .help = "how to run"},
 *         {.name = "verbose", .type = PW_CONF_BOOL, .def = "false",
 *          .offset = offsetof(struct my_ctx, verbose), .help = "log more"},
 *         {0},
 *     };
 *     ...
 *     struct my_ctx ctx;
 *     pw_conf_fill(conf, my_fields, pw_conf_get(conf, "my_section"), &ctx);
 *
 * Rule thresholds need no table here: rules.<id>.<param> is checked against the rule registry
 * (struct pw_rule_param: default, min, max) and shows up in pw_conf_daemon()->rules.
 *
 * Adapters need no edit here either: an adapter's table is its ops' config_map and is found
 * through its kind's registry (PW_CONF_ADAPTER, conf_map.h).
 */

/** A loaded, validated configuration. Immutable once loaded; reload = load a new one. */
struct pw_conf;

/** Errors found while loading, each "file:line:column: key.path: message". */
struct pw_conf_errors {
    size_t count; /* errors found (may exceed the lines kept, see PW_CONF_ERRORS_MAX) */
    size_t n;     /* lines kept */
    char **lines; /* caller owns; release with pw_conf_errors_cleanup() */
};

/** Release the lines of @p errs and zero it. */
void pw_conf_errors_cleanup(struct pw_conf_errors *errs);

/**
 * Load and validate a YAML or JSON file against the painwatch schema.
 * @param out  on success, the configuration. Caller owns; free with pw_conf_free().
 * @param errs optional; receives every problem found (also on success: empty).
 * @return 0, PW_ECONFIG (invalid: see @p errs), PW_ENOENT/PW_EACCES (unreadable), PW_E2BIG
 *         (over PW_CONFIG_FILE_MAX) or PW_ENOMEM.
 */
int pw_conf_load_file(struct pw_conf **out, const char *path, struct pw_conf_errors *errs);

/**
 * Same, from memory. @p name is used in error messages, @p base_dir resolves relative paths
 * (NULL: the current directory).
 */
int pw_conf_load_string(struct pw_conf **out, const char *name, const char *base_dir,
                        const char *text, size_t len, struct pw_conf_errors *errs);

/**
 * SIGHUP reload: load @p path; on success store the new configuration in *conf and hand the
 * previous one back in *old (free it once nothing borrows from it any more), log the new hash,
 * and count painwatch_config_reloads_total{result="ok"}. On failure log every error, count
 * result="failed", and leave *conf untouched (the running configuration stays in force).
 * @return 0 or the pw_conf_load_file() error.
 */
int pw_conf_reload(struct pw_conf **conf, const char *path, struct pw_conf **old);

/** The embedded default configuration (the local demo), NUL-terminated YAML. Static. */
const char *pw_conf_default_yaml(void);

/** Free a configuration. NULL is a no-op. */
void pw_conf_free(struct pw_conf *conf);

/** The effective tree: every key, defaults filled in. Borrowed: valid until pw_conf_free(). */
const json_t *pw_conf_root(const struct pw_conf *conf);

/**
 * Look up a value by key path ("health.listen", "servers[0].auth.type").
 * @return a borrowed reference, or NULL when absent.
 */
const json_t *pw_conf_get(const struct pw_conf *conf, const char *path);

/** Hex SHA-256 of the canonical effective configuration (for the audit trail). Borrowed. */
const char *pw_conf_hash(const struct pw_conf *conf);

/** The file (or name) the configuration was loaded from. Borrowed. */
const char *pw_conf_source(const struct pw_conf *conf);

/**
 * The effective configuration as indented JSON (also valid YAML, and loadable again when not
 * masked). @p mask replaces PW_CONF_F_MASK values. Caller owns; free with free().
 */
char *pw_conf_dump(const struct pw_conf *conf, bool mask);

/**
 * Fill @p out from an effective section using @p table's offsets (strings borrowed from @p conf,
 * arrays allocated in @p conf and freed with it). For component tables hooked into the schema.
 * @return 0 or PW_ENOMEM.
 */
int pw_conf_fill(struct pw_conf *conf, const struct pw_conf_field *table, const json_t *section,
                 void *out);

/**
 * Report a problem from a pw_conf_check_fn. @p path is the key path the problem is about; the
 * message gets the position of that key (or of its closest ancestor) in front.
 */
void pw_conf_error(struct pw_conf_ctx *ctx, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * Issue 20, for adapters' pw_conf_check_fn: report "<path>.<key>: required <why>" when the
 * effective section @p section has no string at @p key.
 */
void pw_conf_need(struct pw_conf_ctx *ctx, const json_t *section, const char *path, const char *key,
                  const char *why);

/**
 * Issue 20, for OAuth adapters' pw_conf_check_fn: the section's token_url, when set, is https or
 * plain http to a loopback host, without credentials (issue 18: the client secret or assertion
 * goes there).
 */
void pw_conf_check_token_url(struct pw_conf_ctx *ctx, const json_t *section, const char *path);

/**
 * Use @p rules (borrowed, must outlive every load) to validate rules.<id>.<param> instead of the
 * engine's registry. For tests and embedders; NULL restores the default: pw_rules_all() when the
 * engine is linked into the program, else "rules" is accepted free-form (enabled: bool, numbers).
 */
void pw_conf_set_rule_catalog(const struct pw_rule *const *rules, size_t n);

/**
 * Every accepted key, one per line: "path<TAB>type<TAB>default<TAB>help", lists written as
 * "servers[]", then rules.<id>.<param> from the rule registry when one is available. For
 * documentation and the test that keeps config/painwatch.yaml complete. Caller frees.
 */
char *pw_conf_describe(void);

/** Parse a duration ("1h30m"). @return 0 with *ms set, or PW_EINVAL. */
int pw_conf_parse_duration(const char *text, int64_t *ms);

/** Format @p ms as the shortest duration string ("90s" -> "1m30s") into @p buf. */
void pw_conf_format_duration(int64_t ms, char *buf, size_t size);

/*
 * Issue 20: what a PW_CONF_ADAPTER field stores at its .offset when filled (pw_conf_fill): the
 * chosen type and the effective section ({"type": ..., the keys of every adapter of the kind and
 * the kind's common keys, defaults filled}), the config object core instantiates the adapter
 * from (conf_map.h). Borrowed from the pw_conf.
 */
struct pw_conf_adapter_ref {
    const char *type;
    const json_t *section;
};

/*
 * The painwatch schema, filled into plain structs. Every string is borrowed from the pw_conf.
 * Durations are milliseconds, sizes bytes. Meaning and defaults: config/painwatch.yaml.
 */
struct pw_conf_server {
    const char *name;
    const char *base_url;
    const char *ca_file;
    const char *client_cert_file;
    const char *client_key_file;
    struct pw_conf_adapter_ref auth;   /* pw_conf_server_auth() (core/conf_server.h) */
    struct pw_conf_adapter_ref cohort; /* pw_cohort_new(&c, cohort.section, ...) */
    const char **resources;
    size_t n_resources;
    int64_t poll_interval_ms;
    int64_t connect_timeout_ms;
    int64_t timeout_ms;
    int64_t max_concurrent;
    int64_t body_max;
    const char *proxy; /* NULL: direct; proxy environment variables are never used */
};

struct pw_conf_audit {
    const char *path;
    const char *key_file;
    int64_t rotate_size;
    int64_t rotate_interval_ms; /* 0: size only */
    /* issue 19 */
    bool allow_local_key; /* the key may live in state_dir (or be created there): demo only */
    int64_t retain_ms;    /* delete rotated files, verified, older than this; 0: keep all */
};

struct pw_conf_outbox {
    int64_t retry_base_ms;
    int64_t retry_cap_ms;
    int64_t max_attempts;
};

struct pw_conf_health {
    bool enabled;
    const char *listen; /* "127.0.0.1:9187", "[::1]:9187" */
};

struct pw_conf_pain_codes {
    const char **score; /* "system|code" */
    size_t n_score;
    const char **type;
    size_t n_type;
    /* issue 17: site codes of sedation scales (POSS, RASS), "system|code" */
    const char **poss;
    size_t n_poss;
    const char **rass;
    size_t n_rass;
};

/* issue 21: the CDS Hooks service (daemon/core/cds_hooks.c) */
struct pw_conf_cds_issuer {
    const char *iss;       /* the EHR's client id / issuer, exactly as in its JWTs */
    const char *jwks_file; /* its public JWK Set, a file ... */
    const char *jwks_url;  /* ... or a URL fetched through the HTTP layer */
};

struct pw_conf_cds_hooks {
    bool enabled;
    const char *listen;      /* "127.0.0.1:9188" */
    const char *service_url; /* the base URL the EHR calls (JWT aud), without /cds-services */
    const char *tls_cert;    /* PEM certificate chain; with tls_key: HTTPS on the listener */
    const char *tls_key;     /* PEM private key (secret file) */
    struct pw_conf_cds_issuer *issuers;
    size_t n_issuers;
    int64_t jwks_refresh_ms; /* JWKS URLs are fetched again this often */
    int64_t jti_window_ms;   /* longest token lifetime accepted; its jti is remembered as long */
    int64_t clock_skew_ms;   /* tolerance on exp / iat */
    int64_t order_sign_horizon_ms;    /* order-sign judges drafts as they stand this long after */
    int64_t refused_audit_per_minute; /* refused calls audited one by one per minute; the rest
                                       * counted in one record at the minute's end */
};

struct pw_conf_daemon {
    const char *state_dir;
    const char *log_level;
    bool shadow_mode;
    int64_t reevaluate_interval_ms;
    int64_t shutdown_timeout_ms;
    struct pw_conf_health health;
    struct pw_conf_audit audit;
    struct pw_conf_adapter_ref store; /* pw_store_opts.section */
    struct pw_conf_outbox outbox;
    struct pw_conf_adapter_ref sink; /* pw_sink_from_conf() */
    struct pw_conf_server *servers;
    size_t n_servers;
    const char *terminology_dir;
    const char *factor_set; /* cdc2022 | cdc2016 */
    struct pw_conf_pain_codes pain_codes;
    const json_t *rules; /* {"<rule id>": {"enabled": bool, "<param>": number, ...}} */
    /* issue 19 */
    const char *control_socket; /* `painwatch writes`; NULL: see pw_control_path() */
    int64_t startup_timeout_ms; /* READY waits this long for every server's /metadata */
    /* issue 16: site overrides of the factor and plausibility tables (NULL: shipped ones) */
    const char *mme_route_factors_file;
    const char *dose_limits_file;
    const char *scope; /* issue 17: problem-list | cohort */
    /* issue 21 */
    const json_t *timezone;             /* IANA zone name (string) or null: the system's zone */
    const char *post_min_severity;      /* info | low | medium | high: posted from this one up */
    const char *rule_code_system;       /* canonical URL of the rule CodeSystem */
    struct pw_conf_cds_hooks cds_hooks; /* issue 21 */
};

/** The top-level table (for documentation tools and tests). */
extern const struct pw_conf_field pw_conf_schema[];

/**
 * Issue 19: the audit HMAC key must live outside state_dir (a file or a systemd credential)
 * unless audit.allow_local_key is true: a key beside the trail protects against accidents, not
 * against someone who can write the trail. Startup and `config check` refuse otherwise.
 * @return 0, or PW_ECONFIG with the reason in @p why.
 */
int pw_conf_check_audit_key(const struct pw_conf_daemon *cd, char *why, size_t cap);

/** The typed view of @p conf. Borrowed: valid until pw_conf_free(). */
const struct pw_conf_daemon *pw_conf_daemon(const struct pw_conf *conf);

/**
 * Issue 21: apply the presentation keys of @p cd: `timezone` becomes the process's local zone
 * (pw_timezone_set), `post_min_severity` the engine's posting threshold. Used by the daemon and
 * `painwatch check`. @return 0 or PW_ECONFIG (logged, naming the key).
 */
struct pw_engine;
int pw_conf_apply_presentation(const struct pw_conf_daemon *cd, struct pw_engine *engine);

#endif
