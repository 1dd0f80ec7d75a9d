/* See carchive.h for why each of these is in C. */
#include "carchive.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct carchive_sha256 { EVP_MD_CTX *context; };

carchive_sha256 *carchive_sha256_new(void) {
    carchive_sha256 *hash = malloc(sizeof *hash);
    if (!hash) return NULL;
    hash->context = EVP_MD_CTX_new();
    if (!hash->context || EVP_DigestInit_ex(hash->context, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(hash->context);
        free(hash);
        return NULL;
    }
    return hash;
}

void carchive_sha256_update(carchive_sha256 *hash, const void *bytes, size_t count) {
    if (count) EVP_DigestUpdate(hash->context, bytes, count);
}

void carchive_sha256_finish(carchive_sha256 *hash, uint8_t digest[32]) {
    unsigned int length = 32;
    EVP_DigestFinal_ex(hash->context, digest, &length);
    carchive_sha256_free(hash);
}

void carchive_sha256_free(carchive_sha256 *hash) {
    if (!hash) return;
    EVP_MD_CTX_free(hash->context);
    free(hash);
}

struct carchive_gunzip {
    z_stream z;
    int in_member;   /* between a member's header and its trailer */
};

carchive_gunzip *carchive_gunzip_new(void) {
    carchive_gunzip *stream = calloc(1, sizeof *stream);
    if (!stream) return NULL;
    /* 16 + MAX_WBITS: a gzip header and trailer (CRC-32 and length checked by zlib). */
    if (inflateInit2(&stream->z, 16 + MAX_WBITS) != Z_OK) { free(stream); return NULL; }
    return stream;
}

long carchive_gunzip_step(carchive_gunzip *stream, const void *input, size_t input_size, int finished_input,
                          void *output, size_t output_size, size_t *consumed, int *done, const char **message) {
    z_stream *z = &stream->z;
    *consumed = 0;
    *done = 0;
    *message = NULL;
    /* zlib counts in uInt: feed at most 1 GiB at a time. */
    if (input_size > (1u << 30)) input_size = 1u << 30;
    if (output_size > (1u << 30)) output_size = 1u << 30;
    z->next_in = (Bytef *)input;
    z->avail_in = (uInt)input_size;
    z->next_out = output;
    z->avail_out = (uInt)output_size;
    while (z->avail_out > 0) {
        if (z->avail_in == 0 && !stream->in_member) {
            if (finished_input) *done = 1;
            break;
        }
        if (z->avail_in == 0) {
            if (finished_input) { *consumed = input_size; return -2; }
            break;
        }
        stream->in_member = 1;
        int result = inflate(z, Z_NO_FLUSH);
        if (result == Z_STREAM_END) {
            /* A member ended: another may follow (gzip -c a b > c makes two). */
            stream->in_member = 0;
            if (inflateReset(z) != Z_OK) { *message = "inflateReset failed"; return -1; }
            continue;
        }
        if (result == Z_BUF_ERROR) break;  /* needs more input or more room: the caller loops */
        if (result != Z_OK) {
            *message = z->msg ? z->msg : (result == Z_MEM_ERROR ? "out of memory" : "corrupt data");
            return -1;
        }
    }
    *consumed = input_size - z->avail_in;
    return (long)(output_size - z->avail_out);
}

void carchive_gunzip_free(carchive_gunzip *stream) {
    if (!stream) return;
    inflateEnd(&stream->z);
    free(stream);
}
