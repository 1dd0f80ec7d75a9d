/*
 * http: a small static HTTP/1.1 server for the server benchmarks — what a web app's front looks
 * like to a load generator (wrk), small enough for the guest image (static, no libraries).
 *
 *   http [PORT] [BODY_BYTES]   serve on PORT (default 80) every GET and HEAD with 200 and a
 *                              fixed body of BODY_BYTES bytes (default 13: "hello, world\n"
 *                              for 13; else that many 'x' and a newline), until SIGTERM or
 *                              SIGINT; then print `http requests=N connections=M` and exit 0.
 *
 * Once it accepts connections it prints `http: accepting on port PORT at ADDRESS...` (its IPv4
 * addresses, loopback last: where a client finds it in a container on a bridge or a VM). The
 * benchmark's cold start is still measured by a client polling until it is answered.
 *
 * One thread, epoll, non-blocking sockets; HTTP/1.1 keep-alive (HTTP/1.0 closes unless the
 * request asks for keep-alive); pipelined requests are answered in order. Clients are hostile: a
 * request head over 8 KiB gets 431, a malformed request line 400, another method 405, and the
 * connection is closed after each of these; at most 4096 connections (more are accepted and
 * closed at once); a client that stops reading keeps at most 64 KiB of answers queued, then it
 * is dropped.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNECTIONS 4096
#define HEAD_LIMIT 8192
#define OUT_LIMIT 65536
#define MAX_BODY (OUT_LIMIT - 512)  /* an answer fits the queue */

struct connection {
    int fd;
    size_t in_length;
    char in[HEAD_LIMIT];
    size_t out_length, out_sent;
    char *out;            /* OUT_LIMIT bytes, allocated with the connection */
    int close_after;      /* close once `out` is sent */
};

static struct connection *connections[MAX_CONNECTIONS];
static char *body;
static size_t body_length;
static unsigned long long requests, accepted;

static void drop(int epoll, struct connection *c) {
    epoll_ctl(epoll, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    for (int i = 0; i < MAX_CONNECTIONS; i++) if (connections[i] == c) connections[i] = NULL;
    free(c->out);
    free(c);
}

/* Queues `length` bytes of answer; 0 when they do not fit (the client is not reading). */
static int queue(struct connection *c, const char *data, size_t length) {
    if (c->out_sent > 0 && c->out_sent == c->out_length) c->out_sent = c->out_length = 0;
    if (c->out_length + length > OUT_LIMIT) return 0;
    memcpy(c->out + c->out_length, data, length);
    c->out_length += length;
    return 1;
}

static int answer(struct connection *c, int status, const char *reason, int with_body, int keep_alive) {
    char head[256];
    size_t length = with_body && status == 200 ? body_length : 0;
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nServer: tandem-http\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n%s\r\n", status, reason, status == 200 ? body_length : 0,
                     keep_alive ? "" : "Connection: close\r\n");
    if (!queue(c, head, (size_t)n)) return 0;
    if (length && !queue(c, body, length)) return 0;
    if (!keep_alive) c->close_after = 1;
    return 1;
}

/* The value of header `name` in `head` (NUL-terminated; names compared without case) into
 * `value` (cut at its size); 0 when there is no such header. */
static int header(const char *head, const char *name, char *value, size_t size) {
    size_t name_length = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        const char *start = line + 2;
        if (strncasecmp(start, name, name_length) == 0 && start[name_length] == ':') {
            start += name_length + 1;
            while (*start == ' ' || *start == '\t') start++;
            const char *end = strstr(start, "\r\n");
            size_t length = end ? (size_t)(end - start) : strlen(start);
            if (length >= size) length = size - 1;
            memcpy(value, start, length);
            value[length] = 0;
            return 1;
        }
    }
    return 0;
}

/* Answers every complete request head in `c->in`; 0 when the connection must go now. */
static int serve(struct connection *c) {
    for (;;) {
        if (c->close_after) return 1;
        char *end = memmem(c->in, c->in_length, "\r\n\r\n", 4);
        if (!end) {
            if (c->in_length == HEAD_LIMIT) return answer(c, 431, "Request Header Fields Too Large", 0, 0);
            return 1;
        }
        size_t head_length = (size_t)(end - c->in) + 4;
        char head[HEAD_LIMIT + 1];
        memcpy(head, c->in, head_length - 2);
        head[head_length - 2] = 0;
        memmove(c->in, c->in + head_length, c->in_length - head_length);
        c->in_length -= head_length;

        char method[16], target[2048], version[16];
        if (sscanf(head, "%15s %2047s HTTP/%15s", method, target, version) != 3 || target[0] != '/'
            || (strcmp(version, "1.1") != 0 && strcmp(version, "1.0") != 0)) {
            return answer(c, 400, "Bad Request", 0, 0);
        }
        /* A request with a body is not one this server takes (no uploads): refused and closed. */
        char value[256];
        if (header(head, "Content-Length", value, sizeof value) && strcmp(value, "0") != 0) return answer(c, 400, "Bad Request", 0, 0);
        if (header(head, "Transfer-Encoding", value, sizeof value)) return answer(c, 400, "Bad Request", 0, 0);
        int connection = header(head, "Connection", value, sizeof value);
        int keep_alive = strcmp(version, "1.1") == 0 ? !(connection && strcasestr(value, "close"))
                                                     : connection && strcasestr(value, "keep-alive") != NULL;
        requests++;
        int get = strcmp(method, "GET") == 0, head_only = strcmp(method, "HEAD") == 0;
        if (!get && !head_only) {
            if (!answer(c, 405, "Method Not Allowed", 0, 0)) return 0;
            continue;
        }
        if (!answer(c, 200, "OK", get, keep_alive)) return 0;
    }
}

/* Sends what is queued; 0 when the connection must go (error, or done and closing). */
static int flush(int epoll, struct connection *c) {
    while (c->out_sent < c->out_length) {
        ssize_t n = send(c->fd, c->out + c->out_sent, c->out_length - c->out_sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct epoll_event event = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c };
            epoll_ctl(epoll, EPOLL_CTL_MOD, c->fd, &event);
            return 1;
        }
        if (n <= 0) return 0;
        c->out_sent += (size_t)n;
    }
    c->out_sent = c->out_length = 0;
    struct epoll_event event = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
    epoll_ctl(epoll, EPOLL_CTL_MOD, c->fd, &event);
    return !c->close_after;
}

static void accept_all(int epoll, int listener) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        accepted++;
        int slot = -1;
        for (int i = 0; i < MAX_CONNECTIONS && slot < 0; i++) if (!connections[i]) slot = i;
        struct connection *c = slot >= 0 ? calloc(1, sizeof *c) : NULL;
        if (c) c->out = malloc(OUT_LIMIT);
        if (!c || !c->out) {
            if (c) free(c);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->fd = fd;
        connections[slot] = c;
        struct epoll_event event = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
        if (epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) != 0) drop(epoll, c);
    }
}

int main(int argc, char **argv) {
    long port = argc > 1 ? strtol(argv[1], NULL, 10) : 80;
    long bytes = argc > 2 ? strtol(argv[2], NULL, 10) : 13;
    if (port < 1 || port > 65535 || bytes < 0 || bytes > MAX_BODY) {
        fprintf(stderr, "usage: http [PORT 1-65535] [BODY_BYTES 0-%d]\n", MAX_BODY);
        return 2;
    }
    body_length = (size_t)bytes;
    body = malloc(body_length + 1);
    if (bytes == 13) memcpy(body, "hello, world\n", 13);
    else if (bytes > 0) { memset(body, 'x', body_length); body[body_length - 1] = '\n'; }

    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigprocmask(SIG_BLOCK, &signals, NULL);
    int signal_fd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_ANY) };
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 1024) != 0) {
        fprintf(stderr, "http: listen on port %ld: %s\n", port, strerror(errno));
        return 1;
    }
    int epoll = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event event = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
    static int signal_marker;
    struct epoll_event signal_event = { .events = EPOLLIN, .data.ptr = &signal_marker };
    if (signal_fd >= 0) epoll_ctl(epoll, EPOLL_CTL_ADD, signal_fd, &signal_event);
    printf("http: accepting on port %ld at", port);
    struct ifaddrs *interfaces = NULL;
    if (getifaddrs(&interfaces) == 0) {
        for (int loopback = 0; loopback < 2; loopback++) {
            for (struct ifaddrs *i = interfaces; i; i = i->ifa_next) {
                if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
                struct in_addr ip = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
                if ((ntohl(ip.s_addr) >> 24 == 127) != loopback) continue;
                char text[INET_ADDRSTRLEN];
                printf(" %s", inet_ntop(AF_INET, &ip, text, sizeof text));
            }
        }
        freeifaddrs(interfaces);
    }
    printf("\n");
    fflush(stdout);

    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(epoll, events, 256, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { perror("http: epoll_wait"); return 1; }
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == &signal_marker) {
                printf("http requests=%llu connections=%llu\n", requests, accepted);
                fflush(stdout);
                return 0;
            }
            if (events[i].data.ptr == NULL) { accept_all(epoll, listener); continue; }
            struct connection *c = events[i].data.ptr;
            int ended = 0;
            if (events[i].events & EPOLLIN) {
                for (;;) {
                    if (c->in_length == HEAD_LIMIT) break;
                    ssize_t got = recv(c->fd, c->in + c->in_length, HEAD_LIMIT - c->in_length, 0);
                    if (got > 0) { c->in_length += (size_t)got; continue; }
                    if (got < 0 && errno == EINTR) continue;
                    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                    ended = 1;  /* EOF or error: answer what came, then go */
                    break;
                }
                if (!serve(c)) { drop(epoll, c); continue; }
                if (ended) c->close_after = 1;
            }
            if (!flush(epoll, c) || (events[i].events & (EPOLLERR | EPOLLHUP))) drop(epoll, c);
        }
    }
}
