/* /analyze "dicom" in the worker (image/dicom does the work; this file only
 * joins it to a job). */
#ifndef HTTP_DICOM_JOB_H
#define HTTP_DICOM_JOB_H

#include "http/job.h"
#include "util/error.h"

/* The job's DICOM files (ImageFile.bytes, decoded from base64) -> one tensor
 * per image (*pixels, malloc'd, *n_out * 3*image_size^2 floats), and the
 * user turn laid out for them: a CT/MR volume as image, "SLICE 1", image,
 * "SLICE 2", ..., then the prompt (the CT notebook's layout); single images
 * (X-ray, photos) as the prompt, then the images. Errors name the file
 * ("dicom[3]: (0028,0010) ..."), never a header value. */
int dicom_job_tensors(JobInput *in, int image_size, float **pixels, int *n_out, Error *err);

#endif
