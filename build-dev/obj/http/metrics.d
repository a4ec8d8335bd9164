build-dev/obj/http/metrics.o: http/metrics.c http/metrics.h
http/metrics.h:
