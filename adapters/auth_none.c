/* SPDX-License-Identifier: Apache-2.0 */
/* Auth adapter "none": requests go out without credentials (open test servers, mTLS only). */
#include "painwatch/auth.h"

static int none_init(struct pw_auth *auth)
{
    (void)auth;
    return 0;
}

static int none_apply(struct pw_auth *auth, struct pw_http_req *req)
{
    (void)auth;
    (void)req;
    return 0;
}

static void none_invalidate(struct pw_auth *auth)
{
    (void)auth;
}

const struct pw_auth_ops pw_auth_none = {
    .adapter = {.name = "none", .ctx_size = 0},
    .init = none_init,
    .apply = none_apply,
    .refresh = NULL,
    .invalidate = none_invalidate,
    .cleanup = NULL,
};
