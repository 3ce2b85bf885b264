/* SPDX-License-Identifier: Apache-2.0 */
/* Issue 21: the presentation keys of the configuration (timezone, post_min_severity) applied. */
#include <jansson.h>

#include "painwatch/conf.h"
#include "painwatch/engine.h"
#include "painwatch/err.h"
#include "painwatch/finding_text.h"
#include "painwatch/log.h"

int pw_conf_apply_presentation(const struct pw_conf_daemon *cd, struct pw_engine *engine)
{
    enum pw_severity min = PW_SEV_LOW;
    const char *tz = json_string_value(cd->timezone);

    if (pw_timezone_set(tz) < 0) {
        pw_log_err(CONF, "timezone: '%s' is not a zone of the system's tz database", tz);
        return PW_ECONFIG;
    }
    if (cd->post_min_severity && pw_severity_parse(cd->post_min_severity, &min) < 0) {
        pw_log_err(CONF, "post_min_severity: '%s' is not info|low|medium|high",
                   cd->post_min_severity);
        return PW_ECONFIG;
    }
    if (engine) {
        pw_engine_set_post_min(engine, min);
    }
    return 0;
}
