/* PIPELINE_SERIES_DICOM inputs (image/dicom and pipeline/ share this; used by
 * pipeline.c): DICOM files -> tensors, and the request's last user message
 * laid out for them. */
#ifndef PIPELINE_DICOM_INPUTS_H
#define PIPELINE_DICOM_INPUTS_H

#include "pipeline/pipeline.h"
#include "util/error.h"

/* Memory behind a laid-out request (dicom_layout_free). */
typedef struct {
    ChatMessage *messages;
    ChatPart *parts;
    char (*labels)[24];
} DicomLayout;

/* rq's DICOM files -> *n_out tensors in *pixels (malloc'd, 3 x image_size^2
 * floats each), and *laid_out = rq with the last user message rebuilt: a
 * CT/MR volume of several slices as image, "SLICE 1", image, "SLICE 2", ...,
 * then its text (the MedGemma CT notebook); single images (X-ray, photos) as
 * its text, then the images. Errors name the file ("dicom[3]: (0028,0010) ...")
 * and never hold a header value. */
int dicom_inputs(const PipelineRequest *rq, int image_size, float **pixels, int *n_out,
                 PipelineRequest *laid_out, DicomLayout *mem, Error *err);
void dicom_layout_free(DicomLayout *mem);

#endif
