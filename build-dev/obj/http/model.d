build-dev/obj/http/model.o: http/model.c http/model.h http/job.h \
 http/request.h image/ct_window.h image/image.h util/error.h \
 http/worker.h engine/engine.h grammar/grammar.h tokenizer/tokenizer.h \
 http/visible_text.h image/base64.h tokenizer/chat.h util/log.h \
 weights-fetch/fetch.h
http/model.h:
http/job.h:
http/request.h:
image/ct_window.h:
image/image.h:
util/error.h:
http/worker.h:
engine/engine.h:
grammar/grammar.h:
tokenizer/tokenizer.h:
http/visible_text.h:
image/base64.h:
tokenizer/chat.h:
util/log.h:
weights-fetch/fetch.h:
