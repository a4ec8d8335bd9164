build-dev/obj/http/visible_text.o: http/visible_text.c \
 http/visible_text.h
http/visible_text.h:
