/* DICOM in (image/dicom owns this; docs/images.md is the manual): files as a
 * scanner or PACS exports them -> the 8-bit RGB images MedGemma 1.5 expects.
 *
 * dicom_gdcm.cpp parses and decodes through GDCM; everything here is plain C:
 *   dicom.c         one file: limits, stored values (BitsStored honoured,
 *                   sign-extended), CT windows (Hounsfield units through
 *                   ct_window.c), X-ray VOI windows and MONOCHROME1, colour
 *                   (RGB, YBR_FULL as pydicom converts it).
 *   dicom_series.c  several files: which kind, sorting along the slice normal,
 *                   sampling to the most slices, mixed series refused.
 *
 * Patient data: no header value is logged, kept after the call, or put in an
 * error message; errors name the file ("dicom[3]") and the tag. */
#ifndef IMAGE_DICOM_DICOM_H
#define IMAGE_DICOM_DICOM_H

#include <stddef.h>
#include <stdint.h>

#include "image/ct_window.h"
#include "image/dicom/dicom_gdcm.h"
#include "image/image.h"
#include "util/error.h"

/* Limits, checked from the header before any pixel buffer is allocated. Zero
 * in a field means the default. */
typedef struct {
    size_t max_file_bytes;     /* one file; default 64 MiB */
    size_t max_request_bytes;  /* all files of one call; default 512 MiB */
    int max_frames;            /* frames in one file; default 2048 */
    int64_t max_pixels;        /* rows x columns; default 40,000,000 */
    int max_side;              /* rows and columns each; default 16384 */
    int64_t max_decoded_bytes; /* one file's decoded pixel data; default 1 GiB */
} DicomLimits;

#define DICOM_DEFAULT_MAX_FILE_BYTES ((size_t)64 << 20)
#define DICOM_DEFAULT_MAX_REQUEST_BYTES ((size_t)512 << 20)
#define DICOM_DEFAULT_MAX_FRAMES 2048
#define DICOM_DEFAULT_MAX_PIXELS ((int64_t)40000000)
#define DICOM_DEFAULT_MAX_SIDE 16384
#define DICOM_DEFAULT_MAX_DECODED_BYTES ((int64_t)1 << 30)

/* What a file (or a request's modality) turns into. */
typedef enum {
    DICOM_KIND_CT = 1, /* Hounsfield units, three CT windows, a volume */
    DICOM_KIND_MR,     /* min-max over the sampled volume, a volume */
    DICOM_KIND_GRAY,   /* X-ray and other grayscale: VOI window or min-max, MONOCHROME1 inverted */
    DICOM_KIND_COLOR,  /* RGB / YBR photos */
} DicomKind;

/* One decoded file. */
typedef struct {
    DicomHeader h;
    int32_t *values; /* grayscale: stored values, frames*rows*cols, BitsStored bits, sign-extended */
    uint8_t *rgb;    /* colour: 8-bit RGB, frames*rows*cols*3 */
} DicomImage;

/* Parses and decodes one file (limits first). */
int dicom_read(const uint8_t *bytes, size_t n, const DicomLimits *limits, DicomImage *out, Error *err);

/* Parses the header only (limits checked), no pixel buffer. */
int dicom_read_header(const uint8_t *bytes, size_t n, const DicomLimits *limits, DicomHeader *h, Error *err);

void dicom_image_free(DicomImage *img);

/* The kind for a header, or for `modality` when the request names one
 * (CT, MR/MRI, anything else by samples per pixel). Whole-slide microscopy
 * (SM), palette colour and other unsupported layouts are refused. */
int dicom_kind(const DicomHeader *h, const char *modality, DicomKind *kind, Error *err);

/* Physical values (stored * RescaleSlope + RescaleIntercept, double) of one
 * grayscale frame: rows*cols values into out. */
int dicom_frame_physical(const DicomImage *img, int frame, double *out, Error *err);

/* One grayscale frame as a 16-bit gray DecodedImage plus its rescale (the
 * input of ct_window.c's functions). */
int dicom_frame_gray16(const DicomImage *img, int frame, DecodedImage *out, RescaleParams *rescale,
                       Error *err);

/* CT: Hounsfield units -> the three windows (NULL: CT_WINDOWS_DEFAULT);
 * pixels equal to PixelPaddingValue (or inside the padding range) -> 0. */
int dicom_ct_frame_rgb8(const DicomImage *img, int frame, const CtWindows *windows, DecodedImage *out,
                        Error *err);

/* X-ray and other grayscale: modality rescale, then window voi_index of
 * (0028,1050)/(0028,1051) with (0028,1056) LINEAR / LINEAR_EXACT / SIGMOID
 * exactly as pydicom's apply_windowing, scaled from its output range to
 * 0..255; without a window, min-max of the frame. MONOCHROME1 inverted
 * last. Gray replicated to R, G, B. */
int dicom_gray_frame_rgb8(const DicomImage *img, int frame, int voi_index, DecodedImage *out, Error *err);

/* Colour: a copy of the frame's RGB. */
int dicom_color_frame_rgb8(const DicomImage *img, int frame, DecodedImage *out, Error *err);

/* ---- several files (dicom_series.c) ---- */

typedef struct {
    const char *modality;     /* overrides (0008,0060) when not NULL or "" */
    const CtWindows *windows; /* CT windows; NULL: CT_WINDOWS_DEFAULT */
    int max_slices;           /* CT/MR: at most this many slices; 0 means CT_MAX_SLICES */
    int voi_index;            /* gray: which VOI window (0 = the first) */
    int max_images;           /* gray/colour: at most this many frames in all; 0 means no cap */
    int threads;              /* decode threads; 0 means MEDGEMMA_IMAGE_THREADS or online CPUs (<= 8) */
} DicomOptions;

/* How a volume's slices were ordered. */
typedef enum {
    DICOM_ORDER_POSITION = 1, /* along the slice normal (ImagePositionPatient . normal) */
    DICOM_ORDER_INSTANCE,     /* by InstanceNumber (positions missing) */
    DICOM_ORDER_AS_SENT,      /* neither tag: the order the files came in (and frames in file order) */
} DicomOrder;

typedef struct {
    DicomKind kind;
    int volume;         /* 1: CT/MR slices (prompt: image, "SLICE k", ..., question) */
    DicomOrder order;   /* volumes: how they were sorted */
    int n;              /* images made */
    DecodedImage *rgb;  /* n 8-bit RGB images (or NULL when only tensors were asked for) */
    int *file, *frame;  /* n: which file (0-based, as sent) and frame each came from */
    int n_total_slices; /* volumes: slices before sampling */
} DicomResult;

/* Files (in any order) -> images. Errors name the file: "dicom[7]: (0020,000E)
 * SeriesInstanceUID differs from dicom[0]: the files are from different
 * series". */
int dicom_files_to_rgb8(const uint8_t *const *files, const size_t *sizes, int n_files,
                        const DicomLimits *limits, const DicomOptions *opt, DicomResult *out, Error *err);

/* The same, each image then preprocessed (image_rgb8_to_tensor) into
 * *tensors (malloc'd, n * 3*size*size floats); out->rgb is NULL. */
int dicom_files_to_tensors(const uint8_t *const *files, const size_t *sizes, int n_files,
                           const DicomLimits *limits, const DicomOptions *opt, const PreprocessOptions *po,
                           float **tensors, DicomResult *out, Error *err);

void dicom_result_free(DicomResult *r);

/* One DICOM file as one image (image_to_tensor's DICOM path: a chat
 * image_url, an /analyze "images" entry, `generate --image`): modality from
 * (0008,0060), one tensor (3*size*size floats). A file that holds several
 * frames is refused with a message pointing at the "dicom" field. */
int dicom_file_to_tensor(const uint8_t *bytes, size_t n, const PreprocessOptions *po, float *out_chw,
                         Error *err);

/* 1 when bytes look like a DICOM Part 10 file ("DICM" at offset 128). */
int dicom_is_dicom(const uint8_t *bytes, size_t n);

#endif
