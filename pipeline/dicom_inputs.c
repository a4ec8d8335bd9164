/* DICOM files -> tensors + the user turn's layout (dicom_inputs.h). */
#include "pipeline/dicom_inputs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/dicom/dicom.h"

/* The most images one request of DICOM files may make: as many as a CT volume's slices. */
#define DICOM_INPUTS_MAX_IMAGES CT_MAX_SLICES

/* Copies the conversation, the last user turn replaced by [prompt] + n images
 * (with "SLICE k" after each image of a volume, the prompt last). */
static int lay_out(const PipelineRequest *rq, int n, int volume, DicomConversation *c, Error *err) {
    int user = -1;
    for (int i = rq->n_messages - 1; i >= 0 && user < 0; i--)
        if (strcmp(rq->messages[i].role, "user") == 0)
            user = i;
    if (user < 0)
        return error_set(err, "no user message for the DICOM images");
    const char *prompt = NULL; /* the turn's text (the request's prompt) */
    for (int j = 0; j < rq->messages[user].n_parts && !prompt; j++)
        if (rq->messages[user].parts[j].type == CHAT_PART_TEXT && rq->messages[user].parts[j].text[0])
            prompt = rq->messages[user].parts[j].text;
    int labels = volume && n > 1;
    c->messages = malloc(sizeof *c->messages * (size_t)rq->n_messages);
    c->user_parts = malloc(sizeof *c->user_parts * (size_t)(2 * n + 1));
    c->labels = labels ? malloc(sizeof *c->labels * (size_t)n) : NULL;
    if (!c->messages || !c->user_parts || (labels && !c->labels))
        return error_set(err, "out of memory");
    memcpy(c->messages, rq->messages, sizeof *c->messages * (size_t)rq->n_messages);
    c->n_messages = rq->n_messages;
    int k = 0;
    if (prompt && !labels)
        c->user_parts[k++] = (ChatPart){CHAT_PART_TEXT, prompt};
    for (int i = 0; i < n; i++) {
        c->user_parts[k++] = (ChatPart){CHAT_PART_IMAGE, NULL};
        if (labels) {
            snprintf(c->labels[i], sizeof c->labels[i], "SLICE %d", i + 1);
            c->user_parts[k++] = (ChatPart){CHAT_PART_TEXT, c->labels[i]};
        }
    }
    if (prompt && labels)
        c->user_parts[k++] = (ChatPart){CHAT_PART_TEXT, prompt};
    c->messages[user].parts = c->user_parts;
    c->messages[user].n_parts = k;
    return 0;
}

int dicom_inputs(const PipelineRequest *rq, int image_size, float **pixels, int *n_out,
                 DicomConversation *conv, Error *err) {
    *pixels = NULL;
    *n_out = 0;
    memset(conv, 0, sizeof *conv);
    if (rq->n_images < 1)
        return error_set(err, "dicom: no files");
    const uint8_t **files = malloc(sizeof *files * (size_t)rq->n_images);
    size_t *sizes = malloc(sizeof *sizes * (size_t)rq->n_images);
    if (!files || !sizes) {
        free(files);
        free(sizes);
        return error_set(err, "out of memory");
    }
    for (int i = 0; i < rq->n_images; i++) {
        files[i] = rq->images[i].bytes;
        sizes[i] = rq->images[i].n_bytes;
    }
    DicomOptions opt = {0};
    opt.modality = rq->dicom_modality ? rq->dicom_modality : "";
    opt.max_images = DICOM_INPUTS_MAX_IMAGES;
    opt.voi_index = rq->dicom_window;
    PreprocessOptions po = {image_size, rq->pad_to_square, 0};
    DicomResult r;
    float *t = NULL;
    int rc = dicom_files_to_tensors(files, sizes, rq->n_images, NULL, &opt, &po, &t, &r, err);
    free(files);
    free(sizes);
    if (rc != 0)
        return -1;
    rc = lay_out(rq, r.n, r.volume, conv, err);
    int n = r.n;
    dicom_result_free(&r);
    if (rc != 0) {
        free(t);
        dicom_conversation_free(conv);
        return -1;
    }
    *pixels = t;
    *n_out = n;
    return 0;
}

void dicom_conversation_free(DicomConversation *conv) {
    free(conv->messages);
    free(conv->user_parts);
    free(conv->labels);
    memset(conv, 0, sizeof *conv);
}
