/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SMART discovery and token responses, through the real client (pw_auth over pw_http, libcurl)
 * against a loopback responder that answers with the input: client-secret auth without a
 * token_url reads <base>/.well-known/smart-configuration, posts to the token endpoint it names,
 * then sends a FHIR GET with the token. Input: discovery body \f token body \f token headers
 * ("Name: value" lines), each part optional; "{{BASE}}" in a part becomes the responder's URL.
 * Loopback only: a token_endpoint naming anything but the responder is pointed back at it
 * (the origin rules themselves are fuzzed in fuzz_http_values and tested in test_auth_*).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <uv.h>

#include "fuzz.h"
#include "painwatch/auth.h"
#include "painwatch/http.h"
#include "support/responder.h"

static uv_loop_t loop;
static struct pw_http *http;
static struct pwt_responder *srv;
static char secret_file[512];
static char base[128];

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *part[3]; /* discovery body, token body, token headers */
static size_t part_len[3];

static char *with_base(const char *s, size_t n, size_t *out_n)
{
    size_t bl = strlen(base), cap = n + 1, len = 0;
    char *o = malloc(cap);
    for (size_t i = 0; o != NULL && i < n;) {
        if (n - i >= 8 && memcmp(s + i, "{{BASE}}", 8) == 0) {
            cap += bl;
            char *m = realloc(o, cap);
            if (m == NULL) {
                free(o);
                return NULL;
            }
            o = m;
            memcpy(o + len, base, bl);
            len += bl;
            i += 8;
        } else {
            o[len++] = s[i++];
        }
    }
    if (o != NULL) {
        o[len] = '\0';
    }
    *out_n = len;
    return o;
}

/* Keep the client on loopback: a token_endpoint elsewhere is pointed at the responder. */
static char *pin_token_endpoint(char *body, size_t *len)
{
    json_t *j = json_loadb(body, *len, 0, NULL);
    const char *te = json_string_value(json_object_get(j, "token_endpoint"));
    if (te != NULL && strncmp(te, base, strlen(base)) != 0) {
        char url[256];
        snprintf(url, sizeof(url), "%s/token", base);
        json_object_set_new(j, "token_endpoint", json_string(url));
        char *d = json_dumps(j, JSON_COMPACT);
        if (d != NULL) {
            free(body);
            body = d;
            *len = strlen(d);
        }
    }
    json_decref(j);
    return body;
}

static void answer(int which, struct pwt_reply *rep)
{
    pthread_mutex_lock(&lock);
    rep->status = 200;
    rep->body = malloc(part_len[which] + 1);
    memcpy(rep->body, part[which], part_len[which] + 1);
    rep->body_len = part_len[which];
    if (which == 1 && part_len[2] > 0) {
        rep->headers = strdup(part[2]);
    }
    pthread_mutex_unlock(&lock);
}

static void on_discovery(void *arg, const struct pwt_request *req, struct pwt_reply *rep)
{
    (void)arg;
    (void)req;
    answer(0, rep);
}

static void on_token(void *arg, const struct pwt_request *req, struct pwt_reply *rep)
{
    (void)arg;
    (void)req;
    answer(1, rep);
}

static void setup(void)
{
    pwf_init();
    if (http != NULL) {
        return;
    }
    if (uv_loop_init(&loop) != 0 || pw_http_new(&http, &loop) != 0) {
        abort();
    }
    srv = pwt_responder_start(NULL);
    snprintf(base, sizeof(base), "%s", pwt_responder_url(srv));
    struct pw_http_server s = {.name = "ehr", .origin = base};
    if (pw_http_server_add(http, &s) != 0) {
        abort();
    }
    pwt_responder_add(srv, &(struct pwt_rule){.path = "/.well-known/smart-configuration",
                                              .handler = on_discovery});
    pwt_responder_add(srv,
                      &(struct pwt_rule){.method = "POST", .path = "/token", .handler = on_token});
    pwt_responder_add(
        srv, &(struct pwt_rule){.path = "/Observation", .body = "{\"resourceType\":\"Bundle\"}"});
    snprintf(secret_file, sizeof(secret_file), "%s/client.secret", pwf_tmpdir());
    pwf_write_file(secret_file, (const uint8_t *)"fuzz-secret", 11);
    if (chmod(secret_file, 0600) != 0) {
        abort();
    }
}

static int pending;

static void on_done(void *arg, int err, const struct pw_http_resp *resp)
{
    (void)arg;
    (void)err;
    (void)resp;
    pending--;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    const uint8_t *p = data, *end = data + size;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < 3; i++) {
        const uint8_t *ff = p < end ? memchr(p, '\f', (size_t)(end - p)) : NULL;
        const uint8_t *stop = ff ? ff : end;
        free(part[i]);
        part[i] = with_base((const char *)p, (size_t)(stop - p), &part_len[i]);
        if (part[i] == NULL) {
            abort();
        }
        p = ff ? ff + 1 : end;
    }
    part[0] = pin_token_endpoint(part[0], &part_len[0]);
    /* Header lines must not break the responder's own framing: one line per '\n', no CR. */
    for (size_t i = 0; i < part_len[2]; i++) {
        if (part[2][i] == '\r' || part[2][i] == '\0') {
            part[2][i] = ' ';
        }
    }
    pthread_mutex_unlock(&lock);

    char fhir_base[160], url[200];
    snprintf(fhir_base, sizeof(fhir_base), "%s", base);
    snprintf(url, sizeof(url), "%s/Observation", base);
    json_t *sec = json_pack("{s:s, s:s}", "client_id", "pw", "client_secret_file", secret_file);
    struct pw_auth_conf c = {
        .type = "client-secret", .server = "ehr", .fhir_base = fhir_base, .section = sec};
    struct pw_auth *auth = NULL;
    if (pw_auth_new(&auth, http, &c) != 0) {
        abort();
    }
    json_decref(sec);
    struct pw_http_req *req = NULL;
    if (pw_http_req_new(&req, "ehr", "GET", url) != 0) {
        abort();
    }
    pending = 1;
    if (pw_auth_submit_new(auth, req, on_done, NULL) != 0) {
        pending = 0;
    }
    while (pending > 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    pw_auth_free(auth);
    uv_run(&loop, UV_RUN_NOWAIT);
    return 0;
}
