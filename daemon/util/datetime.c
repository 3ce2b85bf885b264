/* SPDX-License-Identifier: Apache-2.0 */
/* Civil dates and FHIR/RFC 3339 times (datetime.h): the one parser and formatter. */
#include "painwatch/datetime.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "painwatch/err.h"

int64_t pw_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void pw_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
    const int64_t z = days + 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Read exactly @p n digits at *@p p and move past them. */
static bool digits(const char **p, int n, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') {
            return false;
        }
        v = v * 10 + (unsigned)(c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* "Z" or "+hh:mm"/"-hh:mm" ending the string, in minutes east of UTC. */
static bool zone(const char *p, unsigned flags, int64_t *off_min)
{
    bool lax = flags & PW_TIME_LAX;
    if (*p == 'Z' || (lax && *p == 'z')) {
        *off_min = 0;
        return p[1] == '\0';
    }
    if (*p != '+' && *p != '-') {
        return false;
    }
    const char *q = p + 1;
    unsigned hh, mm;
    if (!digits(&q, 2, &hh) || *q++ != ':' || !digits(&q, 2, &mm) || *q != '\0' ||
        hh > (lax ? 23u : 14u) || mm > 59) {
        return false;
    }
    *off_min = (int64_t)(hh * 60 + mm) * (*p == '-' ? -1 : 1);
    return true;
}

/* "hh:mm:ss[.f...]" at *@p p: seconds of the day and milliseconds. */
static bool clock(const char **p, unsigned flags, unsigned *sod, unsigned *ms)
{
    unsigned hh, mi, ss;
    if (!digits(p, 2, &hh) || *(*p)++ != ':' || !digits(p, 2, &mi) || *(*p)++ != ':' ||
        !digits(p, 2, &ss) || hh > ((flags & PW_TIME_LAX) ? 24u : 23u) || mi > 59 || ss > 60) {
        return false;
    }
    *ms = 0;
    if (**p == '.') {
        (*p)++;
        if (**p < '0' || **p > '9') {
            return false;
        }
        for (unsigned scale = 100; **p >= '0' && **p <= '9'; (*p)++, scale /= 10) {
            *ms += (unsigned)(**p - '0') * scale;
        }
    }
    *sod = hh * 3600 + mi * 60 + ss;
    return true;
}

int pw_time_parse(const char *s, unsigned flags, int64_t *out_ms)
{
    if (s == NULL) {
        return PW_EINVAL;
    }
    const char *p = s;
    unsigned y, m = 1, d = 1, sod = 0, ms = 0;
    int64_t off_min = 0;
    if (!digits(&p, 4, &y)) {
        return PW_EINVAL;
    }
    if (*p == '-') {
        p++;
        if (!digits(&p, 2, &m) || m < 1 || m > 12) {
            return PW_EINVAL;
        }
        if (*p == '-') {
            p++;
            if (!digits(&p, 2, &d) || d < 1 || d > 31) {
                return PW_EINVAL;
            }
            bool lax = flags & PW_TIME_LAX;
            if (*p == 'T' || (lax && (*p == 't' || *p == ' '))) {
                p++;
                if (!clock(&p, flags, &sod, &ms)) {
                    return PW_EINVAL;
                }
                if (*p != '\0' || (flags & PW_TIME_ZONE)) {
                    if (!zone(p, flags, &off_min)) {
                        return PW_EINVAL;
                    }
                    p += strlen(p);
                }
            }
        } else if (!(flags & PW_TIME_PARTIAL)) {
            return PW_EINVAL;
        }
    } else if (!(flags & PW_TIME_PARTIAL)) {
        return PW_EINVAL;
    }
    if (*p != '\0') {
        return PW_EINVAL;
    }
    int64_t secs = pw_days_from_civil(y, m, d) * 86400 + sod - off_min * 60;
    *out_ms = secs * 1000 + ms;
    return 0;
}

int64_t pw_time_ms_to_s(int64_t ms)
{
    return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
}

void pw_time_format(int64_t ms, unsigned flags, char *buf, size_t n)
{
    int64_t secs = pw_time_ms_to_s(ms);
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t sod = secs - days * 86400;
    int64_t y;
    unsigned m, d;
    pw_civil_from_days(days, &y, &m, &d);
    if (ms >= 0 && y <= 9999 && n > 0) {
        /* What the formats below write, digit by digit (every audit record has a time). */
        unsigned v[6] = {m,
                         d,
                         (unsigned)(sod / 3600),
                         (unsigned)(sod / 60 % 60),
                         (unsigned)(sod % 60),
                         (unsigned)(ms - secs * 1000)};
        char t[32];
        size_t k = 0;
        for (unsigned div = 1000; div > 0; div /= 10) {
            t[k++] = (char)('0' + (unsigned)y / div % 10);
        }
        for (int i = 0; i < 5; i++) {
            t[k++] = "--T::"[i];
            t[k++] = (char)('0' + v[i] / 10 % 10);
            t[k++] = (char)('0' + v[i] % 10);
        }
        if (flags & PW_TIME_FMT_MS) {
            t[k++] = '.';
            t[k++] = (char)('0' + v[5] / 100 % 10);
            t[k++] = (char)('0' + v[5] / 10 % 10);
            t[k++] = (char)('0' + v[5] % 10);
        }
        t[k++] = 'Z';
        if (k > n - 1) {
            k = n - 1;
        }
        memcpy(buf, t, k);
        buf[k] = '\0';
        return;
    }
    if (flags & PW_TIME_FMT_MS) {
        snprintf(buf, n, "%04" PRId64 "-%02u-%02uT%02u:%02u:%02u.%03uZ", y, m, d,
                 (unsigned)(sod / 3600), (unsigned)(sod / 60 % 60), (unsigned)(sod % 60),
                 (unsigned)(ms - secs * 1000));
    } else {
        snprintf(buf, n, "%04" PRId64 "-%02u-%02uT%02u:%02u:%02uZ", y, m, d, (unsigned)(sod / 3600),
                 (unsigned)(sod / 60 % 60), (unsigned)(sod % 60));
    }
}
