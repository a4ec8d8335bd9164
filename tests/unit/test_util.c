/* util/: bf16 conversion and error messages. */
#include "tests/unit/test.h"
#include "util/bf16.h"
#include "util/error.h"

TEST(bf16_round_trip_and_rounding) {
    CHECK(bf16_to_f32(f32_to_bf16(1.0f)) == 1.0f);
    CHECK(bf16_to_f32(f32_to_bf16(-2.5f)) == -2.5f);
    /* sqrt(2560) = 50.596... rounds to 50.5 in bf16 (MODEL.md) */
    CHECK(round_to_bf16(sqrtf(2560.0f)) == 50.5f);
    /* ties go to even: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 */
    CHECK(round_to_bf16(1.0f + 1.0f / 256.0f) == 1.0f);
    CHECK(isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(f16_conversion) {
    CHECK(f16_to_f32(0x3c00) == 1.0f);
    CHECK(f16_to_f32(0xc000) == -2.0f);
    CHECK(f16_to_f32(0x0001) == ldexpf(1.0f, -24)); /* smallest subnormal */
    CHECK(isinf(f16_to_f32(0x7c00)));
}

TEST(error_messages_compose) {
    Error err;
    CHECK(error_set(&err, "tensor %s: bad", "x") == -1);
    error_prefix(&err, "file %s", "a.safetensors");
    CHECK_STR_CONTAINS(err.message, "file a.safetensors: tensor x: bad");
}
