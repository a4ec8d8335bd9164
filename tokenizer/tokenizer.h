/* Gemma 3 tokenizer: loads a Hugging Face tokenizer.json and encodes/decodes
 * byte-exactly like the `tokenizers` library for what Gemma 3's file declares:
 * added/special tokens matched on the raw text (leftmost-longest), the Replace
 * normalizer (" " -> "▁"), the Split pre-tokenizer (MergedWithPrevious), BPE by
 * merge rank with byte fallback, the <bos> TemplateProcessing post-processor,
 * and the Replace + ByteFallback + Fuse decoder. A tokenizer.json using any
 * other feature is rejected at load with a message naming it.
 *
 * Ownership: a Tokenizer is immutable after tokenizer_load and may be shared by
 * threads; tokenizer_free releases it. Arrays and strings returned through
 * out-parameters are malloc'd and owned by the caller (free()). */
#ifndef TOKENIZER_TOKENIZER_H
#define TOKENIZER_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef struct Tokenizer Tokenizer;

/* Reads and indexes path (a plain tokenizer.json, not .xz). */
int tokenizer_load(Tokenizer **out, const char *path_to_tokenizer_json, Error *err);
/* The same from json[0..len) already in memory; name is used in messages. */
int tokenizer_load_buffer(Tokenizer **out, const char *json, size_t len, const char *name, Error *err);
void tokenizer_free(Tokenizer *t);

/* Encodes len bytes of text (need not be NUL-terminated; invalid UTF-8 is an
 * error naming the byte offset; at most 1 GiB; working memory is about 28
 * bytes per byte of the longest stretch between added tokens). Special/added tokens written in the text are
 * matched as HF does. add_bos: apply the post-processor (prepend <bos>), as
 * HF's encode(add_special_tokens=True). *ids is malloc'd (non-NULL even when
 * *n_ids is 0). */
int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int add_bos, int32_t **ids,
                     size_t *n_ids, Error *err);

/* HF decode: ids outside the vocabulary are dropped (as HF does); with
 * skip_special, tokens marked "special" in added_tokens are dropped. *text is
 * malloc'd and NUL-terminated, *len excludes the NUL. */
int tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, int skip_special, char **text,
                     size_t *len, Error *err);

/* Id of a piece (vocabulary entry or added token), -1 if absent. */
int tokenizer_token_id(const Tokenizer *t, const char *piece);
/* Number of ids (1 + the largest id of the vocabulary and added tokens). */
int tokenizer_vocab_size(const Tokenizer *t);
/* The piece of an id (NUL-terminated, owned by t), NULL if out of range. */
const char *tokenizer_piece(const Tokenizer *t, int32_t id);
/* 1 when id is an added token marked "special" (<bos>, <end_of_turn>, ...). */
int tokenizer_is_special(const Tokenizer *t, int32_t id);
/* The byte a ByteFallback piece "<0xXX>" stands for, or -1 for other ids. */
int tokenizer_byte_fallback(const Tokenizer *t, int32_t id);

/* Streaming decode for generation: push ids one by one and get the text that
 * became final. The concatenation of every piece returned (plus the flush)
 * equals tokenizer_decode of all the ids: byte-fallback tokens are held until
 * their run ends, so half a UTF-8 character is never returned. */
typedef struct TokenStream TokenStream;
TokenStream *token_stream_new(const Tokenizer *t, int skip_special); /* NULL on out of memory */
/* *bytes points into the stream's buffer, valid until the next call; *len may
 * be 0. Returns 0, or -1 with err set (out of memory). */
int token_stream_push(TokenStream *s, int32_t id, char **bytes, size_t *len, Error *err);
/* Returns whatever is still held (an unfinished byte run, as HF would decode it). */
int token_stream_flush(TokenStream *s, char **bytes, size_t *len);
void token_stream_free(TokenStream *s);

#endif
