/* SPDX-License-Identifier: Apache-2.0 */
/* Shared test helpers: cmocka includes, fixture paths, temporary directories. */
#ifndef PAINWATCH_TESTS_PWTEST_H
#define PAINWATCH_TESTS_PWTEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/** Absolute path of @p rel under the source tree, in a static buffer (one per call site use). */
const char *pwt_src_path(const char *rel);

/** Read a whole file. Caller owns the result; free with free(). Fails the test on error. */
char *pwt_read_file(const char *path, size_t *len);

/** Write @p data to @p path (created or truncated). Fails the test on error. */
void pwt_write_file(const char *path, const char *data);

/** A fresh directory under $TMPDIR. Caller owns the string; remove with pwt_rmtree(). */
char *pwt_mkdtemp(void);

/** Remove a directory tree made by pwt_mkdtemp(). */
void pwt_rmtree(const char *dir);

/**
 * Run `ENV $PAINWATCH ARGS` through the shell (CREDENTIALS_DIRECTORY unset; @p env: more
 * assignments, may be ""), stdout and stderr captured in @p dir/out and @p dir/err and read
 * into *@p out and *@p err (their previous contents freed). Fails the test unless the tool
 * exited. @return its exit status.
 */
int pwt_tool_run(const char *dir, const char *env, const char *args, char **out, char **err);

/** Free the captures of pwt_tool_run() and remove @p *dir (all set to NULL). */
void pwt_tool_cleanup(char **dir, char **out, char **err);

#endif
