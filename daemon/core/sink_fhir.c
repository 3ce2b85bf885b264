/* SPDX-License-Identifier: Apache-2.0 */
/* What the FHIR sinks build alike (include/painwatch/sink_fhir.h). */
#include "painwatch/sink_fhir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "painwatch/engine.h"
#include "painwatch/err.h"
#include "painwatch/finding_text.h"
#include "painwatch/localtime.h"

#define RESOLVED_PARA "<p>Resolved by painwatch on %s (%s): the finding no longer holds.</p>"

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

json_t *pw_sink_narrative(const struct pw_finding *f)
{
    char *div = pw_finding_narrative(f);
    json_t *text = div ? json_pack("{s:s, s:s}", "status", "generated", "div", div) : NULL;

    free(div);
    return text;
}

int pw_sink_narrative_state(json_t *res, bool resolved, int64_t at)
{
    static const char own[] = "<p>Resolved by painwatch on ";
    char when[40];
    const char *zone = pw_timezone_name();
    json_t *text = json_object_get(res, "text");
    const char *div = json_string_value(json_object_get(text, "div"));
    size_t keep; /* the bytes kept before the closing tag */
    char *s;
    int err;

    if (!div || (keep = strlen(div)) < 6 || strcmp(div + keep - 6, "</div>") != 0) {
        return 0; /* not ours to edit: leave it */
    }
    keep -= 6;
    /* Escaped text never holds "<p>": a paragraph starting so is our closing line. */
    for (const char *p = strstr(div, own); p; p = strstr(p + 1, own)) {
        keep = (size_t)(p - div);
    }
    if (!resolved && div[keep] == '<' && strcmp(div + keep, "</div>") == 0) {
        return 0; /* open, and says nothing else */
    }
    pw_local_time(when, at, PW_TIME_NONE);
    s = malloc(keep + sizeof(RESOLVED_PARA) + sizeof(when) + strlen(zone) + sizeof("</div>"));
    if (!s) {
        return PW_ENOMEM;
    }
    memcpy(s, div, keep);
    if (resolved) {
        sprintf(s + keep, RESOLVED_PARA "</div>", when, zone);
    } else {
        strcpy(s + keep, "</div>");
    }
    err = json_object_set_new(text, "div", json_string(s)) ? PW_ENOMEM : 0;
    free(s);
    return err;
}
