/* No silent death from mapped model files (engine/ owns this; issue 18).
 *
 * The CPU backend reads weights straight from the mmap'd safetensors files.
 * When such a file shrinks under a running server (truncated, rewritten) or
 * its storage fails a read (a Cloud Storage FUSE mount), touching a page past
 * the new end raises SIGBUS, which would kill the process without a word.
 *
 * Two guards:
 *  - map_guard_check() compares every mapped file's size, mtime and inode
 *    with what was mapped; the server calls it for /health and before each
 *    generation, so a changed file turns /health to 503 naming the file and
 *    refuses work before any thread faults.
 *  - map_guard_install() sets a SIGBUS handler that writes one JSON log line
 *    (severity CRITICAL, the file and offset when the address is inside a
 *    registered mapping) and exits with status MAP_GUARD_EXIT_STATUS, an
 *    orderly, logged exit that the orchestrator restarts. The handler uses
 *    only async-signal-safe calls (write, _exit).
 *
 * Copying the weights into our own memory instead was measured and rejected:
 * 0.96 s and 511 MB more RSS at start for the 270M, 19.3 s and 8.2 GB for the
 * MedGemma 4B shape. */
#ifndef ENGINE_MAP_GUARD_H
#define ENGINE_MAP_GUARD_H

#include <stddef.h>

#include "util/error.h"

/* EX_TEMPFAIL: "try again later", the restart the orchestrator does. */
#define MAP_GUARD_EXIT_STATUS 75

/* Registers [base, base + size) as the mapping of path (its identity taken
 * now with stat) and installs the handler. At most 64 mappings; more are not
 * guarded (logged). */
void map_guard_add(const void *base, size_t size, const char *path);
/* Forgets the mapping starting at base (before munmap). */
void map_guard_remove(const void *base);

/* Installs the SIGBUS handler once (later calls do nothing); map_guard_add
 * calls it, so every program that maps a checkpoint is covered. */
void map_guard_install(void);

/* 0 when every registered file is as mapped; -1 with err naming the first
 * that changed ("model.safetensors changed under the running server: 4096
 * bytes, mapped 511 MB; restart to load it"). */
int map_guard_check(Error *err);

#endif
