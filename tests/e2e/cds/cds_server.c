/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test and benchmark harness of the CDS Hooks service: the real service (daemon/core/cds_hooks.c)
 * on a real SQLite store, audit trail and configuration, without the FHIR sync around it.
 *
 *   pw_cds_server CONFIG RESOURCES.json [--clone N] [--refused TYPE]
 *
 * CONFIG is a painwatch configuration (its cds_hooks section, state_dir, audit). RESOURCES is a
 * JSON array of FHIR resources stored as the pipeline stores them (normalized when they arrive);
 * --clone N stores N more copies of every patient's resources under other patient and resource
 * ids (the benchmark's 10,000 patients). --refused TYPE: the service is told (as painwatchd
 * tells it from its pipeline) that TYPE's last read was refused (403) for every patient. Prints
 * "port N" once listening; stops on SIGTERM or SIGINT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "painwatch/audit.h"
#include "painwatch/cds_hooks.h"
#include "painwatch/conf.h"
#include "painwatch/err.h"
#include "painwatch/evaluate.h"
#include "painwatch/fhir.h"
#include "painwatch/http.h"
#include "painwatch/log.h"
#include "painwatch/normalize.h"
#include "painwatch/store.h"
#include "painwatch/terminology.h"

static struct pw_cds_hooks *cds;
static uv_signal_t sig_term;
static uv_signal_t sig_int;
static struct pw_http *http;
static unsigned refused; /* --refused: PW_RES_* bit */

/* As painwatchd's pipeline answers for a type refused for everyone (pw_pipeline_synced_for). */
static void synced_for(void *arg, const char *patient, struct pw_synced *out)
{
    (void)arg;
    (void)patient;
    out->synced &= ~refused;
    out->refused |= refused;
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    pw_cds_hooks_close(cds);
    cds = NULL;
    pw_http_free(http);
    http = NULL;
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
}

/* Store @p res under @p patient as the pipeline does: its events, normalized now. */
static int store_one(struct pw_store *st, const struct pw_evaluator *ev, const char *digest,
                     json_t *res, const char *patient)
{
    struct pw_timeline tl;
    struct pw_bytes enc = {0};
    const json_t *meta = json_object_get(res, "meta");
    const char *lu = json_string_value(json_object_get(meta, "lastUpdated"));
    struct pw_store_resource sr = {
        .type = json_string_value(json_object_get(res, "resourceType")),
        .id = json_string_value(json_object_get(res, "id")),
        .version = json_string_value(json_object_get(meta, "versionId")),
        .last_updated = PW_TIME_NONE,
        .patient = patient,
        .norm = digest,
    };
    int64_t t;
    int rc;

    if (!sr.type || !sr.id) {
        return PW_EINVAL;
    }
    if (!sr.version) {
        sr.version = "";
    }
    if (lu && pw_fhir_parse_time(lu, &t) == 0) {
        sr.last_updated = t;
    }
    pw_timeline_init(&tl, patient);
    rc = pw_normalize_resource(&ev->norm, res, NULL, &tl);
    if (rc == 0) {
        rc = pw_timeline_encode(&tl, &enc);
    }
    if (rc == 0) {
        sr.events = enc.v;
        sr.events_len = enc.n;
        rc = pw_store_put_resource(st, &sr, NULL);
    }
    pw_bytes_cleanup(&enc);
    pw_timeline_cleanup(&tl);
    return rc;
}

/* The resources, and --clone copies of them: patient "X" becomes "X-c<i>" (references too). */
static int load(struct pw_store *st, const struct pw_evaluator *ev, const char *path, long clones)
{
    json_error_t jerr;
    json_t *arr = json_load_file(path, 0, &jerr);
    char digest[PW_NORM_DIGEST_MAX];
    json_t *res;
    size_t i;
    int rc = pw_norm_ctx_digest(&ev->norm, digest);

    if (!json_is_array(arr)) {
        fprintf(stderr, "%s:%d: %s\n", path, jerr.line, arr ? "not a JSON array" : jerr.text);
        json_decref(arr);
        return PW_EINVAL;
    }
    for (long c = 0; rc == 0 && c <= clones; c++) {
        rc = pw_store_begin(st);
        json_array_foreach(arr, i, res)
        {
            const char *type = json_string_value(json_object_get(res, "resourceType"));
            char patient[PW_REF_MAX];
            if (rc < 0 || !type || strcmp(type, "Patient") == 0 ||
                pw_normalize_patient(res, NULL, patient, sizeof(patient)) < 0) {
                continue;
            }
            json_t *copy = json_incref(res);
            if (c > 0) {
                /* Another patient, and other resources: the store keeps one copy per type/id. */
                char id[PW_REF_MAX];
                size_t n = strlen(patient);
                snprintf(patient + n, sizeof(patient) - n, "-c%ld", c);
                snprintf(id, sizeof(id), "%s-c%ld", json_string_value(json_object_get(res, "id")),
                         c);
                json_decref(copy);
                copy = json_deep_copy(res);
                json_object_set_new(copy, "id", json_string(id));
            }
            rc = store_one(st, ev, digest, copy, patient);
            json_decref(copy);
            if (rc < 0) {
                fprintf(stderr, "%s: entry %zu: %s\n", path, i, pw_strerror(rc));
            }
        }
        rc = rc == 0 ? pw_store_commit(st) : rc;
    }
    json_decref(arr);
    return rc;
}

int main(int argc, char **argv)
{
    struct pw_conf_errors errs = {0};
    struct pw_conf *conf = NULL;
    const struct pw_conf_daemon *cd;
    struct pw_terminology *term = NULL;
    struct pw_evaluator *ev = NULL;
    struct pw_store *st = NULL;
    struct pw_audit *audit = NULL;
    char tdir[4096];
    char err[256] = "";
    long clones = 0;
    uv_loop_t loop;
    int rc;

    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--clone") == 0) {
            clones = strtol(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--refused") == 0 && pw_res_type_bit(argv[i + 1]) != 0) {
            refused |= pw_res_type_bit(argv[i + 1]);
        } else {
            argc = 0; /* usage */
        }
    }
    if (argc < 3 || argc % 2 == 0) {
        fprintf(stderr,
                "usage: pw_cds_server CONFIG RESOURCES.json [--clone N] [--refused TYPE]\n");
        return 2;
    }
    pw_log_init();
    rc = pw_conf_load_file(&conf, argv[1], &errs);
    for (size_t i = 0; i < errs.n; i++) {
        fprintf(stderr, "%s\n", errs.lines[i]);
    }
    pw_conf_errors_cleanup(&errs);
    if (rc < 0) {
        return 1;
    }
    cd = pw_conf_daemon(conf);
    rc = pw_terminology_default_dir(tdir, sizeof(tdir));
    rc = rc == 0 ? pw_terminology_load(&term, cd->terminology_dir ? cd->terminology_dir : tdir, err,
                                       sizeof(err))
                 : rc;
    if (rc == 0) {
        rc =
            pw_evaluator_new(&ev, &(struct pw_eval_opts){.cd = cd, .term = term}, err, sizeof(err));
    }
    if (rc == 0) {
        rc = pw_store_open(&st, &(struct pw_store_opts){.dir = cd->state_dir});
    }
    if (rc == 0) {
        rc = pw_audit_open(&audit, &(struct pw_audit_opts){.path = cd->audit.path,
                                                           .key_path = cd->audit.key_file,
                                                           .device = "Device/painwatch"});
    }
    if (rc == 0) {
        rc = load(st, ev, argv[2], clones);
    }
    if (rc == 0) {
        rc = uv_loop_init(&loop) == 0 ? pw_http_new(&http, &loop) : PW_EIO;
    }
    if (rc == 0) {
        rc = pw_cds_hooks_new(
            &cds, &(struct pw_cds_hooks_opts){.loop = &loop,
                                              .conf = &cd->cds_hooks,
                                              .store = st,
                                              .ev = ev,
                                              .synced = {.known = true, .synced = PW_RES_ALL},
                                              .synced_for = refused ? synced_for : NULL,
                                              .audit = audit,
                                              .http = http});
    }
    if (rc < 0) {
        fprintf(stderr, "pw_cds_server: %s %s\n", pw_strerror(rc), err);
        return 1;
    }
    printf("port %u\n", pw_cds_hooks_port(cds));
    fflush(stdout);
    uv_signal_init(&loop, &sig_term);
    uv_signal_init(&loop, &sig_int);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_run(&loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&loop);
    pw_audit_free(audit);
    pw_store_close(st);
    pw_evaluator_free(ev);
    pw_terminology_free(term);
    pw_conf_free(conf);
    return rc == 0 ? 0 : 1;
}
