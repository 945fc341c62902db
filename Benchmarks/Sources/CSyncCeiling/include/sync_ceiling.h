#pragma once
#include <stdint.h>

/// What one sync-ceiling loop measured.
typedef struct {
    /// 0 on success; otherwise the errno of the call that failed.
    int error;
    /// The name of the call that failed (a static string), or NULL on success.
    const char *failed_call;
    /// Wall time of the timed rounds alone (not the preallocation), in nanoseconds.
    uint64_t nanoseconds;
} sync_ceiling_result;

/// Creates (or truncates) `path` and times `rounds` rounds of "pwrite `record_bytes` bytes at the
/// next offset, fdatasync": the cheapest durable acknowledgement a log on this disk can give, one
/// record per sync.
///
/// With `preallocate` nonzero the file is first written with zeros covering every record and
/// fsynced, outside the timing, so each round overwrites allocated blocks inside the file's size
/// and fdatasync has no metadata (size, extents) to commit. With `preallocate` zero each round
/// appends, so every fdatasync also commits the file's new size (and, every few rounds, a new
/// block) through the filesystem's journal. The file is closed but not removed.
sync_ceiling_result sync_ceiling_run(const char *path, int rounds, int record_bytes, int preallocate);

/// glibc's heap figures (`mallinfo2`), for W4: bytes in live allocations (`uordblks` + `hblkhd`,
/// the mmapped ones) and bytes free inside the heap (`fordblks`: held from the system, not returned).
/// In this target because Swift's Glibc module does not import <malloc.h>.
typedef struct {
    long long in_use_bytes;
    long long free_bytes;
} heap_figures;

heap_figures heap_figures_now(void);
