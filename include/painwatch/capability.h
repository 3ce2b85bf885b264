/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CapabilityStatement (/metadata) of a FHIR server: what it advertises (search parameters per
 * type, Flag create/update, conditional create), fetched and parsed. What a source makes of it
 * is the source's (pw_source_ops.capability).
 */
#ifndef PAINWATCH_CAPABILITY_H
#define PAINWATCH_CAPABILITY_H

#include <stdbool.h>

#include <jansson.h>

/** What a server advertises, for the types a source searches (and Flag). */
struct pw_capability {
    char *fhir_version; /* "4.0.1", or NULL */
    char *software;     /* software.name + version, for the log, or NULL */
    bool flag_create;   /* Flag: interaction create */
    bool flag_update;   /* Flag: interaction update */
    bool flag_conditional_create;
    json_t *types;  /* object type -> {"search": bool, "params": [names]}; owned */
    json_t *common; /* array of rest-level search parameter names; owned */
};

/** Parse a CapabilityStatement. @return 0, PW_EFHIR (not one, no server rest) or PW_ENOMEM. */
int pw_capability_parse(struct pw_capability *cap, const json_t *statement);
void pw_capability_cleanup(struct pw_capability *cap);

/** True when @p type advertises search parameter @p param (or the rest level does). */
bool pw_capability_has_param(const struct pw_capability *cap, const char *type, const char *param);

/**
 * True when @p type advertises both create and update (issue 21: the write targets);
 * *@p conditional_create (may be NULL) says whether it advertises conditional create.
 */
bool pw_capability_writable(const struct pw_capability *cap, const char *type,
                            bool *conditional_create);

struct pw_sink_writes;

/**
 * The write check: what the sink writes (@p w, pw_sink_conf_writes()), each type or, for
 * `auto`, one of them, advertised with create and update by server @p server; a warning logged
 * for each that is not ("posting ... here will fail"). @return the number of warnings.
 */
unsigned pw_capability_check_writes(const struct pw_capability *cap, const char *server,
                                    const struct pw_sink_writes *w);

/** Completion of pw_capability_fetch(). @p cap is borrowed: valid until the callback returns. */
typedef void pw_capability_fn(void *arg, int err, const struct pw_capability *cap);

struct pw_http;
struct pw_auth;

/**
 * GET <base>/metadata on server @p server and parse it, through @p auth when not NULL.
 * @p done runs exactly once, never synchronously, unless this returns an error; err is 0, a
 * transport error, PW_EHTTP (non-200), PW_EJSON or PW_EFHIR.
 */
int pw_capability_fetch(struct pw_http *http, const char *server, const char *base,
                        struct pw_auth *auth, pw_capability_fn *done, void *arg);

#endif
