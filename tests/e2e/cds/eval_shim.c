/* SPDX-License-Identifier: Apache-2.0 */
/* TEMPORARY (c21): evaluate.h until branch e20 commits its implementation; then deleted. */
#include <stdlib.h>
#include <string.h>

#include "painwatch/conf.h"
#include "painwatch/err.h"
#include "painwatch/evaluate.h"

int pw_evaluator_new(struct pw_evaluator **out, const struct pw_eval_opts *opts, char *err,
                     size_t err_cap)
{
    struct pw_evaluator *ev = calloc(1, sizeof(*ev));
    const char *fs = opts->cd && opts->cd->factor_set ? opts->cd->factor_set : "cdc2022";
    enum pw_scope sc = PW_SCOPE_PROBLEM_LIST;

    (void)err;
    (void)err_cap;
    if (!ev || pw_engine_new(&ev->engine, fs) < 0 ||
        pw_norm_ctx_init(&ev->norm, opts->term, fs) < 0) {
        pw_evaluator_free(ev);
        return PW_ENOMEM;
    }
    ev->norm_ready = true;
    if (opts->cd && opts->cd->scope) {
        pw_scope_parse(opts->cd->scope, &sc);
    }
    pw_engine_set_scope(ev->engine, sc);
    *out = ev;
    return 0;
}

void pw_evaluator_free(struct pw_evaluator *ev)
{
    if (!ev) {
        return;
    }
    pw_engine_free(ev->engine);
    if (ev->norm_ready) {
        pw_norm_ctx_cleanup(&ev->norm);
    }
    free(ev);
}

int pw_eval_timeline_add_resources(const struct pw_evaluator *ev, const json_t *resources,
                                   const struct pw_resolver *refs, struct pw_timeline *tl)
{
    const json_t *r;
    size_t i;

    json_array_foreach(resources, i, r)
    {
        int rc = pw_normalize_resource(&ev->norm, r, refs, tl);
        if (rc == PW_ENOMEM) {
            return rc;
        }
    }
    return 0;
}

static int on_res(void *arg, const struct pw_store_resource *res)
{
    return pw_timeline_decode(arg, res->events, res->events_len) == PW_ENOMEM ? PW_ENOMEM : 0;
}

int pw_eval_timeline_load(struct pw_store *st, const struct pw_norm_ctx *norm, const char *patient,
                          struct pw_timeline *tl)
{
    (void)norm;
    return pw_store_load_patient(st, patient, on_res, tl);
}

int pw_evaluate(const struct pw_engine *engine, struct pw_timeline *tl,
                const struct pw_synced *synced, int64_t now, struct pw_findings *out, int *rule_err)
{
    int rc;

    pw_timeline_sort(tl);
    if (synced) {
        tl->synced = *synced;
    }
    if (pw_engine_annotate(engine, tl, now) < 0) {
        return PW_ENOMEM;
    }
    rc = pw_engine_eval(engine, tl, now, out);
    if (rule_err) {
        *rule_err = rc;
    }
    return rc == PW_ENOMEM ? rc : 0;
}
