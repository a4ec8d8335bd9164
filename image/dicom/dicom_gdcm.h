/* The GDCM shim (image/dicom owns this): the only code that touches the
 * DICOM library. dicom_gdcm.cpp parses a file from memory with GDCM
 * (Debian libgdcm-dev: implicit/explicit VR little endian, big endian,
 * deflate, RLE, JPEG baseline/extended/lossless, JPEG-LS via CharLS,
 * JPEG 2000 via OpenJPEG), copies out the few tags the semantics need and
 * decodes the pixel data. Nothing of DICOM parsing is written here by hand.
 *
 * Patient data: header values are read into DicomHeader only for the tags
 * below (none identifies a patient except SeriesInstanceUID, which is kept
 * for comparison and never printed). GDCM's own warnings are silenced, and
 * every error message names a tag or a property, never a value. */
#ifndef IMAGE_DICOM_DICOM_GDCM_H
#define IMAGE_DICOM_DICOM_GDCM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define _Noreturn [[noreturn]] /* util/error.h is C11 */
extern "C" {
#endif

#include "util/error.h"

#define DICOM_MAX_WINDOWS 8

/* The tags the semantics use, as found in the file ("has_*" = present and parsed). */
typedef struct {
    int rows, cols, frames;   /* (0028,0010), (0028,0011), (0028,0008) (1 when absent) */
    int samples_per_pixel;    /* (0028,0002) */
    int bits_allocated;       /* (0028,0100) */
    int bits_stored;          /* (0028,0101) */
    int pixel_signed;         /* (0028,0103) PixelRepresentation */
    int planar_configuration; /* (0028,0006): 1 = colour planes one after another */
    char photometric[20];     /* (0028,0004), e.g. "MONOCHROME2", "YBR_FULL_422" */
    char transfer_syntax[68]; /* (0002,0010) */
    char modality[20];        /* (0008,0060), upper case, "" when absent */
    char sop_class_uid[68];   /* (0008,0016) */
    char series_uid[68];      /* (0020,000E); compared between files, never printed */
    int has_rescale;          /* (0028,1052) and (0028,1053) both present */
    double rescale_slope, rescale_intercept;
    int n_windows; /* (0028,1050)/(0028,1051) pairs */
    double window_center[DICOM_MAX_WINDOWS], window_width[DICOM_MAX_WINDOWS];
    char voi_function[20];         /* (0028,1056), "" when absent (LINEAR) */
    int has_voi_lut_sequence;      /* (0028,3010) present (a LUT, not supported: refused) */
    int has_modality_lut_sequence; /* (0028,3000) present (refused) */
    int has_position;              /* (0020,0032) ImagePositionPatient */
    double position[3];
    int has_orientation; /* (0020,0037) ImageOrientationPatient */
    double orientation[6];
    int has_instance_number; /* (0020,0013) */
    long instance_number;
    int has_padding; /* (0028,0120) PixelPaddingValue */
    long padding_value;
    int has_padding_limit; /* (0028,0121) PixelPaddingRangeLimit */
    long padding_limit;
} DicomHeader;

typedef struct DicomGdcm DicomGdcm;

/* Parses bytes[0..n) (kept by reference until dicom_gdcm_close) and fills
 * *h. Pixels are not decoded yet. Returns 0, or -1 with a message such as
 * "not a DICOM file GDCM can read" or "(0028,0010) Rows is missing". */
int dicom_gdcm_open(const uint8_t *bytes, size_t n, DicomGdcm **out, DicomHeader *h, Error *err);

/* Bytes the decoded pixel data of all frames takes (GDCM's layout:
 * bits_allocated/8 bytes per sample, little endian, frames one after another,
 * colour interleaved unless planar_configuration says otherwise). */
size_t dicom_gdcm_decoded_length(const DicomGdcm *g);

/* Decodes every frame into buf (exactly dicom_gdcm_decoded_length bytes). */
int dicom_gdcm_decode(DicomGdcm *g, uint8_t *buf, size_t len, Error *err);

void dicom_gdcm_close(DicomGdcm *g);

#ifdef __cplusplus
}
#endif

#endif
