/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inbound JSON Web Tokens (RFC 7515/7517/7518/7519), for callers that present a signed JWT to
 * painwatch (the EHR calling the CDS Hooks service). Only asymmetric RS384 and ES384 are
 * accepted: "none", HMAC and every other alg are refused whatever the key set holds. Signatures
 * and key material go through OpenSSL, base64url through EVP_DecodeBlock, JSON through jansson.
 */
#ifndef PAINWATCH_JWT_H
#define PAINWATCH_JWT_H

#include <stddef.h>

#include <jansson.h>
#include <openssl/evp.h>

/**
 * base64url without padding (RFC 7515 2) of @p len chars: only [A-Za-z0-9_-], a length that is
 * not 1 mod 4. Caller frees *out (NUL-terminated for convenience).
 * @return 0, PW_EINVAL (not base64url) or PW_ENOMEM.
 */
int pw_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len);

/**
 * The public key a JWK describes: RSA (n, e; at least 2048 bits) or EC P-384 (x, y). A JWK
 * holding private members ("d") is refused: a key set is public. Caller frees with
 * EVP_PKEY_free(). @return the key, or NULL.
 */
EVP_PKEY *pw_jwk_public_key(const json_t *jwk);

/** A JSON Web Key Set, parsed. */
struct pw_jwks;

/**
 * Parse @p jwks ({"keys": [...]}); keys that are not RS384/ES384 verification keys (use "enc",
 * alg other than RS384/ES384, kty oct, other curves) are skipped. Caller owns *out; free with
 * pw_jwks_free(). @return 0, PW_EINVAL (not a key set, or no usable key: reason in @p why) or
 * PW_ENOMEM.
 */
int pw_jwks_parse(struct pw_jwks **out, const json_t *jwks, char *why, size_t why_len);

/** Usable keys in @p set. */
size_t pw_jwks_count(const struct pw_jwks *set);

void pw_jwks_free(struct pw_jwks *set);

/**
 * Verify the compact JWS @p token (header.payload.signature) with @p set: the header's alg must
 * be RS384 or ES384; with a kid, the key of that kid (and of that alg's key type) must verify
 * it; without, some key of the alg's type must. On success *header and *claims are new
 * references (caller decrefs); the claims are not checked here (exp, iss, aud are policy).
 * @return 0; PW_EAUTH (malformed, unknown kid, bad signature: reason in @p why, never token
 * content beyond the alg and kid); PW_ENOMEM.
 */
int pw_jwt_verify(const char *token, const struct pw_jwks *set, json_t **header, json_t **claims,
                  char *why, size_t why_len);

#endif
