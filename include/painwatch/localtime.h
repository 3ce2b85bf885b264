/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue 21: local times for clinicians, in the configured `timezone`, through the C library's
 * tz handling (TZ + tzset + localtime_r; no tz rules written here).
 */
#ifndef PAINWATCH_LOCALTIME_H
#define PAINWATCH_LOCALTIME_H

#include <stdbool.h>
#include <stdint.h>

/**
 * Format @p t in the process's local timezone (the configured `timezone`): "5 Dec 15:14", with
 * the year when it differs from @p now's ("5 Dec 2025 15:14"; PW_TIME_NONE: always with the
 * year). "unknown time" for PW_TIME_NONE / PW_TIME_FOREVER.
 */
const char *pw_local_time(char buf[static 40], int64_t t, int64_t now);

/**
 * Make @p name (an IANA zone, "Europe/Berlin") the process's local timezone through the C
 * library (TZ + tzset). NULL or "" keeps the system's zone. @return 0 or PW_ECONFIG (not a
 * zone the system's tz database holds).
 */
int pw_timezone_set(const char *name);

/** Whether @p name is a zone of the system's tz database (TZDIR, else /usr/share/zoneinfo). */
bool pw_timezone_valid(const char *name);

/** The zone's name for texts: the configured name, or the C library's abbreviation. */
const char *pw_timezone_name(void);

#endif
