build-dev/obj/cli/cmd_generate.o: cli/cmd_generate.c cli/commands.h \
 engine/engine.h grammar/grammar.h tokenizer/tokenizer.h util/error.h \
 http/reply_json.h http/visible_text.h image/image.h tokenizer/chat.h
cli/commands.h:
engine/engine.h:
grammar/grammar.h:
tokenizer/tokenizer.h:
util/error.h:
http/reply_json.h:
http/visible_text.h:
image/image.h:
tokenizer/chat.h:
