/* SPDX-License-Identifier: Apache-2.0 */
/* Issue 21: local times in the configured timezone (see localtime.h). */
#include "painwatch/localtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "painwatch/err.h"
#include "painwatch/timeline.h"

static char tz_configured[128];
static char tz_original[128]; /* TZ as the process started, when it was set */
static bool tz_original_set;

bool pw_timezone_valid(const char *name)
{
    char path[512];
    const char *dir = getenv("TZDIR");

    /* An IANA name is relative to the tz database: no absolute path, no way out of it. */
    if (!name || !name[0] || name[0] == '/' || strstr(name, "..") ||
        strlen(name) >= sizeof(tz_configured)) {
        return false;
    }
    snprintf(path, sizeof(path), "%s/%s", dir && dir[0] ? dir : "/usr/share/zoneinfo", name);
    return access(path, R_OK) == 0; /* glibc would silently fall back to UTC */
}

int pw_timezone_set(const char *name)
{
    if (!name || !name[0]) {
        /* the system's zone: as the process started (a reload may remove the key) */
        if (tz_configured[0]) {
            int rc = tz_original_set ? setenv("TZ", tz_original, 1) : unsetenv("TZ");
            if (rc != 0) {
                return PW_ENOMEM;
            }
            tzset();
            tz_configured[0] = '\0';
        }
        return 0;
    }
    if (!pw_timezone_valid(name)) {
        return PW_ECONFIG;
    }
    if (!tz_configured[0]) {
        const char *orig = getenv("TZ");
        tz_original_set = orig != NULL && strlen(orig) < sizeof(tz_original);
        if (tz_original_set) {
            snprintf(tz_original, sizeof(tz_original), "%s", orig);
        }
    }
    if (setenv("TZ", name, 1) != 0) {
        return PW_ENOMEM;
    }
    tzset();
    snprintf(tz_configured, sizeof(tz_configured), "%s", name);
    return 0;
}

const char *pw_timezone_name(void)
{
    const char *tz = getenv("TZ");

    if (tz_configured[0]) {
        return tz_configured;
    }
    if (tz && tz[0]) {
        return tz[0] == ':' ? tz + 1 : tz;
    }
    tzset();
    return tzname[0] && tzname[0][0] ? tzname[0] : "local time";
}

const char *pw_local_time(char buf[static 40], int64_t t, int64_t now)
{
    time_t tt = (time_t)t;
    time_t tn = (time_t)now;
    struct tm tm;
    struct tm tmn;

    if (t == PW_TIME_NONE || t == PW_TIME_FOREVER || !localtime_r(&tt, &tm)) {
        snprintf(buf, 40, "unknown time");
        return buf;
    }
    bool same_year = now != PW_TIME_NONE && localtime_r(&tn, &tmn) && tmn.tm_year == tm.tm_year;
    char mon[16];
    char hm[16];
    if (strftime(mon, sizeof(mon), "%b", &tm) == 0 || strftime(hm, sizeof(hm), "%H:%M", &tm) == 0) {
        snprintf(buf, 40, "unknown time");
    } else if (same_year) {
        snprintf(buf, 40, "%d %s %s", tm.tm_mday, mon, hm);
    } else {
        snprintf(buf, 40, "%d %s %d %s", tm.tm_mday, mon, tm.tm_year + 1900, hm);
    }
    return buf;
}
