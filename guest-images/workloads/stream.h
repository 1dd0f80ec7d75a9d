/*
 * What the stream workloads share (netio over TCP, vsockio over vsock): a clock, whole writes,
 * and the workloads' pattern (pattern.h) sent and received over a connected stream socket,
 * checked. A send counts from its start until the peer has closed its side after taking
 * everything (delivered bytes, not buffered ones); a receive from its start to the last byte.
 * A failed send or receive returns -1 with errno saying why (0: the peer closed early).
 */
#ifndef TANDEM_STREAM_H
#define TANDEM_STREAM_H
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pattern.h"

static uint64_t block[PATTERN_BLOCK / 8], check[PATTERN_BLOCK / 8];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int write_all(int fd, const void *data, size_t length) {
    for (size_t done = 0; done < length;) {
        ssize_t n = write(fd, (const char *)data + done, length - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        done += (size_t)n;
    }
    return 0;
}

/* Copies `sock` to stdout until end of file (a host side's sink); closes `sock`. 0, or 1 when
 * stdout fails. */
static inline int stream_copy_out(int sock) {
    for (;;) {
        ssize_t n = read(sock, block, sizeof block);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (write_all(1, block, (size_t)n) != 0) { close(sock); return 1; }
    }
    close(sock);
    return 0;
}

/* Sends `mib` MiB of the pattern on `sock`, shuts its write side and waits for the peer to close;
 * closes `sock`. MiB/s, or -1 (`who` names the program in the message). */
static double stream_send(int sock, long mib, const char *who) {
    double start = now();
    for (long i = 0; i < mib; i++) {
        pattern_block(block, i);
        if (write_all(sock, block, sizeof block) != 0) {
            int error = errno;
            fprintf(stderr, "%s: send: %s\n", who, strerror(error));
            close(sock);
            errno = error;
            return -1;
        }
    }
    shutdown(sock, SHUT_WR);
    char sink[256];
    ssize_t n;
    while ((n = read(sock, sink, sizeof sink)) > 0 || (n < 0 && errno == EINTR)) { }
    if (n < 0) {
        /* The connection broke before the peer closed: what was sent may not all have arrived. */
        int error = errno;
        fprintf(stderr, "%s: send: waiting for the peer to close: %s\n", who, strerror(error));
        close(sock);
        errno = error;
        return -1;
    }
    double seconds = now() - start;
    close(sock);
    return mib / seconds;
}

/* Reads `mib` MiB from `sock` and checks them against the pattern (*verified: all matched); with
 * `echo`, writes every byte back as it comes. Closes `sock`. MiB/s, or -1. */
static double stream_receive(int sock, long mib, int echo, int *verified, const char *who) {
    double start = now();
    *verified = 1;
    for (long i = 0; i < mib; i++) {
        size_t got = 0;
        while (got < sizeof check) {
            ssize_t n = read(sock, (char *)check + got, sizeof check - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                int error = n < 0 ? errno : 0;
                fprintf(stderr, "%s: the sender stopped after %ld MiB and %zu bytes%s%s\n", who, i, got,
                        error ? ": " : "", error ? strerror(error) : "");
                close(sock);
                errno = error;
                return -1;
            }
            if (echo && write_all(sock, (char *)check + got, (size_t)n) != 0) {
                int error = errno;
                fprintf(stderr, "%s: echo: %s\n", who, strerror(error));
                close(sock);
                errno = error;
                return -1;
            }
            got += (size_t)n;
        }
        pattern_block(block, i);
        if (memcmp(block, check, sizeof block) != 0) *verified = 0;
    }
    double seconds = now() - start;
    close(sock);
    return mib / seconds;
}
#endif
