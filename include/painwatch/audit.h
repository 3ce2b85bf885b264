/* SPDX-License-Identifier: Apache-2.0 */
/* The audit trail: append-only JSON Lines, HMAC-chained, fsync'd before an action is done. */
#ifndef PAINWATCH_AUDIT_H
#define PAINWATCH_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "painwatch/finding.h"

/*
 * Record shape (one JSON object per line, keys sorted, compact), after FHIR R4 AuditEvent and
 * IHE BALP:
 *   type        "rest" (a FHIR interaction), "painwatch" (the gateway's own events), "header"
 *   subtype     search | read | create | update                       (type "rest")
 *               start | stop | config-loaded | finding-raised | finding-resolved |
 *               flag-delivered | flag-rejected | flag-dead-lettered | token-renewed |
 *               operator-action | audit-resumed | finding-suppressed |
 *               chain-discontinuity | cds-hook | finding-carded |
 *               data-quality                                            (type "painwatch")
 *   action      "C" "R" "U" "D" "E" (BALP: search is E)
 *   recorded    RFC 3339 UTC with milliseconds, stamped by the writer
 *   outcome     0 success, 4 minor failure, 8 serious failure, 12 major failure; outcomeDesc text
 *   agent       [{role:"source", who:<Device>, requestor:true}, {role:"destination", who:<server>}]
 *   source      {observer:<Device>, site:<site>}
 *   entity      [{role:"patient", what:"Patient/1"}, {role:"query", query:"Observation?..."},
 *                {role:"resource", what:"Flag/9/_history/2", type:"Flag"}, ...]
 *   painwatch   {rule, episode, factor_set, severity, numbers:{name:value}, text, correlation,
 *                config_hash, server_status, ...}
 *   n           record number, +1 per line across files (headers included)
 *   prev        digest of the previous record (64 hex; 64 zeros before the first)
 *   hmac        HMAC-SHA256(key, prev || canonical bytes of the record without "hmac"), hex;
 *               it is also this record's digest for chaining
 * A file starts with {type:"header", format:"painwatch-audit/1", seq, created, reason, prev, n,
 * hmac} whose prev links to the last digest of the previous file, so rotation keeps the chain. A
 * header may carry "anomaly" (what the writer found wrong when it started this file).
 *
 * Rotation: by size or age inside painwatch (the live file is renamed to <path>.<seq>; checked
 * before each append, so a file ends at most one record or batch past the limit), or by logrotate
 * with `create` + `postrotate` sending SIGHUP (the daemon calls pw_audit_reopen()):
 *     /var/log/painwatch/audit.jsonl { weekly  rotate 520  create 0640 painwatch painwatch
 *         nocompress  postrotate  systemctl kill -s HUP painwatch.service  endscript }
 * logrotate's `copytruncate` is NOT supported: it cuts the chain and can lose records (the
 * writer notices the shrunken file and starts a new one whose header records the anomaly).
 * Keep rotated files: `painwatch audit verify` needs every file after the oldest one it checks.
 *
 * Threads and blocking: a struct pw_audit is used from one thread (the loop). Every append
 * fsyncs; use the batch calls for bursts (a search page) so a page costs one fsync.
 *
 * PHI: the trail holds patient references and the numbers that justify findings (the auditor
 * needs them). The operational log lines of this module never do: they name the trail file, an
 * error and record counts only.
 */

#define PW_AUDIT_DIGEST_HEX 64 /* hex digits in a digest (HMAC-SHA256) */
#define PW_AUDIT_FORMAT     "painwatch-audit/1"

/** FHIR AuditEvent.outcome codes. */
enum pw_audit_outcome {
    PW_AUDIT_SUCCESS = 0,
    PW_AUDIT_MINOR = 4,
    PW_AUDIT_SERIOUS = 8,
    PW_AUDIT_MAJOR = 12,
};

struct pw_audit;

/** Writer options. Strings are copied by pw_audit_open(). */
struct pw_audit_opts {
    const char *path;      /* the live trail file; size rotation renames it to <path>.<seq> */
    const char *key_path;  /* HMAC key file: regular, not world-accessible, <= PW_SECRET_FILE_MAX */
    const char *device;    /* painwatch's Device reference, e.g. "Device/painwatch" (required) */
    const char *site;      /* optional: source.site */
    uint64_t rotate_bytes; /* start a new file once the live one reaches this size; 0: never */
    uint64_t rotate_seconds;   /* start a new file once the live one is this old; 0: never */
    int64_t (*clock_ms)(void); /* optional wall clock, ms since the epoch (tests); NULL: real */
    size_t batch_max;          /* bytes one batch may hold (tests); 0: PW_AUDIT_BATCH_MAX */
};

/**
 * Read an HMAC key file. The file must be a regular file, not readable or writable by others,
 * non-empty and at most PW_SECRET_FILE_MAX bytes; one trailing newline is ignored (so
 * `openssl rand -hex 32 > key` works). Keys shorter than 16 bytes are refused.
 * @param out   Caller owns the result; free with pw_audit_key_free().
 * @return 0, PW_ESECRET (unusable, reason logged without the content) or PW_ENOMEM.
 */
int pw_audit_key_load(const char *path, unsigned char **out, size_t *out_len);

/** Wipe and free a key from pw_audit_key_load(). NULL is a no-op. */
void pw_audit_key_free(unsigned char *key, size_t len);

/**
 * Open (or create) the trail and continue its chain from the last record of the live file. A
 * live file whose last line is torn, or that does not verify with the key, is set aside as
 * <path>.<seq> and a new file is started whose header records the anomaly (never silently
 * continued).
 * @param out Caller owns the result; free with pw_audit_free().
 * @return 0, PW_EINVAL, PW_ESECRET, PW_ENOMEM or PW_EAUDIT (the trail cannot be written).
 */
int pw_audit_open(struct pw_audit **out, const struct pw_audit_opts *opts);

/** fsync and close. Writes no record (log "stop" with pw_audit_event() first). NULL is a no-op. */
void pw_audit_free(struct pw_audit *a);

/**
 * The fail-closed gate: false while the trail is in its failed state (the last write, fsync or
 * open failed). Nothing may be written to the EHR while this is false.
 */
bool pw_audit_writable(const struct pw_audit *a);

/**
 * Leave the failed state: re-open the live file, resynchronise the chain from its tail and write
 * an "audit-resumed" record naming when the outage began and how many appends failed. Call from
 * a timer; pw_audit_append_new() also calls it. @return 0 when writable (also when it was), or
 * PW_EAUDIT.
 */
int pw_audit_retry(struct pw_audit *a);

/**
 * Re-open the live file by name (SIGHUP after logrotate renamed it). An empty or missing file gets
 * a header linking to the last digest written. @return 0 or PW_EAUDIT (then in failed state).
 */
int pw_audit_reopen(struct pw_audit *a);

/** Rotate now: rename the live file to <path>.<seq> and start the next one. 0 or PW_EAUDIT. */
int pw_audit_rotate(struct pw_audit *a);

/**
 * Append one record and make it durable: the writer sets n, recorded (always its own clock), prev,
 * hmac, and agent[source] and source (unless the caller gave them), writes the line with one
 * write() and fsyncs before returning 0. A short write is truncated away; no partial line remains.
 * @param record an object with string "type" and "subtype". Takes ownership of @p record, also
 *               on failure.
 * @return 0; PW_EINVAL (bad record, trail state unchanged); PW_E2BIG (over PW_AUDIT_RECORD_MAX);
 *         PW_ENOMEM; PW_EAUDIT (write/fsync failed or the trail is in failed state: logged at
 *         LOG_CRIT, pw_audit_writable() is false until a retry succeeds).
 * Inside a batch, 0 only means queued: durability comes with pw_audit_batch_commit().
 */
int pw_audit_append_new(struct pw_audit *a, json_t *record);

/**
 * Batching (e.g. one search page): appends between begin and commit are written with one write()
 * and one fsync at commit. Nothing queued counts as recorded until commit returns 0; on failure
 * the whole batch is dropped (and truncated away) and the chain stays where it was.
 * @return 0, PW_EINVAL (already in a batch / not in one), PW_EAUDIT.
 */
int pw_audit_batch_begin(struct pw_audit *a);
int pw_audit_batch_commit(struct pw_audit *a);

/**
 * End a batch like pw_audit_batch_commit() but without the fsync: the lines are written (the
 * chain goes on from them) and become durable at the next fsync of the trail, whoever causes it
 * (pw_audit_sync(), a durable append or commit, rotation, close). For records that a later step
 * makes durable before anything relies on them: take pw_audit_epoch() before writing, and call
 * pw_audit_sync() with it before the step that relies on them (e.g. a store commit).
 * @return 0 (written, not yet durable) or PW_EAUDIT.
 */
int pw_audit_batch_write(struct pw_audit *a);

/** The trail's failure count: a mark for pw_audit_sync(). */
uint64_t pw_audit_epoch(const struct pw_audit *a);

/**
 * Make every line written so far durable (one fsync; none when nothing is pending).
 * @p epoch: pw_audit_epoch() from before the writes that must be durable.
 * @return 0; PW_EAUDIT when the fsync fails, or when the trail failed since @p epoch (lines
 *         written before that failure may be lost even though the trail works again).
 */
int pw_audit_sync(struct pw_audit *a, uint64_t epoch);
/** Drop a batch unwritten (what it recorded did not happen: its transaction rolled back). */
void pw_audit_batch_abort(struct pw_audit *a);

/** Digest of the last durable record (64 hex + NUL): an anchor to keep elsewhere. Borrowed. */
const char *pw_audit_last_digest(const struct pw_audit *a);

/* ---- the chain head kept in the store (daemon/core/audit_head.c, issue 18) ------------------ */

/*
 * Where the chain stood: a record by the header sequence of its file, its number and its
 * digest. Every store transaction the daemon commits also writes the trail's last durable record
 * into the store's meta table (key "audit_head", "SEQ N DIGEST"), so the state and the trail
 * that recorded it are anchored together. At start, and in `painwatch audit verify --state-dir`,
 * the trail must still hold that record and continue from it to its end: a trail cut back,
 * deleted or forked is a chain discontinuity. The daemon then writes a "chain-discontinuity"
 * record, logs an error and keeps /readyz failing (meta "audit_discontinuity", JSON) until
 * `painwatch audit acknowledge` clears it (journaled as an operator action, which the daemon
 * records in the trail as the other operator actions).
 */
struct pw_audit_head {
    uint64_t seq; /* header sequence of the file that holds the record */
    uint64_t n;   /* record number */
    char digest[PW_AUDIT_DIGEST_HEX + 1];
};

#define PW_AUDIT_META_HEAD          "audit_head"
#define PW_AUDIT_META_DISCONTINUITY "audit_discontinuity"

/** The last record known durable (fsync'd). @return 0 or PW_ENOENT (none yet). */
int pw_audit_durable_head(const struct pw_audit *a, struct pw_audit_head *out);

/** "SEQ N DIGEST" into @p buf. @return 0 or PW_E2BIG. */
int pw_audit_head_format(const struct pw_audit_head *h, char *buf, size_t cap);
/** The inverse of pw_audit_head_format(). @return 0 or PW_EINVAL. */
int pw_audit_head_parse(const char *s, struct pw_audit_head *h);

/**
 * Check that the trail made of @p files holds @p head and goes on from it, linked record by
 * record and file by file, to its end; with @p end_digest (may be NULL) that end must be the
 * record of that digest. Only the records from @p head on are authenticated (use
 * pw_audit_verify_files() for the whole trail).
 * @return 0; PW_EVERIFY with the reason in @p why (the record is missing: the trail is shorter;
 *         its file is missing; it differs or the chain after it does not continue: a fork);
 *         PW_ENOMEM.
 */
int pw_audit_head_check(const unsigned char *key, size_t key_len, const char *const *files,
                        size_t n_files, const struct pw_audit_head *head, const char *end_digest,
                        char *why, size_t why_len);

/**
 * The trail files beside @p path: the live file and every file whose name is its name plus ".",
 * "-" or "_" and a suffix (rotations), compressed ones left out. Caller frees with
 * pw_audit_files_free(). @return 0, PW_ENOENT (the directory cannot be read) or PW_ENOMEM.
 */
int pw_audit_trail_files(const char *path, char ***files, size_t *n);
void pw_audit_files_free(char **files, size_t n);

/** True when @p name ends like a compressed rotation (.gz, .xz, .bz2, .zst, .lz4). */
bool pw_audit_file_compressed(const char *name);

struct pw_store;

/** A pw_store commit hook (@p audit: the struct pw_audit): the durable head into "audit_head". */
int pw_audit_store_head(void *audit, struct pw_store *st);

/**
 * At daemon start, before anything else commits: check the head the store holds against the
 * trail. On a discontinuity: an error log line, a "chain-discontinuity" record, and
 * "audit_discontinuity" set in the store (in one transaction with the new head).
 * @return 0 (also when a discontinuity was found and recorded), or an error writing it.
 */
int pw_audit_chain_check(struct pw_audit *a, struct pw_store *st);

/** Readiness: false while the store holds an unacknowledged discontinuity (reason in detail). */
bool pw_audit_chain_ready(struct pw_store *st, char *detail, size_t size);

/* ---- builders: the calls other modules make ------------------------------------------------ */

/**
 * A painwatch event (type "painwatch"): start, stop, config-loaded, token-renewed,
 * operator-action, ... @p extra (may be NULL) is an object merged into the record, e.g.
 * {"painwatch": {"config_hash": "..."}} or {"entity": [...]}. Takes ownership of @p extra, also on
 * failure. @p desc may be NULL. @return as pw_audit_append_new().
 */
int pw_audit_event(struct pw_audit *a, const char *subtype, char action,
                   enum pw_audit_outcome outcome, const char *desc, json_t *extra);

/** One FHIR interaction, as the HTTP exchange ended. Strings are borrowed for the call. */
struct pw_audit_fhir {
    const char *interaction; /* "search" | "read" | "create" | "update" */
    const char *server;      /* FHIR base URL: the destination agent */
    const char *method;      /* "GET", "POST", "PUT" */
    const char *url;         /* request URL or path with its query string */
    long status;             /* HTTP status, 0 when no response arrived */
    int err;                 /* 0, or the transport error (PW_ETIMEDOUT, PW_EHTTP, ...) */
    const char *patient;     /* "Patient/123" or NULL */
    const char *resource;    /* resource read or written, "Flag/9/_history/2", or NULL */
    const char *correlation; /* request correlation id, or NULL */
    long entries;            /* entries in a search page, -1 when not applicable */
};

/**
 * Record a FHIR interaction: outcome 0 for 2xx/3xx, 4 for 4xx, 8 for 5xx or no response.
 * @return as pw_audit_append_new().
 */
int pw_audit_fhir_interaction(struct pw_audit *a, const struct pw_audit_fhir *ix);

/**
 * Record a finding raised or resolved (@p subtype "finding-raised" | "finding-resolved", or
 * "finding-carded": shown on a CDS Hooks card, issue 21): rule,
 * episode key, factor set, severity, the numbers, the evidence references and the text.
 * @p correlation may be NULL. @return as pw_audit_append_new().
 */
int pw_audit_finding(struct pw_audit *a, const char *subtype, const struct pw_finding *f,
                     const char *correlation);

/**
 * Issue 21: pw_audit_finding() that also records what carried the finding (@p carrier: the sink
 * name, "audit-only" for a finding not posted, NULL: not recorded) and its summary and encounter.
 * @p subtype may also be "finding-not-posted".
 */
int pw_audit_finding_via(struct pw_audit *a, const char *subtype, const struct pw_finding *f,
                         const char *correlation, const char *carrier);

/** The fate of one Flag write. Strings are borrowed for the call. */
struct pw_audit_flag {
    const char *subtype;     /* "flag-delivered" | "flag-rejected" | "flag-dead-lettered" */
    char action;             /* 'C' create, 'U' update (resolve) */
    const char *server;      /* FHIR base URL */
    const char *patient;     /* "Patient/123" */
    const char *rule;        /* rule id */
    const char *episode;     /* episode key */
    const char *flag;        /* "Flag/9/_history/1" as the server answered, or NULL */
    long status;             /* HTTP status, 0 when none */
    const char *detail;      /* e.g. the OperationOutcome summary of a rejection, or NULL */
    const char *correlation; /* or NULL */
};

/** Record a Flag delivered, rejected or dead-lettered. @return as pw_audit_append_new(). */
int pw_audit_flag(struct pw_audit *a, const struct pw_audit_flag *fl);

/* ---- reading: verify and show (daemon/core/audit_verify.c, audit_show.c) ------------------- */

/** The verdict of pw_audit_verify_files(). */
struct pw_audit_verdict {
    char file[4096];    /* where it failed ("" when all verified) */
    long line;          /* 1-based line in @c file, 0 when the file as a whole */
    char why[512];      /* what is wrong, for an auditor */
    uint64_t records;   /* records that verified */
    size_t files;       /* files that verified */
    uint64_t first_seq; /* file sequence the checked chain starts at */
    char first_prev[PW_AUDIT_DIGEST_HEX + 1]; /* what that first header links to */
    char last[PW_AUDIT_DIGEST_HEX + 1];       /* digest of the last record that verified */
    unsigned torn_acknowledged; /* torn tails accepted (see pw_audit_verify_files()) */
    char note[512];             /* the first of them, file:line, for the report */
};

/**
 * Verify a trail made of @p files (any order: they are checked in the order of their header
 * sequence numbers). Each line must be canonical JSON with a valid HMAC, link to the digest of the
 * line before it, and count n up by one; each file must start with a header that links to the
 * previous file's last digest with the next sequence number. A torn last line (a write cut by
 * power loss, never reported done) is accepted only when the next file's authenticated header
 * records exactly those torn bytes and links to the record before them (the writer does this
 * when it finds such a file at start); it is counted in torn_acknowledged. Any other torn line
 * fails.
 * @return 0 all verified; PW_EVERIFY (first failing place in @p v); PW_ENOENT / PW_EIO (a file
 *         cannot be read; named in @p v); PW_ENOMEM.
 */
int pw_audit_verify_files(const unsigned char *key, size_t key_len, const char *const *files,
                          size_t n_files, struct pw_audit_verdict *v);

/** Filters for pw_audit_show(); NULL / 0 fields do not filter. */
struct pw_audit_filter {
    const char *patient; /* entity with role patient equals this ("Patient/1") */
    const char *rule;    /* painwatch.rule equals this */
    int64_t since_ms;    /* recorded >= since (ms since the epoch); INT64_MIN: no bound */
    int64_t until_ms;    /* recorded < until; INT64_MAX: no bound */
    bool json;           /* JSON lines instead of the text table */
};

/**
 * Print the records of @p files (in the order given, headers skipped) that pass @p flt to @p out.
 * Does not verify the chain (use pw_audit_verify_files()). A line that does not parse is reported
 * on @p err with file:line and skipped. @return number of records printed, or a negative PW_E*
 * (PW_ENOENT / PW_EIO when a file cannot be read, named on @p err).
 */
long pw_audit_show(FILE *out, FILE *err, const char *const *files, size_t n_files,
                   const struct pw_audit_filter *flt);

/**
 * Parse an RFC 3339 time ("2026-11-26T22:46:22.123Z", "+01:00" offsets, or a bare date
 * "2026-11-26" meaning midnight UTC) into ms since the epoch. @return 0 or PW_EINVAL.
 */
int pw_audit_parse_time(const char *s, int64_t *out_ms);

/**
 * Issue 19: the searches of one sync cycle of @p server as one record (instead of one per page):
 * BALP query entities (one per query shape, e.g. "Observation?patient={id}"), a patient entity
 * per patient whose data was read, and painwatch.read, the ids of the resources read.
 * @p queries: {"<shape>": {"searches": n, "pages": n, "entries": n}}; @p patients: ["Patient/x"];
 * @p ids: ["Observation/1"]. Takes ownership of the three (also on failure). @p err: 0, or the
 * error that ended the cycle. @return as pw_audit_append_new().
 */
int pw_audit_search_cycle(struct pw_audit *a, const char *server, json_t *queries, json_t *patients,
                          json_t *ids, long pages, long entries, int err);

/**
 * A data-quality event of @p patient's timeline (subtype "data-quality"): a number painwatch was
 * not sure of and did not use, or a reason rules stayed silent. Entity: the patient, and the
 * resource the event is about (Type/id[/_history/version]) unless that is the patient itself;
 * painwatch {code, detail}. The pipeline writes one per episode of an event (while it stands,
 * re-evaluations do not write it again). @return as pw_audit_append_new().
 */
int pw_audit_data_quality(struct pw_audit *a, const char *patient, const struct pw_dq_event *ev);

#endif
