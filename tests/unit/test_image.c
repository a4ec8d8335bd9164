/* image/: strict base64, decoding errors (truncated, corrupt, zero-size, huge,
 * wrong format), Pillow's bilinear resize on hand-computed values, the
 * normalization and padding, CT/MRI windowing and slice sampling.
 * Pixel parity with transformers is tests/image/test_parity.py. */
#include <spng.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "image/base64.h"
#include "image/ct_window.h"
#include "image/image.h"
#include "tests/unit/test.h"

/* ---- helpers: encode small images with the same libraries ---- */

/* PNG of w x h samples (fmt as stored: 8- or 16-bit host-endian), optional
 * tEXt chunk. Returns a malloc'd buffer. */
static uint8_t *encode_png(const void *pixels, int w, int h, int color_type, int depth,
                           const char *text_value, size_t *len) {
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    struct spng_ihdr ihdr = {(uint32_t)w, (uint32_t)h, (uint8_t)depth, (uint8_t)color_type, 0, 0, 0};
    spng_set_ihdr(ctx, &ihdr);
    if (text_value) {
        struct spng_text text = {0};
        strcpy(text.keyword, "PatientName");
        text.type = SPNG_TEXT;
        text.length = strlen(text_value);
        text.text = (char *)text_value;
        spng_set_text(ctx, &text, 1);
    }
    int channels = color_type == 2 ? 3 : color_type == 6 ? 4 : color_type == 4 ? 2 : 1;
    size_t size = (size_t)w * h * channels * (depth / 8);
    int rc = spng_encode_image(ctx, pixels, size, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    int err = 0;
    uint8_t *out = rc ? NULL : spng_get_png_buffer(ctx, len, &err);
    spng_ctx_free(ctx);
    if (!out)
        test_fail(__FILE__, __LINE__, "could not encode the test PNG: %s", spng_strerror(rc ? rc : err));
    return out;
}

static uint8_t *encode_jpeg(const uint8_t *rgb, int w, int h, size_t *len) {
    tjhandle tj = tjInitCompress();
    unsigned char *buf = NULL;
    unsigned long size = 0;
    if (tjCompress2(tj, rgb, w, 0, h, TJPF_RGB, &buf, &size, TJSAMP_420, 90, 0) != 0)
        test_fail(__FILE__, __LINE__, "could not encode the test JPEG");
    tjDestroy(tj);
    uint8_t *out = malloc(size);
    memcpy(out, buf, size);
    tjFree(buf);
    *len = size;
    return out;
}

static uint8_t *gradient_rgb(int w, int h) {
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++)
        p[i] = (uint8_t)(i * 7);
    return p;
}

/* A PNG header alone: signature + IHDR with the given fields. */
static size_t png_header(uint8_t *b, uint32_t w, uint32_t h, int depth, int color_type) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(b, sig, 8);
    uint8_t ihdr[25] = {0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    for (int i = 0; i < 4; i++) {
        ihdr[8 + i] = (uint8_t)(w >> (24 - 8 * i));
        ihdr[12 + i] = (uint8_t)(h >> (24 - 8 * i));
    }
    ihdr[16] = (uint8_t)depth;
    ihdr[17] = (uint8_t)color_type;
    memcpy(b + 8, ihdr, 25); /* CRC left zero: the probe rejects before any CRC check */
    return 33;
}

static int decode_error(const uint8_t *bytes, size_t n, ImageDecodeMode mode, Error *err) {
    DecodedImage img;
    memset(err, 0, sizeof *err);
    int rc = image_decode(bytes, n, NULL, mode, &img, err);
    if (rc == 0)
        decoded_image_free(&img);
    return rc;
}

/* ---- base64 ---- */

TEST(image_base64_decodes_bare_and_data_uri) {
    const char *cases[][2] = {{"TWFu", "Man"},
                              {"TWE=", "Ma"},
                              {"TQ==", "M"},
                              {"data:image/png;base64,TWFu", "Man"},
                              {"data:image/jpeg;name=x;base64,AAEC/w==", "\x00\x01\x02\xff"}};
    size_t lens[] = {3, 2, 1, 3, 4};
    for (int i = 0; i < 5; i++) {
        uint8_t *out = NULL;
        size_t n = 0;
        Error err = {{0}};
        CHECK_MSG(base64_decode_strict(cases[i][0], strlen(cases[i][0]), &out, &n, &err) == 0, "%s: %s",
                  cases[i][0], err.message);
        CHECK_EQ_INT(n, lens[i]);
        CHECK(out && memcmp(out, cases[i][1], lens[i]) == 0);
        free(out);
    }
}

TEST(image_base64_rejects_with_offsets) {
    struct {
        const char *text, *message;
    } cases[] = {
        {"TW@u", "invalid character '@' at offset 2"},
        {"TW u", "invalid character byte 0x20 at offset 2"},
        {"TWF1\nTWFu", "not a multiple of 4"},
        {"TW-u", "invalid character '-' at offset 2"},
        {"TQ==TWFu", "padding '=' in the middle of the data at offset 2"},
        {"TR==", "non-zero unused bits"},
        {"TWFuTQ=", "not a multiple of 4"},
        {"", "no image data"},
        {"====", "padding '=' in the middle of the data at offset 0"},
        {"data:image/png;base64,", "no image data"},
        {"data:image/png,TWFu", "not base64-encoded"},
        {"data:image/png;base64", "no ','"},
        {"data:image/png;base64,TW!u", "offset 24"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *out = (uint8_t *)1;
        size_t n = 99;
        Error err = {{0}};
        CHECK_MSG(base64_decode_strict(cases[i].text, strlen(cases[i].text), &out, &n, &err) == -1,
                  "accepted %s", cases[i].text);
        CHECK(out == NULL && n == 0);
        CHECK_STR_CONTAINS(err.message, cases[i].message);
    }
}

/* ---- decoding errors ---- */

TEST(image_rejects_empty_and_zero_size) {
    Error err;
    CHECK(decode_error(NULL, 0, IMAGE_DECODE_RGB8, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "empty");
    uint8_t b[64];
    size_t n = png_header(b, 0, 10, 8, 2);
    CHECK(decode_error(b, n, IMAGE_DECODE_RGB8, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "zero size (0x10)");
    uint8_t rgb[3] = {1, 2, 3};
    size_t jn = 0;
    uint8_t *jpg = encode_jpeg(rgb, 1, 1, &jn);
    /* SOF0 is FF C0, then length(2) precision(1) height(2) width(2). */
    for (size_t i = 0; i + 8 < jn; i++)
        if (jpg[i] == 0xff && jpg[i + 1] == 0xc0) {
            jpg[i + 7] = jpg[i + 8] = 0; /* width 0 */
            break;
        }
    CHECK(decode_error(jpg, jn, IMAGE_DECODE_RGB8, &err) == -1);
    CHECK_MSG(strstr(err.message, "zero") || strstr(err.message, "JPEG header"), "%s", err.message);
    free(jpg);
}

TEST(image_rejects_huge_dimensions_from_the_header) {
    uint8_t b[64];
    Error err;
    /* A 33-byte file claiming 100000 x 100000: refused before any allocation. */
    size_t n = png_header(b, 100000, 100000, 8, 6);
    CHECK(decode_error(b, n, IMAGE_DECODE_RGB8, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "100000x100000 pixels, over the limit of 16384 per side");
    n = png_header(b, 10000, 10000, 8, 2);
    CHECK(decode_error(b, n, IMAGE_DECODE_RGB8, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "= 100000000 pixels, over the limit of 40000000");
    /* Caller limits apply too, file size first. */
    ImageLimits small = {.max_encoded_bytes = 16};
    ImageInfo info;
    CHECK(image_probe(b, n, &small, &info, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "33 bytes, over the limit of 16");
    /* A JPEG whose SOF claims 60000 x 60000. */
    uint8_t rgb[48] = {0};
    size_t jn = 0;
    uint8_t *jpg = encode_jpeg(rgb, 4, 4, &jn);
    for (size_t i = 0; i + 8 < jn; i++)
        if (jpg[i] == 0xff && jpg[i + 1] == 0xc0) {
            jpg[i + 5] = jpg[i + 7] = 0xea; /* 0xea60 = 60000 */
            jpg[i + 6] = jpg[i + 8] = 0x60;
            break;
        }
    CHECK(decode_error(jpg, jn, IMAGE_DECODE_RGB8, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "60000x60000 pixels, over the limit");
    free(jpg);
}

TEST(image_rejects_truncated_png_and_jpeg) {
    uint8_t *rgb = gradient_rgb(64, 48);
    size_t n = 0;
    uint8_t *png = encode_png(rgb, 64, 48, 2, 8, NULL, &n);
    Error err;
    CHECK(decode_error(png, n / 2, IMAGE_DECODE_RGB8, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "PNG is truncated");
    CHECK(decode_error(png, 20, IMAGE_DECODE_RGB8, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "PNG is truncated");
    free(png);
    uint8_t *jpg = encode_jpeg(rgb, 64, 48, &n);
    CHECK(decode_error(jpg, n * 2 / 3, IMAGE_DECODE_RGB8, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "JPEG is truncated");
    CHECK(decode_error(jpg, 40, IMAGE_DECODE_RGB8, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "JPEG");
    free(jpg);
    free(rgb);
}

TEST(image_rejects_corrupt_png_and_jpeg) {
    uint8_t *rgb = gradient_rgb(32, 32);
    size_t n = 0;
    uint8_t *png = encode_png(rgb, 32, 32, 2, 8, NULL, &n);
    Error err;
    png[n - 20] ^= 0x5a; /* inside IDAT: its CRC no longer matches */
    CHECK(decode_error(png, n, IMAGE_DECODE_RGB8, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "PNG is corrupt");
    free(png);
    uint8_t b[64];
    size_t hn = png_header(b, 8, 8, 3, 2); /* RGB cannot be 3-bit */
    CHECK(decode_error(b, hn, IMAGE_DECODE_RGB8, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "bit depth 3 is not allowed with color type 2");
    uint8_t *jpg = encode_jpeg(rgb, 32, 32, &n);
    memset(jpg + 2, 0x00, 30); /* the tables after SOI become garbage */
    CHECK(decode_error(jpg, n, IMAGE_DECODE_RGB8, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "JPEG");
    free(jpg);
    free(rgb);
}

TEST(image_rejects_wrong_formats_by_name) {
    struct {
        const char *bytes;
        size_t n;
        const char *message;
    } cases[] = {
        {"GIF89a\x01\x00\x01\x00", 10, "GIF images are not supported"},
        {"RIFF\x10\x00\x00\x00WEBPVP8 ", 16, "WebP images are not supported"},
        {"BM\x3a\x00\x00\x00", 6, "BMP images are not supported"},
        {"{\"prompt\": \"hello\"}", 19, "not a PNG or JPEG image"},
        {"\x89PNG", 4, "not a PNG or JPEG image"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Error err;
        CHECK(decode_error((const uint8_t *)cases[i].bytes, cases[i].n, IMAGE_DECODE_RGB8, &err) == -1);
        CHECK_STR_CONTAINS(err.message, cases[i].message);
    }
    uint8_t dicom[200] = {0};
    static const uint8_t dicm[4] = {'D', 'I', 'C', 'M'}; /* the Part 10 magic */
    memcpy(dicom + 128, dicm, sizeof dicm);
    Error err;
    CHECK(decode_error(dicom, sizeof dicom, IMAGE_DECODE_RGB8, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "DICOM files are not accepted directly by image_decode");
}

TEST(image_text_chunks_never_reach_messages) {
    uint8_t *rgb = gradient_rgb(16, 16);
    size_t n = 0;
    uint8_t *png = encode_png(rgb, 16, 16, 2, 8, "DOE^JANE 1970-01-01", &n);
    Error err;
    DecodedImage img;
    CHECK(image_decode(png, n, NULL, IMAGE_DECODE_RGB8, &img, &err) == 0);
    decoded_image_free(&img);
    /* Cut inside IDAT, and corrupt it: neither message may carry the text. */
    CHECK(decode_error(png, n - 20, IMAGE_DECODE_RGB8, &err) == -1);
    CHECK(strstr(err.message, "DOE") == NULL);
    png[n - 20] ^= 1;
    CHECK(decode_error(png, n, IMAGE_DECODE_RGB8, &err) == -1);
    CHECK(strstr(err.message, "DOE") == NULL);
    free(png);
    free(rgb);
}

TEST(image_gray_raw_keeps_16_bit_values) {
    uint16_t px[6] = {0, 1, 255, 256, 40000, 65535};
    size_t n = 0;
    uint8_t *png = encode_png(px, 3, 2, 0, 16, NULL, &n);
    DecodedImage img;
    Error err;
    CHECK(image_decode(png, n, NULL, IMAGE_DECODE_GRAY_RAW, &img, &err) == 0);
    CHECK_EQ_INT(img.channels, 1);
    CHECK_EQ_INT(img.bit_depth, 16);
    CHECK(memcmp(img.pixels, px, sizeof px) == 0);
    decoded_image_free(&img);
    /* The model path follows Pillow: "I;16" -> RGB clips at 255. */
    CHECK(image_decode(png, n, NULL, IMAGE_DECODE_RGB8, &img, &err) == 0);
    const uint8_t *p = img.pixels;
    uint8_t expect[6] = {0, 1, 255, 255, 255, 255};
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(p[3 * i + 1], expect[i]);
    decoded_image_free(&img);
    free(png);
    /* Raw slices must be gray PNG: RGB and JPEG are refused by name. */
    uint8_t *rgb = gradient_rgb(4, 4);
    png = encode_png(rgb, 4, 4, 2, 8, NULL, &n);
    CHECK(decode_error(png, n, IMAGE_DECODE_GRAY_RAW, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "8- or 16-bit grayscale PNG (this one has color type 2");
    free(png);
    uint8_t *jpg = encode_jpeg(rgb, 4, 4, &n);
    CHECK(decode_error(jpg, n, IMAGE_DECODE_GRAY_RAW, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "not a JPEG");
    free(jpg);
    free(rgb);
}

/* ---- resize and normalization ---- */

TEST(image_resize_matches_hand_computed_pillow_values) {
    /* 4 -> 2 pixels: scale 2, triangle stretched to support 2. Output 0 has
     * center 1.0 and taps x=0,1,2 with weights .75,.75,.25 (/1.75):
     * (0*.75 + 100*.75 + 200*.25)/1.75 = 71.4 -> 71. Output 1: taps 1,2,3
     * with .25,.75,.75: (25 + 150 + 191.25)/1.75 = 209.3 -> 209. */
    uint8_t src[4] = {0, 100, 200, 255}, dst[2];
    Error err;
    CHECK(image_resize_bilinear_u8(src, 4, 1, 1, dst, 2, 1, &err) == 0);
    CHECK_EQ_INT(dst[0], 71);
    CHECK_EQ_INT(dst[1], 209);
    /* Upscaling 2 -> 4: centers at 0.25, 0.75, 1.25, 1.75 in input units
     * (minus 0.5 for pixel centers): 0, 25, 75, 100 -> with edge clamping
     * weights give 0, 25, 75, 100. */
    uint8_t up_src[2] = {0, 100}, up[4];
    CHECK(image_resize_bilinear_u8(up_src, 2, 1, 1, up, 4, 1, &err) == 0);
    CHECK_EQ_INT(up[0], 0);
    CHECK_EQ_INT(up[1], 25);
    CHECK_EQ_INT(up[2], 75);
    CHECK_EQ_INT(up[3], 100);
    /* A constant image stays constant at any size; same size copies. */
    uint8_t flat[7 * 5 * 3], out[11 * 3 * 3];
    memset(flat, 77, sizeof flat);
    CHECK(image_resize_bilinear_u8(flat, 7, 5, 3, out, 11, 3, &err) == 0);
    for (size_t i = 0; i < sizeof out; i++)
        CHECK_EQ_INT(out[i], 77);
    uint8_t *g = gradient_rgb(9, 6), same[9 * 6 * 3];
    CHECK(image_resize_bilinear_u8(g, 9, 6, 3, same, 9, 6, &err) == 0);
    CHECK(memcmp(g, same, sizeof same) == 0);
    free(g);
}

TEST(image_tensor_normalization_and_padding) {
    /* 2 wide x 1 tall white image, padded to 2x2 (the extra row goes after:
     * d//2 = 0 before, 1 after), then "resized" to 2x2 = unchanged. */
    uint8_t white[6];
    memset(white, 255, sizeof white);
    DecodedImage img = {2, 1, 3, 8, white};
    PreprocessOptions opt = {.size = 2, .pad_to_square = 1};
    float t[3 * 2 * 2];
    Error err;
    CHECK(image_rgb8_to_tensor(&img, &opt, t, &err) == 0);
    for (int c = 0; c < 3; c++) {
        CHECK(t[c * 4 + 0] == 1.0f && t[c * 4 + 1] == 1.0f);   /* row 0: white -> 1 */
        CHECK(t[c * 4 + 2] == -1.0f && t[c * 4 + 3] == -1.0f); /* row 1: zero pad -> -1 */
    }
    /* Channels first: R plane, then G, then B. */
    uint8_t px[3] = {0, 51, 255};
    DecodedImage one = {1, 1, 3, 8, px};
    PreprocessOptions o1 = {.size = 1};
    float t1[3];
    CHECK(image_rgb8_to_tensor(&one, &o1, t1, &err) == 0);
    CHECK(t1[0] == -1.0f);
    CHECK_NEAR(t1[1], 51.0 / 255 * 2 - 1, 1e-6);
    CHECK(t1[2] == 1.0f);
    DecodedImage gray = {1, 1, 1, 8, px + 1}; /* gray 51 fills R, G and B */
    CHECK(image_rgb8_to_tensor(&gray, &o1, t1, &err) == 0);
    for (int c = 0; c < 3; c++)
        CHECK_NEAR(t1[c], 51.0 / 255 * 2 - 1, 1e-6);
    DecodedImage two = {1, 1, 2, 8, px};
    CHECK(image_rgb8_to_tensor(&two, &o1, t1, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "8-bit RGB or gray");
}

TEST(image_to_tensor_end_to_end_png_and_jpeg) {
    uint8_t *rgb = gradient_rgb(40, 30);
    size_t n = 0;
    uint8_t *png = encode_png(rgb, 40, 30, 2, 8, NULL, &n);
    float *t = malloc(sizeof(float) * 3 * 896 * 896);
    Error err;
    CHECK(image_to_tensor(png, n, NULL, NULL, t, &err) == 0);
    for (int i = 0; i < 3 * 896 * 896; i += 997)
        CHECK(t[i] >= -1.0f && t[i] <= 1.0f);
    free(png);
    uint8_t *jpg = encode_jpeg(rgb, 40, 30, &n);
    CHECK(image_to_tensor(jpg, n, NULL, NULL, t, &err) == 0);
    CHECK(image_to_tensor(jpg, n / 3, NULL, NULL, t, &err) == -1);
    free(jpg);
    free(t);
    free(rgb);
}

/* ---- CT / MRI ---- */

TEST(image_ct_windows_match_the_notebook) {
    /* Stored uint16 = HU + 1024 (intercept -1024), one pixel per HU value.
     * Expected: round((clip(hu) - lo) / (hi - lo) * 255), ties to even. */
    int hu[] = {-2000, -1024, 0, 40, 80, 215, 1000, 3000};
    uint8_t expect[][3] = {{0, 0, 0},       {0, 0, 0},       {128, 98, 0},    {132, 128, 128},
                           {137, 157, 255}, {154, 255, 255}, {252, 255, 255}, {255, 255, 255}};
    uint16_t stored[8];
    for (int i = 0; i < 8; i++)
        stored[i] = (uint16_t)(hu[i] < -1024 ? 0 : hu[i] + 1024);
    DecodedImage g = {8, 1, 1, 16, stored};
    RescaleParams r = {1.0, -1024.0, 0};
    DecodedImage rgb;
    Error err;
    CHECK(ct_slice_to_rgb8(&g, &r, NULL, &rgb, &err) == 0);
    const uint8_t *p = rgb.pixels;
    for (int i = 0; i < 8; i++)
        for (int c = 0; c < 3; c++)
            CHECK_MSG(p[3 * i + c] == expect[i][c], "HU %d channel %d: got %d, want %d", hu[i], c,
                      p[3 * i + c], expect[i][c]);
    decoded_image_free(&rgb);
    /* Signed storage (PixelRepresentation 1) and a slope. */
    int16_t signed_px[2] = {-1000, 20};
    DecodedImage gs = {2, 1, 1, 16, signed_px};
    RescaleParams rs = {2.0, 0.0, 1}; /* HU -2000, 40 */
    CHECK(ct_slice_to_rgb8(&gs, &rs, NULL, &rgb, &err) == 0);
    p = rgb.pixels;
    CHECK(p[0] == 0 && p[1] == 0 && p[2] == 0);
    CHECK(p[3] == 132 && p[4] == 128 && p[5] == 128);
    decoded_image_free(&rgb);
    /* Custom windows; a bad one is named. */
    CtWindows w = {{-100, 100}, {-100, 100}, {0, 1}};
    CHECK(ct_slice_to_rgb8(&g, &r, &w, &rgb, &err) == 0);
    CHECK_EQ_INT(((uint8_t *)rgb.pixels)[3 * 2], 128); /* HU 0 in -100..100 = 127.5 -> 128 */
    decoded_image_free(&rgb);
    CtWindows bad = {{-100, 100}, {50, 50}, {0, 1}};
    CHECK(ct_slice_to_rgb8(&g, &r, &bad, &rgb, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "CT window \"g\" must have finite lo < hi");
}

TEST(image_ct_png_to_tensor) {
    uint16_t px[4 * 4];
    for (int i = 0; i < 16; i++)
        px[i] = (uint16_t)(1024 + 40); /* HU 40 everywhere */
    size_t n = 0;
    uint8_t *png = encode_png(px, 4, 4, 0, 16, NULL, &n);
    RescaleParams r = {1.0, -1024.0, 0};
    PreprocessOptions opt = {.size = 8};
    float t[3 * 8 * 8];
    Error err;
    CHECK(ct_png_to_tensor(png, n, NULL, &r, NULL, &opt, t, &err) == 0);
    /* (132, 128, 128) -> x/255*2-1 */
    CHECK_NEAR(t[0], 132.0 / 255 * 2 - 1, 1e-6);
    CHECK_NEAR(t[64], 128.0 / 255 * 2 - 1, 1e-6);
    CHECK_NEAR(t[128 + 63], 128.0 / 255 * 2 - 1, 1e-6);
    free(png);
}

TEST(image_mri_normalizes_over_the_volume) {
    uint16_t a[2] = {100, 200}, b[2] = {300, 500};
    DecodedImage slices[2] = {{2, 1, 1, 16, a}, {2, 1, 1, 16, b}};
    float lo, hi;
    Error err;
    CHECK(mri_volume_range(slices, 2, NULL, &lo, &hi, &err) == 0);
    CHECK(lo == 100.0f && hi == 500.0f);
    DecodedImage rgb;
    CHECK(mri_slice_to_rgb8(&slices[0], NULL, lo, hi, &rgb, &err) == 0);
    const uint8_t *p = rgb.pixels;
    CHECK_EQ_INT(p[0], 0);
    CHECK_EQ_INT(p[3], 64); /* 100/400*255 = 63.75 */
    CHECK(p[3] == p[4] && p[4] == p[5]);
    decoded_image_free(&rgb);
    CHECK(mri_slice_to_rgb8(&slices[1], NULL, lo, hi, &rgb, &err) == 0);
    CHECK_EQ_INT(((uint8_t *)rgb.pixels)[3], 255);
    decoded_image_free(&rgb);
    CHECK(mri_slice_to_rgb8(&slices[1], NULL, 7.0f, 7.0f, &rgb, &err) == 0); /* constant volume */
    CHECK_EQ_INT(((uint8_t *)rgb.pixels)[0], 0);
    decoded_image_free(&rgb);
    CHECK(mri_volume_range(slices, 0, NULL, &lo, &hi, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "no slices");
}

TEST(image_sample_slices_like_the_ct_notebook) {
    int idx[200];
    CHECK_EQ_INT(sample_slices_evenly(50, 85, idx), 50);
    for (int i = 0; i < 50; i++)
        CHECK_EQ_INT(idx[i], i);
    /* Python: [int(round(i / 85 * (n - 1))) for i in range(1, 86)] */
    CHECK_EQ_INT(sample_slices_evenly(200, 85, idx), 85);
    CHECK_EQ_INT(idx[0], 2);    /* 199/85 = 2.34 */
    CHECK_EQ_INT(idx[1], 5);    /* 4.68 */
    CHECK_EQ_INT(idx[42], 101); /* 43/85*199 = 100.67 */
    CHECK_EQ_INT(idx[84], 199);
    CHECK_EQ_INT(sample_slices_evenly(86, 85, idx), 85);
    CHECK_EQ_INT(idx[0], 1); /* the notebook starts at i = 1: slice 0 is skipped */
    CHECK_EQ_INT(idx[84], 85);
    /* n = 171: 1/85*170 = 2 exactly; 0.5-ties round to even (Python round). */
    CHECK_EQ_INT(sample_slices_evenly(171, 85, idx), 85);
    CHECK_EQ_INT(idx[0], 2);
    for (int n = 86; n <= 1000; n += 13) {
        CHECK_EQ_INT(sample_slices_evenly(n, 85, idx), 85);
        for (int i = 1; i < 85; i++)
            CHECK_MSG(idx[i] > idx[i - 1], "n=%d: indices not increasing at %d", n, i);
        CHECK_EQ_INT(idx[84], n - 1);
    }
    CHECK_EQ_INT(sample_slices_evenly(0, 85, idx), -1);
    CHECK_EQ_INT(sample_slices_evenly(10, 0, idx), -1);
}

TEST(image_series_sample_decode_and_name_bad_slices) {
    /* Three 2x2 CT slices at HU -1024, 40, 1000 (intercept -1024). */
    int hu[3] = {-1024, 40, 1000};
    uint8_t *png[3];
    size_t n[3];
    for (int s = 0; s < 3; s++) {
        uint16_t px[4];
        for (int i = 0; i < 4; i++)
            px[i] = (uint16_t)(hu[s] + 1024);
        png[s] = encode_png(px, 2, 2, 0, 16, NULL, &n[s]);
    }
    SeriesOptions so = {{1.0, -1024.0, 0}, CT_WINDOWS_DEFAULT, 2};
    PreprocessOptions opt = {.size = 2};
    float t[3 * 3 * 4];
    int chosen[2], k = 0;
    Error err;
    CHECK_EQ_INT(series_output_count(3, &so), 2);
    CHECK(ct_series_to_tensors((const uint8_t *const *)png, n, 3, NULL, &so, &opt, t, &k, chosen, &err) == 0);
    CHECK_EQ_INT(k, 2);
    CHECK(chosen[0] == 1 && chosen[1] == 2);      /* round(1/2*2), round(2/2*2) */
    CHECK_NEAR(t[0], 132.0 / 255 * 2 - 1, 1e-6);  /* slice 2 (HU 40), R */
    CHECK_NEAR(t[12], 252.0 / 255 * 2 - 1, 1e-6); /* slice 3 (HU 1000), R */
    /* MRI: range over the sampled slices (stored 1064..2024). */
    SeriesOptions mo = {{1.0, 0.0, 0}, CT_WINDOWS_DEFAULT, 0};
    CHECK(mri_series_to_tensors((const uint8_t *const *)png, n, 3, NULL, &mo, &opt, t, &k, NULL, &err) == 0);
    CHECK_EQ_INT(k, 3);
    CHECK(t[0] == -1.0f && t[12] != -1.0f && t[24] == 1.0f); /* min slice -> -1, max slice -> +1 */
    /* A broken slice is named by its 1-based position in the series. */
    n[2] = 30;
    CHECK(ct_series_to_tensors((const uint8_t *const *)png, n, 3, NULL, &so, &opt, t, &k, chosen, &err) ==
          -1);
    CHECK_STR_CONTAINS(err.message, "slice 3 of 3: PNG is truncated");
    CHECK(mri_series_to_tensors((const uint8_t *const *)png, n, 3, NULL, &mo, &opt, t, &k, NULL, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "slice 3 of 3");
    CHECK(ct_series_to_tensors((const uint8_t *const *)png, n, 0, NULL, &so, &opt, t, &k, chosen, &err) ==
          -1);
    CHECK_STR_CONTAINS(err.message, "no slices");
    for (int s = 0; s < 3; s++)
        free(png[s]);
}

TEST(image_virtual_padding_equals_explicit_padding) {
    /* pad_to_square never builds the padded image; it must still give what
     * resizing the explicitly padded one gives. */
    int shapes[][2] = {{7, 3}, {3, 7}, {901, 2}, {2, 1500}, {30, 29}};
    Error err;
    for (int s = 0; s < 5; s++) {
        int w = shapes[s][0], h = shapes[s][1], side = w > h ? w : h;
        uint8_t *px = gradient_rgb(w, h);
        uint8_t *padded = calloc((size_t)side * side, 3);
        int x0 = (side - w) / 2, y0 = (side - h) / 2;
        for (int y = 0; y < h; y++)
            memcpy(padded + ((size_t)(y0 + y) * side + x0) * 3, px + (size_t)y * w * 3, (size_t)w * 3);
        for (int size = 5; size <= 40; size += 35) {
            uint8_t want[40 * 40 * 3];
            CHECK(image_resize_bilinear_u8(padded, side, side, 3, want, size, size, &err) == 0);
            DecodedImage img = {w, h, 3, 8, px};
            PreprocessOptions opt = {.size = size, .pad_to_square = 1};
            float t[3 * 40 * 40];
            CHECK(image_rgb8_to_tensor(&img, &opt, t, &err) == 0);
            int bad = 0;
            for (int i = 0; i < size * size; i++)
                for (int c = 0; c < 3; c++) {
                    float expect = (float)((double)want[3 * i + c] / 255.0);
                    expect = (expect - 0.5f) / 0.5f;
                    bad += t[c * size * size + i] != expect;
                }
            CHECK_MSG(bad == 0, "%dx%d -> %d: %d values differ", w, h, size, bad);
        }
        free(padded);
        free(px);
    }
}

TEST(image_resize_simd_and_scalar_agree) {
    /* The AVX2 horizontal kernel (when the CPU has it) against the scalar
     * loop on awkward shapes: widths not a multiple of 8, tiny images,
     * shrinking and growing, one row, the last row of the buffer. */
    int shapes[][4] = {{13, 7, 9, 5},      {100, 3, 17, 40}, {7, 7, 31, 3},   {2048, 5, 896, 5},
                       {301, 211, 64, 96}, {1, 50, 16, 16},  {640, 1, 896, 1}};
    Error err;
    for (int s = 0; s < 7; s++) {
        int w = shapes[s][0], h = shapes[s][1], ow = shapes[s][2], oh = shapes[s][3];
        uint8_t *src = malloc((size_t)w * h * 3);
        for (size_t i = 0; i < (size_t)w * h * 3; i++)
            src[i] = (uint8_t)((i * 2654435761u) >> 13);
        uint8_t *a = malloc((size_t)ow * oh * 3), *b = malloc((size_t)ow * oh * 3);
        unsetenv("MEDGEMMA_IMAGE_NO_SIMD");
        CHECK(image_resize_bilinear_u8(src, w, h, 3, a, ow, oh, &err) == 0);
        setenv("MEDGEMMA_IMAGE_NO_SIMD", "1", 1);
        CHECK(image_resize_bilinear_u8(src, w, h, 3, b, ow, oh, &err) == 0);
        unsetenv("MEDGEMMA_IMAGE_NO_SIMD");
        CHECK_MSG(memcmp(a, b, (size_t)ow * oh * 3) == 0, "%dx%d -> %dx%d differs", w, h, ow, oh);
        free(src);
        free(a);
        free(b);
    }
}
