/* PIPELINE_SERIES_DICOM in the request pipeline (pipeline/ owns this; image/dicom
 * does the DICOM work): the request's DICOM files -> tensors, and the
 * conversation with its last user turn laid out for them, because how many
 * images there are (frames, sampling) is known only after decoding:
 *   a CT/MR volume:           image, "SLICE 1", image, "SLICE 2", ..., the prompt
 *                             (the MedGemma CT notebook's layout);
 *   X-rays, photos, 1 slice:  the prompt, then the images. */
#ifndef PIPELINE_DICOM_INPUTS_H
#define PIPELINE_DICOM_INPUTS_H

#include "pipeline/pipeline.h"
#include "util/error.h"

/* The rebuilt conversation (owns every array; the texts point into the request). */
typedef struct {
    ChatMessage *messages;
    int n_messages;
    ChatPart *user_parts;
    char (*labels)[24]; /* "SLICE n" */
} DicomConversation;

/* rq->images are DICOM files -> *n_out tensors (malloc'd in *pixels) and *conv.
 * Errors name the file ("dicom[3]: (0028,0010) ..."), never a header value. */
int dicom_inputs(const PipelineRequest *rq, int image_size, float **pixels, int *n_out, DicomConversation *conv,
                 Error *err);
void dicom_conversation_free(DicomConversation *conv);

#endif
