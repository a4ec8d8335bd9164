build-dev/obj/http/worker.o: http/worker.c http/worker.h engine/engine.h \
 grammar/grammar.h tokenizer/tokenizer.h util/error.h http/job.h \
 http/request.h image/ct_window.h image/image.h http/model.h util/log.h
http/worker.h:
engine/engine.h:
grammar/grammar.h:
tokenizer/tokenizer.h:
util/error.h:
http/job.h:
http/request.h:
image/ct_window.h:
image/image.h:
http/model.h:
util/log.h:
