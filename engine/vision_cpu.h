/* The SigLIP vision tower and the multimodal projector on the CPU: one
 * normalized image -> the soft-token embeddings that replace its
 * <image_soft_token> rows. Part of the CPU backend. */
#ifndef ENGINE_VISION_CPU_H
#define ENGINE_VISION_CPU_H

#include "engine/config.h"
#include "engine/weights.h"
#include "util/error.h"

typedef struct VisionCpu VisionCpu;

int vision_cpu_create(VisionCpu **out, const ModelConfig *config, const ModelWeights *weights, Error *err);
void vision_cpu_destroy(VisionCpu *vision);

/* pixels [3, S, S] -> out [mm_tokens_per_image, text hidden]. When
 * last_hidden is not NULL it receives the tower's output after the post
 * LayerNorm [patches, vision hidden] (tests). */
void vision_cpu_encode(VisionCpu *vision, const float *pixels, float *out, float *last_hidden);

#endif
