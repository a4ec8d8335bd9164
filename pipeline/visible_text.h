/* What a client sees of a generated text (pipeline/ owns this): the model's
 * thinking trace removed and the text cut at the first stop string.
 *
 * The same function serves the finished answer and the streamed one: while
 * a generation runs (final = 0) it also holds back a tail that could still
 * become a thinking marker or a stop string, so the visible text only ever
 * grows by appending. Streaming sends the growth, so the concatenated stream
 * equals the non-streamed answer. */
#ifndef PIPELINE_VISIBLE_TEXT_H
#define PIPELINE_VISIBLE_TEXT_H

#include <stddef.h>

/* MedGemma 1.5 wraps its thinking in these two tokens (as decoded text). */
#define THINKING_OPEN "<unused94>"
#define THINKING_CLOSE "<unused95>"

/* Writes the visible part of full[0..len) into out (room for len + 1 bytes,
 * NUL-terminated) and returns its length. *stop_hit (may be NULL) is set to 1
 * when one of the stop strings was found (the text is cut before it). */
size_t visible_text(const char *full, size_t len, int final, const char *const *stops, int n_stops, char *out,
                    int *stop_hit);

#endif
