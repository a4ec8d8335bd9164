build-dev/obj/http/respond.o: http/respond.c http/reply_json.h \
 http/server_state.h http/job.h http/request.h image/ct_window.h \
 image/image.h util/error.h http/metrics.h http/server.h engine/engine.h \
 grammar/grammar.h tokenizer/tokenizer.h http/worker.h util/log.h
http/reply_json.h:
http/server_state.h:
http/job.h:
http/request.h:
image/ct_window.h:
image/image.h:
util/error.h:
http/metrics.h:
http/server.h:
engine/engine.h:
grammar/grammar.h:
tokenizer/tokenizer.h:
http/worker.h:
util/log.h:
