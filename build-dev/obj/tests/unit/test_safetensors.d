build-dev/obj/tests/unit/test_safetensors.o: \
 tests/unit/test_safetensors.c engine/safetensors.h util/error.h \
 tests/unit/test.h
engine/safetensors.h:
util/error.h:
tests/unit/test.h:
