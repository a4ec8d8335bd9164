build-dev/obj/weights-fetch/fetch.o: weights-fetch/fetch.c \
 weights-fetch/fetch.h util/error.h weights-fetch/hub_files.h \
 weights-fetch/file_hash.h weights-fetch/hub_http.h \
 weights-fetch/local_dir.h weights-fetch/progress.h \
 weights-fetch/transfer.h
weights-fetch/fetch.h:
util/error.h:
weights-fetch/hub_files.h:
weights-fetch/file_hash.h:
weights-fetch/hub_http.h:
weights-fetch/local_dir.h:
weights-fetch/progress.h:
weights-fetch/transfer.h:
