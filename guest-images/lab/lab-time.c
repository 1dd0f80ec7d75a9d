/*
 * lab-time: the stopwatch of the nested lab (`tandem lab nested`, run inside L1) and of the
 * launch benchmarks (scripts/bench_launch.py).
 *
 *   lab-time LABEL CMD ARGS...
 *
 * Starts CMD with its stdout and stderr on a pipe, copies everything it prints to our stdout,
 * and notes CLOCK_MONOTONIC at three points: just before posix_spawn, when a line starting with
 * the ready marker (TANDEM-READY) arrives, and when CMD has exited. Then prints one line:
 *
 *   LAB-TIME label=LABEL status=N ready_ms=R exit_ms=E maxrss_kib=K start_ns=S cpu_ms=C
 *
 * (ready_ms=-1 when the marker never came). LAB_TIME_MARKER=TEXT in the environment makes TEXT the
 * marker instead; LAB_TIME_READY_REGEX=RE makes ready the first line matching RE (POSIX extended):
 * `tandem bench --image --ready RE`, a user's program saying when it is ready. maxrss_kib is wait4's ru_maxrss of CMD: its own peak
 * resident set or that of a descendant it waited for. Being a small static program matters here:
 * Linux carries the spawning process's peak across exec into ru_maxrss, so a Python or shell
 * harness would report its own size instead. start_ns is the CLOCK_MONOTONIC reading at spawn, so
 * a program's own timestamps (a VMM's ready port) can be put on the same scale. cpu_ms is the user
 * plus system CPU time of CMD and the descendants it waited for (wait4's rusage). Every VMM the lab compares is measured by this same
 * program in the same way, so the figures differ only by what the VMMs do.
 *
 *   lab-time --first-response HOST PORT SECONDS [http|redis]
 *
 * The lab's server mode (`tandem lab nested --load`): polls HOST:PORT about every millisecond (a
 * fresh connection each time, connect and answer given 200 ms each: http's `GET /` until it
 * answers 200, or redis's `PING` until `+PONG`), then prints `LAB-FIRST-RESPONSE monotonic_ns=N` on the same clock as start_ns, so
 * spawn → first response is N - start_ns of the boot's LAB-TIME line. After SECONDS without an
 * answer it prints `LAB-FIRST-RESPONSE none` and exits 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <spawn.h>
#include <stdio.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* SIGINT and SIGTERM are passed on to the timed program, so stopping the stopwatch stops what it
 * times (which then cleans up after itself) instead of leaving it running. */
static volatile pid_t child_pid;
static void forward(int signal_number) {
    if (child_pid > 0) kill(child_pid, signal_number);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* One request over a fresh connection to `target` (http: `GET /`; redis: `PING`): whether it was
   answered (200, or +PONG), each step given 200 ms. */
static int answered(const struct sockaddr_in *target, int redis) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    int ok = 0;
    struct pollfd wait = {.fd = fd, .events = POLLOUT};
    int error = 0;
    socklen_t length = sizeof error;
    if (connect(fd, (const struct sockaddr *)target, sizeof *target) != 0 &&
        (errno != EINPROGRESS || poll(&wait, 1, 200) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0)) {
        close(fd);
        return 0;
    }
    const char *request = redis ? "PING\r\n" : "GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n";
    size_t request_length = strlen(request);
    char answer[16] = {0};
    wait.events = POLLIN;
    if (send(fd, request, request_length, MSG_NOSIGNAL) == (ssize_t)request_length && poll(&wait, 1, 200) == 1 && recv(fd, answer, sizeof answer - 1, 0) >= 5)
        ok = redis ? strncmp(answer, "+PONG", 5) == 0 : strncmp(answer, "HTTP/1.1 200", 12) == 0 || strncmp(answer, "HTTP/1.0 200", 12) == 0;
    close(fd);
    return ok;
}

static int first_response(const char *host, const char *port, const char *seconds, int redis) {
    struct sockaddr_in target = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    if (inet_pton(AF_INET, host, &target.sin_addr) != 1) { fprintf(stderr, "lab-time: %s: not an IPv4 address\n", host); return 2; }
    double deadline = now_ms() + atof(seconds) * 1e3;
    while (now_ms() < deadline) {
        if (answered(&target, redis)) {
            printf("LAB-FIRST-RESPONSE monotonic_ns=%.0f\n", now_ms() * 1e6);
            return 0;
        }
        usleep(1000);
    }
    printf("LAB-FIRST-RESPONSE none\n");
    return 1;
}

int main(int argc, char **argv) {
    if ((argc == 5 || argc == 6) && strcmp(argv[1], "--first-response") == 0)
        return first_response(argv[2], argv[3], argv[4], argc == 6 && strcmp(argv[5], "redis") == 0);
    if (argc < 3) {
        fprintf(stderr, "usage: lab-time LABEL CMD ARGS...\n");
        return 2;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) { perror("lab-time: pipe2"); return 2; }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 2);

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = forward;
    action.sa_flags = SA_RESTART;
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF);

    double start = now_ms(), ready = -1;
    pid_t pid;
    int error = posix_spawn(&pid, argv[2], &actions, &attributes, argv + 2, environ);
    child_pid = pid;
    close(fds[1]);
    if (error != 0) { fprintf(stderr, "lab-time: posix_spawn(%s): %s\n", argv[2], strerror(error)); return 2; }

    /* Scan for the marker at line starts while passing the bytes through. */
    const char *given = getenv("LAB_TIME_MARKER");
    const char *marker = given && *given ? given : "TANDEM-READY";
    size_t marker_length = strlen(marker);
    /* LAB_TIME_READY_REGEX: ready is the first line (without its newline; lines are cut at 4 KiB)
     * that matches this POSIX extended regular expression, instead of the marker. */
    const char *pattern = getenv("LAB_TIME_READY_REGEX");
    regex_t regex;
    int use_regex = pattern && *pattern;
    if (use_regex && regcomp(&regex, pattern, REG_EXTENDED | REG_NOSUB) != 0) {
        fprintf(stderr, "lab-time: LAB_TIME_READY_REGEX %s: not a regular expression\n", pattern);
        use_regex = 0;
    }
    char line[4097];
    size_t line_length = 0;
    size_t matched = 0;
    int at_line_start = 1;
    char buffer[4096];
    ssize_t n;
    while ((n = read(fds[0], buffer, sizeof buffer)) > 0) {
        for (ssize_t i = 0; i < n && ready < 0 && use_regex; i++) {
            if (buffer[i] != '\n' && buffer[i] != '\r') {
                if (line_length < sizeof line - 1) line[line_length++] = buffer[i];
                continue;
            }
            line[line_length] = 0;
            if (regexec(&regex, line, 0, NULL, 0) == 0) ready = now_ms();
            line_length = 0;
        }
        for (ssize_t i = 0; i < n && ready < 0 && !use_regex; i++) {
            char c = buffer[i];
            if (at_line_start || matched > 0) {
                if (c == marker[matched]) {
                    if (++matched == marker_length) ready = now_ms();
                    at_line_start = 0;
                    continue;
                }
                matched = 0;
            }
            at_line_start = c == '\n';
        }
        if (write(1, buffer, n) < 0) { /* our reader is gone: keep timing */ }
    }
    int status = 0;
    struct rusage usage;
    memset(&usage, 0, sizeof usage);
    while (wait4(pid, &status, 0, &usage) < 0) { }
    double exited = now_ms();
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    double cpu_ms = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e3 + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e3;
    printf("LAB-TIME label=%s status=%d ready_ms=%.3f exit_ms=%.3f maxrss_kib=%ld start_ns=%.0f cpu_ms=%.3f\n", argv[1], code,
           ready < 0 ? -1.0 : ready - start, exited - start, usage.ru_maxrss, start * 1e6, cpu_ms);
    return 0;
}
