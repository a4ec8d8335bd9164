/* engine/safetensors: valid files load; every kind of corrupt file gets an
 * error naming the file, the tensor and what is wrong. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/safetensors.h"
#include "tests/unit/test.h"

/* Writes [u64 len][header][data_bytes of pattern] to dir/name; returns the path. */
static const char *write_st(const char *name, const char *header, size_t data_bytes, uint64_t claimed_len) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    uint64_t len = claimed_len ? claimed_len : strlen(header);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)(len >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < data_bytes; i++)
        fputc((int)(i & 0xff), f);
    fclose(f);
    return path;
}

static int open_err(const char *path, Error *err) {
    Checkpoint *ck = NULL;
    int rc = checkpoint_open_file(&ck, path, err);
    checkpoint_close(ck);
    return rc;
}

TEST(safetensors_reads_valid_file) {
    const char *p = write_st("ok.safetensors",
                             "{\"__metadata__\":{\"format\":\"pt\"},"
                             "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
                             "\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
                             12, 0);
    Checkpoint *ck = NULL;
    Error err;
    CHECK_MSG(checkpoint_open_file(&ck, p, &err) == 0, "%s", err.message);
    if (!ck)
        return;
    CHECK_EQ_INT(checkpoint_count(ck), 2);
    const TensorInfo *a = checkpoint_find(ck, "a"), *b = checkpoint_find(ck, "b");
    CHECK(a && b && !checkpoint_find(ck, "c"));
    if (a && b) {
        CHECK_EQ_INT(a->dtype, DTYPE_BF16);
        CHECK_EQ_INT(b->shape[0], 2);
        CHECK_EQ_INT(b->n_bytes, 8);
        CHECK_EQ_INT(((const uint8_t *)b->data)[0], 4); /* data pattern byte i = i */
    }
    CHECK_EQ_INT(checkpoint_total_bytes(ck), 12);
    checkpoint_close(ck);
}

TEST(safetensors_rejects_truncated_and_empty_files) {
    Error err;
    const char *p = write_st("short.safetensors", "", 0, 0);
    FILE *f = fopen(p, "wb"); /* 3 bytes: shorter than the length field */
    fwrite("abc", 1, 3, f);
    fclose(f);
    CHECK(open_err(p, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "too short");

    f = fopen(p, "wb");
    fclose(f);
    CHECK(open_err(p, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "empty");

    /* data section cut short: tensor runs past the end */
    p = write_st("cut.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 10,
                 0);
    CHECK(open_err(p, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "cut.safetensors");
    CHECK_STR_CONTAINS(err.message, "'w'");
    CHECK_STR_CONTAINS(err.message, "past the end");
}

TEST(safetensors_rejects_header_length_past_eof) {
    Error err;
    const char *p = write_st("hdr.safetensors", "{}", 0, 1u << 30);
    CHECK(open_err(p, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "header length");
    CHECK_STR_CONTAINS(err.message, "past the end of the file");
}

TEST(safetensors_rejects_bad_json_and_types) {
    Error err;
    const char *p = write_st("json.safetensors", "{\"w\":{\"dtype\":", 0, 0);
    CHECK(open_err(p, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "not well-formed JSON");

    p = write_st("arr.safetensors", "[1,2]", 0, 0);
    CHECK(open_err(p, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "not a JSON object");

    p = write_st("shape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
                 0);
    CHECK(open_err(p, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "shape[0]");

    p = write_st("offs.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, 0);
    CHECK(open_err(p, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "data_offsets");

    p = write_st("rev.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, 0);
    CHECK(open_err(p, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "end before they begin");
}

TEST(safetensors_rejects_wrong_dtype_string) {
    Error err;
    const char *p =
        write_st("dt.safetensors", "{\"w\":{\"dtype\":\"Q4_K\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, 0);
    CHECK(open_err(p, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "'w'");
    CHECK_STR_CONTAINS(err.message, "unsupported dtype \"Q4_K\"");
}

TEST(safetensors_rejects_shape_length_mismatch) {
    Error err;
    const char *p = write_st("mis.safetensors",
                             "{\"w\":{\"dtype\":\"BF16\",\"shape\":[3,2],\"data_offsets\":[0,8]}}", 8, 0);
    CHECK(open_err(p, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "'w'");
    CHECK_STR_CONTAINS(err.message, "8 bytes of data but shape x BF16 needs 12");
}

TEST(safetensors_rejects_overlap_and_duplicates) {
    Error err;
    const char *p = write_st("ovl.safetensors",
                             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                             "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                             12, 0);
    CHECK(open_err(p, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "overlap");

    p = write_st("dup.safetensors",
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                 8, 0);
    CHECK(open_err(p, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "'a' appears twice");
}

/* A two-shard directory; `drop` removes shard 2 or a tensor from the index. */
static const char *make_sharded(const char *dirname, int missing_shard, int missing_tensor) {
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", test_tmpdir(), dirname);
    mkdir(dir, 0755);
    char name[600];
    snprintf(name, sizeof name, "%s/model-00001-of-00002.safetensors", dirname);
    write_st(name, "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, 0);
    if (!missing_shard) {
        snprintf(name, sizeof name, "%s/model-00002-of-00002.safetensors", dirname);
        write_st(name,
                 missing_tensor ? "{\"c\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}"
                                : "{\"b\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}",
                 2, 0);
    }
    char path[700];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"metadata\":{},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
          "\"b\":\"model-00002-of-00002.safetensors\"}}",
          f);
    fclose(f);
    return dir;
}

TEST(safetensors_sharded_checkpoint) {
    Checkpoint *ck = NULL;
    Error err;
    const char *dir = make_sharded("sharded_ok", 0, 0);
    CHECK_MSG(checkpoint_open(&ck, dir, &err) == 0, "%s", err.message);
    if (ck) {
        CHECK(checkpoint_find(ck, "a") && checkpoint_find(ck, "b"));
        CHECK_STR_CONTAINS(checkpoint_find(ck, "b")->file, "model-00002-of-00002");
        checkpoint_close(ck);
    }
}

TEST(safetensors_missing_shard_and_missing_tensor) {
    Checkpoint *ck = NULL;
    Error err;
    CHECK(checkpoint_open(&ck, make_sharded("no_shard", 1, 0), &err) == -1);
    CHECK_STR_CONTAINS(err.message, "shard model-00002-of-00002.safetensors is missing");
    CHECK(checkpoint_open(&ck, make_sharded("no_tensor", 0, 1), &err) == -1);
    CHECK_STR_CONTAINS(err.message,
                       "tensor 'b' is listed in shard model-00002-of-00002.safetensors but missing");
    CHECK(checkpoint_open(&ck, "/nonexistent/dir", &err) == -1);
    CHECK_STR_CONTAINS(err.message, "/nonexistent/dir");
}

TEST(safetensors_rejects_empty_weight_map) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/empty_index", test_tmpdir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"metadata\":{},\"weight_map\":{}}", f);
    fclose(f);
    Checkpoint *ck = NULL;
    Error err;
    CHECK(checkpoint_open(&ck, dir, &err) == -1);
    CHECK(ck == NULL);
    CHECK_STR_CONTAINS(err.message, "\"weight_map\" lists no tensors");
}

TEST(safetensors_header_builder_round_trips) {
    TensorSpec specs[2] = {{"x", DTYPE_F32, 2, {2, 3}}, {"y", DTYPE_BF16, 1, {5}}};
    char *header = NULL;
    size_t header_len = 0, data_bytes = 0;
    Error err;
    CHECK(safetensors_build_header(specs, 2, &header, &header_len, &data_bytes, &err) == 0);
    CHECK_EQ_INT(header_len % 8, 0);
    CHECK_EQ_INT(data_bytes, 2 * 3 * 4 + 5 * 2);
    size_t size = 8 + header_len + data_bytes;
    uint8_t *file = calloc(1, size);
    for (int i = 0; i < 8; i++)
        file[i] = (uint8_t)((uint64_t)header_len >> (8 * i));
    memcpy(file + 8, header, header_len);
    TensorInfo *t = NULL;
    size_t n = 0;
    CHECK_MSG(safetensors_parse(file, size, "mem", &t, &n, &err) == 0, "%s", err.message);
    CHECK_EQ_INT(n, 2);
    tensor_infos_free(t, n);
    free(file);
    free(header);
}

/* The mapping a checkpoint is read through (its /proc/self/smaps block): start
 * address and whether its VmFlags carry "hg" (MADV_HUGEPAGE). 0, or -1 if absent. */
static int find_mapping(const void *inside, uintptr_t *start, int *huge_advised) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return -1;
    char line[512];
    int found = -1, in_block = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in_block = (uintptr_t)inside >= lo && (uintptr_t)inside < hi;
            if (in_block)
                *start = lo;
        } else if (in_block && strncmp(line, "VmFlags:", 8) == 0) {
            *huge_advised = strstr(line, " hg") != NULL;
            found = 0;
            break;
        }
    }
    fclose(f);
    return found;
}

/* Weights are mapped from a 2 MiB boundary with huge-page advice, so decode's
 * weight stream can use 2 MiB pages (safetensors.c map_huge_aligned). */
TEST(safetensors_maps_weights_huge_page_aligned) {
    size_t bytes = (size_t)5 << 20; /* over two huge pages */
    char header[160];
    snprintf(header, sizeof header, "{\"w\":{\"dtype\":\"BF16\",\"shape\":[%zu],\"data_offsets\":[0,%zu]}}",
             bytes / 2, bytes);
    const char *p = write_st("huge.safetensors", header, bytes, 0);
    Checkpoint *ck = NULL;
    Error err;
    CHECK_MSG(checkpoint_open_file(&ck, p, &err) == 0, "%s", err.message);
    if (!ck)
        return;
    const TensorInfo *w = checkpoint_find(ck, "w");
    uintptr_t start = 1;
    int advised = 0;
    CHECK(w != NULL);
    if (w && find_mapping(w->data, &start, &advised) != 0) {
        checkpoint_close(ck);
        test_skip("/proc/self/smaps is unreadable here (or has no VmFlags): the mapping cannot be inspected");
    }
    /* (file systems with THP alignment give large mappings 2 MiB starts anyway; the advice is the
     * check that catches a plain mmap) */
    CHECK_MSG(start % ((uintptr_t)2 << 20) == 0, "mapping starts at %#lx", (unsigned long)start);
    struct stat st;
    if (stat("/sys/kernel/mm/transparent_hugepage", &st) == 0) /* a kernel with THP keeps the advice */
        CHECK_MSG(advised, "the checkpoint mapping has no MADV_HUGEPAGE (VmFlags without hg)");
    const uint8_t *data = w ? w->data : NULL;
    CHECK(data && data[bytes - 1] == ((bytes - 1) & 0xff)); /* the last byte reads */
    checkpoint_close(ck);
    CHECK(find_mapping(data, &start, &advised) == -1); /* unmapped on close */
}
