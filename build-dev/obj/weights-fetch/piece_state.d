build-dev/obj/weights-fetch/piece_state.o: weights-fetch/piece_state.c \
 weights-fetch/piece_state.h
weights-fetch/piece_state.h:
