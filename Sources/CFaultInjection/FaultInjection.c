// The system-call layer of OpLog's power-loss and I/O-fault tests (see include/CFaultInjection.h).
//
// Every tracked call runs under one mutex, real call and log record together, so the log's order is
// the order in which the calls returned: a crash "at record i" means records before i had returned.
// The layer never calls its own wrappers: logging uses the real functions found with RTLD_NEXT.
#define _GNU_SOURCE
#include "CFaultInjection.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { KIND_WRITE = 1, KIND_SYNC = 2 };
enum { FD_UNTRACKED = 0, FD_FILE = 1, FD_MARKER = 2 };
enum { FD_TABLE_SIZE = 4096, PATH_BYTES_MAX = 4096 };

struct tracked_fd {
    int role;
    int dsync;
    dev_t device;
    ino_t inode;
};

struct header {
    uint32_t kind;
    uint32_t flags;
    uint64_t inode;
    uint64_t offset;
    uint64_t length;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct tracked_fd fds[FD_TABLE_SIZE];
static char directory[PATH_BYTES_MAX];
static size_t directory_length;
static char marker_path[PATH_BYTES_MAX];
static int log_fd = -1;
static int fail_kinds, fail_errno, fail_forever, armed;
static long fail_at, counted, injected;

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_msync)(void *, size_t, int);
static int (*real_ftruncate)(int, off_t);
static int (*real_rename)(const char *, const char *);
static int (*real_unlink)(const char *);

#define RESOLVE(name) do { if (!real_##name) real_##name = dlsym(RTLD_NEXT, #name); } while (0)

static void resolve_all(void) {
    RESOLVE(open); RESOLVE(open64); RESOLVE(openat); RESOLVE(openat64); RESOLVE(close);
    RESOLVE(write); RESOLVE(writev); RESOLVE(pwrite); RESOLVE(pwrite64); RESOLVE(pwritev);
    RESOLVE(fsync); RESOLVE(fdatasync); RESOLVE(msync); RESOLVE(ftruncate); RESOLVE(rename); RESOLVE(unlink);
}

static void copy_env(const char *name, char *target) {
    const char *value = getenv(name);
    if (value && strlen(value) < PATH_BYTES_MAX) strcpy(target, value);
}

static int parse_errno(const char *text) {
    if (strncmp(text, "ENOSPC", 6) == 0) return ENOSPC;
    return EIO;
}

// "KINDS:N:ERRNO:MODE", e.g. "write+sync:3:EIO:once".
static void parse_failure(const char *spec) {
    if (!spec) return;
    char copy[256];
    snprintf(copy, sizeof copy, "%s", spec);
    char *saved = NULL;
    const char *kinds = strtok_r(copy, ":", &saved);
    const char *count = strtok_r(NULL, ":", &saved);
    const char *code = strtok_r(NULL, ":", &saved);
    const char *mode = strtok_r(NULL, ":", &saved);
    if (!kinds || !count || !code || !mode) return;
    fail_kinds = (strstr(kinds, "write") ? KIND_WRITE : 0) | (strstr(kinds, "sync") ? KIND_SYNC : 0);
    fail_at = strtol(count, NULL, 10);
    fail_errno = parse_errno(code);
    fail_forever = strcmp(mode, "forever") == 0;
}

__attribute__((constructor)) static void initialize(void) {
    resolve_all();
    copy_env("OPLOG_FAULT_DIR", directory);
    directory_length = strlen(directory);
    while (directory_length > 1 && directory[directory_length - 1] == '/') directory[--directory_length] = 0;
    copy_env("OPLOG_FAULT_MARKER", marker_path);
    parse_failure(getenv("OPLOG_FAULT_FAIL"));
    const char *arm = getenv("OPLOG_FAULT_ARM");
    armed = !(arm && strcmp(arm, "marker") == 0);
    const char *log_path = getenv("OPLOG_FAULT_LOG");
    if (log_path && real_open) log_fd = real_open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
}

static void write_all(int fd, const void *bytes, size_t count) {
    const char *cursor = bytes;
    while (count > 0) {
        ssize_t done = real_write(fd, cursor, count);
        if (done < 0 && errno == EINTR) continue;
        if (done <= 0) return;
        cursor += done;
        count -= (size_t)done;
    }
}

// One record, header and payload in a single write so a reader never sees half of one.
static void log_event(uint32_t kind, uint32_t flags, uint64_t inode, uint64_t offset, const void *payload, size_t length) {
    if (log_fd < 0) return;
    struct header header = { kind, flags, inode, offset, length };
    char stack[4096];
    char *buffer = sizeof header + length <= sizeof stack ? stack : malloc(sizeof header + length);
    if (!buffer) return;
    memcpy(buffer, &header, sizeof header);
    if (length) memcpy(buffer + sizeof header, payload, length);
    write_all(log_fd, buffer, sizeof header + length);
    if (buffer != stack) free(buffer);
}

// The name of `path` inside the tracked directory ("" for the directory), or NULL if outside.
static const char *tracked_name(const char *path, char *scratch) {
    if (!directory_length || !path) return NULL;
    if (path[0] != '/') {
        if (!getcwd(scratch, PATH_BYTES_MAX) || strlen(scratch) + strlen(path) + 2 > PATH_BYTES_MAX) return NULL;
        strcat(scratch, "/");
        strcat(scratch, path);
        path = scratch;
    }
    if (strncmp(path, directory, directory_length) != 0) return NULL;
    if (path[directory_length] == 0) return path + directory_length;
    if (path[directory_length] == '/') return path + directory_length + 1;
    return NULL;
}

// The tracked descriptor `fd`, or NULL; a descriptor reused for another file is forgotten.
static struct tracked_fd *tracked(int fd) {
    if (fd < 0 || fd >= FD_TABLE_SIZE || fds[fd].role == FD_UNTRACKED) return NULL;
    struct stat info;
    if (fstat(fd, &info) != 0 || info.st_ino != fds[fd].inode || info.st_dev != fds[fd].device) {
        fds[fd].role = FD_UNTRACKED;
        return NULL;
    }
    return &fds[fd];
}

// Decides whether this call is the one (or, forever, one of those) to fail.
static int inject(int kind, struct tracked_fd *file) {
    if (!armed || !(fail_kinds & kind) || fail_at <= 0) return 0;
    counted += 1;
    if (counted == fail_at || (fail_forever && counted > fail_at)) {
        injected += 1;
        log_event(OPLOG_FAULT_EVENT_FAULT, (uint32_t)kind, file ? (uint64_t)file->inode : 0, (uint64_t)fail_errno, NULL, 0);
        return 1;
    }
    return 0;
}

static void after_open(int fd, const char *path, int flags, int existed) {
    if (fd < 0 || fd >= FD_TABLE_SIZE) return;
    fds[fd].role = FD_UNTRACKED;
    char scratch[PATH_BYTES_MAX];
    const char *name = tracked_name(path, scratch);
    int is_marker = marker_path[0] && strcmp(path, marker_path) == 0;
    if (!name && !is_marker) return;
    struct stat info;
    if (fstat(fd, &info) != 0) return;
    fds[fd] = (struct tracked_fd){ is_marker ? FD_MARKER : FD_FILE, (flags & (O_DSYNC | O_SYNC)) != 0, info.st_dev, info.st_ino };
    if (is_marker) return;
    uint32_t event_flags = (existed ? 0 : 1) | (fds[fd].dsync ? 2 : 0);
    log_event(OPLOG_FAULT_EVENT_OPEN, event_flags, (uint64_t)info.st_ino, 0, name, strlen(name));
    if ((flags & O_TRUNC) && existed) log_event(OPLOG_FAULT_EVENT_TRUNCATE, 0, (uint64_t)info.st_ino, 0, NULL, 0);
}

static int open_common(int (*call)(const char *, int, ...), int dirfd, const char *path, int flags, mode_t mode, int at) {
    resolve_all();
    pthread_mutex_lock(&lock);
    int existed = access(path, F_OK) == 0;
    int fd;
    if (at) fd = ((int (*)(int, const char *, int, ...))call)(dirfd, path, flags, mode);
    else fd = call(path, flags, mode);
    int saved = errno;
    // Only absolute paths or paths relative to the working directory are tracked.
    if (!at || dirfd == AT_FDCWD || path[0] == '/') after_open(fd, path, flags, existed);
    pthread_mutex_unlock(&lock);
    errno = saved;
    return fd;
}

static mode_t mode_argument(int flags, va_list arguments) {
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(arguments, int) : 0;
}

int open(const char *path, int flags, ...) {
    va_list arguments; va_start(arguments, flags); mode_t mode = mode_argument(flags, arguments); va_end(arguments);
    resolve_all();
    return open_common(real_open, AT_FDCWD, path, flags, mode, 0);
}

int open64(const char *path, int flags, ...) {
    va_list arguments; va_start(arguments, flags); mode_t mode = mode_argument(flags, arguments); va_end(arguments);
    resolve_all();
    return open_common(real_open64, AT_FDCWD, path, flags, mode, 0);
}

int openat(int dirfd, const char *path, int flags, ...) {
    va_list arguments; va_start(arguments, flags); mode_t mode = mode_argument(flags, arguments); va_end(arguments);
    resolve_all();
    return open_common((int (*)(const char *, int, ...))real_openat, dirfd, path, flags, mode, 1);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    va_list arguments; va_start(arguments, flags); mode_t mode = mode_argument(flags, arguments); va_end(arguments);
    resolve_all();
    return open_common((int (*)(const char *, int, ...))real_openat64, dirfd, path, flags, mode, 1);
}

int close(int fd) {
    resolve_all();
    if (fd >= 0 && fd < FD_TABLE_SIZE && fds[fd].role != FD_UNTRACKED) {
        pthread_mutex_lock(&lock);
        fds[fd].role = FD_UNTRACKED;
        pthread_mutex_unlock(&lock);
    }
    return real_close(fd);
}

// Marker writes switch fault counting on and off and are logged with their bytes.
static void marker_written(const void *bytes, ssize_t count) {
    if (count <= 0) return;
    if (count >= 4 && memcmp(bytes, "arm\n", 4) == 0) { armed = 1; counted = 0; }
    if (count >= 7 && memcmp(bytes, "disarm\n", 7) == 0) armed = 0;
    log_event(OPLOG_FAULT_EVENT_MARKER, 0, 0, 0, bytes, (size_t)count);
}

// The common path of every write kind. `offset` < 0: the descriptor's current position.
static ssize_t tracked_write(int fd, const struct iovec *vectors, int count, off_t offset,
                             ssize_t (*perform)(int, const struct iovec *, int, off_t)) {
    pthread_mutex_lock(&lock);
    struct tracked_fd *file = tracked(fd);
    if (!file) {
        pthread_mutex_unlock(&lock);
        return perform(fd, vectors, count, offset);
    }
    if (file->role == FD_FILE && inject(KIND_WRITE, file)) {
        pthread_mutex_unlock(&lock);
        errno = fail_errno;
        return -1;
    }
    off_t position = offset >= 0 ? offset : lseek(fd, 0, SEEK_CUR);
    ssize_t done = perform(fd, vectors, count, offset);
    int saved = errno;
    if (done > 0) {
        char *bytes = malloc((size_t)done);
        if (bytes) {
            size_t copied = 0;
            for (int index = 0; index < count && copied < (size_t)done; index++) {
                size_t piece = vectors[index].iov_len < (size_t)done - copied ? vectors[index].iov_len : (size_t)done - copied;
                memcpy(bytes + copied, vectors[index].iov_base, piece);
                copied += piece;
            }
            if (file->role == FD_MARKER) marker_written(bytes, done);
            else log_event(OPLOG_FAULT_EVENT_WRITE, file->dsync ? 2 : 0, (uint64_t)file->inode, (uint64_t)position, bytes, (size_t)done);
            free(bytes);
        }
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
    return done;
}

static ssize_t perform_write(int fd, const struct iovec *vectors, int count, off_t offset) {
    (void)count; (void)offset;
    return real_write(fd, vectors[0].iov_base, vectors[0].iov_len);
}
static ssize_t perform_pwrite(int fd, const struct iovec *vectors, int count, off_t offset) {
    (void)count;
    return real_pwrite(fd, vectors[0].iov_base, vectors[0].iov_len, offset);
}
static ssize_t perform_pwrite64(int fd, const struct iovec *vectors, int count, off_t offset) {
    (void)count;
    return real_pwrite64(fd, vectors[0].iov_base, vectors[0].iov_len, offset);
}
static ssize_t perform_writev(int fd, const struct iovec *vectors, int count, off_t offset) {
    (void)offset;
    return real_writev(fd, vectors, count);
}
static ssize_t perform_pwritev(int fd, const struct iovec *vectors, int count, off_t offset) {
    return real_pwritev(fd, vectors, count, offset);
}

ssize_t write(int fd, const void *bytes, size_t count) {
    resolve_all();
    if (fd < 0 || fd >= FD_TABLE_SIZE || fds[fd].role == FD_UNTRACKED) return real_write(fd, bytes, count);
    struct iovec vector = { (void *)bytes, count };
    return tracked_write(fd, &vector, 1, -1, perform_write);
}

ssize_t pwrite(int fd, const void *bytes, size_t count, off_t offset) {
    resolve_all();
    if (fd < 0 || fd >= FD_TABLE_SIZE || fds[fd].role == FD_UNTRACKED) return real_pwrite(fd, bytes, count, offset);
    struct iovec vector = { (void *)bytes, count };
    return tracked_write(fd, &vector, 1, offset, perform_pwrite);
}

ssize_t pwrite64(int fd, const void *bytes, size_t count, off_t offset) {
    resolve_all();
    if (fd < 0 || fd >= FD_TABLE_SIZE || fds[fd].role == FD_UNTRACKED) return real_pwrite64(fd, bytes, count, offset);
    struct iovec vector = { (void *)bytes, count };
    return tracked_write(fd, &vector, 1, offset, perform_pwrite64);
}

ssize_t writev(int fd, const struct iovec *vectors, int count) {
    resolve_all();
    if (fd < 0 || fd >= FD_TABLE_SIZE || fds[fd].role == FD_UNTRACKED) return real_writev(fd, vectors, count);
    return tracked_write(fd, vectors, count, -1, perform_writev);
}

ssize_t pwritev(int fd, const struct iovec *vectors, int count, off_t offset) {
    resolve_all();
    if (fd < 0 || fd >= FD_TABLE_SIZE || fds[fd].role == FD_UNTRACKED) return real_pwritev(fd, vectors, count, offset);
    return tracked_write(fd, vectors, count, offset, perform_pwritev);
}

// fsync and fdatasync: a failure (real or injected) is logged so the replay drops the file's unsynced
// writes, as Linux does when write-back fails (the pages are marked clean, the data is gone).
static int tracked_sync(int fd, int (*call)(int)) {
    resolve_all();
    if (fd < 0 || fd >= FD_TABLE_SIZE || fds[fd].role == FD_UNTRACKED) return call(fd);
    pthread_mutex_lock(&lock);
    struct tracked_fd *file = tracked(fd);
    if (!file || file->role != FD_FILE) {
        pthread_mutex_unlock(&lock);
        return call(fd);
    }
    int result;
    int saved;
    if (inject(KIND_SYNC, file)) {
        result = -1;
        saved = fail_errno;
    } else {
        result = call(fd);
        saved = errno;
    }
    log_event(OPLOG_FAULT_EVENT_SYNC, result == 0 ? 0 : 1, (uint64_t)file->inode, result == 0 ? 0 : (uint64_t)saved, NULL, 0);
    pthread_mutex_unlock(&lock);
    errno = saved;
    return result;
}

int fsync(int fd) { resolve_all(); return tracked_sync(fd, real_fsync); }
int fdatasync(int fd) { resolve_all(); return tracked_sync(fd, real_fdatasync); }

// msync has no descriptor; OpLog never maps its files writable (no MDB_WRITEMAP), so an msync is
// only logged (inode 0) and counted as a sync for fault injection.
int msync(void *address, size_t length, int flags) {
    resolve_all();
    if (!directory_length) return real_msync(address, length, flags);
    pthread_mutex_lock(&lock);
    int result;
    int saved;
    if (inject(KIND_SYNC, NULL)) {
        result = -1;
        saved = fail_errno;
    } else {
        result = real_msync(address, length, flags);
        saved = errno;
    }
    log_event(OPLOG_FAULT_EVENT_SYNC, result == 0 ? 0 : 1, 0, result == 0 ? 0 : (uint64_t)saved, NULL, 0);
    pthread_mutex_unlock(&lock);
    errno = saved;
    return result;
}

int ftruncate(int fd, off_t size) {
    resolve_all();
    if (fd < 0 || fd >= FD_TABLE_SIZE || fds[fd].role == FD_UNTRACKED) return real_ftruncate(fd, size);
    pthread_mutex_lock(&lock);
    struct tracked_fd *file = tracked(fd);
    int result;
    int saved;
    if (file && file->role == FD_FILE && inject(KIND_WRITE, file)) {
        result = -1;
        saved = fail_errno;
    } else {
        result = real_ftruncate(fd, size);
        saved = errno;
        if (file && file->role == FD_FILE && result == 0) log_event(OPLOG_FAULT_EVENT_TRUNCATE, 0, (uint64_t)file->inode, (uint64_t)size, NULL, 0);
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
    return result;
}

int rename(const char *source, const char *destination) {
    resolve_all();
    pthread_mutex_lock(&lock);
    int result = real_rename(source, destination);
    int saved = errno;
    char scratch_source[PATH_BYTES_MAX], scratch_destination[PATH_BYTES_MAX];
    const char *from = tracked_name(source, scratch_source);
    const char *to = tracked_name(destination, scratch_destination);
    if (result == 0 && from && to) {
        size_t from_length = strlen(from), to_length = strlen(to);
        char *payload = malloc(from_length + 1 + to_length);
        if (payload) {
            memcpy(payload, from, from_length + 1);
            memcpy(payload + from_length + 1, to, to_length);
            log_event(OPLOG_FAULT_EVENT_RENAME, 0, 0, 0, payload, from_length + 1 + to_length);
            free(payload);
        }
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
    return result;
}

int unlink(const char *path) {
    resolve_all();
    pthread_mutex_lock(&lock);
    int result = real_unlink(path);
    int saved = errno;
    char scratch[PATH_BYTES_MAX];
    const char *name = tracked_name(path, scratch);
    if (result == 0 && name) log_event(OPLOG_FAULT_EVENT_UNLINK, 0, 0, 0, name, strlen(name));
    pthread_mutex_unlock(&lock);
    errno = saved;
    return result;
}
