/* weights-fetch: incremental sha256 / git-sha1 with OpenSSL EVP; see file_hash.h. */
#include "weights-fetch/file_hash.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int start(Hasher *h, Error *err) {
    const EVP_MD *md = h->kind == HASH_SHA256 ? EVP_sha256() : EVP_sha1();
    if (EVP_DigestInit_ex(h->md, md, NULL) != 1)
        return error_set(err, "cannot start a %s digest (OpenSSL)",
                         h->kind == HASH_SHA256 ? "sha256" : "sha1");
    if (h->kind == HASH_GIT_SHA1) {
        char header[64];
        int n = snprintf(header, sizeof header, "blob %" PRId64, h->size);
        EVP_DigestUpdate(h->md, header, (size_t)n + 1); /* the NUL is part of the header */
    }
    return 0;
}

int hasher_init(Hasher *h, HashKind kind, int64_t size, Error *err) {
    h->kind = kind;
    h->size = size;
    h->md = EVP_MD_CTX_new();
    if (!h->md)
        return error_set(err, "out of memory for a digest");
    return start(h, err);
}

int hasher_reset(Hasher *h, Error *err) {
    return start(h, err);
}

void hasher_update(Hasher *h, const void *data, size_t n) {
    EVP_DigestUpdate(h->md, data, n);
}

void hasher_final_hex(Hasher *h, char *hex_out) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(h->md, digest, &len);
    for (unsigned int i = 0; i < len; i++)
        sprintf(hex_out + 2 * i, "%02x", digest[i]);
    hex_out[2 * len] = '\0';
    start(h, NULL);
}

void hasher_free(Hasher *h) {
    EVP_MD_CTX_free(h->md);
    h->md = NULL;
}

int hasher_update_from_file(Hasher *h, const char *path, int64_t n, Error *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return error_set(err, "cannot open %s: %s", path, strerror(errno));
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        fclose(f);
        return error_set(err, "out of memory reading %s", path);
    }
    int64_t left = n;
    while (left > 0) {
        size_t want = left < CHUNK ? (size_t)left : CHUNK;
        size_t got = fread(buf, 1, want, f);
        if (got == 0)
            break;
        hasher_update(h, buf, got);
        left -= (int64_t)got;
    }
    int rc = 0;
    if (left > 0)
        rc = error_set(err, "cannot read %s: %s", path,
                       ferror(f) ? strerror(errno) : "file is shorter than expected");
    free(buf);
    fclose(f);
    return rc;
}
