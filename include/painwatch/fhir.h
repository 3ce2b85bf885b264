/* SPDX-License-Identifier: Apache-2.0 */
/* FHIR R4 JSON helpers shared by normalize and `painwatch check`: times, references, bundles. */
#ifndef PAINWATCH_FHIR_H
#define PAINWATCH_FHIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "painwatch/timeline.h"

#define PW_FHIR_RXNORM "http://www.nlm.nih.gov/research/umls/rxnorm"
#define PW_FHIR_LOINC  "http://loinc.org"
#define PW_FHIR_SNOMED "http://snomed.info/sct"
#define PW_FHIR_UCUM   "http://unitsofmeasure.org"

/**
 * Parse a FHIR date, dateTime or instant (also RFC 3339) into seconds since the epoch, UTC.
 * Partial dates count from their first instant ("2020-06" = 2020-06-01T00:00:00Z); a time
 * without offset is taken as UTC. @return 0 or PW_EINVAL.
 */
int pw_fhir_parse_time(const char *s, int64_t *out);

/** Format @p t as "YYYY-MM-DDThh:mm:ssZ" into @p buf (at least 21 bytes). */
void pw_fhir_format_time(int64_t t, char *buf, size_t n);

/** String member @p key of @p obj, or NULL when absent or not a string. */
const char *pw_fhir_str(const json_t *obj, const char *key);

/** Number member (integer, real or a decimal string) of @p obj. @return true when found. */
bool pw_fhir_num(const json_t *obj, const char *key, double *out);

/** Fill @p out with resourceType, id and meta.versionId of @p res ("" when absent, cut to fit). */
void pw_fhir_ref_of(const json_t *res, struct pw_ref *out);

/** Copy @p src into @p dst of size @p n, cutting when needed; always NUL-terminates. */
void pw_fhir_copy(char *dst, size_t n, const char *src);

/** True when CodeableConcept @p cc has a coding with @p code (and @p system, unless NULL/""). */
bool pw_fhir_cc_has(const json_t *cc, const char *system, const char *code);

/**
 * Resolves a Reference.reference string to a resource (borrowed). Handles what the provider
 * knows: bundle fullUrls ("urn:uuid:..."), "Type/id" and absolute URLs ending in Type/id.
 */
struct pw_resolver {
    const json_t *(*resolve)(const struct pw_resolver *self, const char *reference);
    void *arg;
};

/** Resolve through @p r, which may be NULL (then nothing resolves). */
const json_t *pw_resolve(const struct pw_resolver *r, const char *reference);

/** An index of resources by fullUrl and by "Type/id": the resolver for bundles and NDJSON. */
struct pw_fhir_index;

int pw_fhir_index_new(struct pw_fhir_index **out);
void pw_fhir_index_free(struct pw_fhir_index *idx);

/** Index @p res (a reference is kept) under @p full_url (may be NULL) and "Type/id". */
int pw_fhir_index_add(struct pw_fhir_index *idx, const char *full_url, json_t *res);

/** Look up a reference string; "Type/id/_history/v" and absolute URLs are reduced to Type/id. */
const json_t *pw_fhir_index_get(const struct pw_fhir_index *idx, const char *reference);

/** A resolver reading @p idx (borrowed for the resolver's lifetime). */
void pw_fhir_index_resolver(struct pw_fhir_index *idx, struct pw_resolver *out);

/**
 * Reduce a reference to "Type/id": strips "/_history/..." and a base URL. Fails (PW_EINVAL) for
 * urn: and contained ("#id") references, which only a resolver can turn into Type/id.
 */
int pw_fhir_ref_relative(const char *reference, char *out, size_t n);

/**
 * True when @p s is a FHIR id: [A-Za-z0-9\-\.]{1,64}. Ids and version ids a server sends are
 * checked with this before they reach a URL or a header (issue 18: "../../Patient/p1").
 */
bool pw_fhir_id_valid(const char *s);

/**
 * Parse a FHIR instant or dateTime with a time zone ("2024-05-01T10:00:00.123+02:00", "...Z")
 * into milliseconds since the epoch, UTC. A date without time counts as its midnight UTC.
 * @return 0 or PW_EINVAL.
 */
int pw_fhir_instant_parse(const char *s, int64_t *out_ms);

/** Format @p ms as "YYYY-MM-DDThh:mm:ss.sssZ" into @p buf (at least 25 bytes). */
void pw_fhir_instant_format(int64_t ms, char *buf, size_t len);

/**
 * @p a, @p sep and @p b one after the other into @p dst of size @p n, cut to fit and always
 * NUL-terminated: what snprintf(dst, n, "%s%s%s", a, sep, b) writes, without printf's cost on
 * hot paths. NULL arguments count as "".
 */
void pw_fhir_join(char *dst, size_t n, const char *a, const char *sep, const char *b);

#endif
