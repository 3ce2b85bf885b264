/* SPDX-License-Identifier: Apache-2.0 */
/* Secret files: path resolution ($CREDENTIALS_DIRECTORY), permission check, capped read. */
#include "painwatch/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "painwatch/err.h"
#include "painwatch/limits.h"
#include "painwatch/log.h"

static void (*wipe_hook)(const void *p, size_t n);

void pw_secret_set_wipe_hook(void (*hook)(const void *p, size_t n))
{
    wipe_hook = hook;
}

void pw_secret_wipe(void *p, size_t n)
{
    if (!p || !n) {
        return;
    }
    if (wipe_hook) {
        wipe_hook(p, n);
    }
    OPENSSL_cleanse(p, n);
}

int pw_secret_protect_process(void)
{
    return prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L) == 0 ? 0 : -errno;
}

static int has_dotdot(const char *p)
{
    const char *s = p;

    while ((s = strstr(s, "..")) != NULL) {
        bool start = s == p || s[-1] == '/';
        bool end = s[2] == '\0' || s[2] == '/';
        if (start && end) {
            return 1;
        }
        s += 2;
    }
    return 0;
}

int pw_secret_path(const char *name, char *out, size_t cap)
{
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    int n;

    if (!name || !*name || !out) {
        return PW_EINVAL;
    }
    if (name[0] == '/' || !dir || !*dir) {
        n = snprintf(out, cap, "%s", name);
    } else {
        if (has_dotdot(name)) {
            pw_log_err(AUTH, "secret %s: '..' is not allowed in a credential name", name);
            return PW_EINVAL;
        }
        n = snprintf(out, cap, "%s/%s", dir, name);
    }
    if (n < 0 || (size_t)n >= cap) {
        return PW_E2BIG;
    }
    return 0;
}

/* Check the opened file itself (fstat), so the file checked is the file read. */
static int check_fd(int fd, const char *path)
{
    struct stat st;

    if (fstat(fd, &st) != 0) {
        pw_log_err(AUTH, "secret %s: %s", path, strerror(errno));
        return PW_EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        pw_log_err(AUTH, "secret %s: not a regular file", path);
        return PW_ESECRET;
    }
    if (st.st_mode & (S_IROTH | S_IWOTH)) {
        pw_log_err(AUTH,
                   "secret %s is accessible to all users (mode %03o): refusing it; "
                   "run chmod o-rwx on it",
                   path, (unsigned)(st.st_mode & 0777));
        return PW_ESECRET;
    }
    if ((size_t)st.st_size > PW_SECRET_FILE_MAX) {
        pw_log_err(AUTH, "secret %s: %lld bytes, over the cap of %u", path, (long long)st.st_size,
                   PW_SECRET_FILE_MAX);
        return PW_E2BIG;
    }
    return 0;
}

static int open_secret(const char *name, char *path, size_t cap, int *fd_out)
{
    int err = pw_secret_path(name, path, cap);
    int fd;

    if (err) {
        return err;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        err = errno == ENOENT ? PW_ENOENT : errno == EACCES ? PW_EACCES : PW_EIO;
        pw_log_err(AUTH, "secret %s: %s", path, strerror(errno));
        return err;
    }
    err = check_fd(fd, path);
    if (err) {
        close(fd);
        return err;
    }
    *fd_out = fd;
    return 0;
}

int pw_secret_check(const char *name)
{
    char path[4096];
    int fd = -1;
    int err = open_secret(name, path, sizeof(path), &fd);

    if (err) {
        return err;
    }
    close(fd);
    return 0;
}

int pw_secret_read(const char *name, char **out, size_t *len)
{
    char path[4096];
    int fd = -1;
    char *buf = NULL;
    size_t n = 0;
    int err = open_secret(name, path, sizeof(path), &fd);

    if (err) {
        return err;
    }
    buf = malloc(PW_SECRET_FILE_MAX + 1);
    if (!buf) {
        err = PW_ENOMEM;
        goto fail;
    }
    /* Read one byte past the cap so a file that grew after fstat is still caught. */
    for (;;) {
        ssize_t r = read(fd, buf + n, PW_SECRET_FILE_MAX + 1 - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            pw_log_err(AUTH, "secret %s: %s", path, strerror(errno));
            err = PW_EIO;
            goto fail;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
        if (n > PW_SECRET_FILE_MAX) {
            pw_log_err(AUTH, "secret %s: over the cap of %u bytes", path, PW_SECRET_FILE_MAX);
            err = PW_E2BIG;
            goto fail;
        }
    }
    while (n > 0 &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t')) {
        n--;
    }
    if (n == 0) {
        pw_log_err(AUTH, "secret %s: empty", path);
        err = PW_ESECRET;
        goto fail;
    }
    buf[n] = '\0';
    close(fd);
    *out = buf;
    if (len) {
        *len = n;
    }
    return 0;
fail:
    if (buf) {
        OPENSSL_cleanse(buf, PW_SECRET_FILE_MAX + 1);
        free(buf);
    }
    close(fd);
    return err;
}

void pw_secret_free(char *secret)
{
    if (secret) {
        pw_secret_wipe(secret, strlen(secret));
        free(secret);
    }
}
