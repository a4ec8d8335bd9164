build-dev/obj/cli/cmd_serve.o: cli/cmd_serve.c cli/commands.h \
 http/server.h engine/engine.h grammar/grammar.h tokenizer/tokenizer.h \
 util/error.h util/log.h
cli/commands.h:
http/server.h:
engine/engine.h:
grammar/grammar.h:
tokenizer/tokenizer.h:
util/error.h:
util/log.h:
