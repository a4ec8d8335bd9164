build-dev/obj/tests/unit/test_device_plan.o: \
 tests/unit/test_device_plan.c engine/config.h util/error.h \
 engine/cuda/device_plan.h tests/unit/test.h
engine/config.h:
util/error.h:
engine/cuda/device_plan.h:
tests/unit/test.h:
