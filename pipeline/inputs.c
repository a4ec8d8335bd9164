/* A request's inputs as the engine takes them (pipeline/ owns this): image files
 * -> normalized pixel tensors (single images, or a CT / MRI series sampled and
 * windowed by image/), chat messages -> prompt ids with each image expanded to
 * its soft tokens (Gemma 3's chat template, then the processor's expansion). */
#include "pipeline/inputs.h"

#include <stdlib.h>

#include "image/image.h"

int inputs_tensors(const PipelineRequest *rq, int image_size, float **pixels, int *n_out, Error *err) {
    size_t per = (size_t)3 * image_size * image_size;
    int n = rq->series ? series_output_count(rq->n_images, &rq->series_options) : rq->n_images;
    *n_out = 0;
    *pixels = NULL;
    if (n == 0)
        return 0;
    for (int i = 0; i < rq->n_images; i++) {
        ImageInfo info;
        if (image_probe(rq->images[i].bytes, rq->images[i].n_bytes, NULL, &info, err) != 0)
            return error_prefix(err, "%s", rq->images[i].what);
    }
    float *buf = malloc(per * (size_t)n * sizeof(float));
    if (!buf)
        return error_set(err, "out of memory for %d image tensors", n);
    PreprocessOptions po = {image_size, rq->pad_to_square, 0};
    int rc = 0;
    if (rq->series) {
        const uint8_t **slices = malloc(sizeof *slices * (size_t)rq->n_images);
        size_t *sizes = malloc(sizeof *sizes * (size_t)rq->n_images);
        if (!slices || !sizes) {
            rc = error_set(err, "out of memory");
        } else {
            for (int i = 0; i < rq->n_images; i++) {
                slices[i] = rq->images[i].bytes;
                sizes[i] = rq->images[i].n_bytes;
            }
            int got = 0;
            rc = rq->series == PIPELINE_SERIES_CT
                     ? ct_series_to_tensors(slices, sizes, rq->n_images, NULL, &rq->series_options, &po, buf,
                                            &got, NULL, err)
                     : mri_series_to_tensors(slices, sizes, rq->n_images, NULL, &rq->series_options, &po, buf,
                                             &got, NULL, err);
            if (rc == 0 && got != n)
                rc = error_set(err, "the series gave %d slices, expected %d", got, n);
            if (rc != 0)
                error_prefix(err, "%s", rq->series == PIPELINE_SERIES_CT ? "ct" : "mri");
        }
        free(slices);
        free(sizes);
    } else {
        for (int i = 0; i < n && rc == 0; i++) {
            rc = image_to_tensor(rq->images[i].bytes, rq->images[i].n_bytes, NULL, &po, buf + per * (size_t)i,
                                 err);
            if (rc != 0)
                error_prefix(err, "%s", rq->images[i].what);
        }
    }
    if (rc != 0) {
        free(buf);
        return -1;
    }
    *pixels = buf;
    *n_out = n;
    return 0;
}

int inputs_prompt(const PipelineRequest *rq, const Tokenizer *tok, int image_tokens, int n_tensors,
                  int32_t **ids, int *n_ids, Error *err) {
    if (rq->n_messages < 1)
        return error_set(err, "no messages");
    char *text = NULL;
    size_t n = 0;
    int n_images = 0;
    if (chat_render(rq->messages, rq->n_messages, 1, &text, err) != 0 ||
        prompt_tokenize(tok, text, image_tokens, ids, &n, &n_images, err) != 0) {
        free(text);
        return -1;
    }
    free(text);
    if (n_images != n_tensors) {
        /* A text part that spells "<start_of_image>" itself. */
        free(*ids);
        *ids = NULL;
        return error_set(
            err, "the prompt holds %d image markers for %d images: text may not contain <start_of_image>",
            n_images, n_tensors);
    }
    *n_ids = (int)n;
    return 0;
}
