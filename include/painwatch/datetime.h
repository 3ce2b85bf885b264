/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Civil dates and FHIR/RFC 3339 times, written once (issue 20): pure arithmetic, no C library time
 * zone state, no I/O library. Used by clinical (FHIR dates), core (audit, sink, status) and the
 * adapters (search instants). Times are milliseconds since 1970-01-01T00:00:00Z unless named _s.
 */
#ifndef PAINWATCH_DATETIME_H
#define PAINWATCH_DATETIME_H

#include <stddef.h>
#include <stdint.h>

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
int64_t pw_days_from_civil(int64_t y, unsigned m, unsigned d);

/** The proleptic Gregorian date of day @p days since 1970-01-01 (civil_from_days). */
void pw_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

/** How pw_time_parse() reads (flags, or-ed). */
enum {
    /** "YYYY" and "YYYY-MM" are dates too (their first day, as FHIR's partial dates). */
    PW_TIME_PARTIAL = 1u << 0,
    /** A time of day needs its zone ("Z" or "+hh:mm"); without this flag a time with no zone is
     * UTC. A bare date is always its midnight UTC. */
    PW_TIME_ZONE = 1u << 1,
    /** Also what RFC 3339 and some servers write: "t" or " " before the time, "z" for UTC, hour 24,
     * zone offsets up to 23:59. Without it: FHIR's "T" and "Z", hours 00-23, offsets to 14:59. */
    PW_TIME_LAX = 1u << 2,
};

/**
 * Parse a FHIR date, dateTime or instant, "YYYY-MM-DD[Thh:mm:ss[.fff...][Z|+hh:mm|-hh:mm]]", read
 * as @p flags say, into milliseconds since the epoch, UTC (fraction digits past the third are
 * ignored). @return 0 or PW_EINVAL (then *@p out_ms is unchanged).
 */
int pw_time_parse(const char *s, unsigned flags, int64_t *out_ms);

/** How pw_time_format() writes. */
enum {
    PW_TIME_FMT_MS = 1u << 0, /**< "YYYY-MM-DDThh:mm:ss.sssZ"; without: "YYYY-MM-DDThh:mm:ssZ" */
};

/** Longest text pw_time_format() writes, with its NUL, for years 0-9999. */
#define PW_TIME_FMT_LEN 25

/** Format @p ms (floored to the second without PW_TIME_FMT_MS) as a FHIR instant into @p buf. */
void pw_time_format(int64_t ms, unsigned flags, char *buf, size_t n);

/** Floor division of @p ms by 1000: the second an instant falls in. */
int64_t pw_time_ms_to_s(int64_t ms);

#endif
