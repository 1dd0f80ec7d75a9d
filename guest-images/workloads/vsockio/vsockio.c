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
 *                             guest's port) and copy each connection to stdout, until killed
 *   vsockio echo-peer PATH PORT
 *                             connect to the VMM's socket PATH, `CONNECT PORT`, then send the
 *                             pattern until the guest closes, copying what comes back to stdout
 *                             (the guest echoes MiB: stdout is the pattern's first MiB); connect
 *                             again until no guest listens for 60 s, or killed
 * On the host of a vhost-vsock guest (QEMU's vhost-vsock-device: the host's own AF_VSOCK):
 *   vsockio vsock-sink PORT   the same as sink, listening on AF_VSOCK port PORT
 *   vsockio vsock-echo-peer CID PORT
 *                             the same as echo-peer, connecting to the guest CID's PORT
 *
 * Connecting is retried for 60 s either way (the other side may start listening a moment later);
 * accepting waits at most 30 s in the guest. A send counts from connect until the host closed its
 * side after taking everything; the echo from accept to the last byte echoed.
 *
 * A restore from a snapshot resets every vsock connection (the device's
 * VIRTIO_VSOCK_EVENT_TRANSPORT_RESET: the host ends belonged to the VMM that took the snapshot),
 * and applications reconnect, as on Firecracker. So does vsockio: a transfer whose connection was
 * reset starts again on a new one (at most 3 times; the result line then says `resets=N`), and
 * the host modes take the next connection after one ends, keeping only the last one's bytes
 * (stdout, a file, is truncated when a new connection's first byte comes).
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

/* How many times a transfer starts again after its connection was reset. */
enum { max_resets = 3 };

/* Whether a failed transfer's errno says the transport reset its connection (the socket is closed
 * with ECONNRESET; later calls on it say ENOTCONN or EPIPE), rather than the peer failing. */
static int was_reset(int error) { return error == ECONNRESET || error == ENOTCONN || error == EPIPE; }

/* Guest: sends `mib` MiB to the host's `port`, again on a new connection after a reset
 * (`*resets` counts them); MiB/s of the last, or -1. */
static double send_to_host(unsigned port, long mib, int *resets) {
    for (;;) {
        int sock = vsock_connect(VMADDR_CID_HOST, port);
        if (sock < 0) return -1;
        double rate = stream_send(sock, mib, "vsockio");
        if (rate >= 0) return rate;
        if (!was_reset(errno) || *resets == max_resets) return -1;
        ++*resets;
        fprintf(stderr, "vsockio: the connection to host port %u was reset: sending again\n", port);
    }
}

/* Guest: accepts a connection on `port`, reads `mib` MiB, checks them and echoes them (again on
 * the next connection after a reset, counted in `*resets`); MiB/s of the last, or -1. */
static double echo_on(unsigned port, long mib, int *verified, int *resets) {
    int listener = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_vm address = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port };
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 1) != 0) {
        fprintf(stderr, "vsockio: listen on vsock port %u: %s\n", port, strerror(errno));
        return -1;
    }
    for (;;) {
        struct pollfd wait = { .fd = listener, .events = POLLIN };
        if (poll(&wait, 1, 30000) != 1) { fprintf(stderr, "vsockio: nobody connected to vsock port %u within 30 s\n", port); break; }
        int sock = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (sock < 0) { fprintf(stderr, "vsockio: accept: %s\n", strerror(errno)); break; }
        double rate = stream_receive(sock, mib, 1, verified, "vsockio");
        if (rate >= 0) { close(listener); return rate; }
        if (!was_reset(errno) || *resets == max_resets) break;
        ++*resets;
        fprintf(stderr, "vsockio: the connection on vsock port %u was reset: taking the next one\n", port);
    }
    close(listener);
    return -1;
}

static int unix_socket(const char *path, struct sockaddr_un *address) {
    memset(address, 0, sizeof *address);
    address->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof address->sun_path) { fprintf(stderr, "vsockio: %s: path too long\n", path); return -1; }
    strcpy(address->sun_path, path);
    return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

/* Host: whether the next byte written to stdout is a new connection's first (stdout then starts
 * again: only the last connection's bytes are kept). */
static int fresh_connection;

/* Host: writes `n` bytes a connection brought to stdout; at a new connection's first byte, empties
 * stdout first (a file; a pipe just goes on). 0, or -1 when stdout fails. */
static int keep(const void *data, size_t n) {
    if (fresh_connection) {
        fresh_connection = 0;
        if (ftruncate(1, 0) == 0) lseek(1, 0, SEEK_SET);
    }
    return write_all(1, data, n);
}

/* Host: copies each connection `listener` accepts to stdout in turn (the last one's bytes kept),
 * until killed; 1 when accept or stdout fails. */
static int copy_out(int listener) {
    for (;;) {
        int sock = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (sock < 0) { if (errno == EINTR) continue; close(listener); return 1; }
        fresh_connection = 1;
        for (;;) {
            ssize_t n = read(sock, block, sizeof block);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            if (keep(block, (size_t)n) != 0) { close(sock); close(listener); return 1; }
        }
        close(sock);
    }
}

/* Host: listens on the Unix socket `path` and copies its connections to stdout (copy_out). */
static int sink(const char *path) {
    struct sockaddr_un address;
    int listener = unix_socket(path, &address);
    unlink(path);
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 1) != 0) {
        fprintf(stderr, "vsockio: listen at %s: %s\n", path, strerror(errno));
        return 1;
    }
    return copy_out(listener);
}

/* Host of a vhost-vsock guest: as sink, on AF_VSOCK port `port`. */
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

/* Host: CONNECT to the guest's `port` through the VMM's socket `path` (retried for 60 s); the
 * connection, or -1. */
static int connect_through(const char *path, unsigned port) {
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
        if (now() - start > 60) { fprintf(stderr, "vsockio: no guest listener on vsock port %u through %s\n", port, path); return -1; }
        usleep(100000);
    }
    return sock;
}

/* Host: connects through the VMM's socket `path` to the guest's `port`, sends the pattern until
 * the guest closes while copying its echo to stdout, and connects again (the last connection's
 * echo kept) until no guest listens for 60 s or it is killed. */
static int echo_peer(const char *path, unsigned port) {
    for (int sock; (sock = connect_through(path, port)) >= 0;) {
        if (pump(sock) != 0) return 1;
    }
    return 0;
}

/* Host of a vhost-vsock guest: connects to `cid`:`port` (retrying), then as echo_peer. */
static int vsock_echo_peer(unsigned cid, unsigned port) {
    for (int sock; (sock = vsock_connect(cid, port)) >= 0;) {
        if (pump(sock) != 0) return 1;
    }
    return 0;
}

/* Host: sends the pattern on `sock` until the guest closes (or a minute passes without a byte
 * either way), copying what comes back to stdout; closes `sock`. 1 when stdout fails. */
static int pump(int sock) {
    fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK);
    fresh_connection = 1;
    static uint64_t echo[PATTERN_BLOCK / 8];
    long index = 0;
    size_t offset = sizeof block;  /* the part of `block` sent: all, so the next is made */
    int sending = 1;
    for (;;) {
        struct pollfd wait = { .fd = sock, .events = POLLIN | (sending ? POLLOUT : 0) };
        if (poll(&wait, 1, 60000) <= 0) break;
        if (wait.revents & POLLIN || wait.revents & (POLLHUP | POLLERR)) {
            ssize_t n = read(sock, echo, sizeof echo);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;
            if (n > 0 && keep(echo, (size_t)n) != 0) { close(sock); return 1; }
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
        int verified = 0, resets = 0;
        double tx = send_to_host(port, mib, &resets);
        if (tx < 0) return 1;
        double echo = echo_on(port + 1, mib, &verified, &resets);
        if (echo < 0) return 1;
        char reset_text[32] = "";
        if (resets) snprintf(reset_text, sizeof reset_text, " resets=%d", resets);
        printf("vsockio mib=%ld tx_mib_s=%.1f echo_mib_s=%.1f verified=%s%s\n", mib, tx, echo, verified ? "yes" : "no", reset_text);
        return verified ? 0 : 1;
    }
    fprintf(stderr, "usage: vsockio both PORT [MiB] | sink PATH | echo-peer PATH PORT | vsock-sink PORT | vsock-echo-peer CID PORT\n");
    return 2;
}
