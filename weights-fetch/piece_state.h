/* weights-fetch: how a large file is cut into byte ranges ("pieces") that
 * download over several connections at once, and the small text file
 * (<part>.pieces) that remembers each piece's progress across runs.
 *
 * Invariant that makes resuming safe: the .pieces file never claims a byte
 * that is not on disk (it is rewritten only after fdatasync of the .part),
 * and it exists before the first byte of a multi-piece .part is written, so
 * a .part without it is always a plain prefix of the file. */
#ifndef WEIGHTS_FETCH_PIECE_STATE_H
#define WEIGHTS_FETCH_PIECE_STATE_H

#include <stdint.h>

#define PIECES_MAX 16

typedef struct {
    int64_t start, end; /* [start, end) of the file */
    int64_t have;       /* bytes from start on disk */
} PieceRange;

typedef struct {
    int count;
    PieceRange r[PIECES_MAX];
} PieceLayout;

/* Cuts [0, size) into ceil(size / piece_bytes) pieces (at most PIECES_MAX,
 * nearly equal); one piece when size < 2 * piece_bytes or piece_bytes <= 0. */
void piece_layout_split(PieceLayout *l, int64_t size, int64_t piece_bytes);

/* Reads path; 0 when it holds a valid layout of a file of `size` bytes
 * (contiguous, covering it, have <= length), else -1 (missing or damaged). */
int piece_layout_load(PieceLayout *l, const char *path, int64_t size);

/* Writes path atomically (temp file + rename). Returns 0 or -1 (errno set). */
int piece_layout_save(const PieceLayout *l, const char *path, int64_t size);

/* Bytes on disk over all pieces. */
int64_t piece_layout_have(const PieceLayout *l);

#endif
