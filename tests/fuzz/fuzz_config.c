/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The configuration loader (YAML, and JSON through the same YAML reader) and its schema: any
 * bytes give a configuration or errors naming file:line / key paths, never a crash. Invariant
 * checked: a configuration that loads dumps (unmasked) to text that loads again with the same
 * hash (pw_conf_dump() promises it is loadable again). The same bytes also go through the
 * cohort list file reader.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "painwatch/cohort.h"
#include "painwatch/conf.h"
#include "painwatch/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pwf_init();
    struct pw_conf *conf = NULL;
    struct pw_conf_errors errs = {0};
    int rc = pw_conf_load_string(&conf, "fuzz.yaml", pwf_tmpdir(), (const char *)data, size, &errs);
    pw_conf_errors_cleanup(&errs);
    if (rc == 0) {
        char *dump = pw_conf_dump(conf, false);
        char *masked = pw_conf_dump(conf, true);
        struct pw_conf *again = NULL;
        if (dump != NULL) {
            rc = pw_conf_load_string(&again, "dump.json", pwf_tmpdir(), dump, strlen(dump), &errs);
            if (rc == 0 && strcmp(pw_conf_hash(conf), pw_conf_hash(again)) != 0) {
                fprintf(stderr, "fuzz_config: the dump reloads to another hash:\n%s\n", dump);
                abort();
            }
            if (rc != 0 && rc != PW_ENOMEM) {
                for (size_t i = 0; i < errs.n; i++) {
                    fprintf(stderr, "fuzz_config: %s\n", errs.lines[i]);
                }
                fprintf(stderr, "fuzz_config: a loaded configuration's dump does not load:\n%s\n",
                        dump);
                abort();
            }
            pw_conf_errors_cleanup(&errs);
        }
        pw_conf_free(again);
        free(dump);
        free(masked);
        (void)pw_conf_get(conf, "servers[0].auth.type");
        (void)pw_conf_get(conf, "health.listen");
        pw_conf_free(conf);
    }
    /* The same bytes as a cohort list file (servers[].cohort.file: one patient id a line). */
    char list[512];
    char errbuf[256];
    char **ids = NULL;
    size_t n_ids = 0;
    snprintf(list, sizeof(list), "%s/patients.txt", pwf_tmpdir());
    pwf_write_file(list, data, size);
    if (pw_cohort_list_parse(list, &ids, &n_ids, errbuf, sizeof(errbuf)) == 0) {
        for (size_t i = 0; i < n_ids; i++) {
            free(ids[i]);
        }
        free(ids);
    }
    /* Durations as the schema reads them, straight from the input's first line. */
    char line[128];
    size_t n = 0;
    while (n < size && n < sizeof(line) - 1 && data[n] != '\n') {
        line[n] = (char)data[n];
        n++;
    }
    line[n] = '\0';
    int64_t ms;
    if (pw_conf_parse_duration(line, &ms) == 0) {
        char buf[64];
        pw_conf_format_duration(ms, buf, sizeof(buf));
    }
    return 0;
}
