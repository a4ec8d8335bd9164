/* The fake CUDA runtime and cuBLASLt (see cuda_runtime_api.h): device memory is
 * host memory, every stream is synchronous, a captured stream records closures
 * that cudaGraphLaunch replays. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cublasLt.h"
#include "cuda_runtime_api.h"
#include "util/bf16.h"

typedef struct {
    void (*fn)(void *args);
    void *args;
} Op;

struct FakeGraph {
    Op *ops;
    int n, cap;
};
struct FakeStream {
    int capturing;
};
struct FakeEvent {
    int unused;
};

static struct FakeGraph *recording;
static int replays;

const char *cudaGetErrorString(cudaError_t e) {
    return e == cudaSuccess ? "no error" : "fake CUDA error";
}
cudaError_t cudaGetLastError(void) {
    return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int dev) {
    return dev == 0 ? cudaSuccess : cudaErrorInvalidValue;
}
cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int dev) {
    *value = attr == cudaDevAttrComputeCapabilityMajor ? 8 : 9;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int dev) {
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "fake GPU (host emulation)");
    prop->major = 8, prop->minor = 9;
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) {
    return cudaSuccess;
}
cudaError_t cudaMalloc(void **p, size_t bytes) {
    *p = aligned_alloc(256, (bytes + 255) / 256 * 256);
    if (!*p)
        return cudaErrorMemoryAllocation;
    memset(*p, 0xA5, bytes); /* garbage, like fresh device memory */
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t bytes) {
    return cudaMalloc(p, bytes);
}
cudaError_t cudaFreeHost(void *p) {
    return cudaFree(p);
}
cudaError_t cudaMemset(void *p, int value, size_t bytes) {
    memset(p, value, bytes);
    return cudaSuccess;
}

void fake_submit(void (*fn)(void *args), const void *args, size_t args_bytes) {
    if (!recording) {
        fn((void *)args);
        return;
    }
    if (recording->n == recording->cap) {
        recording->cap = recording->cap ? 2 * recording->cap : 64;
        recording->ops = realloc(recording->ops, recording->cap * sizeof *recording->ops);
    }
    void *copy = malloc(args_bytes);
    memcpy(copy, args, args_bytes);
    recording->ops[recording->n++] = (Op){fn, copy};
}

typedef struct {
    void *dst;
    const void *src;
    size_t bytes;
} CopyArgs;
static void run_copy(void *a) {
    CopyArgs *c = a;
    memcpy(c->dst, c->src, c->bytes);
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind) {
    memcpy(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t s) {
    CopyArgs c = {dst, src, bytes};
    fake_submit(run_copy, &c, sizeof c);
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    *s = calloc(1, sizeof **s);
    return *s ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    free(s);
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    return s && s->capturing ? cudaErrorUnknown : cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t s, enum cudaStreamCaptureMode mode) {
    if (recording || !s)
        return cudaErrorInvalidValue;
    recording = calloc(1, sizeof *recording);
    s->capturing = 1;
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph) {
    if (!recording || !s || !s->capturing)
        return cudaErrorInvalidValue;
    *graph = recording;
    recording = NULL;
    s->capturing = 0;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags) {
    struct FakeGraph *g = calloc(1, sizeof *g); /* the exec owns a copy of the op list */
    g->n = g->cap = graph->n;
    g->ops = malloc((graph->n ? graph->n : 1) * sizeof *g->ops);
    for (int i = 0; i < graph->n; i++) {
        g->ops[i] = graph->ops[i];
        graph->ops[i].args = NULL; /* moved */
    }
    *exec = g;
    return cudaSuccess;
}
static void graph_free(struct FakeGraph *g) {
    if (!g)
        return;
    for (int i = 0; i < g->n; i++)
        free(g->ops[i].args);
    free(g->ops);
    free(g);
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    graph_free(graph);
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    graph_free(exec);
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
    for (int i = 0; i < exec->n; i++)
        exec->ops[i].fn(exec->ops[i].args);
    replays++;
    return cudaSuccess;
}
int fake_graph_replays(void) {
    return replays;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags) {
    *e = calloc(1, sizeof **e);
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    free(e);
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *e) {
    return cudaEventCreateWithFlags(e, 0);
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    *ms = 1.0f; /* no clock on a fake device */
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    *total_bytes = (size_t)80 << 30;
    *free_bytes = (size_t)79 << 30;
    return cudaSuccess;
}

/* ---- cuBLASLt */

struct FakeLtHandle {
    int unused;
};
struct FakeLtDesc {
    cublasOperation_t op_a, op_b;
    cublasLtEpilogue_t epilogue;
    const void *bias;
};
struct FakeLtLayout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};
struct FakeLtPref {
    int unused;
};

const char *cublasLtGetStatusString(cublasStatus_t s) {
    return s == CUBLAS_STATUS_SUCCESS ? "success" : "fake cuBLASLt error";
}
cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    *h = calloc(1, sizeof **h);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    free(h);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute,
                                        cudaDataType_t scale) {
    *d = calloc(1, sizeof **d);
    (*d)->epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    return compute == CUBLAS_COMPUTE_32F && scale == CUDA_R_32F ? CUBLAS_STATUS_SUCCESS
                                                                : CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    free(d);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t size) {
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
        memcpy(&d->op_a, buf, sizeof d->op_a);
        break;
    case CUBLASLT_MATMUL_DESC_TRANSB:
        memcpy(&d->op_b, buf, sizeof d->op_b);
        break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
        memcpy(&d->epilogue, buf, sizeof d->epilogue);
        break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
        memcpy(&d->bias, buf, sizeof d->bias);
        break;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: {
        cudaDataType_t t;
        memcpy(&t, buf, sizeof t);
        if (t != CUDA_R_16BF)
            return CUBLAS_STATUS_NOT_SUPPORTED;
        break;
    }
    default:
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
    if (ld < (int64_t)rows)
        return CUBLAS_STATUS_INVALID_VALUE;
    *l = calloc(1, sizeof **l);
    **l = (struct FakeLtLayout){type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    free(l);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    *p = calloc(1, sizeof **p);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    free(p);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t size) {
    return CUBLAS_STATUS_SUCCESS;
}

/* op(X) dimensions of a layout */
static uint64_t op_rows(const struct FakeLtLayout *l, cublasOperation_t op) {
    return op == CUBLAS_OP_N ? l->rows : l->cols;
}
static uint64_t op_cols(const struct FakeLtLayout *l, cublasOperation_t op) {
    return op == CUBLAS_OP_N ? l->cols : l->rows;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dl,
                                              cublasLtMatmulPreference_t p, int requested,
                                              cublasLtMatmulHeuristicResult_t *results, int *found) {
    /* shapes must chain: op(A) m x k, op(B) k x n, D m x n */
    /* FAKE_LT_NO_ALGO=1: no algorithm for the "TN" (nn.Linear) shapes, to exercise the backend's GEMV
     * fallback */
    const char *no_algo = getenv("FAKE_LT_NO_ALGO");
    if ((no_algo && *no_algo == '1' && d->op_a == CUBLAS_OP_T) ||
        op_cols(a, d->op_a) != op_rows(b, d->op_b) || op_rows(a, d->op_a) != dl->rows ||
        op_cols(b, d->op_b) != dl->cols) {
        *found = 0;
        return CUBLAS_STATUS_SUCCESS;
    }
    memset(&results[0], 0, sizeof results[0]);
    *found = 1;
    return CUBLAS_STATUS_SUCCESS;
}

typedef struct {
    struct FakeLtDesc desc;
    struct FakeLtLayout a, b, d;
    const bf16 *A, *B;
    void *D;
} MatmulArgs;

static float at(const bf16 *m, const struct FakeLtLayout *l, cublasOperation_t op, uint64_t r, uint64_t c) {
    return op == CUBLAS_OP_N ? bf16_to_f32(m[r + c * l->ld]) : bf16_to_f32(m[c + r * l->ld]);
}

static void run_matmul(void *p) {
    MatmulArgs *m = p;
    uint64_t M = m->d.rows, N = m->d.cols, K = op_cols(&m->a, m->desc.op_a);
    for (uint64_t j = 0; j < N; j++)
        for (uint64_t i = 0; i < M; i++) {
            float acc = 0;
            for (uint64_t k = 0; k < K; k++)
                acc += at(m->A, &m->a, m->desc.op_a, i, k) * at(m->B, &m->b, m->desc.op_b, k, j);
            if (m->desc.epilogue == CUBLASLT_EPILOGUE_BIAS)
                acc += bf16_to_f32(((const bf16 *)m->desc.bias)[i]);
            if (m->d.type == CUDA_R_32F)
                ((float *)m->D)[i + j * m->d.ld] = acc;
            else
                ((bf16 *)m->D)[i + j * m->d.ld] = f32_to_bf16(acc);
        }
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t a, const void *B, cublasLtMatrixLayout_t b,
                              const void *beta, const void *C, cublasLtMatrixLayout_t c, void *D,
                              cublasLtMatrixLayout_t dl, const cublasLtMatmulAlgo_t *algo, void *workspace,
                              size_t workspace_bytes, cudaStream_t s) {
    if (*(const float *)alpha != 1.0f || *(const float *)beta != 0.0f || C != D || a->type != CUDA_R_16BF ||
        b->type != CUDA_R_16BF)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    MatmulArgs m = {*d, *a, *b, *dl, A, B, D};
    fake_submit(run_matmul, &m, sizeof m);
    return CUBLAS_STATUS_SUCCESS;
}
