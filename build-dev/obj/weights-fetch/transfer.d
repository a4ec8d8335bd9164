build-dev/obj/weights-fetch/transfer.o: weights-fetch/transfer.c \
 weights-fetch/transfer.h util/error.h weights-fetch/hub_files.h \
 weights-fetch/file_hash.h weights-fetch/hub_http.h \
 weights-fetch/local_dir.h weights-fetch/progress.h weights-fetch/fetch.h \
 weights-fetch/piece_state.h
weights-fetch/transfer.h:
util/error.h:
weights-fetch/hub_files.h:
weights-fetch/file_hash.h:
weights-fetch/hub_http.h:
weights-fetch/local_dir.h:
weights-fetch/progress.h:
weights-fetch/fetch.h:
weights-fetch/piece_state.h:
