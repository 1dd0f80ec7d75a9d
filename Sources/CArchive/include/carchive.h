/* CArchive: the two C libraries the image store reads layers with, behind calls Swift can import.
 *
 * - zlib: inflateInit2 is a macro (it passes zlib's version and the z_stream size), which Swift
 *   cannot import; the stream lives here, opaque to Swift. libzstd sits beside it behind the same
 *   step function, so the Swift side has one decompressing stream for both.
 * - OpenSSL's SHA-256 (libcrypto): it uses the CPU's SHA extensions where there are any (several
 *   times a portable implementation's speed); every blob and every layer is hashed on import.
 *
 * Nothing here touches files: the caller feeds bytes in and takes bytes out. */
#ifndef CARCHIVE_H
#define CARCHIVE_H

#include <stddef.h>
#include <stdint.h>

/** A SHA-256 in progress (opaque). */
typedef struct carchive_sha256 carchive_sha256;

/** A new SHA-256, or NULL when out of memory. */
carchive_sha256 *carchive_sha256_new(void);
void carchive_sha256_update(carchive_sha256 *hash, const void *bytes, size_t count);
/** Writes the 32-byte digest and frees the hash. */
void carchive_sha256_finish(carchive_sha256 *hash, uint8_t digest[32]);
/** Frees a hash that is not finished. */
void carchive_sha256_free(carchive_sha256 *hash);

/** Compressed formats a decoder reads: gzip (RFC 1952, zlib) and zstd (RFC 8878, libzstd). */
enum carchive_format { CARCHIVE_GZIP = 1, CARCHIVE_ZSTD = 2 };

/** A decompression in progress (opaque). Concatenated members (gzip) and frames (zstd) are read
 * as one stream, as gzip(1) and zstd(1) do. */
typedef struct carchive_decoder carchive_decoder;

/** A new decoder for `format`, or NULL when out of memory (or an unknown format). */
carchive_decoder *carchive_decoder_new(int format);
/** Feeds `input` (may be empty at the end of the input) and writes up to `output_size` bytes.
 * Returns the bytes written (0..output_size) and sets `*consumed` to the input bytes used;
 * -1 on corrupt data (`*message` says what the library saw), -2 when the input ended inside a
 * member or frame (`finished_input` set and nothing more to write). `*done` becomes 1 at the end
 * of the last member or frame when the input is exhausted. */
long carchive_decoder_step(carchive_decoder *decoder, const void *input, size_t input_size, int finished_input,
                           void *output, size_t output_size, size_t *consumed, int *done, const char **message);
void carchive_decoder_free(carchive_decoder *decoder);

#endif
