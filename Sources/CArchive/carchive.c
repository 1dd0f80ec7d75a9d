/* See carchive.h for why each of these is in C. */
#include "carchive.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

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

struct carchive_decoder {
    int format;
    int in_member;       /* between a gzip member's header and its trailer, or inside a zstd frame */
    z_stream z;          /* gzip */
    ZSTD_DCtx *zstd;     /* zstd */
};

carchive_decoder *carchive_decoder_new(int format) {
    carchive_decoder *decoder = calloc(1, sizeof *decoder);
    if (!decoder) return NULL;
    decoder->format = format;
    if (format == CARCHIVE_GZIP) {
        /* 16 + MAX_WBITS: a gzip header and trailer (CRC-32 and length checked by zlib). */
        if (inflateInit2(&decoder->z, 16 + MAX_WBITS) == Z_OK) return decoder;
    } else if (format == CARCHIVE_ZSTD) {
        decoder->zstd = ZSTD_createDCtx();
        /* A window of at most 128 MiB (zstd's --long=27; the format's default limit): a frame
         * asking for more is refused instead of allocating what a hostile header says. */
        if (decoder->zstd && !ZSTD_isError(ZSTD_DCtx_setParameter(decoder->zstd, ZSTD_d_windowLogMax, 27))) return decoder;
        ZSTD_freeDCtx(decoder->zstd);
    }
    free(decoder);
    return NULL;
}

/* zlib's loop: inflate until the output is full or the input is used up. */
static long gzip_step(carchive_decoder *decoder, size_t input_size, int finished_input, size_t output_size,
                      size_t *consumed, int *done, const char **message) {
    z_stream *z = &decoder->z;
    while (z->avail_out > 0) {
        if (z->avail_in == 0 && !decoder->in_member) {
            if (finished_input) *done = 1;
            break;
        }
        if (z->avail_in == 0) {
            if (finished_input) { *consumed = input_size; return -2; }
            break;
        }
        decoder->in_member = 1;
        int result = inflate(z, Z_NO_FLUSH);
        if (result == Z_STREAM_END) {
            /* A member ended: another may follow (gzip -c a b > c makes two). */
            decoder->in_member = 0;
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

/* libzstd's loop: ZSTD_decompressStream returns 0 exactly when a frame is complete and flushed. */
static long zstd_step(carchive_decoder *decoder, const void *input, size_t input_size, int finished_input,
                      void *output, size_t output_size, size_t *consumed, int *done, const char **message) {
    ZSTD_inBuffer in = { input, input_size, 0 };
    ZSTD_outBuffer out = { output, output_size, 0 };
    while (out.pos < out.size) {
        if (in.pos == in.size && !decoder->in_member) {
            if (finished_input) *done = 1;
            break;
        }
        size_t before_in = in.pos, before_out = out.pos;
        size_t result = ZSTD_decompressStream(decoder->zstd, &out, &in);
        if (ZSTD_isError(result)) { *message = ZSTD_getErrorName(result); return -1; }
        decoder->in_member = result != 0;
        if (in.pos == before_in && out.pos == before_out) {
            /* No progress: more input is needed (or, with none left, the frame was cut short). */
            if (in.pos == in.size && finished_input && decoder->in_member) { *consumed = in.pos; return -2; }
            break;
        }
    }
    *consumed = in.pos;
    return (long)out.pos;
}

long carchive_decoder_step(carchive_decoder *decoder, const void *input, size_t input_size, int finished_input,
                           void *output, size_t output_size, size_t *consumed, int *done, const char **message) {
    *consumed = 0;
    *done = 0;
    *message = NULL;
    /* zlib counts in uInt: feed at most 1 GiB at a time. */
    if (input_size > (1u << 30)) input_size = 1u << 30;
    if (output_size > (1u << 30)) output_size = 1u << 30;
    if (decoder->format == CARCHIVE_ZSTD)
        return zstd_step(decoder, input, input_size, finished_input, output, output_size, consumed, done, message);
    decoder->z.next_in = (Bytef *)input;
    decoder->z.avail_in = (uInt)input_size;
    decoder->z.next_out = output;
    decoder->z.avail_out = (uInt)output_size;
    return gzip_step(decoder, input_size, finished_input, output_size, consumed, done, message);
}

void carchive_decoder_free(carchive_decoder *decoder) {
    if (!decoder) return;
    if (decoder->format == CARCHIVE_GZIP) inflateEnd(&decoder->z);
    ZSTD_freeDCtx(decoder->zstd);
    free(decoder);
}
