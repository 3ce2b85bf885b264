/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jarena.h: page trees live in the arena only inside begin..end on the owning thread, mixed
 * trees free correctly, segments come back only when their last value is freed, or all at once
 * when a whole page is dropped.
 */
#define _DEFAULT_SOURCE /* mincore */
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "painwatch/err.h"
#include "painwatch/jarena.h"
#include "painwatch/limits.h"
#include "support/pwtest.h"

#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN 1
#endif
#endif

/* Small region so that the overflow test can fill it. */
#define TEST_SEGMENTS 8

static size_t used(void)
{
    struct pw_jarena_stats st;
    pw_jarena_stats(&st);
    return st.segments_used;
}

/* A searchset of @p n Observations, each with a distinct id. Caller frees. */
static char *bundle_text(size_t n)
{
    size_t cap = 128 + n * 160;
    char *s = malloc(cap);
    size_t len;

    assert_non_null(s);
    len =
        (size_t)snprintf(s, cap, "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"entry\":[");
    for (size_t i = 0; i < n; i++) {
        len +=
            (size_t)snprintf(s + len, cap - len,
                             "%s{\"resource\":{\"resourceType\":\"Observation\",\"id\":\"obs-%zu\","
                             "\"status\":\"final\",\"valueQuantity\":{\"value\":%zu}}}",
                             i ? "," : "", i, i % 11);
    }
    snprintf(s + len, cap - len, "]}");
    return s;
}

/* Parse @p text inside begin..end, as the scheduler does. */
static json_t *parse_page(const char *text)
{
    json_error_t err;
    assert_int_equal(pw_jarena_begin(), 0);
    json_t *j = json_loads(text, 0, &err);
    pw_jarena_end();
    assert_non_null(j);
    return j;
}

static json_t *resource_at(json_t *bundle, size_t i)
{
    return json_object_get(json_array_get(json_object_get(bundle, "entry"), i), "resource");
}

static void test_not_installed_is_malloc(void **state)
{
    (void)state;
    struct pw_jarena_stats st;

    assert_int_equal(pw_jarena_begin(), PW_EINVAL);
    pw_jarena_end(); /* harmless without a begin */
    json_t *o = json_object();
    assert_false(pw_jarena_owns(o));
    json_decref(o);
    pw_jarena_stats(&st);
    assert_int_equal(st.segments, 0);

    /* A page without the arena: malloc'd, and the drop frees it the usual way (LSan would
     * report the tree otherwise). */
    struct pw_jarena_page pg;
    assert_int_equal(pw_jarena_page_begin(&pg), PW_EINVAL);
    json_t *tree = json_loads("{\"a\":[1,{\"b\":\"c\"}]}", 0, NULL);
    pw_jarena_end();
    assert_non_null(tree);
    assert_false(pw_jarena_owns(tree));
    json_t *kept = json_incref(json_object_get(tree, "a")); /* refcounted as usual */
    pw_jarena_page_drop(&pg, tree);
    assert_int_equal(json_array_size(kept), 2);
    json_decref(kept);

    assert_int_equal(pw_jarena_install_size(TEST_SEGMENTS * (size_t)PW_JARENA_SEGMENT), 0);
    assert_int_equal(pw_jarena_install(), 0); /* a second install keeps the first region */
    pw_jarena_stats(&st);
    assert_int_equal(st.segments, TEST_SEGMENTS);
    assert_int_equal(st.segments_used, 0);
}

static void test_parse_lives_in_arena(void **state)
{
    (void)state;
    char *text = bundle_text(50);
    json_t *b = parse_page(text);
    json_t *r = resource_at(b, 49);
    const char *id = json_string_value(json_object_get(r, "id"));

    assert_true(pw_jarena_owns(b));
    assert_true(pw_jarena_owns(r));
    assert_true(pw_jarena_owns(id));
    assert_string_equal(id, "obs-49");
    assert_int_equal((uintptr_t)r % alignof(max_align_t), 0);
    assert_int_equal((uintptr_t)id % alignof(max_align_t), 0);
    assert_int_equal(used(), 1);

    /* After end, new values are malloc'd even while the page is alive. */
    json_t *later = json_string("later");
    assert_false(pw_jarena_owns(later));
    json_decref(later);

    json_decref(b);
    assert_int_equal(used(), 0);
    free(text);
}

struct other {
    json_t *made;
    int begin_rc;
    json_t *to_free;
};

static void *other_thread(void *arg)
{
    struct other *o = arg;
    o->begin_rc = pw_jarena_begin();
    if (o->begin_rc == 0) {
        pw_jarena_end();
    }
    o->made = json_pack("{s:s}", "k", "v");
    json_decref(o->to_free);
    return NULL;
}

static void test_only_the_owning_thread(void **state)
{
    (void)state;
    struct other o = {0};
    pthread_t t;

    assert_int_equal(pw_jarena_begin(), 0);
    assert_int_equal(pw_jarena_begin(), PW_EAGAIN); /* nested: refused, the outer stays open */
    json_t *mine = json_object();
    assert_true(pw_jarena_owns(mine));
    assert_int_equal(pthread_create(&t, NULL, other_thread, &o), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    pw_jarena_end();

    assert_int_equal(o.begin_rc, PW_EAGAIN);
    assert_non_null(o.made);
    assert_false(pw_jarena_owns(o.made));
    json_decref(o.made);

    /* A tree freed on another thread hands its segment back too. */
    memset(&o, 0, sizeof(o));
    o.to_free = mine;
    assert_int_equal(used(), 1);
    assert_int_equal(pthread_create(&t, NULL, other_thread, &o), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(o.begin_rc, 0); /* free again once the first owner ended */
    json_decref(o.made);
    assert_int_equal(used(), 0);
}

static void test_mixed_trees(void **state)
{
    (void)state;
    char *text = bundle_text(20);
    json_t *b = parse_page(text);
    json_t *r = resource_at(b, 3);

    /* malloc'd values into an arena object (the object's table grows outside begin..end). */
    json_t *tag = json_string("malloced");
    assert_false(pw_jarena_owns(tag));
    for (int i = 0; i < 40; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(json_object_set(r, key, tag), 0);
    }
    json_decref(tag);

    /* An arena value kept by a malloc'd container outlives the page's own reference. */
    json_t *keep = json_array();
    assert_false(pw_jarena_owns(keep));
    assert_int_equal(json_array_append(keep, resource_at(b, 7)), 0);
    json_decref(b);
    assert_int_equal(used(), 1);
    json_t *kept = json_array_get(keep, 0);
    assert_true(pw_jarena_owns(kept));
    assert_string_equal(json_string_value(json_object_get(kept, "id")), "obs-7");
    json_decref(keep);
    assert_int_equal(used(), 0);
    free(text);
}

static void test_reset_only_when_empty(void **state)
{
    (void)state;
    char *text = bundle_text(30);
    json_t *a = parse_page(text);
    json_t *b = parse_page(text);
    json_t *a_root = a;
    json_t *b_root = b;

    assert_ptr_not_equal(a, b);
    assert_int_equal(used(), 2);

    /* b's segment is empty and bumped into again from its start: the same parse lands on the
     * same addresses. a's segment, still holding a, is not touched. */
    json_decref(b);
    assert_int_equal(used(), 1);
    json_t *c = parse_page(text);
    assert_ptr_equal(c, b_root);
    assert_string_equal(json_string_value(json_object_get(resource_at(a, 29), "id")), "obs-29");

    json_decref(a);
    json_decref(c);
    assert_int_equal(used(), 0);
    json_t *d = parse_page(text);
    assert_ptr_equal(d, a_root); /* the lowest empty segment first */
    json_decref(d);
    assert_int_equal(used(), 0);
    free(text);
}

static void test_held_reference_keeps_data(void **state)
{
    (void)state;
    char *text = bundle_text(40);
    json_t *b = parse_page(text);
    json_t *id = json_incref(json_object_get(resource_at(b, 12), "id"));

    json_decref(b);
    assert_int_equal(used(), 1);
    /* Pages parsed meanwhile go elsewhere and leave the held value intact. */
    for (int i = 0; i < 5; i++) {
        json_t *p = parse_page(text);
        assert_true(pw_jarena_owns(p));
        json_decref(p);
    }
    assert_string_equal(json_string_value(id), "obs-12");
    assert_int_equal(used(), 1);
    json_decref(id);
    assert_int_equal(used(), 0);
    free(text);
}

static void test_full_region_falls_back(void **state)
{
    (void)state;
    struct pw_jarena_stats st0;
    struct pw_jarena_stats st;
    size_t n = 30000; /* ~10 MB as a tree: more than the 8 MiB region */
    char *text = bundle_text(n);

    pw_jarena_stats(&st0);
    json_t *b = parse_page(text);
    pw_jarena_stats(&st);
    assert_int_equal(st.segments_used, TEST_SEGMENTS);
    assert_true(st.fallbacks > st0.fallbacks);
    assert_true(pw_jarena_owns(resource_at(b, 0)));
    assert_false(pw_jarena_owns(resource_at(b, n - 1)));
    assert_string_equal(json_string_value(json_object_get(resource_at(b, n - 1), "id")),
                        "obs-29999");

    /* Another parse while the region is full: all malloc, still correct. */
    json_t *small = parse_page("{\"a\":[1,2,3]}");
    assert_false(pw_jarena_owns(small));
    json_decref(small);

    json_decref(b);
    assert_int_equal(used(), 0);
    json_t *again = parse_page("{\"a\":[1,2,3]}");
    assert_true(pw_jarena_owns(again));
    json_decref(again);
    free(text);
}

static void test_large_value_is_malloced(void **state)
{
    (void)state;
    size_t big = (size_t)PW_JARENA_SEGMENT + 100;
    char *text = malloc(big + 16);

    assert_non_null(text);
    memcpy(text, "{\"s\":\"", 6);
    memset(text + 6, 'x', big);
    memcpy(text + 6 + big, "\"}", 3);
    json_t *j = parse_page(text);
    assert_true(pw_jarena_owns(j));
    const char *s = json_string_value(json_object_get(j, "s"));
    assert_false(pw_jarena_owns(s));
    assert_int_equal(strlen(s), big);
    json_decref(j);
    assert_int_equal(used(), 0);
    free(text);
}

/* Parse @p text as one page that is dropped whole, as the scheduler does. */
static json_t *parse_whole_page(const char *text, struct pw_jarena_page *pg)
{
    json_error_t err;
    assert_int_equal(pw_jarena_page_begin(pg), 0);
    json_t *j = json_loads(text, 0, &err);
    pw_jarena_end();
    assert_non_null(j);
    return j;
}

static void test_page_dropped_whole(void **state)
{
    (void)state;
    char *text = bundle_text(3000); /* ~4 MB as a tree: several segments */
    struct pw_jarena_page pg;
    struct pw_jarena_stats st0;
    struct pw_jarena_stats st;

    pw_jarena_stats(&st0);
    json_t *b = parse_whole_page(text, &pg);
    json_t *first = b;
    size_t segs = used();
    assert_true(segs > 1);
    assert_true(pg.arena);
    assert_false(pg.walk);

    /* As the sync filter and the consumer do: a malloc'd array of references into the tree,
     * used, then released (only the references are counted down, nothing is walked). */
    json_t *resources = json_array();
    for (size_t i = 0; i < 3000; i += 7) {
        assert_int_equal(json_array_append(resources, resource_at(b, i)), 0);
    }
    assert_false(pw_jarena_owns(resources));
    assert_string_equal(json_string_value(json_object_get(json_array_get(resources, 1), "id")),
                        "obs-7");
    json_decref(resources);

    /* Values freed before the drop (a deleted key, a filtered-out entry) count nothing. */
    json_object_del(resource_at(b, 5), "status");
    assert_int_equal(used(), segs);

    pw_jarena_page_drop(&pg, b);
    assert_int_equal(used(), 0);
    assert_false(pg.arena);
    pw_jarena_stats(&st);
    assert_int_equal(st.fallbacks, st0.fallbacks);

    /* The segments are bumped into again from their start. */
    b = parse_whole_page(text, &pg);
    assert_ptr_equal(b, first);
    pw_jarena_page_drop(&pg, b);
    assert_int_equal(used(), 0);

    /* A failed parse: what it left in the arena goes with the drop of no tree. */
    assert_int_equal(pw_jarena_page_begin(&pg), 0);
    assert_null(json_loads("{\"entry\":[{\"a\":\"b\"},", 0, NULL));
    pw_jarena_end();
    pw_jarena_page_drop(&pg, NULL);
    assert_int_equal(used(), 0);
    free(text);
}

struct dropper {
    struct pw_jarena_page *pg;
    json_t *tree;
};

static void *drop_thread(void *arg)
{
    struct dropper *d = arg;
    pw_jarena_page_drop(d->pg, d->tree);
    return NULL;
}

static void test_pages_in_flight(void **state)
{
    (void)state;
    char *text = bundle_text(30);
    struct pw_jarena_page pa;
    struct pw_jarena_page pb;
    pthread_t t;

    json_t *a = parse_whole_page(text, &pa);
    json_t *c = parse_page(text); /* a counted tree alongside */
    json_t *b = parse_whole_page(text, &pb);
    assert_int_equal(used(), 3);

    /* b is dropped on another thread; a and c are untouched. */
    struct dropper d = {.pg = &pb, .tree = b};
    assert_int_equal(pthread_create(&t, NULL, drop_thread, &d), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(used(), 2);
    assert_string_equal(json_string_value(json_object_get(resource_at(a, 29), "id")), "obs-29");
    assert_string_equal(json_string_value(json_object_get(resource_at(c, 29), "id")), "obs-29");

    /* A page parsed now takes b's segment and leaves a's alone. */
    json_t *e = parse_whole_page(text, &pb);
    assert_ptr_equal(e, b);
    assert_string_equal(json_string_value(json_object_get(resource_at(a, 3), "id")), "obs-3");
    pw_jarena_page_drop(&pb, e);
    pw_jarena_page_drop(&pa, a);
    assert_int_equal(used(), 1);
    json_decref(c); /* the counted tree still hands its segment back by its count */
    assert_int_equal(used(), 0);
    free(text);
}

static void test_page_with_malloced_values_is_walked(void **state)
{
    (void)state;
    struct pw_jarena_page pg;
    size_t big = (size_t)PW_JARENA_SEGMENT + 100;
    char *text = malloc(big + 64);

    /* A value larger than a segment is malloc'd: the drop must free it (LSan checks). */
    assert_non_null(text);
    memcpy(text, "{\"s\":\"", 6);
    memset(text + 6, 'x', big);
    memcpy(text + 6 + big, "\",\"t\":[1]}", 11);
    json_t *j = parse_whole_page(text, &pg);
    assert_true(pg.walk);
    assert_false(pw_jarena_owns(json_string_value(json_object_get(j, "s"))));
    assert_true(pw_jarena_owns(json_object_get(j, "t")));
    pw_jarena_page_drop(&pg, j);
    assert_int_equal(used(), 0);
    free(text);

    /* A full region: the rest of the page is malloc'd and freed by the drop's walk. */
    size_t n = 30000;
    text = bundle_text(n);
    j = parse_whole_page(text, &pg);
    assert_true(pg.walk);
    assert_int_equal(used(), TEST_SEGMENTS);
    assert_false(pw_jarena_owns(resource_at(j, n - 1)));
    pw_jarena_page_drop(&pg, j);
    assert_int_equal(used(), 0);
    j = parse_whole_page("{\"a\":1}", &pg);
    assert_false(pg.walk); /* the next page has the region again */
    pw_jarena_page_drop(&pg, j);
    free(text);
}

/* Issue 18: a page parsed with a budget stops allocating once its segments (and malloc'd
 * blocks) would pass it: the parse fails, `over` says why, and the drop gives everything back. */
static void test_page_budget_refuses_past_it(void **state)
{
    (void)state;
    struct pw_jarena_page pg;
    json_error_t err;
    char *text = bundle_text(20000); /* more than 2 segments of tree */

    assert_int_equal(pw_jarena_page_begin_budget(&pg, 2 * (size_t)PW_JARENA_SEGMENT), 0);
    json_t *j = json_loads(text, 0, &err);
    pw_jarena_end();
    assert_null(j);
    assert_true(pg.over);
    assert_true(pg.used <= 2 * (size_t)PW_JARENA_SEGMENT);
    pw_jarena_page_drop(&pg, NULL);
    assert_int_equal(used(), 0);

    /* A value larger than a segment is malloc'd: it counts against the budget too. */
    size_t big = 3 * (size_t)PW_JARENA_SEGMENT;
    char *one = malloc(big + 16);
    assert_non_null(one);
    one[0] = '"';
    memset(one + 1, 'x', big);
    memcpy(one + 1 + big, "\"", 2);
    assert_int_equal(pw_jarena_page_begin_budget(&pg, 2 * (size_t)PW_JARENA_SEGMENT), 0);
    j = json_loads(one, JSON_DECODE_ANY, &err);
    pw_jarena_end();
    assert_null(j);
    assert_true(pg.over);
    pw_jarena_page_drop(&pg, NULL);
    assert_int_equal(used(), 0);

    /* Within the budget: parsed as before, and the budget leaves the next page alone. */
    free(text);
    text = bundle_text(2000);
    assert_int_equal(pw_jarena_page_begin_budget(&pg, 4 * (size_t)PW_JARENA_SEGMENT), 0);
    j = json_loads(text, 0, &err);
    pw_jarena_end();
    assert_non_null(j);
    assert_false(pg.over);
    pw_jarena_page_drop(&pg, j);
    j = parse_whole_page(text, &pg);
    assert_non_null(j);
    pw_jarena_page_drop(&pg, j);
    assert_int_equal(used(), 0);
    free(one);
    free(text);
}

static bool resident(const void *p)
{
    long pg = sysconf(_SC_PAGESIZE);
    unsigned char v = 0;
    void *page = (void *)((uintptr_t)p & ~(uintptr_t)(pg - 1));
    assert_int_equal(mincore(page, (size_t)pg, &v), 0);
    return v & 1;
}

static void test_trim_returns_memory_past_keep(void **state)
{
    (void)state;
    char *text = bundle_text(4000); /* ~5 MB as a tree: past the 2 MiB kept */
    json_t *b = parse_page(text);
    const void *first = resource_at(b, 0);
    const void *last = resource_at(b, 3999);
    assert_true(used() > PW_JARENA_KEEP / PW_JARENA_SEGMENT);

    pw_jarena_trim(); /* the page is alive: nothing is empty */
    assert_true(resident(last));
    json_decref(b);
    assert_int_equal(used(), 0);
    assert_true(resident(last)); /* emptied segments stay warm for the next page */

    assert_int_equal(pw_jarena_begin(), 0);
    pw_jarena_trim(); /* a parse in progress: no-op */
    pw_jarena_end();
    assert_true(resident(last));

    pw_jarena_trim();
    assert_false(resident(last));
    assert_true(resident(first)); /* the kept prefix */
    pw_jarena_release();          /* idle until the next poll: the prefix goes too */
    assert_false(resident(first));

    /* Trimmed segments are used again (zero-filled by the kernel). */
    b = parse_page(text);
    assert_string_equal(json_string_value(json_object_get(resource_at(b, 3999), "id")), "obs-3999");
    json_decref(b);
    assert_int_equal(used(), 0);
    free(text);
}

#ifdef ASAN
/* Run @p fn in a child; true when ASan stopped it (it must not reach _exit(0)). */
static bool dies(void (*fn)(void))
{
    int status = 0;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *devnull = freopen("/dev/null", "w", stderr);
        (void)devnull;
        fn();
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
}

static void read_after_reset(void)
{
    json_t *b = parse_page("{\"id\":\"abc\"}");
    const char *s = json_string_value(json_object_get(b, "id"));
    json_decref(b); /* the segment is empty: poisoned */
    volatile char c = s[0];
    (void)c;
}

static void read_freed_value_on_live_page(void)
{
    json_t *b = parse_page("{\"id\":\"abc\",\"other\":1}");
    json_t *id = json_object_get(b, "id");
    const char *s = json_string_value(id);
    json_object_del(b, "id"); /* freed while the page's segment is still live */
    volatile char c = s[0];
    (void)c;
    json_decref(b);
}

/* The page rule broken: a value kept (json_incref'd) past the drop is poisoned memory. */
static void read_kept_value_after_drop(void)
{
    struct pw_jarena_page pg;
    json_t *b = parse_whole_page("{\"r\":{\"id\":\"abc\"}}", &pg);
    json_t *r = json_incref(json_object_get(b, "r"));
    pw_jarena_page_drop(&pg, b);
    volatile char c = json_string_value(json_object_get(r, "id"))[0];
    (void)c;
}

/* jansson itself is not instrumented: call the installed free twice ourselves. */
static void double_free(void)
{
    json_malloc_t m;
    json_free_t f;
    json_get_alloc_funcs(&m, &f);
    assert_int_equal(pw_jarena_begin(), 0);
    void *p = m(24);
    pw_jarena_end();
    f(p);
    f(p);
}

static void test_asan_sees_arena_misuse(void **state)
{
    (void)state;
    assert_true(dies(read_after_reset));
    assert_true(dies(read_freed_value_on_live_page));
    assert_true(dies(double_free));
    assert_true(dies(read_kept_value_after_drop));
}

/* LSan cannot see arena values: the arena's own exit check reports a tree left behind. */
static void test_asan_exit_with_live_tree_fails(void **state)
{
    int status = 0;
    (void)state;

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *devnull = freopen("/dev/null", "w", stderr);
        (void)devnull;
        static json_t *leaked;
        leaked = parse_page("{\"id\":\"abc\"}");
        (void)leaked; /* still reachable at exit: LSan alone would say nothing */
        exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 23);

    /* The same for a page never dropped. */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *devnull = freopen("/dev/null", "w", stderr);
        (void)devnull;
        static struct pw_jarena_page pg;
        static json_t *undropped;
        undropped = parse_whole_page("{\"id\":\"abc\"}", &pg);
        (void)undropped;
        exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 23);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* In this order: the first one installs the arena. */
        cmocka_unit_test(test_not_installed_is_malloc),
        cmocka_unit_test(test_parse_lives_in_arena),
        cmocka_unit_test(test_only_the_owning_thread),
        cmocka_unit_test(test_mixed_trees),
        cmocka_unit_test(test_reset_only_when_empty),
        cmocka_unit_test(test_held_reference_keeps_data),
        cmocka_unit_test(test_full_region_falls_back),
        cmocka_unit_test(test_large_value_is_malloced),
        cmocka_unit_test(test_trim_returns_memory_past_keep),
        cmocka_unit_test(test_page_dropped_whole),
        cmocka_unit_test(test_pages_in_flight),
        cmocka_unit_test(test_page_with_malloced_values_is_walked),
        cmocka_unit_test(test_page_budget_refuses_past_it),
#ifdef ASAN
        cmocka_unit_test(test_asan_sees_arena_misuse),
        cmocka_unit_test(test_asan_exit_with_live_tree_fails),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
