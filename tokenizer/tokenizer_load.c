/* Loading tokenizer.json into a Tokenizer (tokenizer_internal.h).
 *
 * The 33 MB file is dominated by model.vocab (262144 pieces) and
 * model.merges (514906 pairs): this file only finds them, and vocab_load.c
 * reads them with a purpose-built scanner into flat arrays and hash tables.
 * Every other field is small and parsed with cJSON, then checked against
 * what this implementation supports: anything else is rejected with a
 * message naming the field, never tokenized differently. Then come the
 * added-token trie and the tables derived for encoding and decoding. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/json_text.h"
#include "tokenizer/tokenizer_internal.h"

typedef struct {
    const char *p, *end;
} Span;

/* The parts of the file the loader looks at. */
typedef struct {
    const char *json; /* the whole file, for line numbers */
    Span vocab, merges;
    cJSON *top[8]; /* indexed like top_keys */
    cJSON *model_fields;
} Parts;

static const char *const top_keys[8] = {"version",    "truncation",    "padding",        "added_tokens",
                                        "normalizer", "pre_tokenizer", "post_processor", "decoder"};
static const char *const model_keys[8] = {
    "type",     "dropout",       "unk_token",    "continuing_subword_prefix", "end_of_word_suffix",
    "fuse_unk", "byte_fallback", "ignore_merges"};

/* ---- reading the file's structure */

static size_t line_of(const char *base, const char *p) {
    size_t line = 1;
    for (const char *q = base; q < p; q++)
        line += *q == '\n';
    return line;
}

/* Parses the value at *p with cJSON and advances *p past it. */
static cJSON *parse_value(const char **p, const char *end) {
    const char *value_end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(*p, (size_t)(end - *p), &value_end, 0);
    if (v)
        *p = value_end;
    return v;
}

/* Skips an array or object value without interpreting it (strings aware;
 * memchr jumps over the string bodies, which are most of the bytes). */
static const char *skip_container(const char *p, const char *end) {
    int depth = 0;
    while (p < end) {
        char c = *p++;
        if (c == '"') {
            for (;;) {
                const char *q = memchr(p, '"', (size_t)(end - p));
                if (!q)
                    return NULL;
                size_t backslashes = 0;
                while (q - backslashes > p && q[-1 - (ptrdiff_t)backslashes] == '\\')
                    backslashes++;
                p = q + 1;
                if (backslashes % 2 == 0)
                    break;
            }
        } else if (c == '[' || c == '{') {
            depth++;
        } else if (c == ']' || c == '}') {
            if (--depth == 0)
                return p;
        }
    }
    return NULL;
}

/* Walks an object's members, calling member() for each key; member() must
 * consume the value. Keys are short; longer ones are rejected. */
typedef int (*MemberFn)(const char *key, const char **p, const char *end, Parts *parts, Error *err);

static int walk_object(const char **pp, const char *end, MemberFn member, Parts *parts, const char *what,
                       const char *base, Error *err) {
    const char *p = json_skip_ws(*pp, end);
    if (p >= end || *p != '{')
        return error_set(err, "%s is not a JSON object (line %zu)", what, line_of(base, p));
    p = json_skip_ws(p + 1, end);
    if (p < end && *p == '}') {
        *pp = p + 1;
        return 0;
    }
    for (;;) {
        char key[64];
        size_t key_len;
        const char *q = json_string_read(p, end, key, sizeof key - 1, &key_len);
        if (!q)
            return error_set(err, "%s: bad or too long member name at line %zu", what, line_of(base, p));
        key[key_len] = '\0';
        p = json_skip_ws(q, end);
        if (p >= end || *p != ':')
            return error_set(err, "%s: expected ':' after \"%s\" (line %zu)", what, key, line_of(base, p));
        p = json_skip_ws(p + 1, end);
        if (member(key, &p, end, parts, err))
            return -1;
        p = json_skip_ws(p, end);
        if (p < end && *p == ',') {
            p = json_skip_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}') {
            *pp = p + 1;
            return 0;
        }
        return error_set(err, "%s: expected ',' or '}' after \"%s\" (line %zu)", what, key, line_of(base, p));
    }
}

static int model_member(const char *key, const char **p, const char *end, Parts *parts, Error *err) {
    if (!strcmp(key, "vocab") || !strcmp(key, "merges")) {
        Span *s = key[0] == 'v' ? &parts->vocab : &parts->merges;
        char open = key[0] == 'v' ? '{' : '[';
        if (s->p)
            return error_set(err, "model.%s appears twice", key);
        if (*p >= end || **p != open)
            return error_set(err, "model.%s is not a JSON %s (line %zu)", key,
                             open == '{' ? "object" : "array", line_of(parts->json, *p));
        s->p = *p;
        s->end = skip_container(*p, end);
        if (!s->end)
            return error_set(err, "model.%s is not a complete JSON value", key);
        *p = s->end;
        return 0;
    }
    for (int i = 0; i < 8; i++) {
        if (strcmp(key, model_keys[i]) != 0)
            continue;
        if (cJSON_GetObjectItemCaseSensitive(parts->model_fields, key))
            return error_set(err, "model.%s appears twice", key);
        cJSON *v = parse_value(p, end);
        if (!v)
            return error_set(err, "model.%s is not valid JSON", key);
        cJSON_AddItemToObject(parts->model_fields, key, v);
        return 0;
    }
    return error_set(err, "model.%s is not supported by this tokenizer", key);
}

static int top_member(const char *key, const char **p, const char *end, Parts *parts, Error *err) {
    if (!strcmp(key, "model"))
        return walk_object(p, end, model_member, parts, "model", parts->json, err);
    for (int i = 0; i < 8; i++) {
        if (strcmp(key, top_keys[i]) != 0)
            continue;
        if (parts->top[i])
            return error_set(err, "\"%s\" appears twice", key);
        parts->top[i] = parse_value(p, end);
        if (!parts->top[i])
            return error_set(err, "\"%s\" is not valid JSON", key);
        return 0;
    }
    return error_set(err, "top-level field \"%s\" is not supported by this tokenizer", key);
}

/* ---- model.vocab and model.merges */

/* ---- small fields */

static const char *str_field(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* {"type": type, "pattern": {"String": s}, ...}: returns s or NULL. */
static const char *string_pattern(const cJSON *o) {
    return str_field(cJSON_GetObjectItemCaseSensitive(o, "pattern"), "String");
}

static int dup_str(char **dst, size_t *len, const char *s, Error *err) {
    *len = strlen(s);
    *dst = strdup(s);
    return *dst ? 0 : error_set(err, "out of memory");
}

static int check_model(const cJSON *m, Error *err) {
    const char *type = str_field(m, "type");
    if (!type || strcmp(type, "BPE") != 0)
        return error_set(err, "model.type \"%s\" is not supported (only BPE)", type ? type : "?");
    const char *must_null[] = {"dropout", "continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, must_null[i]);
        if (v && !cJSON_IsNull(v))
            return error_set(err, "model.%s is not supported (must be null)", must_null[i]);
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "byte_fallback")))
        return error_set(err,
                         "model.byte_fallback must be true (BPE without byte fallback is not supported)");
    const cJSON *im = cJSON_GetObjectItemCaseSensitive(m, "ignore_merges");
    if (cJSON_IsTrue(im))
        return error_set(err, "model.ignore_merges = true is not supported");
    return 0;
}

static int check_normalizer(Tokenizer *t, const cJSON *n, Error *err) {
    if (!n || cJSON_IsNull(n))
        return 0;
    const char *type = str_field(n, "type"), *pat = string_pattern(n), *content = str_field(n, "content");
    if (!type || strcmp(type, "Replace") != 0 || !pat || !content || !pat[0])
        return error_set(err,
                         "normalizer: only Replace with a non-empty String pattern is supported (got %s)",
                         type ? type : "?");
    return dup_str(&t->norm_from, &t->norm_from_len, pat, err) ||
           dup_str(&t->norm_to, &t->norm_to_len, content, err);
}

static int check_pre_tokenizer(Tokenizer *t, const cJSON *p, Error *err) {
    if (!p || cJSON_IsNull(p))
        return 0;
    const char *type = str_field(p, "type"), *pat = string_pattern(p), *behavior = str_field(p, "behavior");
    if (!type || strcmp(type, "Split") != 0 || !pat || !pat[0] || !behavior ||
        strcmp(behavior, "MergedWithPrevious") != 0 ||
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "invert")))
        return error_set(err, "pre_tokenizer: only Split with a String pattern, behavior MergedWithPrevious "
                              "and invert false is supported");
    return dup_str(&t->split_pattern, &t->split_pattern_len, pat, err);
}

static int check_post_processor(Tokenizer *t, const cJSON *pp, Error *err) {
    t->bos_id = -1;
    if (!pp || cJSON_IsNull(pp))
        return 0;
    const char *type = str_field(pp, "type");
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    int n = cJSON_GetArraySize(single);
    if (!type || strcmp(type, "TemplateProcessing") != 0 || !cJSON_IsArray(single) || n < 1 || n > 2)
        return error_set(err, "post_processor: only TemplateProcessing with single = [$A] or "
                              "[special, $A] is supported");
    const cJSON *last = cJSON_GetArrayItem(single, n - 1);
    const char *seq = str_field(cJSON_GetObjectItemCaseSensitive(last, "Sequence"), "id");
    if (!seq || strcmp(seq, "A") != 0)
        return error_set(err, "post_processor: the single template must end with the sequence $A");
    if (n == 1)
        return 0;
    const char *special = str_field(cJSON_GetObjectItemCaseSensitive(single->child, "SpecialToken"), "id");
    const cJSON *entry = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(pp, "special_tokens"), special ? special : "");
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(entry, "ids");
    if (!special || cJSON_GetArraySize(ids) != 1 || !cJSON_IsNumber(ids->child) ||
        ids->child->valuedouble < 0 || ids->child->valuedouble >= t->n_ids)
        return error_set(err, "post_processor: the single template must start with one special token "
                              "listed in special_tokens with one valid id");
    t->bos_id = (int32_t)ids->child->valuedouble;
    return 0;
}

static int check_decoder(Tokenizer *t, const cJSON *d, Error *err) {
    const char *msg = "decoder: only Sequence [Replace (String pattern), ByteFallback, Fuse] is supported";
    const char *type = str_field(d, "type");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders");
    if (!type || strcmp(type, "Sequence") != 0 || cJSON_GetArraySize(list) != 3)
        return error_set(err, "%s", msg);
    const cJSON *rep = cJSON_GetArrayItem(list, 0);
    const char *t0 = str_field(rep, "type"), *t1 = str_field(cJSON_GetArrayItem(list, 1), "type"),
               *t2 = str_field(cJSON_GetArrayItem(list, 2), "type");
    const char *pat = string_pattern(rep), *content = str_field(rep, "content");
    if (!t0 || !t1 || !t2 || strcmp(t0, "Replace") != 0 || strcmp(t1, "ByteFallback") != 0 ||
        strcmp(t2, "Fuse") != 0 || !pat || !pat[0] || !content)
        return error_set(err, "%s", msg);
    return dup_str(&t->dec_from, &t->dec_from_len, pat, err) ||
           dup_str(&t->dec_to, &t->dec_to_len, content, err);
}

/* ---- added tokens */

/* The slot of edge (node, byte): holds the edge, or is the empty slot for it. */
static uint32_t trie_slot(const AddedTrie *a, uint32_t node, unsigned char byte) {
    uint32_t key = (node << 8 | byte) + 1;
    uint32_t i = (key * 0x9E3779B1u) & a->edge_mask;
    while (a->edge_keys[i] && a->edge_keys[i] != key)
        i = (i + 1) & a->edge_mask;
    return i;
}

static void trie_child(AddedTrie *a, uint32_t node, unsigned char byte, uint32_t *child) {
    uint32_t i = trie_slot(a, node, byte);
    if (a->edge_keys[i]) {
        *child = a->edge_child[i];
        return;
    }
    a->edge_keys[i] = (node << 8 | byte) + 1;
    a->edge_child[i] = *child = a->n_nodes;
    a->node_token[a->n_nodes++] = -1;
}

int32_t tok_added_match(const AddedTrie *a, const char *text, size_t n, size_t *match_len) {
    if (n == 0 || !a->first_byte[(unsigned char)text[0]])
        return -1;
    uint32_t node = 0;
    int32_t best = -1;
    for (size_t i = 0; i < n; i++) {
        uint32_t slot = trie_slot(a, node, (unsigned char)text[i]);
        if (!a->edge_keys[slot])
            break;
        node = a->edge_child[slot];
        if (a->node_token[node] >= 0) {
            best = a->node_token[node];
            *match_len = i + 1;
        }
    }
    return best;
}

static int read_added_tokens(Tokenizer *t, const cJSON *list, size_t *arena_len, Error *err) {
    size_t total = 1;
    const cJSON *tok;
    cJSON_ArrayForEach(tok, list) {
        const char *content = str_field(tok, "content");
        total += content ? strlen(content) : 0;
    }
    AddedTrie *a = &t->added;
    a->edge_mask = tok_pow2_at_least(2 * total) - 1;
    a->edge_keys = calloc((size_t)a->edge_mask + 1, sizeof *a->edge_keys);
    a->edge_child = calloc((size_t)a->edge_mask + 1, sizeof *a->edge_child);
    a->node_token = malloc(total * sizeof *a->node_token);
    if (!a->edge_keys || !a->edge_child || !a->node_token)
        return error_set(err, "out of memory reading added_tokens");
    a->n_nodes = 1;
    a->node_token[0] = -1;
    int k = 0;
    cJSON_ArrayForEach(tok, list) {
        const char *content = str_field(tok, "content");
        const cJSON *id_item = cJSON_GetObjectItemCaseSensitive(tok, "id");
        if (!content || !content[0] || !cJSON_IsNumber(id_item) || id_item->valuedouble < 0 ||
            id_item->valuedouble >= t->n_ids)
            return error_set(err, "added_tokens[%d]: needs a non-empty content and an id", k);
        const char *flags[] = {"lstrip", "rstrip", "single_word", "normalized"};
        for (int f = 0; f < 4; f++)
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tok, flags[f])))
                return error_set(err, "added_tokens[%d] (\"%.40s\"): %s = true is not supported", k, content,
                                 flags[f]);
        int32_t id = (int32_t)id_item->valuedouble;
        size_t len = strlen(content);
        if (t->flags[id] & TOK_IN_MODEL) {
            if (t->piece_len[id] != len || memcmp(t->pieces + t->piece_off[id], content, len) != 0)
                return error_set(err,
                                 "added_tokens[%d]: id %d is \"%.40s\" but model.vocab has another piece", k,
                                 id, content);
        } else {
            memcpy(t->pieces + *arena_len, content, len + 1);
            t->piece_off[id] = (uint32_t)*arena_len;
            t->piece_len[id] = (uint32_t)len;
            *arena_len += len + 1;
        }
        t->flags[id] |= TOK_ADDED;
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tok, "special")))
            t->flags[id] |= TOK_SPECIAL;
        uint32_t node = 0;
        for (size_t i = 0; i < len; i++)
            trie_child(a, node, (unsigned char)content[i], &node);
        a->node_token[node] = id;
        a->first_byte[(unsigned char)content[0]] = 1;
        k++;
    }
    return 0;
}

/* ---- derived tables */

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Which pieces ByteFallback decodes as a byte: "<0xHH>" (Rust's
 * u8::from_str_radix also takes a '+' before a single digit). */
static void mark_byte_pieces(Tokenizer *t) {
    for (int id = 0; id < t->n_ids; id++) {
        const char *s = t->pieces + t->piece_off[id];
        if (t->piece_off[id] == UINT32_MAX || t->piece_len[id] != 6 || memcmp(s, "<0x", 3) != 0 ||
            s[5] != '>')
            continue;
        int hi = hexval(s[3]), lo = hexval(s[4]);
        if (s[3] == '+' && lo >= 0)
            hi = 0;
        if (hi < 0 || lo < 0)
            continue;
        t->flags[id] |= TOK_BYTE;
        t->byte_value[id] = (uint8_t)(hi * 16 + lo);
    }
}

static int build_char_table(Tokenizer *t, Error *err) {
    t->char_id = malloc(0x10000 * sizeof *t->char_id);
    if (!t->char_id)
        return error_set(err, "out of memory");
    memset(t->char_id, 0xFF, 0x10000 * sizeof *t->char_id);
    for (int id = 0; id < t->n_ids; id++) {
        if (!(t->flags[id] & TOK_IN_MODEL))
            continue;
        const unsigned char *s = (const unsigned char *)t->pieces + t->piece_off[id];
        uint32_t len = t->piece_len[id], cp;
        if (len == 1 && s[0] < 0x80)
            cp = s[0];
        else if (len == 2 && (s[0] & 0xE0) == 0xC0)
            cp = (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
        else if (len == 3 && (s[0] & 0xF0) == 0xE0)
            cp = (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        else
            continue;
        t->char_id[cp] = id;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_id[b] = tok_vocab_find(t, name, 6);
        if (t->byte_id[b] < 0)
            return error_set(err, "model.byte_fallback is true but model.vocab lacks the piece %s", name);
    }
    return 0;
}

/* ---- the whole load */

static char *read_file(const char *path, size_t *len, Error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        error_set(err, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
        buf = malloc((size_t)size + 1);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        error_set(err, "cannot read %s%s", path, size < 0 ? " (not a regular file?)" : "");
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[size] = '\0';
    *len = (size_t)size;
    return buf;
}

static int load_parts(Tokenizer *t, const char *json, size_t json_len, Parts *parts, Error *err) {
    const char *p = json, *end = json + json_len;
    parts->json = json;
    if (walk_object(&p, end, top_member, parts, "tokenizer.json", json, err))
        return -1;
    if (json_skip_ws(p, end) != end)
        return error_set(err, "text after the JSON object (line %zu)", line_of(json, p));
    if (!parts->vocab.p || *parts->vocab.p != '{')
        return error_set(err, "model.vocab is missing or not an object");
    if (!parts->merges.p || *parts->merges.p != '[')
        return error_set(err, "model.merges is missing or not an array");
    for (int i = 1; i <= 2; i++)
        if (parts->top[i] && !cJSON_IsNull(parts->top[i]))
            return error_set(err, "\"%s\" is set; truncation and padding are not supported", top_keys[i]);
    if (check_model(parts->model_fields, err))
        return -1;
    const cJSON *added = parts->top[3];
    if (added && !cJSON_IsArray(added))
        return error_set(err, "added_tokens is not an array");

    /* Pieces: the vocab's decoded strings are no longer than their literals. */
    size_t added_bytes = 0;
    const cJSON *tok;
    cJSON_ArrayForEach(tok, added) {
        const char *c = str_field(tok, "content");
        added_bytes += c ? strlen(c) + 1 : 0;
    }
    size_t arena_len = 0;
    t->pieces = malloc((size_t)(parts->vocab.end - parts->vocab.p) + added_bytes + 1);
    if (!t->pieces)
        return error_set(err, "out of memory");
    VocabEntry *entries = NULL;
    size_t n_entries = 0;
    int32_t max_id = -1;
    if (tok_read_vocab(t, parts->vocab.p, parts->vocab.end, &arena_len, &entries, &n_entries, &max_id, err))
        return -1;
    cJSON_ArrayForEach(tok, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(tok, "id");
        if (cJSON_IsNumber(id) && id->valuedouble > max_id && id->valuedouble < TOK_MAX_IDS)
            max_id = (int32_t)id->valuedouble;
    }
    t->n_ids = max_id + 1;
    t->piece_off = malloc((size_t)t->n_ids * sizeof *t->piece_off);
    t->piece_len = calloc((size_t)t->n_ids, sizeof *t->piece_len);
    t->flags = calloc((size_t)t->n_ids, 1);
    t->byte_value = calloc((size_t)t->n_ids, 1);
    if (!t->piece_off || !t->piece_len || !t->flags || !t->byte_value) {
        free(entries);
        return error_set(err, "out of memory");
    }
    memset(t->piece_off, 0xFF, (size_t)t->n_ids * sizeof *t->piece_off);
    int rc = tok_index_vocab(t, entries, n_entries, err);
    free(entries);
    if (rc || tok_read_merges(t, parts->merges.p, parts->merges.end, err) ||
        read_added_tokens(t, added, &arena_len, err))
        return -1;
    mark_byte_pieces(t);
    return build_char_table(t, err) || check_normalizer(t, parts->top[4], err) ||
           check_pre_tokenizer(t, parts->top[5], err) || check_post_processor(t, parts->top[6], err) ||
           check_decoder(t, parts->top[7], err);
}

int tokenizer_load_buffer(Tokenizer **out, const char *json, size_t len, const char *name, Error *err) {
    *out = NULL;
    Tokenizer *t = calloc(1, sizeof *t);
    Parts parts = {0};
    parts.model_fields = cJSON_CreateObject();
    int rc =
        t && parts.model_fields ? load_parts(t, json, len, &parts, err) : error_set(err, "out of memory");
    for (int i = 0; i < 8; i++)
        cJSON_Delete(parts.top[i]);
    cJSON_Delete(parts.model_fields);
    if (rc) {
        tokenizer_free(t);
        return error_prefix(err, "%s", name);
    }
    *out = t;
    return 0;
}

int tokenizer_load(Tokenizer **out, const char *path, Error *err) {
    *out = NULL;
    size_t len;
    char *json = read_file(path, &len, err);
    if (!json)
        return -1;
    int rc = tokenizer_load_buffer(out, json, len, path, err);
    free(json);
    return rc;
}

void tokenizer_free(Tokenizer *t) {
    if (!t)
        return;
    free(t->pieces);
    free(t->piece_off);
    free(t->piece_len);
    free(t->flags);
    free(t->byte_value);
    free(t->vocab_slots);
    free(t->merges);
    free(t->char_id);
    free(t->added.edge_keys);
    free(t->added.edge_child);
    free(t->added.node_token);
    free(t->norm_from);
    free(t->norm_to);
    free(t->split_pattern);
    free(t->dec_from);
    free(t->dec_to);
    free(t);
}
