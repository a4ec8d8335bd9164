build-dev/obj/http/reply_json.o: http/reply_json.c http/reply_json.h \
 tokenizer/answer.h
http/reply_json.h:
tokenizer/answer.h:
