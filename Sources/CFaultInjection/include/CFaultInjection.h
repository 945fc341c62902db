// OpLog's system-call layer for tests, loaded with LD_PRELOAD (never linked into OpLog).
//
// Environment:
//   OPLOG_FAULT_DIR     Only files under this directory (and the directory itself) are tracked.
//   OPLOG_FAULT_LOG     Binary log of every tracked open, write, sync, truncate, rename, unlink.
//   OPLOG_FAULT_MARKER  Path of a marker file: writes to it are logged as markers (the child's
//                       acknowledgements), in the same order as the system calls around them.
//                       A marker write "arm\n" starts counting calls for OPLOG_FAULT_FAIL, "disarm\n"
//                       stops it; without OPLOG_FAULT_ARM=marker, counting starts at load.
//   OPLOG_FAULT_FAIL    "KINDS:N:ERRNO:MODE": fail the Nth tracked call of KINDS (write, sync or
//                       write+sync) with ERRNO (EIO or ENOSPC), MODE once or forever.
//
// Log record: a 32-byte header {u32 kind, u32 flags, u64 inode, u64 offset, u64 length}, little
// endian, followed by `length` payload bytes. Kinds and flags are the OPLOG_FAULT_EVENT_* values.
#ifndef OPLOG_C_FAULT_INJECTION_H
#define OPLOG_C_FAULT_INJECTION_H

enum {
    OPLOG_FAULT_EVENT_OPEN = 1,      // flags: 1 created, 2 O_DSYNC/O_SYNC; payload: name in the directory
    OPLOG_FAULT_EVENT_WRITE = 2,     // flags: 2 through an O_DSYNC/O_SYNC descriptor (synced on return)
    OPLOG_FAULT_EVENT_SYNC = 3,      // flags: 1 failed (offset: errno); inode 0 for msync
    OPLOG_FAULT_EVENT_TRUNCATE = 4,  // offset: new size
    OPLOG_FAULT_EVENT_RENAME = 5,    // payload: "old\0new" (names in the directory)
    OPLOG_FAULT_EVENT_UNLINK = 6,    // payload: name
    OPLOG_FAULT_EVENT_MARKER = 7,    // payload: the bytes written to the marker file
    OPLOG_FAULT_EVENT_FAULT = 8,     // an injected failure; flags: 1 write kind, 2 sync kind; offset: errno
};

#endif
