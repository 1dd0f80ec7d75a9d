/*
 * netio: TCP throughput between a sandbox and its host, both ways, with the data checked — what
 * iperf3 measures, small enough for the guest image (static, no libraries).
 *
 *   netio both HOST PORT [MiB]   send MiB (default 32) to HOST:PORT, then accept on PORT+1 and
 *                                receive MiB from the host, checking them:
 *                                →  netio mib=N tx_mib_s=T rx_mib_s=R verified=yes
 *   netio send HOST PORT [MiB]   the first half only    →  netio mib=N tx_mib_s=T
 *   netio recv PORT [MiB]        the second half only   →  netio mib=N rx_mib_s=R verified=yes
 *   netio pattern [MiB]          the bytes it sends and expects, on stdout (for the host side)
 *   netio sink PORT              accept one connection on PORT and copy what comes to stdout
 *                                until the sender closes (the host side of `both`)
 *   netio udp-recv PORT [SECONDS]  print the first datagram that arrives on UDP PORT (whether a
 *                                published UDP port forwards); status 1 after SECONDS (10) without
 *
 * The data is the workloads' pattern (pattern.h). A send counts from connect until the peer has
 * closed its side after taking everything (so the figure is delivered bytes, not buffered ones);
 * a receive from accept to the last byte. Connecting is retried for 60 s (the host side may
 * start listening a moment later); accepting waits at most 30 s.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../stream.h"

/* Sends `mib` MiB to host:port; returns MiB/s, or -1. */
static double send_to(const char *host, int port, long mib) {
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) { fprintf(stderr, "netio: %s is not an IPv4 address\n", host); return -1; }
    int sock = -1;
    double start = now();
    for (;;) {
        sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (sock >= 0 && connect(sock, (struct sockaddr *)&address, sizeof address) == 0) break;
        int error = errno;
        if (sock >= 0) close(sock);
        if (now() - start > 60) { fprintf(stderr, "netio: connect %s:%d: %s\n", host, port, strerror(error)); return -1; }
        usleep(100000);
    }
    return stream_send(sock, mib, "netio");
}

/* Accepts one connection on `port` (waiting at most `wait_ms`); the socket, or -1. */
static int accept_on(int port, int wait_ms) {
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_ANY) };
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 1) != 0) {
        fprintf(stderr, "netio: listen on %d: %s\n", port, strerror(errno));
        return -1;
    }
    struct pollfd wait = { .fd = listener, .events = POLLIN };
    if (poll(&wait, 1, wait_ms) != 1) { fprintf(stderr, "netio: nobody connected to port %d within %d s\n", port, wait_ms / 1000); return -1; }
    int sock = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    close(listener);
    if (sock < 0) fprintf(stderr, "netio: accept: %s\n", strerror(errno));
    return sock;
}

/* Accepts one connection on `port` and reads `mib` MiB, checking them; MiB/s, or -1. */
static double receive_on(int port, long mib, int *verified) {
    int sock = accept_on(port, 30000);
    if (sock < 0) return -1;
    return stream_receive(sock, mib, 0, verified, "netio");
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "pattern") == 0) {
        long mib = argc > 2 ? atol(argv[2]) : 32;
        for (long i = 0; i < mib; i++) {
            pattern_block(block, i);
            if (write_all(1, block, sizeof block) != 0) return 1;
        }
        return 0;
    }
    if (strcmp(mode, "sink") == 0 && argc > 2) {
        int sock = accept_on(atoi(argv[2]), 600000);
        return sock < 0 ? 1 : stream_copy_out(sock);
    }
    if (strcmp(mode, "udp-recv") == 0 && argc > 2) {
        int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])), .sin_addr.s_addr = htonl(INADDR_ANY) };
        if (sock < 0 || bind(sock, (struct sockaddr *)&address, sizeof address) != 0) { perror("netio: udp bind"); return 1; }
        struct pollfd ready = { .fd = sock, .events = POLLIN };
        if (poll(&ready, 1, (argc > 3 ? atoi(argv[3]) : 10) * 1000) != 1) { fprintf(stderr, "netio: no datagram on %s\n", argv[2]); return 1; }
        ssize_t got = recv(sock, block, sizeof block, 0);
        if (got <= 0) return 1;
        return write_all(1, block, (size_t)got) == 0 ? 0 : 1;
    }
    int verified = 1;
    if (strcmp(mode, "send") == 0 && argc > 3) {
        long mib = argc > 4 ? atol(argv[4]) : 32;
        double tx = send_to(argv[2], atoi(argv[3]), mib);
        if (tx < 0) return 1;
        printf("netio mib=%ld tx_mib_s=%.1f\n", mib, tx);
        return 0;
    }
    if (strcmp(mode, "recv") == 0 && argc > 2) {
        long mib = argc > 3 ? atol(argv[3]) : 32;
        double rx = receive_on(atoi(argv[2]), mib, &verified);
        if (rx < 0) return 1;
        printf("netio mib=%ld rx_mib_s=%.1f verified=%s\n", mib, rx, verified ? "yes" : "no");
        return verified ? 0 : 1;
    }
    if (strcmp(mode, "both") == 0 && argc > 3) {
        long mib = argc > 4 ? atol(argv[4]) : 32;
        int port = atoi(argv[3]);
        double tx = send_to(argv[2], port, mib);
        if (tx < 0) return 1;
        double rx = receive_on(port + 1, mib, &verified);
        if (rx < 0) return 1;
        printf("netio mib=%ld tx_mib_s=%.1f rx_mib_s=%.1f verified=%s\n", mib, tx, rx, verified ? "yes" : "no");
        return verified ? 0 : 1;
    }
    fprintf(stderr, "usage: netio both HOST PORT [MiB] | send HOST PORT [MiB] | recv PORT [MiB] | pattern [MiB] | sink PORT | udp-recv PORT [SECONDS]\n");
    return 2;
}
