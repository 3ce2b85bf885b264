/* SPDX-License-Identifier: Apache-2.0 */
/* Error codes: one X-macro table, negative errno values pass through unchanged. */
#ifndef PAINWATCH_ERR_H
#define PAINWATCH_ERR_H

#include <errno.h>

/*
 * Every function that can fail returns int: 0 on success or one of these negative codes.
 * Codes below -1000 are painwatch's own; anything else is a negated errno.
 */
#define PW_ERR_MAP(X)                             \
    X(OK, 0, "success")                           \
    X(ENOMEM, -ENOMEM, "out of memory")           \
    X(EINVAL, -EINVAL, "invalid argument")        \
    X(ENOENT, -ENOENT, "no such file or entry")   \
    X(EEXIST, -EEXIST, "already exists")          \
    X(EACCES, -EACCES, "permission denied")       \
    X(EAGAIN, -EAGAIN, "try again")               \
    X(ETIMEDOUT, -ETIMEDOUT, "timed out")         \
    X(ECANCELED, -ECANCELED, "canceled")          \
    X(E2BIG, -E2BIG, "input over its size cap")   \
    X(ERANGE, -ERANGE, "value out of range")      \
    X(EIO, -EIO, "input/output error")            \
    X(ENOSPC, -ENOSPC, "no space left on device") \
    X(ECONFIG, -1000, "invalid configuration")    \
    X(EHTTP, -1001, "HTTP transfer failed")       \
    X(EFHIR, -1002, "unexpected FHIR content")    \
    X(EAUTH, -1003, "authorization failed")       \
    X(EAUDIT, -1004, "audit trail unavailable")   \
    X(ESTORE, -1005, "state store failure")       \
    X(EJSON, -1006, "malformed JSON")             \
    X(ETERM, -1007, "terminology table error")    \
    X(EDOSE, -1008, "dose cannot be computed")    \
    X(EREJECTED, -1009, "rejected by the server") \
    X(ESECRET, -1010, "secret file unusable")     \
    X(EVERIFY, -1011, "integrity check failed")   \
    X(EORIGIN, -1012, "URL leaves the configured origin")

enum pw_err {
#define PW_ERR_ENUM(name, value, msg) PW_##name = (value),
    PW_ERR_MAP(PW_ERR_ENUM)
#undef PW_ERR_ENUM
};

/**
 * Describe an error code.
 * @param err 0, a PW_E* code or a negated errno.
 * @return a static string, never NULL. Unknown codes fall back to strerror(-err).
 */
const char *pw_strerror(int err);

/**
 * Symbolic name of an error code ("EHTTP"), or "UNKNOWN" for codes outside the table.
 */
const char *pw_err_name(int err);

#endif
