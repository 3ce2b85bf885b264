/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The auto sink (`sink.type: auto`): delivered over HTTP like the FHIR sinks, its resources built
 * by the target the first server's /metadata chose (pw_sink_choose_target: DetectedIssue when
 * advertised, else Flag). Until then nothing is built (PW_EAGAIN: the page is repeated).
 */
#include "painwatch/sink.h"

static int auto_format(const struct pw_sink *sink, const struct pw_finding *f, json_t **out)
{
    return pw_sink_format(sink, f, out);
}

const struct pw_sink_ops pw_sink_auto = {
    .adapter = {.name = "auto",
                .help = "DetectedIssue when the server's /metadata advertises its create and "
                        "update, else Flag"},
    .remote = true,
    .format = auto_format,
    .update = pw_sink_update,
    .classify = pw_sink_classify_fhir,
};
