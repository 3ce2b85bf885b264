/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A server's CapabilityStatement (/metadata): parsed, then compared with the default source
 * configuration and with one that needs every optional feature (the check logs and counts,
 * never crashes, whatever the server advertises).
 */
#include <stdlib.h>

#include <jansson.h>

#include "fuzz.h"
#include "painwatch/capability.h"
#include "painwatch/fhir_search.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pwf_init();
    json_t *j = json_loadb((const char *)data, size, 0, NULL);
    if (j == NULL) {
        return 0;
    }
    struct pw_capability cap = {0};
    if (pw_capability_parse(&cap, j) == 0) {
        struct pw_fhir_search_conf conf;
        unsigned errors = 0, warnings = 0;
        if (pw_fhir_search_conf_init(&conf, "ehr", "https://ehr.example.org/fhir") < 0) {
            abort();
        }
        (void)pw_fhir_search_capability_check(&cap, &conf, &errors, &warnings);
        (void)pw_capability_has_param(&cap, "Observation", "_lastUpdated");
        (void)pw_capability_has_param(&cap, "Flag", "identifier");
        pw_fhir_search_conf_cleanup(&conf);
    }
    pw_capability_cleanup(&cap);
    json_decref(j);
    return 0;
}
