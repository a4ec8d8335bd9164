/* `generate --dicom-dir DIR`: the DICOM files of a folder (cli/ owns this;
 * image/dicom does the decoding). */
#ifndef CLI_DICOM_DIR_H
#define CLI_DICOM_DIR_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Reads every regular file of dir (not recursing; names starting with '.'
 * and DICOMDIR skipped), in name order (the order does not matter: image/dicom
 * sorts the slices), at most max_files. Each header is checked (limits, kind)
 * before any model is loaded. *files and each (*files)[i] are malloc'd:
 * release with dicom_dir_free. Errors name the file. */
int dicom_dir_read(const char *dir, int max_files, uint8_t ***files, size_t **sizes, int *n, Error *err);
void dicom_dir_free(uint8_t **files, size_t *sizes, int n);

#endif
