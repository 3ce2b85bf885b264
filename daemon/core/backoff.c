/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Scheduling arithmetic: full-jitter exponential backoff, poll jitter and Retry-After parsing.
 * Pure functions (the randomness is passed in) so tests can pin every bound.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/rand.h>

#include "painwatch/err.h"
#include "painwatch/sync.h"

uint32_t pw_rand32(void)
{
    uint32_t r = 0;

    if (RAND_bytes((unsigned char *)&r, (int)sizeof(r)) != 1) {
        /* Jitter only spreads load; a clock-derived value is good enough if the CSPRNG fails. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        r = (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec * 2654435761u;
    }
    return r;
}

/* Uniform in [0, span] from a 32-bit random number, without overflow for any span. */
static uint64_t scale(uint64_t span, uint32_t r)
{
    if (span >= UINT32_MAX) {
        return (uint64_t)((long double)span * ((long double)r / (long double)UINT32_MAX));
    }
    return (span + 1) * (uint64_t)r >> 32;
}

uint64_t pw_backoff_full_jitter(uint64_t base_ms, uint64_t cap_ms, unsigned attempt, uint32_t r)
{
    uint64_t ceil = base_ms;

    /* base * 2^attempt, saturating at the cap (and before any overflow). */
    for (unsigned i = 0; i < attempt && ceil < cap_ms; i++) {
        ceil = ceil > UINT64_MAX / 2 ? UINT64_MAX : ceil * 2;
    }
    if (ceil > cap_ms) {
        ceil = cap_ms;
    }
    return scale(ceil, r);
}

uint64_t pw_poll_jitter(uint64_t interval_ms, double jitter, uint32_t r)
{
    if (!(jitter > 0.0)) {
        return interval_ms;
    }
    if (jitter > 1.0) {
        jitter = 1.0;
    }
    uint64_t spread = (uint64_t)((double)interval_ms * jitter);
    uint64_t low = interval_ms - spread;
    return low + scale(2 * spread, r);
}

int pw_retry_after_parse(const char *value, int64_t now_s, uint64_t *out_ms)
{
    if (!value) {
        return PW_EINVAL;
    }
    while (*value == ' ' || *value == '\t') {
        value++;
    }
    size_t len = strlen(value);
    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t' || value[len - 1] == '\r' ||
                       value[len - 1] == '\n')) {
        len--;
    }
    if (len == 0) {
        return PW_EINVAL;
    }

    uint64_t ms;
    if (strspn(value, "0123456789") == len) {
        /* delta-seconds: saturate instead of overflowing on absurd values. */
        uint64_t s = 0;
        for (size_t i = 0; i < len && s <= PW_SYNC_RETRY_AFTER_MAX_MS / 1000; i++) {
            s = s * 10 + (uint64_t)(value[i] - '0');
        }
        ms = s * 1000;
    } else {
        char buf[64];
        if (len >= sizeof(buf)) {
            return PW_EINVAL;
        }
        memcpy(buf, value, len);
        buf[len] = '\0';
        /* curl_getdate parses the three HTTP-date forms (RFC 9110 5.6.7) and more; insist on
         * a GMT date, which all three forms carry. */
        if (!strstr(buf, "GMT")) {
            return PW_EINVAL;
        }
        time_t t = curl_getdate(buf, NULL);
        if (t == -1) {
            return PW_EINVAL;
        }
        ms = (int64_t)t > now_s ? (uint64_t)((int64_t)t - now_s) * 1000 : 0;
    }
    *out_ms = ms > PW_SYNC_RETRY_AFTER_MAX_MS ? PW_SYNC_RETRY_AFTER_MAX_MS : ms;
    return 0;
}
