/*
 * Paths inside a container's root, resolved as if the root were "/": the runtime runs as host root
 * while the root file system comes from an image, so a symlink in it (`dev -> /etc`, a mount
 * destination through `data -> /var`, `../../`) must never lead the runtime to create, write or
 * mount anything outside it. The model is crun's safe_openat and runc's securejoin: openat2 with
 * RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS (Linux 5.6+), or on older kernels a walk one component
 * at a time with O_NOFOLLOW that resolves symlinks itself and never climbs above the root. The
 * callers then mount on the descriptor (/proc/self/fd/N), not on a path that could change.
 * Used between clone and exec: only system calls and async-signal-safe libc calls.
 */
#define _GNU_SOURCE
#include "clinux.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* At most this many symlinks in one resolution (the kernel's own limit is 40). */
#define MAX_SYMLINKS 40

/* Opens the directories of `components` ("a/b/c", already free of symlinks and dot-dots) from
 * `root_fd`, each with O_NOFOLLOW: a symlink swapped in since they were checked fails (ENOTDIR). */
static int open_components(int root_fd, const char *components) {
    int fd = openat(root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    char name[NAME_MAX + 1];
    for (const char *p = components; fd >= 0 && *p;) {
        const char *end = strchr(p, '/');
        size_t length = end ? (size_t)(end - p) : strlen(p);
        memcpy(name, p, length);
        name[length] = 0;
        int next = openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int saved = errno;
        close(fd);
        errno = saved;
        fd = next;
        p += length + (end ? 1 : 0);
    }
    return fd;
}

int clinux_walk_in_root(int root_fd, const char *path, int flags) {
    char pending[2 * PATH_MAX], resolved[PATH_MAX] = "", name[NAME_MAX + 1], target[PATH_MAX];
    if (strlen(path) >= PATH_MAX) { errno = ENAMETOOLONG; return -1; }
    snprintf(pending, sizeof pending, "%s", path);
    int links = 0;
    const char *rest = pending;
    for (;;) {
        while (*rest == '/') rest++;
        if (!*rest) break;
        const char *end = strchr(rest, '/');
        size_t length = end ? (size_t)(end - rest) : strlen(rest);
        if (length > NAME_MAX) { errno = ENAMETOOLONG; return -1; }
        memcpy(name, rest, length);
        name[length] = 0;
        rest += length;
        if (strcmp(name, ".") == 0) continue;
        if (strcmp(name, "..") == 0) {  /* up, but never above the root */
            char *slash = strrchr(resolved, '/');
            if (slash) *slash = 0; else resolved[0] = 0;
            continue;
        }
        int directory = open_components(root_fd, resolved);
        if (directory < 0) return -1;
        int fd = openat(directory, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        int saved = errno;
        close(directory);
        if (fd < 0) { errno = saved; return -1; }
        struct stat info;
        if (fstat(fd, &info) != 0) { saved = errno; close(fd); errno = saved; return -1; }
        if (S_ISLNK(info.st_mode)) {
            if (++links > MAX_SYMLINKS) { close(fd); errno = ELOOP; return -1; }
            ssize_t got = readlinkat(fd, "", target, sizeof target - 1);
            close(fd);
            if (got < 0) return -1;
            target[got] = 0;
            /* The link's target replaces it; an absolute one starts again at the root. */
            char joined[2 * PATH_MAX];
            if ((size_t)snprintf(joined, sizeof joined, "%s/%s", target, rest) >= sizeof joined) { errno = ENAMETOOLONG; return -1; }
            memcpy(pending, joined, strlen(joined) + 1);
            rest = pending;
            if (target[0] == '/') resolved[0] = 0;
            continue;
        }
        close(fd);
        size_t used = strlen(resolved);
        if (used + 1 + length + 1 > sizeof resolved) { errno = ENAMETOOLONG; return -1; }
        if (used) resolved[used++] = '/';
        memcpy(resolved + used, name, length + 1);
    }
    /* Everything in `resolved` is a real file or directory: open the last with the caller's flags. */
    char *slash = strrchr(resolved, '/');
    const char *last = slash ? slash + 1 : resolved;
    if (slash) *slash = 0;
    int directory = open_components(root_fd, slash ? resolved : "");
    if (directory < 0) return -1;
    int fd = openat(directory, *last ? last : ".", flags | O_NOFOLLOW | O_CLOEXEC);
    int saved = errno;
    close(directory);
    errno = saved;
    return fd;
}

int clinux_open_in_root(int root_fd, const char *path, int flags) {
    struct open_how how = { .flags = (unsigned long long)(flags | O_CLOEXEC), .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
    for (int attempt = 0; attempt < 16; attempt++) {
        int fd = (int)syscall(SYS_openat2, root_fd, path, &how, sizeof how);
        if (fd >= 0) return fd;
        if (errno == EAGAIN) continue;  /* a rename raced with ".." resolution: the kernel asks to retry */
        if (errno == ENOSYS || errno == EPERM) break;  /* no openat2 (or a seccomp filter denies it) */
        return -1;
    }
    return clinux_walk_in_root(root_fd, path, flags);
}

/* Splits `path` into its parent (in `parent`, "/" or "." at the top) and last component (`name`). */
static int split(const char *path, char *parent, char *name) {
    size_t length = strlen(path);
    if (length >= PATH_MAX) { errno = ENAMETOOLONG; return -1; }
    memcpy(parent, path, length + 1);
    while (length > 1 && parent[length - 1] == '/') parent[--length] = 0;
    char *slash = strrchr(parent, '/');
    const char *last = slash ? slash + 1 : parent;
    if (!*last || strcmp(last, ".") == 0 || strcmp(last, "..") == 0 || strlen(last) > NAME_MAX) { errno = EINVAL; return -1; }
    memmove(name, last, strlen(last) + 1);
    if (!slash) strcpy(parent, ".");
    else if (slash == parent) strcpy(parent, "/");
    else *slash = 0;
    return 0;
}

/* `link` in `directory` (whose path is `directory_path`) is a symlink: its target as a path inside
 * the root (from the root when absolute, else beside the link) followed by `rest`, in `out`. */
static int through_link(int directory, const char *directory_path, const char *link, const char *rest, char *out) {
    char target[PATH_MAX];
    ssize_t got = readlinkat(directory, link, target, sizeof target - 1);
    if (got < 0) return -1;
    target[got] = 0;
    int written = target[0] == '/' ? snprintf(out, PATH_MAX, "%s%s", target, rest)
                                   : snprintf(out, PATH_MAX, "%s/%s%s", directory_path, target, rest);
    if (written < 0 || written >= PATH_MAX) { errno = ENAMETOOLONG; return -1; }
    return 0;
}

int clinux_mkdir_in_root(int root_fd, const char *path, mode_t mode) {
    int fd = clinux_open_in_root(root_fd, path, O_PATH | O_DIRECTORY);
    if (fd >= 0 || errno != ENOENT) return fd;
    /* One prefix at a time, without recursion (this runs on the clone's small stack): each missing
     * directory is made in its parent with mkdirat, which never follows a symlink. A dangling
     * symlink on the way is made where it points, inside the root, as runc's MkdirAll after
     * securejoin does: the rest of the path is rewritten through it and the walk starts again. */
    char work[PATH_MAX], parent_path[PATH_MAX], name[NAME_MAX + 1];
    if (strlen(path) >= sizeof work) { errno = ENAMETOOLONG; return -1; }
    strcpy(work, path);
    int links = 0;
restart:
    for (size_t i = 1, length = strlen(work); i <= length; i++) {
        if (i < length && work[i] != '/') continue;
        char kept = work[i];
        work[i] = 0;
        int existing = clinux_open_in_root(root_fd, work, O_PATH | O_DIRECTORY);
        if (existing >= 0) { close(existing); work[i] = kept; continue; }
        if (errno != ENOENT || split(work, parent_path, name) != 0) return -1;
        int parent = clinux_open_in_root(root_fd, parent_path, O_PATH | O_DIRECTORY);
        if (parent < 0) return -1;
        if (mkdirat(parent, name, mode) == 0) { close(parent); work[i] = kept; continue; }
        if (errno != EEXIST) { int saved = errno; close(parent); errno = saved; return -1; }
        /* It exists, yet did not open as a directory: a dangling symlink, or not a directory. */
        char rest[PATH_MAX];
        work[i] = kept;
        strcpy(rest, work + i);
        int rewritten = through_link(parent, parent_path, name, rest, work);
        close(parent);
        if (rewritten != 0) { errno = ENOTDIR; return -1; }
        if (++links > MAX_SYMLINKS) { errno = ELOOP; return -1; }
        goto restart;
    }
    return clinux_open_in_root(root_fd, path, O_PATH | O_DIRECTORY);
}

int clinux_file_in_root(int root_fd, const char *path, mode_t mode) {
    char work[PATH_MAX], parent_path[PATH_MAX], name[NAME_MAX + 1];
    if (strlen(path) >= sizeof work) { errno = ENAMETOOLONG; return -1; }
    strcpy(work, path);
    for (int links = 0; links <= MAX_SYMLINKS; links++) {
        int fd = clinux_open_in_root(root_fd, work, O_PATH);
        if (fd >= 0 || errno != ENOENT) return fd;
        if (split(work, parent_path, name) != 0) return -1;
        int parent = clinux_mkdir_in_root(root_fd, parent_path, 0755);
        if (parent < 0) return -1;
        int made = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (made >= 0 || errno != EEXIST) {
            int saved = errno;
            if (made >= 0) close(made);
            close(parent);
            if (made < 0) { errno = saved; return -1; }
            return clinux_open_in_root(root_fd, path, O_PATH);
        }
        /* A dangling symlink: the file is made where it points, inside the root. */
        int rewritten = through_link(parent, parent_path, name, "", work);
        close(parent);
        if (rewritten != 0) return -1;
    }
    errno = ELOOP;
    return -1;
}

int clinux_parent_in_root(int root_fd, const char *path, char *name, size_t name_size) {
    char parent_path[PATH_MAX], last[NAME_MAX + 1];
    if (split(path, parent_path, last) != 0) return -1;
    if (strlen(last) >= name_size) { errno = ENAMETOOLONG; return -1; }
    strcpy(name, last);
    return clinux_mkdir_in_root(root_fd, parent_path, 0755);
}

int clinux_stat_in_root(int root_fd, const char *path, struct stat *info) {
    int fd = clinux_open_in_root(root_fd, path, O_PATH);
    if (fd < 0) return -1;
    int result = fstat(fd, info);
    int saved = errno;
    close(fd);
    errno = saved;
    return result;
}

void clinux_fd_path(int fd, char *out, size_t size) {
    snprintf(out, size, "/proc/self/fd/%d", fd);
}
