/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Secret files: private keys, client secrets, bearer tokens. Read with a size cap, refused when
 * other users may read them, resolved under systemd's $CREDENTIALS_DIRECTORY when relative.
 */
#ifndef PAINWATCH_SECRET_H
#define PAINWATCH_SECRET_H

#include <stddef.h>

/**
 * Resolve @p name: an absolute path is used as is; a relative one is taken under
 * $CREDENTIALS_DIRECTORY (systemd LoadCredential=) when that is set, else relative to the
 * working directory. Names with a ".." component are refused when resolved under the
 * credentials directory. @return 0, PW_EINVAL or PW_E2BIG.
 */
int pw_secret_path(const char *name, char *out, size_t cap);

/**
 * Check that @p name (resolved as above) is a regular file that other users can neither read
 * nor write. Logs a clear error naming the file. @return 0, PW_ENOENT, PW_EACCES or PW_ESECRET.
 */
int pw_secret_check(const char *name);

/**
 * Read the secret file @p name (resolved as above, checked as pw_secret_check, at most
 * PW_SECRET_FILE_MAX bytes). Trailing whitespace (the newline editors add) is removed.
 * Caller owns *@p out (NUL-terminated); free with pw_secret_free(). *@p len may be NULL.
 * @return 0, PW_ENOENT, PW_EACCES, PW_ESECRET (world-accessible, not a file, empty),
 * PW_E2BIG or PW_ENOMEM. Errors are logged with the file name, never the content.
 */
int pw_secret_read(const char *name, char **out, size_t *len);

/** Wipe and free a secret from pw_secret_read(). NULL is a no-op. */
void pw_secret_free(char *secret);

/**
 * Wipe @p n bytes at @p p (OPENSSL_cleanse: not optimised away). Every copy of a secret is wiped
 * through here before it is freed: client secrets, assertions, access tokens, the request and
 * response buffers and header lists holding them (issue 18). NULL or 0 is a no-op.
 */
void pw_secret_wipe(void *p, size_t n);

/**
 * Tests: @p hook sees each buffer just before pw_secret_wipe() wipes it (NULL: none). Lets a
 * test check that a given copy is wiped without reading freed memory.
 */
void pw_secret_set_wipe_hook(void (*hook)(const void *p, size_t n));

/**
 * Keep the secrets in this process's memory in it: no core dump, no ptrace or /proc/PID/mem by
 * another process of the same user (prctl PR_SET_DUMPABLE 0). painwatchd calls it first thing;
 * the unit adds LimitCORE=0. @return 0 or a negated errno.
 */
int pw_secret_protect_process(void);

#endif
