/* SPDX-License-Identifier: Apache-2.0 */
/* Tests: JWK -> OpenSSL public key (jwk.h), through the daemon's own reader (painwatch/jwt.h). */
#include "support/jwk.h"

#include "painwatch/jwt.h"

EVP_PKEY *pwt_jwk_public_key(const json_t *jwk)
{
    return pw_jwk_public_key(jwk);
}
