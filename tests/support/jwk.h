/* SPDX-License-Identifier: Apache-2.0 */
/* Tests: the public key a JWK (RFC 7517/7518: RSA n/e, EC P-384 x/y) describes, built by OpenSSL.
 */
#ifndef PAINWATCH_TESTS_JWK_H
#define PAINWATCH_TESTS_JWK_H

#include <jansson.h>
#include <openssl/evp.h>

/** The public key of @p jwk, or NULL when it is not an RSA or EC P-384 public JWK. Caller
 *  frees with EVP_PKEY_free(). */
EVP_PKEY *pwt_jwk_public_key(const json_t *jwk);

#endif
