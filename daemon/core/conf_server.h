/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A configured server as the HTTP core and the auth adapters take it: one mapping for the
 * daemon, `painwatch config check` and `painwatch auth test`, so the three never differ (the
 * derived SMART scope, the proxy).
 */
#ifndef PW_CORE_CONF_SERVER_H
#define PW_CORE_CONF_SERVER_H

#include <stddef.h>

#include "painwatch/auth.h"
#include "painwatch/conf.h"
#include "painwatch/http.h"

/** The HTTP endpoint of @p s. Strings are borrowed from @p s. */
struct pw_http_server pw_conf_server_http(const struct pw_conf_server *s);

/**
 * The auth adapter's settings for @p s: the server's, and the adapter's own config object
 * (servers[].auth). The scope an OAuth adapter requests when its section sets none is derived
 * from the server's resources (issue 17: read Patient, Group and each synced type) and from
 * what the sink configured by @p sink (the effective `sink` section, pw_sink_conf_writes())
 * writes: read and write each of its resource types (Flag, DetectedIssue), written into
 * @p scope_buf. Strings are borrowed from @p s and @p scope_buf.
 */
struct pw_auth_conf pw_conf_server_auth(const struct pw_conf_server *s, const json_t *sink,
                                        char *scope_buf, size_t scope_size);

#endif
