/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Defaults that more than one layer needs (the config schema, the daemon's wiring, the sink, the
 * CLI), each spelled once here (issue 20). A site overrides the namespaces in its config.
 */
#ifndef PAINWATCH_DEFAULTS_H
#define PAINWATCH_DEFAULTS_H

/* Flag.identifier.system of episode keys (config: sink.identifier_system). */
#define PW_FLAG_IDENTIFIER_SYSTEM "urn:painwatch:flag-episode"
/* Flag.code system of the rule codes. */
#define PW_FLAG_CODE_SYSTEM "https://painwatch.org/fhir/CodeSystem/rule"
/* Flag.author and the audit trail's agent: the gateway's Device (config: sink.flag_author). */
#define PW_FLAG_AUTHOR "Device/painwatch"

/* The default MME factor set (CDC 2022 clinical practice guideline; config: factor_set). */
#define PW_MME_DEFAULT_SET "cdc2022"

/* The configuration file the CLI reads without --config (PW_SYSCONFDIR is set by the build). */
#define PW_DEFAULT_CONFIG_FILE PW_SYSCONFDIR "/painwatch.yaml"

#endif
