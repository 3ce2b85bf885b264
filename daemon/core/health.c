/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /healthz, /readyz and /metrics. libmicrohttpd runs on the loop (core/listener.c), so requests
 * are answered on the loop thread. That keeps readiness checks free of locking, and makes /healthz
 * honest: if the loop hangs, /healthz stops answering too (and the systemd watchdog fires).
 */
#include "painwatch/health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "core/listener.h"
#include "painwatch/check.h"
#include "painwatch/err.h"
#include "painwatch/limits.h"
#include "painwatch/log.h"
#include "painwatch/metrics.h"
#include "painwatch/status.h"

/* Longest check name kept ("server:<name>" with a 64-byte server name). */
#define HEALTH_NAME_MAX 80

struct health_check {
    char *name;
    pw_health_check_fn *fn;
    void *arg;
};

struct pw_health {
    struct pw_listener lst; /* freed when its handles have closed */
    struct health_check checks[PW_HEALTH_CHECKS_MAX];
    size_t n_checks;
    pw_status_fill_fn *status_fill; /* issue 22: /status */
    void *status_arg;
};

static enum pw_log_comp log_comp = PW_LOG_HEALTH; /* MHD's messages (pw_listener_mhd_log) */

/* Takes @p body (malloc'd) on every path. */
static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, char *body, size_t len,
                               const char *type)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if (!body) {
        return MHD_NO; /* out of memory: MHD drops the connection */
    }
    resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    }
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    return respond(conn, status, strdup(text), strlen(text), "text/plain; charset=utf-8");
}

static enum MHD_Result readyz(struct pw_health *h, struct MHD_Connection *conn)
{
    size_t cap = 64 + h->n_checks * (HEALTH_NAME_MAX + 200 + 16);
    char *body = malloc(cap);
    size_t used;
    bool ready = true;

    if (!body) {
        return MHD_NO;
    }
    used = (size_t)snprintf(body, cap, "%*s\n", 9, ""); /* room for the verdict line */
    for (size_t i = 0; i < h->n_checks; i++) {
        char detail[200] = "";
        bool ok = h->checks[i].fn(h->checks[i].arg, detail, sizeof(detail));
        ready = ready && ok;
        detail[strcspn(detail, "\r\n")] = '\0';
        used += (size_t)snprintf(body + used, cap - used, "%s: %s%s%s\n", h->checks[i].name,
                                 ok ? "ok" : "FAIL", detail[0] ? " " : "", detail);
    }
    memcpy(body, ready ? "ready    " : "not ready", 9);
    return respond(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, body, used,
                   "text/plain; charset=utf-8");
}

/* Issue 22: the status page, the daemon's state plus the readiness checks. */
static enum MHD_Result status_page(struct pw_health *h, struct MHD_Connection *conn)
{
    struct pw_status *st = calloc(1, sizeof(*st));
    size_t len = 0;
    char *page;

    if (!st) {
        return MHD_NO;
    }
    if (h->status_fill) {
        h->status_fill(h->status_arg, st);
    }
    for (size_t i = 0; i < h->n_checks && st->n_checks < PW_STATUS_CHECKS_MAX; i++) {
        struct pw_status_check *c = &st->checks[st->n_checks++];
        snprintf(c->name, sizeof(c->name), "%s", h->checks[i].name);
        c->ok = h->checks[i].fn(h->checks[i].arg, c->detail, sizeof(c->detail));
        c->detail[strcspn(c->detail, "\r\n")] = '\0';
    }
    page = pw_status_render(st, &len);
    free(st);
    return respond(conn, MHD_HTTP_OK, page, len, "text/html; charset=utf-8");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct pw_health *h = cls;
    size_t len = 0;

    (void)version;
    (void)upload_data;
    (void)con_cls;
    *upload_data_size = 0; /* a body on GET is ignored */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    if (strcmp(url, "/healthz") == 0) {
        return respond_text(conn, MHD_HTTP_OK, "ok\n");
    }
    if (strcmp(url, "/readyz") == 0) {
        return readyz(h, conn);
    }
    if (strcmp(url, "/metrics") == 0) {
        char *text = pw_metrics_render(&len);
        return respond(conn, MHD_HTTP_OK, text, len, PW_METRICS_CONTENT_TYPE);
    }
    if (strcmp(url, "/status") == 0) {
        return status_page(h, conn);
    }
    return respond_text(conn, MHD_HTTP_NOT_FOUND,
                        "not found: try /healthz, /readyz, /metrics, /status\n");
}

static void free_health(struct pw_health *h)
{
    for (size_t i = 0; i < h->n_checks; i++) {
        free(h->checks[i].name);
    }
    free(h);
}

static void on_closed(struct pw_listener *l)
{
    free_health(container_of(l, struct pw_health, lst));
}

int pw_health_new(struct pw_health **out, uv_loop_t *loop, const char *listen)
{
    return pw_health_new_idle(out, loop, listen, 0);
}

int pw_health_new_idle(struct pw_health **out, uv_loop_t *loop, const char *listen,
                       unsigned idle_timeout_s)
{
    struct sockaddr_storage ss;
    bool v6 = false;
    struct pw_health *h;
    struct MHD_Daemon *mhd;

    *out = NULL;
    if (pw_listen_parse(listen, &ss, &v6)) {
        pw_log_err(HEALTH, "listen address '%s' is not ADDRESS:PORT", listen);
        return PW_EINVAL;
    }
    h = calloc(1, sizeof(*h));
    if (!h) {
        return PW_ENOMEM;
    }
    /* The logger goes first so that MHD never prints with its own logger. */
    mhd = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL, on_request, h,
        MHD_OPTION_EXTERNAL_LOGGER, pw_listener_mhd_log, &log_comp, MHD_OPTION_NOTIFY_CONNECTION,
        pw_listener_notify, &h->lst, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)PW_HEALTH_CONN_MAX, MHD_OPTION_CONNECTION_TIMEOUT,
        idle_timeout_s ? idle_timeout_s : (unsigned)PW_HEALTH_CONN_TIMEOUT_S, MHD_OPTION_END);
    if (!mhd) {
        pw_log_err(HEALTH, "cannot listen on %s (address in use or not permitted)", listen);
        free(h);
        return PW_EIO;
    }
    if (pw_listener_start(&h->lst, loop, mhd, on_closed) < 0) {
        free(h);
        return PW_EIO;
    }
    pw_log_info(HEALTH, "serving /healthz /readyz /metrics on %s (port %u)", listen, h->lst.port);
    *out = h;
    return 0;
}

unsigned pw_health_port(const struct pw_health *health)
{
    return health->lst.port;
}

int pw_health_add_check(struct pw_health *health, const char *name, pw_health_check_fn *fn,
                        void *arg)
{
    struct health_check *c;

    if (health->n_checks == PW_HEALTH_CHECKS_MAX) {
        return PW_E2BIG;
    }
    c = &health->checks[health->n_checks];
    c->name = strndup(name, HEALTH_NAME_MAX);
    if (!c->name) {
        return PW_ENOMEM;
    }
    c->fn = fn;
    c->arg = arg;
    health->n_checks++;
    return 0;
}

void pw_health_close(struct pw_health *health)
{
    if (!health) {
        return;
    }
    pw_listener_close(&health->lst);
}

void pw_health_set_status(struct pw_health *health, pw_status_fill_fn *fn, void *arg)
{
    health->status_fill = fn;
    health->status_arg = arg;
}
