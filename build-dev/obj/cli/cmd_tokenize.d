build-dev/obj/cli/cmd_tokenize.o: cli/cmd_tokenize.c cli/commands.h \
 tokenizer/json_text.h tokenizer/tokenizer.h util/error.h
cli/commands.h:
tokenizer/json_text.h:
tokenizer/tokenizer.h:
util/error.h:
