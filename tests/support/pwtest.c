/* SPDX-License-Identifier: Apache-2.0 */
/* Shared test helpers. */
#define _XOPEN_SOURCE 700
#include "pwtest.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *pwt_src_path(const char *rel)
{
    static char buf[4096];
    const char *root = getenv("PW_SOURCE_DIR");

    snprintf(buf, sizeof(buf), "%s/%s", root ? root : PW_SOURCE_DIR, rel);
    return buf;
}

char *pwt_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long size;

    if (!f) {
        fail_msg("cannot open %s", path);
    }
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    buf[size] = '\0';
    fclose(f);
    if (len) {
        *len = (size_t)size;
    }
    return buf;
}

void pwt_write_file(const char *path, const char *data)
{
    FILE *f = fopen(path, "wb");

    if (!f) {
        fail_msg("cannot create %s", path);
    }
    assert_int_equal(fwrite(data, 1, strlen(data), f), strlen(data));
    assert_int_equal(fclose(f), 0);
}

char *pwt_mkdtemp(void)
{
    const char *tmp = getenv("TMPDIR");
    char *dir = malloc(4096);

    assert_non_null(dir);
    snprintf(dir, 4096, "%s/pwtest.XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fail_msg("mkdtemp failed");
    }
    return dir;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void pwt_rmtree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int pwt_tool_run(const char *dir, const char *env, const char *args, char **out, char **err)
{
    const char *tool = getenv("PAINWATCH");
    char cmd[8192];
    int status;

    assert_non_null(tool);
    free(*out);
    free(*err);
    snprintf(cmd, sizeof(cmd), "env -u CREDENTIALS_DIRECTORY %s '%s' %s >%s/out 2>%s/err", env,
             tool, args, dir, dir);
    status = system(cmd);
    assert_true(WIFEXITED(status));
    snprintf(cmd, sizeof(cmd), "%s/out", dir);
    *out = pwt_read_file(cmd, NULL);
    snprintf(cmd, sizeof(cmd), "%s/err", dir);
    *err = pwt_read_file(cmd, NULL);
    return WEXITSTATUS(status);
}

void pwt_tool_cleanup(char **dir, char **out, char **err)
{
    free(*out);
    free(*err);
    *out = *err = NULL;
    if (*dir) {
        pwt_rmtree(*dir);
        free(*dir);
        *dir = NULL;
    }
}
