/* DICOM files -> tensors and the prompt layout (dicom_inputs.h). */
#include "pipeline/dicom_inputs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/dicom/dicom.h"

/* The most images a request of single DICOM images (frames of X-rays,
 * photos) may make: as many as a CT volume's slices. */
#define DICOM_MAX_IMAGES CT_MAX_SLICES

void dicom_layout_free(DicomLayout *mem) {
    free(mem->messages);
    free(mem->parts);
    free(mem->labels);
    memset(mem, 0, sizeof *mem);
}

static int lay_out(const PipelineRequest *rq, int n, int volume, PipelineRequest *out, DicomLayout *mem,
                   Error *err) {
    int user = -1, n_text = 0;
    for (int i = 0; i < rq->n_messages; i++)
        if (!strcmp(rq->messages[i].role, "user"))
            user = i;
    if (user < 0)
        return error_set(err, "no user message for the DICOM images");
    const ChatMessage *u = &rq->messages[user];
    for (int j = 0; j < u->n_parts; j++) {
        if (u->parts[j].type != CHAT_PART_TEXT)
            return error_set(err,
                             "the DICOM images are placed by the server: the message holds no image part");
        n_text++;
    }
    int labels = volume && n > 1;
    mem->messages = malloc(sizeof *mem->messages * (size_t)rq->n_messages);
    mem->parts = malloc(sizeof *mem->parts * (size_t)(n * 2 + n_text + 1));
    mem->labels = malloc(sizeof *mem->labels * (size_t)(n + 1));
    if (!mem->messages || !mem->parts || !mem->labels) {
        dicom_layout_free(mem);
        return error_set(err, "out of memory");
    }
    memcpy(mem->messages, rq->messages, sizeof *mem->messages * (size_t)rq->n_messages);
    int k = 0;
    if (!labels)
        for (int j = 0; j < u->n_parts; j++)
            mem->parts[k++] = u->parts[j];
    for (int i = 0; i < n; i++) {
        mem->parts[k++] = (ChatPart){CHAT_PART_IMAGE, NULL};
        if (labels) {
            snprintf(mem->labels[i], sizeof mem->labels[i], "SLICE %d", i + 1);
            mem->parts[k++] = (ChatPart){CHAT_PART_TEXT, mem->labels[i]};
        }
    }
    if (labels)
        for (int j = 0; j < u->n_parts; j++)
            mem->parts[k++] = u->parts[j];
    mem->messages[user].parts = mem->parts;
    mem->messages[user].n_parts = k;
    *out = *rq;
    out->messages = mem->messages;
    return 0;
}

int dicom_inputs(const PipelineRequest *rq, int image_size, float **pixels, int *n_out,
                 PipelineRequest *laid_out, DicomLayout *mem, Error *err) {
    *pixels = NULL;
    *n_out = 0;
    memset(mem, 0, sizeof *mem);
    int n = rq->n_images;
    const uint8_t **files = malloc(sizeof *files * (size_t)(n > 0 ? n : 1));
    size_t *sizes = malloc(sizeof *sizes * (size_t)(n > 0 ? n : 1));
    if (!files || !sizes) {
        free(files);
        free(sizes);
        return error_set(err, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        files[i] = rq->images[i].bytes;
        sizes[i] = rq->images[i].n_bytes;
    }
    DicomOptions opt = {0};
    opt.modality = rq->dicom_modality;
    opt.max_images = DICOM_MAX_IMAGES;
    PreprocessOptions po = {image_size, rq->pad_to_square, 0};
    DicomResult r;
    float *t = NULL;
    int rc = dicom_files_to_tensors(files, sizes, n, NULL, &opt, &po, &t, &r, err);
    free(files);
    free(sizes);
    if (rc != 0)
        return -1;
    if (lay_out(rq, r.n, r.volume, laid_out, mem, err) != 0) {
        free(t);
        dicom_result_free(&r);
        return -1;
    }
    *pixels = t;
    *n_out = r.n;
    dicom_result_free(&r);
    return 0;
}
