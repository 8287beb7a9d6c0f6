/* The API token check (bearer_token.h). */
#include "protocol/bearer_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

_Static_assert(sizeof(((bearer_token_t *)0)->digest) == SHA256_DIGEST_LENGTH, "SHA-256 digest");

void bearer_token_init(bearer_token_t *t, const char *token) {
    memset(t, 0, sizeof *t);
    if (!token || !*token) return;
    t->set = true;
    SHA256((const unsigned char *)token, strlen(token), t->digest);
}

void bearer_token_clear(bearer_token_t *t) { OPENSSL_cleanse(t, sizeof *t); }

/* OpenSSL 3's one-shot SHA256() looks the algorithm up by name at every call
 * (a lock and string compares: a few percent of an API request's CPU); the
 * implementation is fetched once instead, for the process (thread-safe once
 * fetched, and kept until exit). */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static void sha256_fetch(void) { sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); }

static void sha256(const char *data, size_t len, uint8_t *out) {
    pthread_once(&sha256_once, sha256_fetch);
    if (!sha256_md || !EVP_Digest(data, len, out, NULL, sha256_md, NULL))
        SHA256((const unsigned char *)data, len, out);
}

bool bearer_token_matches(const bearer_token_t *t, const char *token, size_t len) {
    if (!t->set || !len) return false;
    uint8_t digest[SHA256_DIGEST_LENGTH];
    sha256(token, len, digest);
    return CRYPTO_memcmp(digest, t->digest, sizeof digest) == 0;
}

bool bearer_token_authorizes(const bearer_token_t *t, const http_request_t *req) {
    /* Query values never hold a NUL (the parser refuses %00): strlen is the length. */
    const http_kv_t *q = http_request_param(req, "token");
    if (q) return bearer_token_matches(t, q->value, strlen(q->value));
    const http_kv_t *h = http_request_header(req, "authorization");
    if (!h || h->value_len < 7 || strncasecmp(h->value, "bearer ", 7) != 0) return false;
    const char *v = h->value + 7;
    while (*v == ' ') v++;
    return bearer_token_matches(t, v, h->value_len - (size_t)(v - h->value));
}
