/* cuBLASLt GEMM plans: see gemm.h. */
#include "engine/cuda/gemm.h"

#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda_check.h"

#define GEMM_MAX_PLANS 256

typedef struct {
    GemmShape shape;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
} GemmPlan;

struct Gemm {
    cublasLtHandle_t handle;
    void *workspace;
    size_t workspace_bytes;
    int owns_workspace;
    GemmPlan plans[GEMM_MAX_PLANS];
    int n_plans;
    int next_evict; /* when the table is full, plans are replaced round-robin */
};

int gemm_create_with_workspace(Gemm **out, void *workspace, size_t workspace_bytes, Error *err) {
    *out = NULL;
    Gemm *g = calloc(1, sizeof *g);
    if (!g)
        return error_set(err, "gemm: out of host memory");
    cublasStatus_t s = cublasLtCreate(&g->handle);
    if (s != CUBLAS_STATUS_SUCCESS) {
        free(g);
        return cublas_check_failed(err, s, __FILE__, __LINE__, "cublasLtCreate");
    }
    g->workspace = workspace;
    g->workspace_bytes = workspace_bytes;
    *out = g;
    return 0;
}

int gemm_create(Gemm **out, size_t workspace_bytes, Error *err) {
    void *workspace = NULL;
    CUDA_TRY(cudaMalloc(&workspace, workspace_bytes));
    if (gemm_create_with_workspace(out, workspace, workspace_bytes, err) != 0) {
        cudaFree(workspace);
        return -1;
    }
    (*out)->owns_workspace = 1;
    return 0;
}

static void plan_free(GemmPlan *p) {
    if (p->desc)
        cublasLtMatmulDescDestroy(p->desc);
    if (p->a)
        cublasLtMatrixLayoutDestroy(p->a);
    if (p->b)
        cublasLtMatrixLayoutDestroy(p->b);
    if (p->d)
        cublasLtMatrixLayoutDestroy(p->d);
    memset(p, 0, sizeof *p);
}

void gemm_destroy(Gemm *gemm) {
    if (!gemm)
        return;
    for (int i = 0; i < gemm->n_plans; i++)
        plan_free(&gemm->plans[i]);
    if (gemm->owns_workspace)
        cudaFree(gemm->workspace);
    cublasLtDestroy(gemm->handle);
    free(gemm);
}

int gemm_plan_count(const Gemm *gemm) {
    return gemm->n_plans;
}

static int same_shape(const GemmShape *x, const GemmShape *y) {
    return x->n_rows == y->n_rows && x->in_dim == y->in_dim && x->out_dim == y->out_dim &&
           x->layout == y->layout && !x->has_bias == !y->has_bias && !x->out_f32 == !y->out_f32;
}

static int plan_build(Gemm *g, GemmPlan *p, const GemmShape *s, Error *err) {
    memset(p, 0, sizeof *p);
    p->shape = *s;
    CUBLAS_TRY(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t op_a = s->layout == GEMM_W_OUT_IN ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = CUBLAS_OP_N;
    CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
    CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
    if (s->has_bias) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        cudaDataType_t bias_type = CUDA_R_16BF;
        CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                                  sizeof bias_type));
    }
    /* Column-major views: A is the weight, B the activations, D the output. */
    if (s->layout == GEMM_W_OUT_IN)
        CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, s->in_dim, s->out_dim, s->in_dim));
    else
        CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, s->out_dim, s->in_dim, s->out_dim));
    CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, s->in_dim, s->n_rows, s->in_dim));
    CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p->d, s->out_f32 ? CUDA_R_32F : CUDA_R_16BF, s->out_dim, s->n_rows,
                                          s->out_dim));

    cublasLtMatmulPreference_t pref;
    CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = g->workspace_bytes;
    uint32_t align = 16; /* every pointer we pass is at least 16-byte aligned */
    cublasStatus_t st =
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulPreferenceAttributes_t align_attrs[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4 && st == CUBLAS_STATUS_SUCCESS; i++)
        st = cublasLtMatmulPreferenceSetAttribute(pref, align_attrs[i], &align, sizeof align);
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(g->handle, p->desc, p->a, p->b, p->d, p->d, pref, 1, &result,
                                            &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS)
        return error_set(err, "%s:%d: cuBLASLt heuristic for %dx%dx%d: %s", __FILE__, __LINE__, s->n_rows,
                         s->in_dim, s->out_dim, cublasLtGetStatusString(st));
    if (found == 0)
        return error_set(err, "cuBLASLt has no algorithm for rows %d, in %d, out %d%s", s->n_rows, s->in_dim,
                         s->out_dim, s->has_bias ? " with bias" : "");
    p->algo = result.algo;
    return 0;
}

static int plan_get(Gemm *g, const GemmShape *s, GemmPlan **out, Error *err) {
    for (int i = 0; i < g->n_plans; i++)
        if (same_shape(&g->plans[i].shape, s)) {
            *out = &g->plans[i];
            return 0;
        }
    GemmPlan *p;
    if (g->n_plans < GEMM_MAX_PLANS) {
        p = &g->plans[g->n_plans];
    } else {
        p = &g->plans[g->next_evict];
        g->next_evict = (g->next_evict + 1) % GEMM_MAX_PLANS;
        plan_free(p);
    }
    if (plan_build(g, p, s, err) != 0) {
        plan_free(p);
        return GEMM_NO_PLAN;
    }
    if (p == &g->plans[g->n_plans])
        g->n_plans++;
    *out = p;
    return 0;
}

int gemm_prepare(Gemm *gemm, const GemmShape *shape, Error *err) {
    GemmPlan *p;
    return plan_get(gemm, shape, &p, err);
}

int gemm_run(Gemm *gemm, const GemmShape *shape, void *y, const bf16 *x, const bf16 *w, const bf16 *bias,
             cudaStream_t stream, Error *err) {
    if (shape->n_rows <= 0)
        return 0;
    GemmPlan *p;
    int rc = plan_get(gemm, shape, &p, err);
    if (rc != 0)
        return rc;
    if (shape->has_bias)
        CUBLAS_TRY(
            cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    float alpha = 1.0f, beta = 0.0f;
    CUBLAS_TRY(cublasLtMatmul(gemm->handle, p->desc, &alpha, w, p->a, x, p->b, &beta, y, p->d, y, p->d,
                              &p->algo, gemm->workspace, gemm->workspace_bytes, stream));
    return 0;
}
