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

#endif
