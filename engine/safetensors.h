/* safetensors checkpoints: one file or shards listed by
 * model.safetensors.index.json, mmap'd read-only, headers parsed with cJSON
 * and validated before anything is trusted (header length, JSON shape, dtype
 * names, shape x dtype size == byte length, offsets inside the file and not
 * overlapping, names unique across shards).
 *
 * Owns: the mappings and the tensor table. Tensor data pointers stay valid
 * until checkpoint_close. */
#ifndef ENGINE_SAFETENSORS_H
#define ENGINE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Float dtypes hold weights; integer ones appear in test fixtures (token ids). */
typedef enum { DTYPE_BF16, DTYPE_F16, DTYPE_F32, DTYPE_I32, DTYPE_I64 } DType;

#define TENSOR_MAX_DIMS 8

typedef struct {
    char *name;
    DType dtype;
    int n_dims;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t n_elements;
    const void *data; /* inside the mapping; not necessarily aligned */
    size_t n_bytes;
    const char *file; /* path of the file holding it */
} TensorInfo;

typedef struct Checkpoint Checkpoint;

/* Opens model_dir/model.safetensors.index.json when present (all shards),
 * else model_dir/model.safetensors, else the single *.safetensors file. */
int checkpoint_open(Checkpoint **out, const char *model_dir, Error *err);
/* Opens one .safetensors file as a checkpoint. */
int checkpoint_open_file(Checkpoint **out, const char *path, Error *err);
void checkpoint_close(Checkpoint *ckpt);

size_t checkpoint_count(const Checkpoint *ckpt);
const TensorInfo *checkpoint_tensor(const Checkpoint *ckpt, size_t index);
/* NULL when absent. */
const TensorInfo *checkpoint_find(const Checkpoint *ckpt, const char *name);
/* Sum of the tensors' byte lengths. */
size_t checkpoint_total_bytes(const Checkpoint *ckpt);

/* Parses and validates the header of a safetensors file held in memory
 * (file_bytes, file_size = the whole file). Appends tensors to *tensors
 * (realloc'd, count in *n_tensors) with data pointing into file_bytes.
 * `label` names the file in messages. The fuzz target drives this. */
int safetensors_parse(const uint8_t *file_bytes, size_t file_size, const char *label, TensorInfo **tensors,
                      size_t *n_tensors, Error *err);
void tensor_infos_free(TensorInfo *tensors, size_t n_tensors);

const char *dtype_name(DType dtype);
size_t dtype_size(DType dtype);

/* Writing (synth-model, tests): a header for n tensors laid out back to back. */
typedef struct {
    const char *name;
    DType dtype;
    int n_dims;
    int64_t shape[TENSOR_MAX_DIMS];
} TensorSpec;

/* Builds the JSON header (padded with spaces to a multiple of 8) for tensors
 * laid out in order. *header is malloc'd; *data_bytes receives the total
 * size of the data section. */
int safetensors_build_header(const TensorSpec *specs, size_t n, char **header, size_t *header_len,
                             size_t *data_bytes, Error *err);

#endif
