/* SPDX-License-Identifier: Apache-2.0 */
/* pw_strerror() and pw_err_name(), expanded from the PW_ERR_MAP table. */
#include "painwatch/err.h"

#include <string.h>

const char *pw_strerror(int err)
{
    switch (err) {
#define PW_ERR_MSG(name, value, msg) \
    case (value):                    \
        return (msg);
        PW_ERR_MAP(PW_ERR_MSG)
#undef PW_ERR_MSG
    default:
        break;
    }
    if (err < 0 && err > -1000) {
        return strerror(-err);
    }
    return "unknown error";
}

const char *pw_err_name(int err)
{
    switch (err) {
#define PW_ERR_NAME(name, value, msg) \
    case (value):                     \
        return #name;
        PW_ERR_MAP(PW_ERR_NAME)
#undef PW_ERR_NAME
    default:
        return "UNKNOWN";
    }
}
