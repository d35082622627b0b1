// Handoff — COpenSSL shim: OpenSSL's headers, plus one prefixed static inline
// function for each function-like macro (or variadic function) Swift cannot
// call. Nothing here owns memory; the Swift side decides lifetimes.
#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/bio.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/rand.h>
#include <openssl/bn.h>

// The Swift side passes lengths as Int32 into `int` parameters and reads
// `unsigned char` ALPN lengths; make sure those are the sizes we think.
_Static_assert(sizeof(int) == 4, "COpenSSL assumes a 32-bit int");
_Static_assert(sizeof(unsigned char) == 1, "COpenSSL assumes 8-bit bytes");

// MARK: - Library

// OpenSSL's first initialisation, without the cleanup it otherwise registers
// with atexit(3). That cleanup frees its global locks while the process
// exits, and a thread still inside OpenSSL then (an event loop closing a
// connection, the cooperative pool releasing a context) crashes in
// CRYPTO_THREAD_unlock on a freed lock: handoffd was seen to die of SIGSEGV
// after "server stopped" on SIGTERM. Must run before any other OpenSSL call.
static inline int COpenSSL_init_without_atexit(void) {
    return OPENSSL_init_ssl(OPENSSL_INIT_NO_ATEXIT | OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
}

// MARK: - SSL_CTX

static inline long COpenSSL_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return SSL_CTX_set_min_proto_version(ctx, version);
}

static inline long COpenSSL_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int version) {
    return SSL_CTX_set_max_proto_version(ctx, version);
}

/// The option bits are built by `SSL_OP_BIT(n)`, which Swift cannot import.
/// No compression (CRIME), no renegotiation, server picks the cipher, and
/// no TLS 1.0/1.1 even if someone lowers the minimum version by accident.
static inline uint64_t COpenSSL_SSL_CTX_set_handoff_options(SSL_CTX *ctx) {
    return SSL_CTX_set_options(ctx,
        SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
        SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
        SSL_OP_NO_SSLv3);
}

static inline long COpenSSL_SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_session_cache_mode(ctx, mode);
}

static inline long COpenSSL_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_mode(ctx, mode);
}

/// Raised from the client-hello callback so the server's error names the
/// cause rather than OpenSSL's generic "callback failed".
static inline void COpenSSL_raise_no_alpn_offered(void) {
    ERR_raise_data(ERR_LIB_SSL, SSL_R_NO_APPLICATION_PROTOCOL,
                   "client offered no ALPN protocol");
}

// MARK: - SSL

static inline long COpenSSL_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return SSL_set_tlsext_host_name(ssl, name);
}

// MARK: - BIO

static inline size_t COpenSSL_BIO_pending(BIO *bio) {
    return BIO_pending(bio);
}

static inline long COpenSSL_BIO_set_mem_eof_return(BIO *bio, int value) {
    return BIO_set_mem_eof_return(bio, value);
}

static inline long COpenSSL_BIO_get_mem_data(BIO *bio, char **data) {
    return BIO_get_mem_data(bio, data);
}

// MARK: - X509 names and stacks

static inline int COpenSSL_sk_GENERAL_NAME_num(const GENERAL_NAMES *names) {
    return sk_GENERAL_NAME_num(names);
}

static inline GENERAL_NAME *COpenSSL_sk_GENERAL_NAME_value(const GENERAL_NAMES *names, int index) {
    return sk_GENERAL_NAME_value(names, index);
}

/// `XN_FLAG_RFC2253` is an OR of casts Swift does not import.
static inline unsigned long COpenSSL_XN_FLAG_RFC2253(void) {
    return XN_FLAG_RFC2253;
}

/// `OPENSSL_free` is a macro over `CRYPTO_free` with file and line.
static inline void COpenSSL_OPENSSL_free(void *pointer) {
    OPENSSL_free(pointer);
}

// MARK: - Keys

/// `EVP_EC_gen` is a macro over the variadic `EVP_PKEY_Q_keygen`.
static inline EVP_PKEY *COpenSSL_EVP_EC_gen(const char *curve) {
    return EVP_EC_gen(curve);
}

#endif
