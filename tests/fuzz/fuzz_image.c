/* libFuzzer target over image/: the first input byte picks a path, the rest
 * is the payload.
 *   0: strict base64 (the payload as JSON text would carry it), then, if it
 *      decodes, the bytes through image_to_tensor
 *   1: image_to_tensor on raw bytes (PNG/JPEG decode + resize + normalize)
 *   2: raw gray decode + CT windowing + tensor (the /analyze "ct" path)
 *   3: decode with alpha composited on white, padded to a square
 * The output size is small (32x32) so each run is quick; decoding limits are
 * tight so the fuzzer explores formats rather than allocation sizes.
 * Build: make fuzz; run: build-fuzz/fuzz_image -max_total_time=300 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "image/base64.h"
#include "image/ct_window.h"
#include "image/image.h"

#define FUZZ_SIZE 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    uint8_t path = data[0] % 4;
    data++;
    size--;
    static float tensor[3 * FUZZ_SIZE * FUZZ_SIZE];
    ImageLimits limits = {.max_encoded_bytes = 1 << 20, .max_pixels = 1 << 18, .max_side = 4096};
    PreprocessOptions opt = {.size = FUZZ_SIZE};
    Error err;
    switch (path) {
    case 0: {
        uint8_t *bytes = NULL;
        size_t n = 0;
        if (base64_decode_strict((const char *)data, size, &bytes, &n, &err) == 0) {
            image_to_tensor(bytes, n, &limits, &opt, tensor, &err);
            free(bytes);
        }
        break;
    }
    case 1:
        image_to_tensor(data, size, &limits, &opt, tensor, &err);
        break;
    case 2: {
        RescaleParams r = {1.0, -1024.0, (int)(size & 1)};
        ct_png_to_tensor(data, size, &limits, &r, NULL, &opt, tensor, &err);
        break;
    }
    default: {
        PreprocessOptions o = {.size = FUZZ_SIZE, .pad_to_square = 1, .alpha_on_white = 1};
        image_to_tensor(data, size, &limits, &o, tensor, &err);
        break;
    }
    }
    return 0;
}
