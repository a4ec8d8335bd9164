build-dev/obj/tests/unit/test_engine_270m.o: \
 tests/unit/test_engine_270m.c engine/engine.h grammar/grammar.h \
 tokenizer/tokenizer.h util/error.h tests/unit/test.h
engine/engine.h:
grammar/grammar.h:
tokenizer/tokenizer.h:
util/error.h:
tests/unit/test.h:
