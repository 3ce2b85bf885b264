/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cohorts: whom to watch on one server. A patient list file, a FHIR Group (members re-read
 * periodically) or "server-wide" (no patient: servers that allow searches without one).
 */
#ifndef PAINWATCH_COHORT_H
#define PAINWATCH_COHORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "painwatch/conf_map.h"

struct pw_http;
struct pw_http_req;
struct pw_auth;
struct pw_cohort;

/*
 * PW_COHORT_MAX          patients in one cohort (a Group or a list file beyond it is refused
 *                        with a clear error rather than silently cut).
 * PW_COHORT_LINE_MAX     one line of a patient list file.
 */
#define PW_COHORT_MAX      100000u
#define PW_COHORT_LINE_MAX 512u

/** Completion of an asynchronous refresh. */
typedef void pw_cohort_done_fn(void *arg, int err);

/** Where a cohort that needs I/O reaches its server. Borrowed from the sync engine. */
struct pw_cohort_env {
    struct pw_http *http;
    const char *server;   /* pw_http server name */
    const char *base;     /* FHIR base URL */
    struct pw_auth *auth; /* submit through pw_auth_submit_new() when set (auth.h) */
    uint64_t refresh_ms;  /* re-read interval when the cohort's own config sets none */
};

/** A cohort kind. One static instance per adapter file. */
struct pw_cohort_ops {
    /* Must stay first. Name (config "cohort.type"), config_map, ctx_size (conf_map.h). */
    struct pw_adapter adapter;
    /** Validate @p conf (borrowed), keep what is needed; no network I/O. PW_ECONFIG + errbuf. */
    int (*open)(struct pw_cohort *c, const json_t *conf, char *errbuf, size_t errlen);
    /**
     * Bring the members up to date (a Group is re-read when its refresh interval has passed).
     * @return 1 when already current (done is not called), 0 when @p done will run exactly
     * once, never synchronously, or a negative PW_E* (done is never called).
     */
    int (*refresh)(struct pw_cohort *c, const struct pw_cohort_env *env, int64_t now_ms,
                   pw_cohort_done_fn *done, void *arg);
    void (*close)(struct pw_cohort *c);
};

/** A cohort. Members are sorted, unique Patient ids (never "Patient/" prefixed). */
struct pw_cohort {
    const struct pw_cohort_ops *ops;
    bool server_wide; /* no members: one stream per type without a patient */
    char **members;   /* owned */
    size_t nmembers;
    uint64_t generation; /* bumped whenever the member set changes */
    void *ctx;           /* the adapter's own state */
};

extern const struct pw_cohort_ops pw_cohort_list;
extern const struct pw_cohort_ops pw_cohort_group;
extern const struct pw_cohort_ops pw_cohort_server;

/** The cohort registry (daemon/core/cohort.c: one line per adapter; pw_adapter_register()). */
extern struct pw_adapter_kind pw_cohort_kind;

/**
 * A cohort from its config object {"type": "list"|"group"|"server", ...}:
 *   list:   {"file": "/etc/painwatch/patients.txt"}  (one Patient id or reference per line,
 *           '#' starts a comment; errors name file:line)
 *   group:  {"group": "Group/<id>" or "<id>", "refresh_s": 3600}
 *   server: {}
 * Caller owns the result; free with pw_cohort_free(). @return 0, PW_ECONFIG (errbuf says why),
 * PW_ENOENT, PW_E2BIG or PW_ENOMEM.
 */
int pw_cohort_new(struct pw_cohort **out, const json_t *conf, char *errbuf, size_t errlen);

struct pw_conf_cohort;

/** The same from the daemon's typed configuration (conf.h; type "server-wide" = "server"). */
int pw_cohort_from_daemon(struct pw_cohort **out, const struct pw_conf_cohort *cc, char *errbuf,
                          size_t errlen);

/** NULL is a no-op. */
void pw_cohort_free(struct pw_cohort *c);

/**
 * Normalize one member reference: "123", "Patient/123" or "<base>/Patient/123" -> "123".
 * Writes into @p out (PW_ID_MAX bytes). @return 0 or PW_EINVAL (other type, bad id).
 */
int pw_patient_ref_id(const char *ref, char *out, size_t len);

/**
 * Replace the members with @p ids (sorted and deduplicated here; takes ownership of the array
 * and the strings, also on failure). Bumps the generation when the set changed.
 */
int pw_cohort_set_members(struct pw_cohort *c, char **ids, size_t n);

/**
 * Parse a patient list file. *out_ids is owned by the caller (each string and the array, free()).
 * @return 0, PW_ENOENT, PW_E2BIG, PW_ECONFIG (errbuf: "file:line: why") or PW_ENOMEM.
 */
int pw_cohort_list_parse(const char *path, char ***out_ids, size_t *out_n, char *errbuf,
                         size_t errlen);

/**
 * The active Patient members of a Group resource (entity references; members with
 * inactive=true or a period that has ended by @p now_ms are left out).
 * @return 0, PW_EFHIR (not a Group, a member that is not a Patient is skipped, not an error),
 * PW_E2BIG or PW_ENOMEM.
 */
int pw_cohort_group_members(const json_t *group, int64_t now_ms, char ***out_ids, size_t *out_n);

#endif
