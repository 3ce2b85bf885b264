/* SPDX-License-Identifier: Apache-2.0 */
/* A configured server as the HTTP core and the auth adapters take it (conf_server.h). */
#include "core/conf_server.h"

#include <stdio.h>

#include "painwatch/sink.h"

/* Read what is synced, read and write what the sink writes (pw_sink_conf_writes()). */
static const char *derived_scope(const struct pw_conf_server *s, const json_t *sink, char *buf,
                                 size_t size)
{
    struct pw_sink_writes w;
    size_t len = 0;
    int n = snprintf(buf, size, "system/Patient.read system/Group.read");
    len = n > 0 ? (size_t)n : 0;
    for (size_t k = 0; k < s->n_resources && len < size; k++) {
        n = snprintf(buf + len, size - len, " system/%s.read", s->resources[k]);
        len += n > 0 ? (size_t)n : 0;
    }
    pw_sink_conf_writes(sink, &w);
    for (size_t k = 0; k < w.n && len < size; k++) {
        n = snprintf(buf + len, size - len, " system/%s.read system/%s.write", w.types[k],
                     w.types[k]);
        len += n > 0 ? (size_t)n : 0;
    }
    return buf;
}

struct pw_http_server pw_conf_server_http(const struct pw_conf_server *s)
{
    return (struct pw_http_server){
        .name = s->name,
        .origin = s->base_url,
        .ca_file = s->ca_file,
        .client_cert = s->client_cert_file,
        .client_key = s->client_key_file,
        .max_concurrent = (unsigned)s->max_concurrent,
        .connect_timeout_ms = s->connect_timeout_ms,
        .timeout_ms = s->timeout_ms,
        .body_max = (size_t)s->body_max,
        .proxy = s->proxy,
    };
}

struct pw_auth_conf pw_conf_server_auth(const struct pw_conf_server *s, const json_t *sink,
                                        char *scope_buf, size_t scope_size)
{
    return (struct pw_auth_conf){
        .server = s->name,
        .fhir_base = s->base_url,
        .token_ca_file = s->ca_file,
        .scope = derived_scope(s, sink, scope_buf, scope_size),
        .proxy = s->proxy,
        .section = s->auth.section,
    };
}
