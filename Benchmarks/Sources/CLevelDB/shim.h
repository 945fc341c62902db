#pragma once
// Debian's libleveldb-dev (LevelDB 1.23): the C API. It ships no pkg-config file, so the module
// links "leveldb" by name from the default library path.
#include <leveldb/c.h>
