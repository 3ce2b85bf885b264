/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared helpers of the fuzz targets (tests/fuzz/fuzz_*.c). Each target defines
 * LLVMFuzzerTestOneInput(); with -DPW_FUZZ=ON (clang) libFuzzer drives it, otherwise replay.c
 * runs every file of the target's corpus through it once (the corpora are regression tests).
 */
#ifndef PAINWATCH_TESTS_FUZZ_H
#define PAINWATCH_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

struct pw_terminology;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/** A NUL-terminated heap copy of @p data (the input may hold NULs: the copy stops at none). */
char *pwf_cstr(const uint8_t *data, size_t size);

/** Once per process: quiet logs, the source tree's terminology tables. Aborts on failure. */
void pwf_init(void);

/** The terminology tables loaded by pwf_init(). */
const struct pw_terminology *pwf_terminology(void);

/** A private temporary directory (created once per process, removed at exit). */
const char *pwf_tmpdir(void);

/** Write @p data to @p path (truncating). Aborts on failure. */
void pwf_write_file(const char *path, const uint8_t *data, size_t size);

/** The fixed evaluation instant of the targets (2026-12-01T00:00:00Z, seconds). */
#define PWF_NOW 1795996800LL

#endif
