/* libFuzzer target for JWT verification with a fixed secret. Mode 0 verifies the
 * input as a raw token. Mode 1 treats it as "header JSON \n payload JSON", encodes
 * and signs it properly, so the claim rules behind the signature check get
 * exercised; that token must then fail under any other secret. An accepted
 * token's sub and sid are always valid identifiers, its channels valid channel
 * names without repeats (protocol/validate.h). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "protocol/jwt.h"
#include "protocol/validate.h"
#include "../tests/support/reference.h"

static const uint8_t SECRET[] = "fuzz-secret";
#define NOW 1700000000LL

static void check_result(int rc, jwt_claims_t *c, const char *why) {
    if (rc == 0) {
        if (!c->sub || !c->sub[0]) abort();
        if (c->sid && !c->sid[0]) abort();
        /* A decoded sub or sid is always an identifier: valid UTF-8, no control
         * character (so no "\u0000" escape made it in to cut it short). */
        if (!ident_valid(c->sub, strlen(c->sub))) abort();
        if (c->sid && !ident_valid(c->sid, strlen(c->sid))) abort();
        /* Channels: channel names, no repeats. */
        if (c->channel_count && !c->channels) abort();
        for (size_t i = 0; i < c->channel_count; i++) {
            if (!channel_name_valid(c->channels[i], strlen(c->channels[i]))) abort();
            for (size_t k = 0; k < i; k++)
                if (!strcmp(c->channels[i], c->channels[k])) abort();
        }
        jwt_claims_free(c);
    } else {
        if (rc != -1 || !why || c->sub || c->sid || c->channels || c->channel_count) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    jwt_claims_t c;
    const char *why = NULL;
    if ((data[0] & 1) == 0) {
        int rc = jwt_verify((const char *)data + 1, size - 1, SECRET, sizeof SECRET - 1, NOW, &c, &why);
        check_result(rc, &c, why);
        return 0;
    }
    if (size < 2 || size > 6000) return 0;
    const uint8_t *rest = data + 2;
    size_t rlen = size - 2;
    const uint8_t *nl = memchr(rest, '\n', rlen);
    if (!nl) return 0;
    size_t hl = (size_t)(nl - rest), pl = rlen - hl - 1;
    const EVP_MD *mds[] = {EVP_sha256(), EVP_sha384(), EVP_sha512()};
    const EVP_MD *md = mds[data[1] % 3];

    char *tok = malloc((rlen + 3) / 3 * 4 + 200);
    size_t n = ref_b64url(rest, hl, tok);
    tok[n++] = '.';
    n += ref_b64url(nl + 1, pl, tok + n);
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(md, SECRET, (int)(sizeof SECRET - 1), (const uint8_t *)tok, n, mac, &mac_len);
    tok[n++] = '.';
    n += ref_b64url(mac, mac_len, tok + n);

    int rc = jwt_verify(tok, n, SECRET, sizeof SECRET - 1, NOW, &c, &why);
    check_result(rc, &c, why);
    int rc2 = jwt_verify(tok, n, (const uint8_t *)"other", 5, NOW, &c, &why);
    if (rc2 == 0) abort();
    check_result(rc2, &c, why);
    free(tok);
    return 0;
}
