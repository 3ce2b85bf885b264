/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the fuzz targets: see fuzz.h. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "painwatch/log.h"
#include "painwatch/terminology.h"

static struct pw_terminology *term;
static char tmpdir[256];

char *pwf_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL) {
        abort();
    }
    if (size > 0) {
        memcpy(s, data, size);
    }
    s[size] = '\0';
    return s;
}

static void remove_tmpdir(void)
{
    char cmd[512];
    if (tmpdir[0] != '\0') {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) {
            fprintf(stderr, "fuzz: could not remove %s\n", tmpdir);
        }
    }
}

void pwf_init(void)
{
    static int done;
    char err[512] = "";
    if (done) {
        return;
    }
    done = 1;
    /* Findings of bad input are logged at warning and below: the fuzzer's output stays readable. */
    pw_log_set_level(getenv("PWF_LOG") ? LOG_DEBUG : LOG_CRIT);
    if (pw_terminology_load(&term, PW_SOURCE_DIR "/config/terminology", err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz: terminology: %s\n", err);
        abort();
    }
}

const struct pw_terminology *pwf_terminology(void)
{
    pwf_init();
    return term;
}

const char *pwf_tmpdir(void)
{
    if (tmpdir[0] == '\0') {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof(tmpdir), "%s/pw-fuzz-XXXXXX", base ? base : "/tmp");
        if (mkdtemp(tmpdir) == NULL) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(remove_tmpdir);
    }
    return tmpdir;
}

void pwf_write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || (size > 0 && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}
