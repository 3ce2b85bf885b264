/* SPDX-License-Identifier: Apache-2.0 */
/* Invariant checks (after Knot Resolver's kr_require / kr_fails_assert) and container_of. */
#ifndef PAINWATCH_CHECK_H
#define PAINWATCH_CHECK_H

#include <stdbool.h>
#include <stddef.h>

/** Report a failed check. @p fatal aborts the process; otherwise logs at LOG_CRIT and returns. */
void pw_check_fail(bool fatal, const char *expr, const char *func, const char *file, int line);

/**
 * PW_REQUIRE: memory is corrupt or the code is wrong; always fatal, also under NDEBUG.
 * Never wrap side effects.
 */
#define PW_REQUIRE(expr)                                              \
    do {                                                              \
        if (!(expr)) {                                                \
            pw_check_fail(true, #expr, __func__, __FILE__, __LINE__); \
            __builtin_unreachable();                                  \
        }                                                             \
    } while (0)

/**
 * PW_CHECK: a recoverable invariant. Evaluates to true when the check FAILED (logged at
 * LOG_CRIT), so the caller can fail the request instead of the process:
 *     if (PW_CHECK(n <= cap)) return PW_EINVAL;
 */
#define PW_CHECK(expr) (!(expr) && (pw_check_fail(false, #expr, __func__, __FILE__, __LINE__), 1))

/** The owner of an embedded member (never a "first member" cast). */
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/** Number of elements of a true array. */
#define PW_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
