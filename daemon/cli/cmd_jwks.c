/* SPDX-License-Identifier: Apache-2.0 */
/*
 * painwatch jwks: the public JSON Web Key Set to register with the EHR for SMART Backend
 * Services, computed from the configured private key(s) with OpenSSL. Only public parts are
 * printed; the private key is read through the secret-file checks and wiped after use.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "cli/cmd.h"
#include "painwatch/auth.h"
#include "painwatch/conf.h"
#include "painwatch/defaults.h"
#include "painwatch/err.h"
#include "painwatch/secret.h"

#define P384_COORD 48 /* bytes of an x or y coordinate on P-384 (RFC 7518 6.2.1.2) */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: painwatch jwks [--config FILE] [--server NAME]\n"
            "       painwatch jwks --key FILE --kid KID\n"
            "  Print the public JWK Set ({\"keys\": [...]}) for the smart-backend private key of\n"
            "  each server in FILE (default " PW_DEFAULT_CONFIG_FILE "), or of one key file, with\n"
            "  its kid and alg (RS384 for RSA >= 2048 bits, ES384 for EC P-384). Register it\n"
            "  with the EHR (or publish it at the JWKS URL you registered). Only public values\n"
            "  are printed. Exit 0, 1 no smart-backend server, 2 invalid key or configuration.\n");
}

/* base64url without padding (RFC 7515 2) of @p len bytes, through EVP_EncodeBlock. */
static json_t *b64url(const unsigned char *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    json_t *j = NULL;
    int n;

    if (!out) {
        return NULL;
    }
    n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    while (n > 0 && out[n - 1] == '=') {
        n--;
    }
    out[n] = '\0';
    for (char *p = out; *p; p++) {
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    }
    j = json_string(out);
    free(out);
    return j;
}

/* A big number parameter of @p key, big-endian, left-padded to @p pad bytes (0: minimal). */
static json_t *bn_param(const EVP_PKEY *key, const char *name, int pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    json_t *j = NULL;
    int n;

    if (!EVP_PKEY_get_bn_param(key, name, &bn)) {
        return NULL;
    }
    n = pad ? BN_bn2binpad(bn, buf, pad) : BN_num_bytes(bn);
    if (!pad && n > 0 && n <= (int)sizeof(buf)) {
        n = BN_bn2bin(bn, buf);
    }
    if (n > 0 && n <= (int)sizeof(buf)) {
        j = b64url(buf, (size_t)n);
    }
    BN_free(bn);
    return j;
}

/* The public JWK of the private key in secret file @p name. @return it, or NULL (reported). */
static json_t *jwk_of(const char *name, const char *kid, const char *want_alg)
{
    char *pem = NULL;
    size_t len = 0;
    EVP_PKEY *key = NULL;
    json_t *jwk = NULL;
    char group[64] = "";
    int rc = pw_secret_read(name, &pem, &len);

    if (rc < 0) {
        fprintf(stderr, "painwatch jwks: %s: %s\n", name, pw_strerror(rc));
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio) {
        key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        BIO_free(bio);
    }
    pw_secret_free(pem);
    if (!key) {
        fprintf(stderr, "painwatch jwks: %s: not a PEM private key (or encrypted)\n", name);
        return NULL;
    }
    if (EVP_PKEY_is_a(key, "RSA") && EVP_PKEY_get_bits(key) >= 2048) {
        jwk = json_pack("{s:s, s:s, s:s, s:s, s:[s], s:o*, s:o*}", "kty", "RSA", "kid", kid, "alg",
                        "RS384", "use", "sig", "key_ops", "verify", "n",
                        bn_param(key, OSSL_PKEY_PARAM_RSA_N, 0), "e",
                        bn_param(key, OSSL_PKEY_PARAM_RSA_E, 0));
    } else if (EVP_PKEY_is_a(key, "EC") &&
               EVP_PKEY_get_group_name(key, group, sizeof(group), NULL) &&
               strcmp(group, "secp384r1") == 0) {
        jwk = json_pack("{s:s, s:s, s:s, s:s, s:s, s:[s], s:o*, s:o*}", "kty", "EC", "kid", kid,
                        "alg", "ES384", "use", "sig", "crv", "P-384", "key_ops", "verify", "x",
                        bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, P384_COORD), "y",
                        bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, P384_COORD));
    } else {
        fprintf(stderr,
                "painwatch jwks: %s: SMART Backend Services needs an RSA key of 2048 bits or "
                "more (RS384) or an EC P-384 key (ES384)\n",
                name);
    }
    EVP_PKEY_free(key);
    /* "o*" leaves out a value OpenSSL could not give: then the key is incomplete. */
    if (jwk && !(json_object_get(jwk, "n") && json_object_get(jwk, "e")) &&
        !(json_object_get(jwk, "x") && json_object_get(jwk, "y"))) {
        fprintf(stderr, "painwatch jwks: %s: cannot read the public values\n", name);
        json_decref(jwk);
        jwk = NULL;
    }
    if (jwk && want_alg && strcmp(want_alg, json_string_value(json_object_get(jwk, "alg")))) {
        fprintf(stderr, "painwatch jwks: %s: alg %s does not match this key (%s)\n", name, want_alg,
                json_string_value(json_object_get(jwk, "alg")));
        json_decref(jwk);
        jwk = NULL;
    }
    return jwk;
}

static int print_set(json_t *keys)
{
    json_t *set = json_pack("{s:o}", "keys", keys);
    char *text = set ? json_dumps(set, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;

    json_decref(set);
    if (!text) {
        fprintf(stderr, "painwatch jwks: out of memory\n");
        return 2;
    }
    printf("%s\n", text);
    free(text);
    return 0;
}

static int from_config(const char *file, const char *only)
{
    struct pw_conf_errors errs = {0};
    struct pw_conf *conf = NULL;
    json_t *keys = json_array();
    int rc = pw_conf_load_file(&conf, file, &errs);
    int status = 0;

    for (size_t i = 0; i < errs.n; i++) {
        fprintf(stderr, "%s\n", errs.lines[i]);
    }
    pw_conf_errors_cleanup(&errs);
    if (rc < 0 || !keys) {
        fprintf(stderr, "%s: invalid configuration (`painwatch config check` says more)\n", file);
        json_decref(keys);
        pw_conf_free(conf);
        return 2;
    }
    const struct pw_conf_daemon *cd = pw_conf_daemon(conf);
    for (size_t i = 0; i < cd->n_servers && status == 0; i++) {
        const struct pw_conf_adapter_ref *ca = &cd->servers[i].auth;
        const struct pw_auth_keys *ak = pw_auth_keys_of(ca->type);
        const char *kid =
            ak && ak->kid ? json_string_value(json_object_get(ca->section, ak->kid)) : NULL;
        const char *key_file = ak && ak->key_file
                                   ? json_string_value(json_object_get(ca->section, ak->key_file))
                                   : NULL;
        const char *alg =
            ak && ak->alg ? json_string_value(json_object_get(ca->section, ak->alg)) : NULL;
        bool seen = false;

        /* The servers whose auth adapter signs with a private key (smart-backend). */
        if ((only && strcmp(only, cd->servers[i].name) != 0) || !ak || !ak->key_file) {
            continue;
        }
        /* Servers sharing one registration list their key once. */
        for (size_t k = 0; k < json_array_size(keys); k++) {
            seen =
                seen || !strcmp(json_string_value(json_object_get(json_array_get(keys, k), "kid")),
                                kid ? kid : "");
        }
        if (seen) {
            continue;
        }
        json_t *jwk = key_file && kid ? jwk_of(key_file, kid, alg) : NULL;
        if (!jwk || json_array_append_new(keys, jwk) != 0) {
            status = 2;
        }
    }
    pw_conf_free(conf);
    if (status == 0 && json_array_size(keys) == 0) {
        fprintf(stderr, "painwatch jwks: no smart-backend server%s%s in %s\n", only ? " " : "",
                only ? only : "", file);
        status = 1;
    }
    if (status != 0) {
        json_decref(keys);
        return status;
    }
    return print_set(keys);
}

int pw_cmd_jwks(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"server", required_argument, NULL, 's'},
        {"key", required_argument, NULL, 'k'},    {"kid", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *file = NULL;
    const char *only = NULL;
    const char *key = NULL;
    const char *kid = NULL;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:s:k:i:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            file = optarg;
            break;
        case 's':
            only = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'i':
            kid = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc || (key && (file || only)) || (!key != !kid)) {
        usage(stderr);
        return 2;
    }
    if (key) {
        /* A file, not a credential name: "key.pem" is ./key.pem. */
        char path[4096];
        snprintf(path, sizeof(path), "%s%s", strchr(key, '/') ? "" : "./", key);
        json_t *jwk = jwk_of(path, kid, NULL);
        json_t *keys = jwk ? json_pack("[o]", jwk) : NULL;
        return keys ? print_set(keys) : 2;
    }
    return from_config(file ? file : PW_DEFAULT_CONFIG_FILE, only);
}
