/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the FHIR sinks (fhir-flag, detected-issue) build alike: references to the evidence,
 * codings, the author, the episode identifier and rule code, the clinician narrative, the copy an
 * update starts from and the instant an episode closes at. Pure JSON building
 * (daemon/core/sink_fhir.c).
 */
#ifndef PAINWATCH_SINK_FHIR_H
#define PAINWATCH_SINK_FHIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "painwatch/finding.h"
#include "painwatch/sink.h"
#include "painwatch/timeline.h"

/** "MedicationRequest/1/_history/2" (version-specific when the version is known) into @p out. */
void pw_sink_ref_string(const struct pw_ref *r, char *out, size_t cap);

/** {"system", "code", "display"?}: a new reference, NULL on ENOMEM. @p display may be NULL. */
json_t *pw_sink_coding(const char *system, const char *code, const char *display);

/** {"reference": sink author, "display"?}: a new reference, NULL on ENOMEM. */
json_t *pw_sink_author(const struct pw_sink *sink);

/**
 * Set the elements every painwatch resource carries on @p res: identifier (the episode key
 * under the sink's identifier system) and code (the rule in the rule CodeSystem, its title as
 * display, @p code_text as text). @return 0 or PW_ENOMEM.
 */
int pw_sink_set_episode(json_t *res, const struct pw_sink *sink, const struct pw_finding *f,
                        const char *code_text);

/** The copy an update starts from: @p created without "id" and "meta". NULL on ENOMEM. */
json_t *pw_sink_update_copy(const json_t *created);

/**
 * The instant an episode closes at: @p at, but never before @p start (a FHIR instant, may be
 * NULL): clocks and late data can put the end before the start, which FHIR refuses (per-1).
 */
void pw_sink_end_instant(int64_t at, const char *start, char out[32]);

/**
 * The resource's `text`: {"status": "generated", "div": pw_finding_narrative(@p f)}, the same
 * clinician narrative on every resource type. A new reference, NULL on ENOMEM.
 */
json_t *pw_sink_narrative(const struct pw_finding *f);

/**
 * The closing line of the narrative of @p res (an update copy): with @p resolved, the line saying
 * painwatch resolved the episode at @p at (local time), replacing one there; without, none (a
 * reactivated episode). A `text.div` painwatch did not write is left alone. @return 0 or
 * PW_ENOMEM.
 */
int pw_sink_narrative_state(json_t *res, bool resolved, int64_t at);

#endif
