#include "sync_ceiling.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t monotonic_nanoseconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/// Writes all `count` bytes at `offset`, continuing after short writes and EINTR (a benchmark
/// must not count a partial record as a round). Returns 0 or an errno.
static int write_fully(int fd, const unsigned char *bytes, size_t count, off_t offset) {
    while (count > 0) {
        ssize_t written = pwrite(fd, bytes, count, offset);
        if (written < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        bytes += written;
        count -= (size_t)written;
        offset += written;
    }
    return 0;
}

static sync_ceiling_result failure(int fd, const char *call, int error) {
    if (fd >= 0) close(fd);
    sync_ceiling_result result = {error, call, 0};
    return result;
}

sync_ceiling_result sync_ceiling_run(const char *path, int rounds, int record_bytes, int preallocate) {
    if (rounds < 1 || record_bytes < 1) return failure(-1, "arguments", EINVAL);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return failure(-1, "open", errno);

    size_t total = (size_t)rounds * (size_t)record_bytes;
    if (preallocate) {
        // Real zero bytes, not fallocate: fallocate leaves unwritten extents, and the first write
        // into one converts it, a metadata change the timed fdatasync would then have to commit.
        size_t chunk = 1u << 20;
        unsigned char *zeros = calloc(1, chunk);
        if (zeros == NULL) return failure(fd, "calloc", ENOMEM);
        int error = 0;
        for (size_t offset = 0; offset < total && error == 0; offset += chunk) {
            size_t count = total - offset < chunk ? total - offset : chunk;
            error = write_fully(fd, zeros, count, (off_t)offset);
        }
        free(zeros);
        if (error != 0) return failure(fd, "pwrite (preallocation)", error);
        // fsync, not fdatasync: the size, the extents and the inode all become stable here, so
        // nothing but data is left for the timed syncs.
        if (fsync(fd) != 0) return failure(fd, "fsync (preallocation)", errno);
    }

    // Non-zero bytes, so every round really changes the block it overwrites.
    unsigned char *record = malloc((size_t)record_bytes);
    if (record == NULL) return failure(fd, "malloc", ENOMEM);
    memset(record, 0xA5, (size_t)record_bytes);

    uint64_t start = monotonic_nanoseconds();
    for (int round = 0; round < rounds; round++) {
        int error = write_fully(fd, record, (size_t)record_bytes, (off_t)round * record_bytes);
        if (error != 0) {
            free(record);
            return failure(fd, "pwrite", error);
        }
        // Never retried: a failed fdatasync is reported, as a storage engine must.
        if (fdatasync(fd) != 0) {
            int saved = errno;
            free(record);
            return failure(fd, "fdatasync", saved);
        }
    }
    uint64_t elapsed = monotonic_nanoseconds() - start;
    free(record);
    if (close(fd) != 0) return failure(-1, "close", errno);
    sync_ceiling_result result = {0, NULL, elapsed};
    return result;
}

#include <malloc.h>

heap_figures heap_figures_now(void) {
    struct mallinfo2 info = mallinfo2();
    heap_figures figures = {(long long)(info.uordblks + info.hblkhd), (long long)info.fordblks};
    return figures;
}
