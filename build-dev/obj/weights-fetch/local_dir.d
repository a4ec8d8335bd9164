build-dev/obj/weights-fetch/local_dir.o: weights-fetch/local_dir.c \
 weights-fetch/local_dir.h util/error.h weights-fetch/hub_files.h \
 weights-fetch/file_hash.h weights-fetch/hub_http.h
weights-fetch/local_dir.h:
util/error.h:
weights-fetch/hub_files.h:
weights-fetch/file_hash.h:
weights-fetch/hub_http.h:
