/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Growable arrays, written once (issue 20). An array is any struct with the fields
 *     T *v; size_t n; size_t cap;
 * (elements, count, capacity): PW_ARRAY_GROW(&a) makes room for one more, a.v[a.n++] = x adds it.
 * Capacity doubles from 8 (or a given first capacity), so n appends cost O(n). Byte buffers use
 * the functions with size 1. Pure (no I/O library).
 */
#ifndef PAINWATCH_ARRAY_H
#define PAINWATCH_ARRAY_H

#include <stddef.h>

/**
 * Make the array at *@p vp (a pointer to any object pointer) of capacity *@p cap hold at least
 * @p need elements of @p size bytes. @return 0, or PW_ENOMEM (then the array and *@p cap are as
 * they were).
 */
int pw_array_reserve(void *vp, size_t *cap, size_t need, size_t size);

/** pw_array_reserve() whose first capacity is @p first elements (byte buffers: 256, 4096). */
int pw_array_reserve_from(void *vp, size_t *cap, size_t need, size_t size, size_t first);

/** Room for @p need elements in array @p a (a pointer to a struct with v, n, cap). */
#define PW_ARRAY_RESERVE(a, need) pw_array_reserve(&(a)->v, &(a)->cap, (need), sizeof(*(a)->v))

/** Room for one more element in array @p a: 0 or PW_ENOMEM. */
#define PW_ARRAY_GROW(a) PW_ARRAY_RESERVE((a), (a)->n + 1)

#endif
