/* SPDX-License-Identifier: Apache-2.0 */
/* Growable arrays (array.h). */
#include "painwatch/array.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "painwatch/err.h"

int pw_array_reserve(void *vp, size_t *cap, size_t need, size_t size)
{
    return pw_array_reserve_from(vp, cap, need, size, 8);
}

int pw_array_reserve_from(void *vp, size_t *cap, size_t need, size_t size, size_t first)
{
    if (need <= *cap) {
        return 0;
    }
    size_t ncap = *cap ? *cap : first ? first : 1;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) {
            return PW_ENOMEM;
        }
        ncap *= 2;
    }
    if (size && ncap > SIZE_MAX / size) {
        return PW_ENOMEM;
    }
    void *old;
    memcpy(&old, vp, sizeof(old)); /* *vp is some T *: read and written as bytes, no aliasing */
    void *p = realloc(old, ncap * size);
    if (p == NULL) {
        return PW_ENOMEM;
    }
    memcpy(vp, &p, sizeof(p));
    *cap = ncap;
    return 0;
}
