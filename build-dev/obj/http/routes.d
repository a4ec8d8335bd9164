build-dev/obj/http/routes.o: http/routes.c engine/map_guard.h \
 util/error.h http/reply_json.h http/server_state.h http/job.h \
 http/request.h image/ct_window.h image/image.h http/metrics.h \
 http/server.h engine/engine.h grammar/grammar.h tokenizer/tokenizer.h \
 http/worker.h util/log.h
engine/map_guard.h:
util/error.h:
http/reply_json.h:
http/server_state.h:
http/job.h:
http/request.h:
image/ct_window.h:
image/image.h:
http/metrics.h:
http/server.h:
engine/engine.h:
grammar/grammar.h:
tokenizer/tokenizer.h:
http/worker.h:
util/log.h:
