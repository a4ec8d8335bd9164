build-dev/obj/weights-fetch/hub_files.o: weights-fetch/hub_files.c \
 weights-fetch/hub_files.h util/error.h weights-fetch/file_hash.h \
 weights-fetch/hub_http.h
weights-fetch/hub_files.h:
util/error.h:
weights-fetch/file_hash.h:
weights-fetch/hub_http.h:
