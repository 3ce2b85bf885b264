/* SPDX-License-Identifier: Apache-2.0 */
/* Issue 19: where the audit HMAC key may live (pw_conf_check_audit_key, conf.h). */
#define _XOPEN_SOURCE 700 /* realpath */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "painwatch/conf.h"
#include "painwatch/err.h"

/* ---- issue 19: where the audit key may live ------------------------------------------------ */

/* @p path made absolute and free of "." and ".." (not following links: the file may not exist). */
static void lexical_abs(const char *path, char *out, size_t cap)
{
    char tmp[4096];
    char cwd[4096];
    size_t n = 0;

    if (path[0] != '/' && getcwd(cwd, sizeof(cwd))) {
        snprintf(tmp, sizeof(tmp), "%s/%s", cwd, path);
    } else {
        snprintf(tmp, sizeof(tmp), "%s", path);
    }
    out[0] = '\0';
    for (char *save = NULL, *t = strtok_r(tmp, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (strcmp(t, ".") == 0) {
            continue;
        }
        if (strcmp(t, "..") == 0) {
            char *slash = strrchr(out, '/');
            n = slash ? (size_t)(slash - out) : 0;
            out[n] = '\0';
            continue;
        }
        int w = snprintf(out + n, cap - n, "/%s", t);
        n += w > 0 ? (size_t)w : 0;
        if (n >= cap) {
            n = cap - 1;
        }
    }
    if (!out[0]) {
        snprintf(out, cap, "/");
    }
}

/* Whether @p path is @p dir or inside it, after resolving what exists of both. */
static bool path_within(const char *path, const char *dir)
{
    char p[4096];
    char d[4096];
    char real[PATH_MAX];
    size_t dl;

    lexical_abs(realpath(path, real) ? real : path, p, sizeof(p));
    lexical_abs(realpath(dir, real) ? real : dir, d, sizeof(d));
    dl = strlen(d);
    return strncmp(p, d, dl) == 0 && (p[dl] == '/' || p[dl] == '\0' || dl == 1);
}

int pw_conf_check_audit_key(const struct pw_conf_daemon *cd, char *why, size_t cap)
{
    if (cd->audit.allow_local_key) {
        return 0;
    }
    if (!cd->audit.key_file) {
        snprintf(why, cap,
                 "audit.key_file is not set: the audit HMAC key must be a file or a systemd "
                 "credential outside state_dir (set audit.allow_local_key: true for a demo, which "
                 "creates %s/audit.key)",
                 cd->state_dir);
        return PW_ECONFIG;
    }
    if (path_within(cd->audit.key_file, cd->state_dir)) {
        snprintf(why, cap,
                 "audit.key_file %s is inside state_dir %s: whoever can rewrite the trail could "
                 "then re-seal it; keep the key elsewhere (a systemd credential), or set "
                 "audit.allow_local_key: true for a demo",
                 cd->audit.key_file, cd->state_dir);
        return PW_ECONFIG;
    }
    return 0;
}
