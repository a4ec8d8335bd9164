build-dev/obj/cli/cmd_synth_model.o: cli/cmd_synth_model.c cli/commands.h \
 engine/synth_model.h util/error.h
cli/commands.h:
engine/synth_model.h:
util/error.h:
