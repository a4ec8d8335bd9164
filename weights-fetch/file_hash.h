/* weights-fetch: the checksums the Hub publishes, computed incrementally
 * while bytes arrive. LFS files (the weights) are checked against their
 * sha256; small files kept in git against their git blob id, which is
 * sha1("blob <size>\0" + content). */
#ifndef WEIGHTS_FETCH_FILE_HASH_H
#define WEIGHTS_FETCH_FILE_HASH_H

#include <openssl/evp.h>
#include <stdint.h>

#include "util/error.h"

typedef enum { HASH_SHA256, HASH_GIT_SHA1 } HashKind;

typedef struct {
    HashKind kind;
    int64_t size; /* the file's full size (part of the git blob header) */
    EVP_MD_CTX *md;
} Hasher;

/* Starts a hash of a file of `size` bytes. Returns 0 or -1 (out of memory). */
int hasher_init(Hasher *h, HashKind kind, int64_t size, Error *err);
/* Restarts at byte 0. */
int hasher_reset(Hasher *h, Error *err);
void hasher_update(Hasher *h, const void *data, size_t n);
/* Writes the lowercase hex digest (65 bytes incl. NUL is enough) and resets. */
void hasher_final_hex(Hasher *h, char *hex_out);
void hasher_free(Hasher *h);

/* Feeds the first `n` bytes of the file at path into h. Returns 0 or -1. */
int hasher_update_from_file(Hasher *h, const char *path, int64_t n, Error *err);

#endif
