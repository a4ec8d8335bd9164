build-dev/obj/tests/unit/test_map_guard.o: tests/unit/test_map_guard.c \
 engine/map_guard.h util/error.h engine/safetensors.h tests/unit/test.h
engine/map_guard.h:
util/error.h:
engine/safetensors.h:
tests/unit/test.h:
