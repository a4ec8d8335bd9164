/* /analyze "dicom" -> tensors and the user turn (dicom_job.h). */
#include "http/dicom_job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/dicom/dicom.h"

/* The most images a request of single DICOM images (frames of X-rays,
 * photos) may make: as many as a CT volume's slices. */
#define DICOM_JOB_MAX_IMAGES CT_MAX_SLICES

static char *dup_text(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* Rebuilds the last user message: [prompt] + n image parts, with SLICE
 * labels for a volume. */
static int lay_out(JobInput *in, int n, int volume, Error *err) {
    Message *user = NULL;
    for (int i = in->n_messages - 1; i >= 0 && !user; i--)
        if (in->messages[i].role == ROLE_USER)
            user = &in->messages[i];
    if (!user)
        return error_set(err, "no user message");
    char *prompt = NULL; /* the text request.c put there (owned by the part) */
    for (int j = 0; j < user->n_parts; j++)
        if (user->parts[j].image < 0 && user->parts[j].text && !prompt) {
            prompt = user->parts[j].text;
            user->parts[j].text = NULL;
        } else {
            free(user->parts[j].text);
        }
    int labels = volume && n > 1;
    int n_parts = n * (labels ? 2 : 1) + (prompt ? 1 : 0);
    MessagePart *parts = calloc((size_t)(n_parts ? n_parts : 1), sizeof *parts);
    if (!parts) {
        free(prompt);
        return error_set(err, "out of memory");
    }
    free(user->parts);
    user->parts = parts;
    user->n_parts = 0;
    int k = 0;
    if (prompt && !labels)
        parts[k++] = (MessagePart){prompt, -1};
    for (int i = 0; i < n; i++) {
        parts[k++] = (MessagePart){NULL, i};
        if (labels) {
            char label[32];
            snprintf(label, sizeof label, "SLICE %d", i + 1);
            parts[k].image = -1;
            parts[k].text = dup_text(label);
            if (!parts[k++].text) {
                user->n_parts = k;
                free(prompt);
                return error_set(err, "out of memory");
            }
        }
    }
    if (prompt && labels)
        parts[k++] = (MessagePart){prompt, -1};
    user->n_parts = k;
    return 0;
}

int dicom_job_tensors(JobInput *in, int image_size, float **pixels, int *n_out, Error *err) {
    *pixels = NULL;
    *n_out = 0;
    const uint8_t **files = malloc(sizeof *files * (size_t)(in->n_images ? in->n_images : 1));
    size_t *sizes = malloc(sizeof *sizes * (size_t)(in->n_images ? in->n_images : 1));
    if (!files || !sizes) {
        free(files);
        free(sizes);
        return error_set(err, "out of memory");
    }
    for (int i = 0; i < in->n_images; i++) {
        files[i] = in->images[i].bytes;
        sizes[i] = in->images[i].n_bytes;
    }
    DicomOptions opt = {0};
    opt.modality = in->dicom_modality;
    opt.max_images = DICOM_JOB_MAX_IMAGES;
    PreprocessOptions po = {image_size, in->pad_to_square, 0};
    DicomResult r;
    float *t = NULL;
    int rc = dicom_files_to_tensors(files, sizes, in->n_images, NULL, &opt, &po, &t, &r, err);
    free(files);
    free(sizes);
    if (rc != 0)
        return -1;
    if (lay_out(in, r.n, r.volume, err) != 0) {
        free(t);
        dicom_result_free(&r);
        return -1;
    }
    *pixels = t;
    *n_out = r.n;
    dicom_result_free(&r);
    return 0;
}
