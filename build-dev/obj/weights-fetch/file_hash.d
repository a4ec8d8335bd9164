build-dev/obj/weights-fetch/file_hash.o: weights-fetch/file_hash.c \
 weights-fetch/file_hash.h util/error.h
weights-fetch/file_hash.h:
util/error.h:
