/* libFuzzer target over image/dicom (GDCM through the shim, then the
 * semantics). The first input byte picks a path, the rest is the payload:
 *   0: one file -> dicom_files_to_rgb8 (CT/MR/X-ray/colour by its header)
 *   1: the payload split in two files at byte 1 of the payload's length
 *      ratio -> a two-file series (sorting, mixed-series checks)
 *   2: image_to_tensor (the chat image_url / "images" path), 32x32 output
 *   3: one file with the modality forced to CT, then MR
 * Inputs over 64 KiB are skipped and the limits are small: GDCM is slow, so
 * the fuzzer should spend its runs on structure, not on big pixel buffers.
 * Seeds: tests/fuzz/corpus_dicom/ (tests/fuzz/make_dicom_corpus.py).
 * Build: make fuzz; run: build-fuzz/fuzz_dicom -max_len=65536 tests/fuzz/corpus_dicom */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "image/dicom/dicom.h"
#include "image/image.h"

#define FUZZ_SIZE 32

static void run(const uint8_t *const *files, const size_t *sizes, int n, const char *modality) {
    DicomLimits lim = {.max_file_bytes = 1 << 16,
                       .max_request_bytes = 1 << 17,
                       .max_frames = 64,
                       .max_pixels = 1 << 18,
                       .max_side = 4096,
                       .max_decoded_bytes = 1 << 24};
    DicomOptions opt = {.modality = modality, .max_slices = 4, .max_images = 8, .threads = 1};
    DicomResult r;
    Error err;
    if (dicom_files_to_rgb8(files, sizes, n, &lim, &opt, &r, &err) == 0)
        dicom_result_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2 || size > (1 << 16))
        return 0;
    uint8_t path = data[0] % 4, split = data[1];
    data += 2;
    size -= 2;
    switch (path) {
    case 0:
        run(&data, &size, 1, NULL);
        break;
    case 1: {
        size_t a = size * split / 256;
        const uint8_t *files[2] = {data, data + a};
        size_t sizes[2] = {a, size - a};
        run(files, sizes, 2, NULL);
        break;
    }
    case 2: {
        static float tensor[3 * FUZZ_SIZE * FUZZ_SIZE];
        PreprocessOptions opt = {.size = FUZZ_SIZE};
        Error err;
        image_to_tensor(data, size, NULL, &opt, tensor, &err);
        break;
    }
    default:
        run(&data, &size, 1, "CT");
        run(&data, &size, 1, "MR");
        break;
    }
    return 0;
}
