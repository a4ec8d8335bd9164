/* A request's inputs as the engine takes them (pipeline/ owns this; used by
 * pipeline.c): image files -> pixel tensors, messages -> prompt ids. */
#ifndef PIPELINE_INPUTS_H
#define PIPELINE_INPUTS_H

#include <stdint.h>

#include "pipeline/pipeline.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

/* The request's images (or series) -> *n_out tensors of 3 x image_size^2 floats,
 * one after another in *pixels (malloc'd; NULL when none). Errors name the image. */
int inputs_tensors(const PipelineRequest *request, int image_size, float **pixels, int *n_out, Error *err);

/* The request's messages -> prompt ids (malloc'd), images expanded to image_tokens
 * soft tokens each; fails unless the prompt holds exactly n_tensors images. */
int inputs_prompt(const PipelineRequest *request, const Tokenizer *tokenizer, int image_tokens, int n_tensors,
                  int32_t **ids, int *n_ids, Error *err);

#endif
