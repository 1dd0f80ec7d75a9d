/*
 * libFuzzer target for the guest image's http workload: whatever a client sends, in whatever
 * pieces, goes through the server's request reader (`serve`) and answer queue exactly as from a
 * socket, with AddressSanitizer watching (make fuzz: clang -fsanitize=fuzzer,address). The input
 * is split into pieces at 0xff bytes, each piece arriving as one recv().
 */
#define main http_main
#include "../guest-images/workloads/http/http.c"
#undef main

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static struct connection c;
    static char out[OUT_LIMIT];
    if (!body) {
        body_length = 13;
        body = malloc(body_length);
        memcpy(body, "hello, world\n", 13);
    }
    memset(&c, 0, sizeof c);
    c.out = out;
    size_t start = 0;
    while (start <= size) {
        size_t end = start;
        while (end < size && data[end] != 0xff) end++;
        size_t piece = end - start;
        if (piece > HEAD_LIMIT - c.in_length) piece = HEAD_LIMIT - c.in_length;  /* as recv() is bounded */
        memcpy(c.in + c.in_length, data + start, piece);
        c.in_length += piece;
        if (!serve(&c) || c.close_after) break;
        c.out_sent = c.out_length;  /* the client read everything */
        start = end + 1;
    }
    return 0;
}
