/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The jansson page arena (jarena.h): segmented bump allocation, frees counted down per segment
 * (or a whole page's segments handed back at once), malloc for everything that is not one
 * page's parse.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE, madvise */
#include "painwatch/jarena.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>

#include "painwatch/check.h"
#include "painwatch/err.h"
#include "painwatch/limits.h"

#if defined(__SANITIZE_ADDRESS__)
#define PW_JARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PW_JARENA_ASAN 1
#endif
#endif

#ifdef PW_JARENA_ASAN
#include <sanitizer/asan_interface.h>
/* Each allocation carries its size in front, so free() can poison exactly what it gave out. */
#define HDR            ((size_t)alignof(max_align_t))
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define HDR            ((size_t)0)
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define ALIGN     ((size_t)alignof(max_align_t))
#define SEG       ((size_t)PW_JARENA_SEGMENT)
#define SEGS_MAX  ((size_t)(PW_JARENA_BYTES / PW_JARENA_SEGMENT))
#define MAP_WORDS ((size_t)PW_JARENA_WORDS)
/*
 * While a segment is open for allocation its counter holds OPEN_BIAS minus the frees so far
 * (frees from any thread only decrement). Closing it adds the allocation count minus the bias
 * in one atomic step: the counter becomes "live values" and whoever takes it to 0 (the closer or
 * the last free) hands the segment back. The bias keeps it above 0 while open, so the
 * allocation path itself needs no atomic operation.
 */
#define OPEN_BIAS (UINT32_C(1) << 31)

_Static_assert((PW_JARENA_SEGMENT & (PW_JARENA_SEGMENT - 1)) == 0, "segment: a power of two");
_Static_assert(PW_JARENA_SEGMENT / 16 < (1u << 31), "a segment's allocations fit under the bias");
_Static_assert(PW_JARENA_KEEP % PW_JARENA_SEGMENT == 0, "keep: whole segments");
_Static_assert(PW_JARENA_WORDS * 64 >= SEGS_MAX, "a bitmap covers the region");

static struct {
    /* Set once by install, before any thread, read-only afterwards. */
    char *base;
    size_t bytes; /* 0: not installed */
    size_t nseg;
    size_t keep; /* segments below this index are never trimmed */

    _Atomic uint32_t live[SEGS_MAX];
    _Atomic uint64_t freemap[MAP_WORDS]; /* bit set: segment empty and not open */
    _Atomic uint64_t pagemap[MAP_WORDS]; /* bit set: owned by a page (frees count nothing) */
    atomic_bool busy;                    /* a begin is open on some thread */
    atomic_size_t allocs;                /* of closed segments */
    atomic_size_t fallbacks;

    /* The open segment: touched only by the thread that holds `busy`. */
    char *cur;
    char *lim;
    size_t seg; /* SIZE_MAX: none */
    uint32_t seg_allocs;
    struct pw_jarena_page *page;  /* the open begin's page, NULL: counted segments */
    bool full;                    /* no empty segment was left in this begin..end */
    uint64_t dirty[MAP_WORDS];    /* used since the last trim (claim and trim hold `busy`) */
    uint64_t writable[MAP_WORDS]; /* made read-write (claim holds `busy`) */
} A = {.seg = SIZE_MAX};

static _Thread_local bool t_owner;

/* Hand an emptied segment back: poisoned under ASan, then marked free (release: whoever claims
 * it next sees it after the poisoning). Its pages stay resident for the next page until
 * pw_jarena_trim(): giving them back here made every page fault its memory in again (measured:
 * ~950 page faults per 1000-entry page, 1.5x the CPU of plain malloc instead of 0.6x). */
static void seg_release(size_t s)
{
    POISON(A.base + s * SEG, SEG);
    atomic_fetch_or_explicit(&A.freemap[s / 64], UINT64_C(1) << (s % 64), memory_order_release);
}

/* Owner only: turn the open segment's counter from "bias - frees" into "live values". */
static void seg_close(void)
{
    size_t s = A.seg;

    if (s == SIZE_MAX) {
        return;
    }
    uint32_t add = A.seg_allocs - OPEN_BIAS; /* modulo 2^32 */
    atomic_fetch_add_explicit(&A.allocs, A.seg_allocs, memory_order_relaxed);
    A.seg = SIZE_MAX;
    A.cur = A.lim = NULL;
    A.seg_allocs = 0;
    if (A.page) {
        return; /* a page's segment: its drop hands it back */
    }
    uint32_t old = atomic_fetch_add_explicit(&A.live[s], add, memory_order_acq_rel);
    if ((uint32_t)(old + add) == 0) {
        seg_release(s);
    }
}

/* Owner only: close the open segment and open the lowest empty one (lowest: the next page
 * bumps through the same, still resident, memory). False when none is left. */
static bool seg_next(void)
{
    if (A.full) {
        return false;
    }
    if (A.page && A.page->budget && A.page->used + SEG > A.page->budget) {
        A.page->over = true; /* the page's budget: no new segment, and no malloc either */
        return false;
    }
    seg_close();
    for (size_t w = 0; w < MAP_WORDS; w++) {
        uint64_t m = atomic_load_explicit(&A.freemap[w], memory_order_acquire);
        if (m) {
            unsigned b = (unsigned)__builtin_ctzll(m);
            size_t s = w * 64 + b;
            /* The region is reserved PROT_NONE: memory is committed (and counted against a
             * strict overcommit limit) a segment at a time, on first use. */
            if (!(A.writable[w] & UINT64_C(1) << b)) {
                if (mprotect(A.base + s * SEG, SEG, PROT_READ | PROT_WRITE) != 0) {
                    break;
                }
                A.writable[w] |= UINT64_C(1) << b;
            }
            /* Only the owner clears bits; other threads only set them. */
            atomic_fetch_and_explicit(&A.freemap[w], ~(UINT64_C(1) << b), memory_order_relaxed);
            if (A.page) {
                /* Set before any of its values is handed out: their frees see it. */
                atomic_fetch_or_explicit(&A.pagemap[w], UINT64_C(1) << b, memory_order_relaxed);
                A.page->segs[w] |= UINT64_C(1) << b;
                A.page->used += SEG;
            } else {
                atomic_store_explicit(&A.live[s], OPEN_BIAS, memory_order_relaxed);
            }
            A.dirty[w] |= UINT64_C(1) << b;
            A.seg = s;
            A.cur = A.base + s * SEG;
            A.lim = A.cur + SEG;
            return true;
        }
    }
    A.full = true;
    return false;
}

/* Owner only: bump @p need bytes (header included) for a block of @p n1 bytes. */
static void *bump(size_t n1, size_t need)
{
    char *p = A.cur;
    A.cur += need;
    A.seg_allocs++;
#ifdef PW_JARENA_ASAN
    UNPOISON(p, HDR);
    memcpy(p, &n1, sizeof(n1));
    POISON(p, HDR);
    UNPOISON(p + HDR, n1);
#else
    (void)n1;
#endif
    return p + HDR;
}

/* Off the hot path (its own frame: the bump above saves no registers): a new segment, or
 * malloc when the owner's block does not fit one or none is left. */
__attribute__((noinline)) static void *arena_malloc_slow(size_t n)
{
    if (!t_owner) {
        return malloc(n);
    }
    if (n <= SEG - HDR) {
        size_t n1 = n + !n;
        size_t need = (n1 + HDR + ALIGN - 1) & ~(ALIGN - 1);
        if ((size_t)(A.lim - A.cur) >= need || seg_next()) {
            return bump(n1, need);
        }
        if (A.page && A.page->over) {
            return NULL;
        }
        atomic_fetch_add_explicit(&A.fallbacks, 1, memory_order_relaxed);
    }
    if (A.page) {
        if (A.page->budget && (A.page->over || n > A.page->budget - A.page->used)) {
            A.page->over = true;
            return NULL;
        }
        A.page->used += n;
        A.page->walk = true; /* the tree is not all in the page's segments */
    }
    return malloc(n);
}

/* Called for every value jansson makes: the common case is a compare and a bump. */
static void *arena_malloc(size_t n)
{
    if (t_owner && n <= SEG - HDR) {
        size_t n1 = n + !n; /* a zero-size block still gets its own address */
        size_t need = (n1 + HDR + ALIGN - 1) & ~(ALIGN - 1);
        if ((size_t)(A.lim - A.cur) >= need) {
            return bump(n1, need);
        }
    }
    return arena_malloc_slow(n);
}

static void arena_free(void *ptr)
{
    uintptr_t off = (uintptr_t)ptr - (uintptr_t)A.base;

    if (off >= A.bytes) {
        free(ptr);
        return;
    }
#ifdef PW_JARENA_ASAN
    if (__asan_address_is_poisoned(ptr)) {
        free(ptr); /* a double free or a stray pointer: let ASan report it with its stack */
        return;
    }
    size_t n1;
    char *h = (char *)ptr - HDR;
    UNPOISON(h, HDR);
    memcpy(&n1, h, sizeof(n1));
    POISON(h, HDR + n1);
#endif
    size_t s = (size_t)off / SEG;
    if (atomic_load_explicit(&A.pagemap[s / 64], memory_order_relaxed) & UINT64_C(1) << (s % 64)) {
        return; /* a page's value: its drop hands the segment back */
    }
    uint32_t old = atomic_fetch_sub_explicit(&A.live[s], 1, memory_order_acq_rel);
    if (old <= 1) {
        PW_REQUIRE(old == 1); /* 0: more frees than allocations, the heap is corrupt */
        seg_release(s);
    }
}

#ifdef PW_JARENA_ASAN
/*
 * LeakSanitizer does not see arena values: a page tree never freed would go unreported. Under
 * ASan an exit with values still in the arena fails the way LSan fails a leak (exit code 23).
 */
static void leak_check_at_exit(void)
{
    struct pw_jarena_stats st;

    pw_jarena_stats(&st);
    if (st.segments_used && !atomic_load(&A.busy)) {
        fprintf(stderr,
                "jarena: %zu segment(s) still hold JSON values at exit (a leaked page "
                "tree?)\n",
                st.segments_used);
        fflush(NULL);
        _exit(23);
    }
}
#endif

int pw_jarena_install_size(size_t bytes)
{
    if (A.bytes) {
        return 0;
    }
    size_t nseg = bytes / SEG;
    if (nseg == 0) {
        nseg = 1;
    }
    if (nseg > SEGS_MAX) {
        nseg = SEGS_MAX;
    }
    void *base =
        mmap(NULL, nseg * SEG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        return PW_ENOMEM;
    }
    A.base = base;
    A.nseg = nseg;
    A.keep = PW_JARENA_KEEP / SEG;
    for (size_t s = 0; s < nseg; s++) {
        atomic_store(&A.freemap[s / 64], atomic_load(&A.freemap[s / 64]) | UINT64_C(1) << (s % 64));
    }
    A.bytes = nseg * SEG;
    json_set_alloc_funcs(arena_malloc, arena_free);
#ifdef PW_JARENA_ASAN
    atexit(leak_check_at_exit);
#endif
    return 0;
}

int pw_jarena_install(void)
{
    return pw_jarena_install_size(PW_JARENA_BYTES);
}

int pw_jarena_begin(void)
{
    bool expected = false;

    if (!A.bytes) {
        return PW_EINVAL;
    }
    if (!atomic_compare_exchange_strong_explicit(&A.busy, &expected, true, memory_order_acquire,
                                                 memory_order_relaxed)) {
        return PW_EAGAIN;
    }
    A.full = false;
    t_owner = true;
    return 0;
}

void pw_jarena_end(void)
{
    if (!t_owner) {
        return;
    }
    /* Closed at once: the page's segments come back as soon as its tree is freed. */
    seg_close();
    A.page = NULL;
    t_owner = false;
    atomic_store_explicit(&A.busy, false, memory_order_release);
}

int pw_jarena_page_begin(struct pw_jarena_page *pg)
{
    memset(pg, 0, sizeof(*pg));
    int rc = pw_jarena_begin();
    if (rc == 0) {
        pg->arena = true;
        A.page = pg;
    }
    return rc;
}

int pw_jarena_page_begin_budget(struct pw_jarena_page *pg, size_t budget)
{
    int rc = pw_jarena_page_begin(pg);
    if (rc == 0) {
        pg->budget = budget;
    }
    return rc;
}

void pw_jarena_page_drop(struct pw_jarena_page *pg, json_t *root)
{
    PW_REQUIRE(!t_owner || A.page != pg); /* after pw_jarena_end() */
    if (!pg->arena || pg->walk) {
        json_decref(root); /* malloc'd values in it: freed one by one (arena ones count nothing) */
    }
    for (size_t w = 0; w < MAP_WORDS; w++) {
        for (uint64_t m = pg->segs[w]; m; m &= m - 1) {
            unsigned b = (unsigned)__builtin_ctzll(m);
            atomic_fetch_and_explicit(&A.pagemap[w], ~(UINT64_C(1) << b), memory_order_relaxed);
            seg_release(w * 64 + b);
        }
    }
    memset(pg, 0, sizeof(*pg));
}

/* madvise every empty, used segment from @p first on back to the kernel. */
static void trim_from(size_t first)
{
    bool expected = false;

    /* Holding `busy` keeps every empty segment empty: only its holder claims segments. */
    if (!A.bytes || t_owner ||
        !atomic_compare_exchange_strong_explicit(&A.busy, &expected, true, memory_order_acquire,
                                                 memory_order_relaxed)) {
        return;
    }
    for (size_t s = first; s < A.nseg; s++) {
        uint64_t bit = UINT64_C(1) << (s % 64);
        if ((A.dirty[s / 64] & bit) && (atomic_load(&A.freemap[s / 64]) & bit)) {
            /* Failing only keeps the pages resident: still correct. */
            (void)madvise(A.base + s * SEG, SEG, MADV_DONTNEED);
            A.dirty[s / 64] &= ~bit;
        }
    }
    atomic_store_explicit(&A.busy, false, memory_order_release);
}

void pw_jarena_trim(void)
{
    trim_from(A.keep);
}

void pw_jarena_release(void)
{
    trim_from(0);
}

bool pw_jarena_owns(const void *p)
{
    return (uintptr_t)p - (uintptr_t)A.base < A.bytes;
}

void pw_jarena_stats(struct pw_jarena_stats *st)
{
    size_t free_segs = 0;

    memset(st, 0, sizeof(*st));
    if (!A.bytes) {
        return;
    }
    for (size_t w = 0; w < MAP_WORDS; w++) {
        free_segs += (size_t)__builtin_popcountll(atomic_load(&A.freemap[w]));
    }
    st->segments = A.nseg;
    st->segments_used = A.nseg - free_segs;
    st->fallbacks = atomic_load(&A.fallbacks);
    st->arena_allocs = atomic_load(&A.allocs) + (t_owner ? A.seg_allocs : 0);
}
