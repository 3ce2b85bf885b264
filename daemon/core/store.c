/* SPDX-License-Identifier: Apache-2.0 */
/* The store front: picks a backend by name and dispatches through its ops table. */
#include "painwatch/store.h"

#include <stdlib.h>
#include <string.h>

#include "painwatch/check.h"
#include "painwatch/err.h"
#include "painwatch/log.h"

/* The registry: one line per backend (conf_map.h, README "Adding an adapter"). */
#define STORES(X) X(pw_store_sqlite)

#define DECLARE(ops) extern const struct pw_store_ops ops;
STORES(DECLARE)

struct pw_adapter_kind pw_store_kind = {
    .name = "store",
    .type_help = "state backend",
    .adapters = {STORES(PW_ADAPTER_ENTRY)},
};

static const char *const flag_state_names[] = {
    [PW_FLAG_ACTIVE] = "active",
    [PW_FLAG_RESOLVED] = "resolved",
    [PW_FLAG_CLINICIAN_INACTIVE] = "clinician-inactive",
    [PW_FLAG_ENTERED_IN_ERROR] = "entered-in-error",
};
static const char *const op_names[] = {
    [PW_OUTBOX_CREATE] = "create",
    [PW_OUTBOX_RESOLVE] = "resolve",
    [PW_OUTBOX_REACTIVATE] = "reactivate",
};
static const char *const state_names[] = {
    [PW_OUTBOX_PENDING] = "pending",
    [PW_OUTBOX_DONE] = "done",
    [PW_OUTBOX_DEAD] = "dead",
    [PW_OUTBOX_DROPPED] = "dropped",
};

static const char *name_of(const char *const *names, size_t n, int v)
{
    return v >= 0 && (size_t)v < n ? names[v] : "?";
}

static int parse_name(const char *const *names, size_t n, const char *name, int *out)
{
    for (size_t i = 0; name && i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    return PW_EINVAL;
}

const char *pw_flag_state_name(enum pw_flag_state s)
{
    return name_of(flag_state_names, PW_ARRAY_SIZE(flag_state_names), (int)s);
}

int pw_flag_state_parse(const char *name, enum pw_flag_state *out)
{
    int v = 0;
    int err = parse_name(flag_state_names, PW_ARRAY_SIZE(flag_state_names), name, &v);

    if (!err) {
        *out = (enum pw_flag_state)v;
    }
    return err;
}

const char *pw_outbox_op_name(enum pw_outbox_op op)
{
    return name_of(op_names, PW_ARRAY_SIZE(op_names), (int)op);
}

int pw_outbox_op_parse(const char *name, enum pw_outbox_op *out)
{
    int v = 0;
    int err = parse_name(op_names, PW_ARRAY_SIZE(op_names), name, &v);

    if (!err) {
        *out = (enum pw_outbox_op)v;
    }
    return err;
}

const char *pw_outbox_state_name(enum pw_outbox_state s)
{
    return name_of(state_names, PW_ARRAY_SIZE(state_names), (int)s);
}

int pw_outbox_state_parse(const char *name, enum pw_outbox_state *out)
{
    int v = 0;
    int err = parse_name(state_names, PW_ARRAY_SIZE(state_names), name, &v);

    if (!err) {
        *out = (enum pw_outbox_state)v;
    }
    return err;
}

void pw_flag_rec_cleanup(struct pw_flag_rec *rec)
{
    if (rec) {
        free(rec->resource);
        rec->resource = NULL;
    }
}

void pw_flag_list_cleanup(struct pw_flag_list *list)
{
    if (!list) {
        return;
    }
    for (size_t i = 0; i < list->n; i++) {
        pw_flag_rec_cleanup(&list->v[i]);
    }
    free(list->v);
    memset(list, 0, sizeof(*list));
}

void pw_outbox_row_cleanup(struct pw_outbox_row *row)
{
    if (row) {
        free(row->payload);
        free(row->outcome);
        row->payload = NULL;
        row->outcome = NULL;
    }
}

int pw_store_open(struct pw_store **out, const struct pw_store_opts *opts)
{
    const char *name =
        opts->backend ? opts->backend : json_string_value(json_object_get(opts->section, "type"));
    const struct pw_adapter *adapter;
    struct pw_store *st;
    char why[256];
    void *ctx;
    int err;

    err = pw_adapter_instantiate(&pw_store_kind, opts->section, name ? name : "sqlite", &adapter,
                                 &ctx, why, sizeof(why));
    if (err) {
        if (err == PW_ECONFIG) {
            pw_log_err(STORE, "%s", why);
        }
        return err;
    }
    st = calloc(1, sizeof(*st));
    if (!st) {
        free(ctx);
        return PW_ENOMEM;
    }
    st->ops = pw_adapter_ops(adapter);
    st->ctx = ctx;
    err = st->ops->open(st, opts);
    if (err) {
        free(st->ctx);
        free(st);
        return err;
    }
    st->staging = opts->stage_always && st->ops->stage_resource;
    if (st->ops->merge_policy && !opts->read_only) {
        st->ops->merge_policy(st, &st->merge_at,
                              &st->merge_chunk); /* a big store merges at its size */
    }
    *out = st;
    return 0;
}

void pw_store_close(struct pw_store *st)
{
    if (!st) {
        return;
    }
    if (st->depth) {
        st->ops->rollback(st);
    }
    st->ops->close(st);
    free(st->ctx);
    free(st);
}

void pw_store_release_memory(struct pw_store *st)
{
    if (st && st->depth == 0 && st->ops->release_memory) {
        st->ops->release_memory(st);
    }
}

int pw_store_schema_version(struct pw_store *st, int *out)
{
    return st->ops->schema_version(st, out);
}

int pw_store_begin(struct pw_store *st)
{
    int err;

    if (PW_CHECK(st->depth == 0)) {
        return PW_EINVAL;
    }
    err = st->ops->begin(st);
    if (!err) {
        st->depth = 1;
        st->stage_asked = false;
        st->txn_staged = 0;
    }
    return err;
}

int pw_store_commit(struct pw_store *st)
{
    int err;

    if (PW_CHECK(st->depth == 1)) {
        return PW_EINVAL;
    }
    err = st->on_commit ? st->on_commit(st->on_commit_arg, st) : 0;
    if (err) {
        st->ops->rollback(st);
        st->depth = 0;
        return err;
    }
    err = st->ops->commit(st);
    st->depth = 0;
    if (!err) {
        st->staged += st->txn_staged; /* rolled back with a failed commit otherwise */
    }
    st->txn_staged = 0;
    return err;
}

void pw_store_on_commit(struct pw_store *st, int (*fn)(void *arg, struct pw_store *st), void *arg)
{
    st->on_commit = fn;
    st->on_commit_arg = arg;
}

void pw_store_rollback(struct pw_store *st)
{
    if (st->depth) {
        st->ops->rollback(st);
        st->depth = 0;
        st->txn_staged = 0;
    }
}

int pw_store_cursor_get(struct pw_store *st, const char *source, char *out, size_t cap)
{
    return st->ops->cursor_get(st, source, out, cap);
}

int pw_store_cursor_set(struct pw_store *st, const char *source, const char *value)
{
    return st->ops->cursor_set(st, source, value);
}

int pw_store_cursors_reset(struct pw_store *st)
{
    return st->ops->cursors_reset(st);
}

int pw_store_meta_get(struct pw_store *st, const char *key, char *out, size_t cap)
{
    return st->ops->meta_get(st, key, out, cap);
}

int pw_store_meta_set(struct pw_store *st, const char *key, const char *value)
{
    return st->ops->meta_set(st, key, value);
}

int pw_store_put_resource(struct pw_store *st, const struct pw_store_resource *res, bool *changed)
{
    bool dummy;

    return st->ops->put_resource(st, res, changed ? changed : &dummy);
}

int pw_store_stage_resource(struct pw_store *st, const struct pw_store_resource *res)
{
    return st->ops->stage_resource(st, res);
}

int pw_store_merge_staged(struct pw_store *st, size_t max, pw_store_patient_fn *fn, void *arg,
                          size_t *n_out)
{
    size_t dummy;

    if (PW_CHECK(st->depth == 1)) {
        return PW_EINVAL;
    }
    return st->ops->merge_staged(st, max, fn, arg, n_out ? n_out : &dummy);
}

/* ---- bulk ingestion: the backend's policy ------------------------------------------------- */

int pw_store_ingest_resource(struct pw_store *st, const struct pw_store_resource *res,
                             bool *changed)
{
    bool dummy;
    int err;

    changed = changed ? changed : &dummy;
    *changed = false;
    if (!st->staging && !st->stage_asked && st->ops->stage_wanted && st->ops->stage_resource) {
        st->stage_asked = true; /* once per transaction until staging is on */
        err = st->ops->stage_wanted(st, &st->staging);
        if (err) {
            return err;
        }
    }
    if (!st->staging) {
        return st->ops->put_resource(st, res, changed);
    }
    err = st->ops->stage_resource(st, res);
    st->txn_staged += err == 0;
    return err;
}

bool pw_store_merge_wanted(const struct pw_store *st)
{
    return st->staged > 0 && st->staged >= st->merge_at;
}

int pw_store_merge_all(struct pw_store *st, pw_store_patient_fn *fn, void *arg, size_t *n_out)
{
    size_t n = 1;
    size_t total = 0;
    bool cancelled = false;
    int rc = 0;

    if (n_out) {
        *n_out = 0;
    }
    if (!st->ops->merge_staged || PW_CHECK(st->depth == 0)) {
        return st->ops->merge_staged ? PW_EINVAL : 0;
    }
    while (n > 0) {
        rc = pw_store_begin(st);
        if (rc < 0) {
            break;
        }
        rc = fn ? fn(arg, NULL) : 0;
        if (rc == 0) {
            rc = st->ops->merge_staged(st, st->merge_chunk, fn, arg, &n);
        }
        if (rc == 0) {
            rc = pw_store_commit(st);
        } else {
            pw_store_rollback(st);
        }
        if (rc == PW_ECANCELED && !cancelled) {
            cancelled = true; /* a chart correction in the chunk: merged again in staging order */
            n = 1;
            continue;
        }
        if (rc < 0) {
            break;
        }
        cancelled = false;
        total += n;
    }
    if (n_out) {
        *n_out = total;
    }
    if (rc < 0) {
        /* Later resources are staged behind what stays, so copies keep their order. */
        st->staging = st->ops->stage_resource != NULL;
        pw_log_err(STORE, "staged resources not merged (%s); kept for the next merge",
                   pw_strerror(rc));
        return rc;
    }
    st->staged = 0;
    if (total > 0) {
        pw_log_debug(STORE, "%zu staged resource(s) merged", total);
        if (st->ops->merge_policy) {
            st->ops->merge_policy(st, &st->merge_at, &st->merge_chunk);
        }
    }
    return 0;
}

int pw_store_size_bytes(struct pw_store *st, uint64_t *out)
{
    return st->ops->size_bytes(st, out);
}

int pw_store_resource_count(struct pw_store *st, uint64_t *out)
{
    return st->ops->resource_count(st, out);
}

int pw_store_load_patient(struct pw_store *st, const char *patient, pw_store_resource_fn *fn,
                          void *arg)
{
    return st->ops->load_patient(st, patient, fn, arg);
}

int pw_store_patient_schedule(struct pw_store *st, const char *patient, int64_t at)
{
    return st->ops->patient_schedule(st, patient, at);
}

int pw_store_patient_due_by(struct pw_store *st, const char *patient, int64_t at)
{
    return st->ops->patient_due_by(st, patient, at);
}

int pw_store_patients_due(struct pw_store *st, int64_t now, size_t max, pw_store_patient_fn *fn,
                          void *arg)
{
    return st->ops->patients_due(st, now, max, fn, arg);
}

int pw_store_flag_get(struct pw_store *st, const char *key, struct pw_flag_rec *out)
{
    return st->ops->flag_get(st, key, out);
}

int pw_store_flag_put(struct pw_store *st, const struct pw_flag_rec *rec)
{
    return st->ops->flag_put(st, rec);
}

int pw_store_flags_of_patient(struct pw_store *st, const char *patient, struct pw_flag_list *out)
{
    return st->ops->flags_of_patient(st, patient, out);
}

int pw_store_outbox_enqueue(struct pw_store *st, struct pw_outbox_row *row)
{
    return st->ops->outbox_enqueue(st, row);
}

int pw_store_outbox_get(struct pw_store *st, int64_t id, struct pw_outbox_row *out)
{
    return st->ops->outbox_get(st, id, out);
}

int pw_store_outbox_update(struct pw_store *st, const struct pw_outbox_row *row)
{
    return st->ops->outbox_update(st, row);
}

int pw_store_outbox_list(struct pw_store *st, int state, pw_store_outbox_fn *fn, void *arg)
{
    return st->ops->outbox_list(st, state, fn, arg);
}

int pw_store_outbox_due(struct pw_store *st, int64_t now_ms, int64_t *ids, size_t max, size_t *n)
{
    return st->ops->outbox_due(st, now_ms, ids, max, n);
}

int pw_store_outbox_next_due(struct pw_store *st, int64_t *at_ms)
{
    return st->ops->outbox_next_due(st, at_ms);
}

int pw_store_operator_log(struct pw_store *st, struct pw_operator_action *act)
{
    return st->ops->operator_log(st, act);
}

int pw_store_operator_unaudited(struct pw_store *st, pw_store_operator_fn *fn, void *arg)
{
    return st->ops->operator_unaudited(st, fn, arg);
}

int pw_store_operator_audited(struct pw_store *st, int64_t id)
{
    return st->ops->operator_audited(st, id);
}

bool pw_store_keeps_dq(const struct pw_store *st)
{
    return st->ops->dq_of_patient != NULL && st->ops->dq_set != NULL;
}

int pw_store_dq_of_patient(struct pw_store *st, const char *patient, pw_store_dq_fn *fn, void *arg)
{
    if (!st->ops->dq_of_patient || !patient || !fn) {
        return PW_EINVAL;
    }
    return st->ops->dq_of_patient(st, patient, fn, arg);
}

int pw_store_dq_set(struct pw_store *st, const char *patient, const char *key, bool present)
{
    if (!st->ops->dq_set || !patient || !key) {
        return PW_EINVAL;
    }
    return st->ops->dq_set(st, patient, key, present);
}

int pw_store_backup(struct pw_store *st, const char *path)
{
    if (!st || !path || !st->ops->backup) {
        return PW_EINVAL;
    }
    return st->ops->backup(st, path);
}
