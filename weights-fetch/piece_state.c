/* weights-fetch: piece layout and its .pieces file; see piece_state.h.
 * File format: "pieces v1 SIZE COUNT\n" then one "START END HAVE\n" per piece. */
#include "weights-fetch/piece_state.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void piece_layout_split(PieceLayout *l, int64_t size, int64_t piece_bytes) {
    int64_t n = piece_bytes > 0 && size / 2 >= piece_bytes ? (size - 1) / piece_bytes + 1 : 1;
    if (n > PIECES_MAX)
        n = PIECES_MAX;
    int64_t len = (size + n - 1) / n;
    l->count = (int)n;
    for (int i = 0; i < l->count; i++) {
        l->r[i].start = i * len;
        l->r[i].end = i == l->count - 1 ? size : (i + 1) * len;
        l->r[i].have = 0;
    }
}

int piece_layout_load(PieceLayout *l, const char *path, int64_t size) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int64_t file_size;
    int count, ok = fscanf(f, "pieces v1 %" SCNd64 " %d", &file_size, &count) == 2 && file_size == size &&
                    count >= 1 && count <= PIECES_MAX;
    int64_t expect_start = 0;
    for (int i = 0; ok && i < count; i++) {
        PieceRange *r = &l->r[i];
        ok = fscanf(f, "%" SCNd64 " %" SCNd64 " %" SCNd64, &r->start, &r->end, &r->have) == 3 &&
             r->start == expect_start && r->end > r->start && r->end <= size && r->have >= 0 &&
             r->have <= r->end - r->start;
        expect_start = r->end;
    }
    fclose(f);
    if (!ok || expect_start != size)
        return -1;
    l->count = count;
    return 0;
}

int piece_layout_save(const PieceLayout *l, const char *path, int64_t size) {
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "pieces v1 %" PRId64 " %d\n", size, l->count);
    for (int i = 0; i < l->count; i++)
        fprintf(f, "%" PRId64 " %" PRId64 " %" PRId64 "\n", l->r[i].start, l->r[i].end, l->r[i].have);
    int rc = fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -1;
    if (fclose(f) != 0)
        rc = -1;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    if (rc != 0)
        unlink(tmp);
    return rc;
}

int64_t piece_layout_have(const PieceLayout *l) {
    int64_t sum = 0;
    for (int i = 0; i < l->count; i++)
        sum += l->r[i].have;
    return sum;
}
