/* SPDX-License-Identifier: Apache-2.0 */
/* What the FHIR sinks build alike (include/painwatch/sink_fhir.h). */
#include "painwatch/sink_fhir.h"

#include <stdio.h>
#include <string.h>

#include "painwatch/engine.h"
#include "painwatch/err.h"

/* Rule titles come from the engine's registry when it is linked (see sink_fhir_flag.c). */
#pragma weak pw_rule_find

void pw_sink_ref_string(const struct pw_ref *r, char *out, size_t cap)
{
    if (r->version[0]) {
        snprintf(out, cap, "%s/%s/_history/%s", r->type, r->id, r->version);
    } else {
        snprintf(out, cap, "%s/%s", r->type, r->id);
    }
}

json_t *pw_sink_coding(const char *system, const char *code, const char *display)
{
    json_t *c = json_pack("{s:s, s:s}", "system", system, "code", code);

    if (c && display && json_object_set_new(c, "display", json_string(display)) != 0) {
        json_decref(c);
        return NULL;
    }
    return c;
}

json_t *pw_sink_author(const struct pw_sink *sink)
{
    json_t *author = json_pack("{s:s}", "reference", sink->author);

    if (author && sink->author_display &&
        json_object_set_new(author, "display", json_string(sink->author_display)) != 0) {
        json_decref(author);
        return NULL;
    }
    return author;
}

int pw_sink_set_episode(json_t *res, const struct pw_sink *sink, const struct pw_finding *f,
                        const char *code_text)
{
    const struct pw_rule *rule = pw_rule_find ? pw_rule_find(f->rule) : NULL;
    json_t *ident = json_pack("[{s:s, s:s}]", "system", sink->identifier_system, "value", f->key);
    json_t *code = json_pack("{s:[o], s:s}", "coding",
                             pw_sink_coding(sink->code_system, f->rule, rule ? rule->title : NULL),
                             "text", code_text);

    if (!ident || !code || json_object_set_new(res, "identifier", ident) != 0) {
        json_decref(code);
        return PW_ENOMEM;
    }
    return json_object_set_new(res, "code", code) ? PW_ENOMEM : 0;
}

json_t *pw_sink_update_copy(const json_t *created)
{
    json_t *res = json_deep_copy(created);

    if (res) {
        json_object_del(res, "id");
        json_object_del(res, "meta");
    }
    return res;
}

void pw_sink_end_instant(int64_t at, const char *start, char out[32])
{
    pw_fhir_instant(at, out);
    if (start && strcmp(out, start) < 0) {
        snprintf(out, 32, "%s", start);
    }
}
