build-dev/obj/tests/unit/test_config_weights.o: \
 tests/unit/test_config_weights.c engine/config.h util/error.h \
 engine/safetensors.h engine/synth_model.h engine/weights.h util/bf16.h \
 tests/unit/test.h
engine/config.h:
util/error.h:
engine/safetensors.h:
engine/synth_model.h:
engine/weights.h:
util/bf16.h:
tests/unit/test.h:
