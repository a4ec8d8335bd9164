build-dev/obj/util/json_strict.o: util/json_strict.c util/json_strict.h
util/json_strict.h:
