/*
 * vsockio: a guest's AF_VSOCK streams to and from its host, with the data checked — the vsock
 * half of what netio does over TCP. The host side of a Tandem microVM's vsock is a Unix socket
 * (Firecracker's model, `tandem vm run --vsock PATH`), so the host modes speak that protocol.
 *
 * In the guest:
 *   vsockio both PORT [MiB]   send MiB (default 32) to the host's PORT (CID 2), then accept on
 *                             PORT+1, read MiB, check them and echo every byte back:
 *                             →  vsockio mib=N tx_mib_s=T echo_mib_s=E verified=yes
 * On the host of Tandem's VMM (`--vsock PATH`: Unix sockets, Firecracker's model):
 *   vsockio sink PATH         listen on the Unix socket PATH (the VMM's PATH_PORT for the
 *                             guest's port), accept one connection, copy it to stdout
 *   vsockio echo-peer PATH PORT
 *                             connect to the VMM's socket PATH, `CONNECT PORT`, then send the
 *                             pattern until the guest closes, copying what comes back to stdout
 *                             (the guest echoes MiB: stdout is the pattern's first MiB)
 * On the host of a vhost-vsock guest (QEMU's vhost-vsock-device: the host's own AF_VSOCK):
 *   vsockio vsock-sink PORT   the same as sink, listening on AF_VSOCK port PORT
 *   vsockio vsock-echo-peer CID PORT
 *                             the same as echo-peer, connecting to the guest CID's PORT
 *
 * Connecting is retried for 60 s either way (the other side may start listening a moment later);
 * accepting waits at most 30 s in the guest. A send counts from connect until the host closed its
 * side after taking everything; the echo from accept to the last byte echoed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "../stream.h"

/* Guest or host: an AF_VSOCK stream to `cid`:`port`, connecting retried for 60 s; -1 after that. */
static int vsock_connect(unsigned cid, unsigned port) {
    struct sockaddr_vm address = { .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
    double start = now();
    for (;;) {
        int sock = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (sock >= 0 && connect(sock, (struct sockaddr *)&address, sizeof address) == 0) return sock;
        int error = errno;
        if (sock >= 0) close(sock);
        if (now() - start > 60) { fprintf(stderr, "vsockio: connect to vsock %u:%u: %s\n", cid, port, strerror(error)); return -1; }
        usleep(100000);
    }
}

/* Guest: accepts one connection on `port`, reads `mib` MiB, checks them and echoes them; MiB/s, or -1. */
static double echo_on(unsigned port, long mib, int *verified) {
    int listener = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_vm address = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port };
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 1) != 0) {
        fprintf(stderr, "vsockio: listen on vsock port %u: %s\n", port, strerror(errno));
        return -1;
    }
    struct pollfd wait = { .fd = listener, .events = POLLIN };
    if (poll(&wait, 1, 30000) != 1) { fprintf(stderr, "vsockio: nobody connected to vsock port %u within 30 s\n", port); return -1; }
    int sock = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    close(listener);
    if (sock < 0) { fprintf(stderr, "vsockio: accept: %s\n", strerror(errno)); return -1; }
    return stream_receive(sock, mib, 1, verified, "vsockio");
}

static int unix_socket(const char *path, struct sockaddr_un *address) {
    memset(address, 0, sizeof *address);
    address->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof address->sun_path) { fprintf(stderr, "vsockio: %s: path too long\n", path); return -1; }
    strcpy(address->sun_path, path);
    return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

/* Host: copies one accepted connection of `listener` to stdout. */
static int copy_out(int listener) {
    int sock = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    close(listener);
    return sock < 0 ? 1 : stream_copy_out(sock);
}

/* Host: accepts one connection on the Unix socket `path` and copies it to stdout. */
static int sink(const char *path) {
    struct sockaddr_un address;
    int listener = unix_socket(path, &address);
    unlink(path);
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 1) != 0) {
        fprintf(stderr, "vsockio: listen at %s: %s\n", path, strerror(errno));
        return 1;
    }
    int status = copy_out(listener);
    unlink(path);
    return status;
}

/* Host of a vhost-vsock guest: accepts one AF_VSOCK connection on `port` and copies it to stdout. */
static int vsock_sink(unsigned port) {
    int listener = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_vm address = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port };
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 1) != 0) {
        fprintf(stderr, "vsockio: listen on vsock port %u: %s\n", port, strerror(errno));
        return 1;
    }
    return copy_out(listener);
}

/* Host: reads the VMM's one-line answer to CONNECT; 0 when it is "OK <port>". */
static int read_ok(int sock) {
    char line[64];
    size_t length = 0;
    while (length + 1 < sizeof line) {
        ssize_t n = read(sock, line + length, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        if (line[length] == '\n') break;
        length++;
    }
    line[length] = 0;
    return strncmp(line, "OK ", 3) == 0 ? 0 : -1;
}

static int pump(int sock);

/* Host: CONNECT to the guest's `port` through the VMM's socket `path`, then send the pattern
 * until the guest closes while copying its echo to stdout. */
static int echo_peer(const char *path, unsigned port) {
    int sock = -1;
    double start = now();
    for (;;) {
        struct sockaddr_un address;
        sock = unix_socket(path, &address);
        if (sock >= 0 && connect(sock, (struct sockaddr *)&address, sizeof address) == 0) {
            char command[32];
            int length = snprintf(command, sizeof command, "CONNECT %u\n", port);
            if (write_all(sock, command, (size_t)length) == 0 && read_ok(sock) == 0) break;
        }
        if (sock >= 0) close(sock);
        if (now() - start > 60) { fprintf(stderr, "vsockio: no guest listener on vsock port %u through %s\n", port, path); return 1; }
        usleep(100000);
    }
    return pump(sock);
}

/* Host of a vhost-vsock guest: connects to `cid`:`port` (retrying), then as echo_peer. */
static int vsock_echo_peer(unsigned cid, unsigned port) {
    int sock = vsock_connect(cid, port);
    return sock < 0 ? 1 : pump(sock);
}

/* Host: sends the pattern on `sock` until the guest closes, copying what comes back to stdout. */
static int pump(int sock) {
    fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK);
    static uint64_t echo[PATTERN_BLOCK / 8];
    long index = 0;
    size_t offset = sizeof block;  /* the part of `block` sent: all, so the next is made */
    int sending = 1;
    for (;;) {
        struct pollfd wait = { .fd = sock, .events = POLLIN | (sending ? POLLOUT : 0) };
        if (poll(&wait, 1, 60000) <= 0) return 1;
        if (wait.revents & POLLIN || wait.revents & (POLLHUP | POLLERR)) {
            ssize_t n = read(sock, echo, sizeof echo);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;
            if (n > 0 && write_all(1, echo, (size_t)n) != 0) return 1;
        }
        if (sending && wait.revents & POLLOUT) {
            if (offset == sizeof block) {
                if (index == 4096) { sending = 0; continue; }
                pattern_block(block, index++);
                offset = 0;
            }
            ssize_t n = send(sock, (char *)block + offset, sizeof block - offset, MSG_NOSIGNAL);
            if (n > 0) offset += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR) sending = 0;  /* the guest closed: its echo may still come */
        }
    }
    close(sock);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "sink") == 0 && argc > 2) return sink(argv[2]);
    if (strcmp(mode, "echo-peer") == 0 && argc > 3) return echo_peer(argv[2], (unsigned)atoi(argv[3]));
    if (strcmp(mode, "vsock-sink") == 0 && argc > 2) return vsock_sink((unsigned)atoi(argv[2]));
    if (strcmp(mode, "vsock-echo-peer") == 0 && argc > 3) return vsock_echo_peer((unsigned)atoi(argv[2]), (unsigned)atoi(argv[3]));
    if (strcmp(mode, "both") == 0 && argc > 2) {
        unsigned port = (unsigned)atoi(argv[2]);
        long mib = argc > 3 ? atol(argv[3]) : 32;
        int verified = 0;
        int sock = vsock_connect(VMADDR_CID_HOST, port);
        double tx = sock < 0 ? -1 : stream_send(sock, mib, "vsockio");
        if (tx < 0) return 1;
        double echo = echo_on(port + 1, mib, &verified);
        if (echo < 0) return 1;
        printf("vsockio mib=%ld tx_mib_s=%.1f echo_mib_s=%.1f verified=%s\n", mib, tx, echo, verified ? "yes" : "no");
        return verified ? 0 : 1;
    }
    fprintf(stderr, "usage: vsockio both PORT [MiB] | sink PATH | echo-peer PATH PORT | vsock-sink PORT | vsock-echo-peer CID PORT\n");
    return 2;
}
