/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A bump arena for jansson: one search page's JSON tree is carved out of a reserved region
 * instead of thousands of malloc calls, and given back whole when its last value is freed.
 */
#ifndef PAINWATCH_JARENA_H
#define PAINWATCH_JARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "painwatch/limits.h"

/*
 * How it stays correct whatever holds on to the tree:
 *  - Allocation goes to the arena only on the thread that called pw_jarena_begin(), until its
 *    pw_jarena_end(); every other allocation (other threads, outside begin..end) is malloc().
 *  - The region is cut into segments (PW_JARENA_SEGMENT). Each counts its live allocations;
 *    freeing the last one hands the segment back (to be bumped into again from its start),
 *    whichever thread frees it. A json_incref'd piece of a tree only keeps its own segment.
 *  - The free function tells arena pointers by address; anything else goes to free(), so
 *    trees mixing arena and malloc'd values (json_object_set either way) free correctly.
 *  - A full region, or one allocation larger than a segment, falls back to malloc().
 *  - A page opened with pw_jarena_page_begin() instead owns its segments outright: freeing its
 *    values counts nothing, and pw_jarena_page_drop() hands every segment back at once without
 *    walking the tree (jansson's recursive free is a tenth of a page's cost). The price is a
 *    rule for whoever reads such a tree: nothing taken from it (a json_incref'd value, a string
 *    pointer) may outlive the drop, and nothing malloc'd may be put into it.
 * Emptied segments stay resident for the next pages; pw_jarena_trim() (at the end of a sync
 * cycle) gives empty segments past the first PW_JARENA_KEEP bytes back to the kernel
 * (MADV_DONTNEED), so an idle daemon does not keep its largest page resident.
 * Under AddressSanitizer freed arena memory is poisoned, so use-after-free is still reported.
 */

/**
 * Reserve the region (PW_JARENA_BYTES of address space, no memory committed) and make jansson
 * allocate through the arena (json_set_alloc_funcs). Call once, early, before any thread starts
 * and before other code changes jansson's allocator; never replace the allocator afterwards
 * (arena pointers must not reach free()). A second call is a no-op. Without it, begin() refuses
 * and everything is malloc'd (the CLI and most tests).
 * @return 0, or PW_ENOMEM when the address space cannot be reserved (jansson is left alone).
 */
int pw_jarena_install(void);

/**
 * pw_jarena_install() with a region of @p bytes (rounded down to whole segments, at least one).
 * For tests that need to fill the region.
 */
int pw_jarena_install_size(size_t bytes);

/**
 * Start allocating jansson values of this thread in the arena. One arena user at a time in the
 * process: a begin while another is open (this thread or another one) is refused.
 * @return 0: open until pw_jarena_end() on this thread;
 *         PW_EAGAIN: already open (nested, or on another thread): go on, values are malloc'd;
 *         PW_EINVAL: not installed: go on, values are malloc'd.
 * Call pw_jarena_end() only after a begin that returned 0.
 */
int pw_jarena_begin(void);

/** Stop allocating in the arena (no-op on a thread without an open begin). */
void pw_jarena_end(void);

/** Words of a segment bitmap. */
#define PW_JARENA_WORDS ((PW_JARENA_BYTES / PW_JARENA_SEGMENT + 63) / 64)

/** One page tree, parsed in pw_jarena_page_begin()..pw_jarena_end(), dropped whole. */
struct pw_jarena_page {
    uint64_t segs[PW_JARENA_WORDS]; /* the segments holding the page's values */
    bool arena;                     /* the begin succeeded: values went to the arena */
    bool walk;                      /* some value was malloc'd: the drop frees value by value */
    size_t budget;                  /* bytes the page may take (0: no limit) */
    size_t used;                    /* segments claimed and blocks malloc'd for it, in bytes */
    bool over;                      /* an allocation was refused: the budget was reached */
};

/**
 * pw_jarena_begin() for one page tree that pw_jarena_page_drop() will free at once. @p pg is
 * reset here and filled until pw_jarena_end(); the same return values as pw_jarena_begin()
 * (anything but 0: values are malloc'd and the drop is a json_decref()).
 */
int pw_jarena_page_begin(struct pw_jarena_page *pg);

/**
 * pw_jarena_page_begin() with a memory budget: the page's segments and its malloc'd blocks are
 * counted as they are taken (never given back before the drop), and once @p budget bytes would
 * be passed every further allocation of this thread fails (returns NULL: jansson's parse fails)
 * and @p pg->over is set. 0: no budget. Without the arena (any return but 0) nothing is counted.
 */
int pw_jarena_page_begin_budget(struct pw_jarena_page *pg, size_t budget);

/**
 * Free the tree @p root (may be NULL) parsed in @p pg's begin..end, and every other value
 * allocated there. Any thread, after pw_jarena_end(). With the arena it walks nothing: every
 * value of the tree must be unreferenced by then (containers holding its values freed first,
 * no json_incref'd piece or string pointer kept) and the tree must not have been given
 * malloc'd values (they would leak). Under ASan the memory is poisoned, so a value used after
 * the drop is reported. Without the arena, or when part of the parse was malloc'd (a full
 * region, a value larger than a segment), it is json_decref(@p root) before the release; the
 * rule stands all the same (the caller cannot tell the cases apart). @p pg is reset.
 */
void pw_jarena_page_drop(struct pw_jarena_page *pg, json_t *root);

/**
 * Give the memory of empty segments past PW_JARENA_KEEP back to the kernel. Call where the
 * process goes idle (the scheduler's cycle end); a no-op while a begin is open anywhere (the
 * next idle point trims) and when not installed. Any thread.
 */
void pw_jarena_trim(void);

/**
 * Like pw_jarena_trim(), the kept prefix included: for a daemon idle until its next poll (a
 * minute or more away), where the first page's ~500 page faults cost less than 2 MiB held.
 */
void pw_jarena_release(void);

/** True when @p p points into the arena region (tests, assertions). */
bool pw_jarena_owns(const void *p);

/** A snapshot of the arena, for tests and metrics. */
struct pw_jarena_stats {
    size_t segments;      /* segments in the region (0 when not installed) */
    size_t segments_used; /* segments holding live values or open for allocation */
    size_t fallbacks;     /* allocations malloc'd inside begin..end (region full or too large) */
    size_t arena_allocs;  /* allocations served from the arena since install */
};

/** Fill @p st (all zero when not installed). Counters are read without a lock: a snapshot. */
void pw_jarena_stats(struct pw_jarena_stats *st);

#endif
