/* JSON schema -> automaton (grammar.h, subset in grammar/README.md).
 *
 * compile_value(schema, from, to) adds the paths of every compact JSON text
 * the schema accepts between two automaton states. Everything is inlined
 * (an object's properties, an array's item copies, a non-recursive $ref),
 * so most token decisions are settled inside one frame and cached; a $ref
 * that refers to a schema already being expanded (recursion) and the
 * free-form "any value" become rules entered by a call edge.
 *
 * Errors name the JSON path of the offending schema ("$.properties.x.items")
 * and, for unsupported features, the keyword. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "grammar/grammar_internal.h"
#include "grammar/regex.h"

#define MAX_RULES 4096
#define MAX_STRING_LENGTH_BOUND 2000
#define MAX_ARRAY_BOUND 256
#define MAX_PATH 400
#define MAX_INLINE 256

typedef struct {
    const cJSON *schema;
    uint32_t start;
} Rule;

typedef struct {
    Automaton *au;
    const GrammarLimits *lim;
    const cJSON *doc;
    Error *err;
    int failed;
    double deadline;
    char path[MAX_PATH];
    size_t path_len;
    const cJSON *inline_stack[MAX_INLINE]; /* $ref targets being expanded */
    int n_inline;
    Rule rules[MAX_RULES];
    int n_rules;
    uint32_t any_rule; /* start of the "any JSON value" rule, 0 = not built */
    uint32_t any_rule_end;
} Ctx;

static int fail(Ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(Ctx *c, const char *fmt, ...) {
    if (c->failed)
        return -1;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->failed = 1;
    return error_set(c->err, "%s at %s", msg, c->path_len ? c->path : "$");
}

/* Appends to the JSON path; returns the old length for path_pop. */
static size_t path_push(Ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t path_push(Ctx *c, const char *fmt, ...) {
    size_t old = c->path_len;
    if (c->path_len == 0) {
        c->path[0] = '$';
        c->path[1] = '\0';
        c->path_len = old = 1;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->path + c->path_len, sizeof c->path - c->path_len, fmt, ap);
    va_end(ap);
    if (n > 0)
        c->path_len +=
            (size_t)n < sizeof c->path - c->path_len ? (size_t)n : sizeof c->path - c->path_len - 1;
    return old;
}

static void path_pop(Ctx *c, size_t old) {
    c->path_len = old;
    c->path[old] = '\0';
}

static int check_budget(Ctx *c) {
    if (c->failed)
        return -1;
    if (c->au->overflow)
        return fail(c, "the schema is too large (over %u automaton states)", c->au->max_states);
    if (grammar_now_ms() > c->deadline)
        return fail(c, "the schema took longer than %.0f ms to compile", c->lim->max_compile_ms);
    return 0;
}

/* ---- literals */

/* s[0..n) as a JSON string literal, as json.dumps(ensure_ascii=False) writes it. */
static char *json_quote(const char *s, size_t n) {
    char *out = malloc(n * 6 + 3), *o = out;
    if (!out)
        return NULL;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            *o++ = '\\';
            *o++ = (char)ch;
        } else if (ch < 0x20) {
            static const char short_esc[] = "btn\0fr";
            if (ch >= 8 && ch <= 13 && ch != 11) {
                *o++ = '\\';
                *o++ = short_esc[ch - 8];
            } else
                o += sprintf(o, "\\u%04x", ch);
        } else
            *o++ = (char)ch;
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

typedef struct {
    char **s;
    size_t *len;
    int n;
} LiteralSet;

static int cmp_literal(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds from -> one of the literals -> to, as a byte trie (deterministic). */
static void emit_trie(Ctx *c, uint32_t from, uint32_t to, char **lits, int n, size_t depth) {
    int i = 0;
    while (i < n) {
        if (lits[i][depth] == '\0') {
            au_eps(c->au, from, to);
            i++;
            continue;
        }
        int j = i;
        while (j < n && lits[j][depth] == lits[i][depth])
            j++;
        uint8_t b = (uint8_t)lits[i][depth];
        if (j - i == 1) { /* one literal left: a plain chain */
            const char *rest = lits[i] + depth;
            au_literal(c->au, from, rest, strlen(rest), to);
        } else {
            uint32_t next = au_state(c->au);
            au_byte(c->au, from, b, b, next);
            emit_trie(c, next, to, lits + i, j - i, depth + 1);
        }
        i = j;
    }
}

/* Adds the canonical (compact) JSON of each value; duplicates collapse. */
static int emit_values(Ctx *c, uint32_t from, uint32_t to, const cJSON *const *values, int n) {
    char **lits = calloc((size_t)n + 1, sizeof *lits);
    if (!lits)
        return fail(c, "out of memory");
    int m = 0;
    for (int i = 0; i < n; i++) {
        char *s = cJSON_PrintUnformatted(values[i]);
        if (!s) {
            for (int k = 0; k < m; k++)
                cJSON_free(lits[k]);
            free(lits);
            return fail(c, "out of memory");
        }
        lits[m++] = s;
    }
    qsort(lits, (size_t)m, sizeof *lits, cmp_literal);
    int u = 0;
    for (int i = 0; i < m; i++) {
        if (u > 0 && !strcmp(lits[u - 1], lits[i])) {
            cJSON_free(lits[i]);
            continue;
        }
        lits[u++] = lits[i];
    }
    emit_trie(c, from, to, lits, u, 0);
    for (int i = 0; i < u; i++)
        cJSON_free(lits[i]);
    free(lits);
    return check_budget(c);
}

/* ---- numbers */

static void digits(Ctx *c, uint32_t from, uint32_t to, char lo, char hi) {
    au_byte(c->au, from, (uint8_t)lo, (uint8_t)hi, to);
}

/* from -> exactly n digits 0-9 -> to */
static void any_digits(Ctx *c, uint32_t from, uint32_t to, int n) {
    uint32_t cur = from;
    for (int i = 0; i < n; i++) {
        uint32_t next = i + 1 == n ? to : au_state(c->au);
        digits(c, cur, next, '0', '9');
        cur = next;
    }
    if (n == 0)
        au_eps(c->au, from, to);
}

/* Same-length decimal strings x..y (digit strings of length n, x <= y). */
static void same_len_range(Ctx *c, uint32_t from, uint32_t to, const char *x, const char *y, int n) {
    if (n == 0) {
        au_eps(c->au, from, to);
        return;
    }
    int x_rest_zero = 1, y_rest_nine = 1;
    for (int i = 1; i < n; i++) {
        x_rest_zero &= x[i] == '0';
        y_rest_nine &= y[i] == '9';
    }
    if (x[0] == y[0]) {
        uint32_t next = n == 1 ? to : au_state(c->au);
        digits(c, from, next, x[0], x[0]);
        if (n > 1)
            same_len_range(c, next, to, x + 1, y + 1, n - 1);
        return;
    }
    if (x_rest_zero && y_rest_nine) {
        uint32_t next = n == 1 ? to : au_state(c->au);
        digits(c, from, next, x[0], y[0]);
        any_digits(c, next, to, n - 1);
        return;
    }
    char nines[24], zeros[24];
    memset(nines, '9', sizeof nines);
    memset(zeros, '0', sizeof zeros);
    /* x0 followed by [x1.., 99..] */
    uint32_t a = au_state(c->au);
    digits(c, from, a, x[0], x[0]);
    same_len_range(c, a, to, x + 1, nines, n - 1);
    if (y[0] - x[0] > 1) {
        uint32_t m = au_state(c->au);
        digits(c, from, m, (char)(x[0] + 1), (char)(y[0] - 1));
        any_digits(c, m, to, n - 1);
    }
    uint32_t b = au_state(c->au);
    digits(c, from, b, y[0], y[0]);
    same_len_range(c, b, to, zeros, y + 1, n - 1);
}

/* Non-negative integers in [a, b] without leading zeros; b < 0 means no upper bound. */
static void uint_range(Ctx *c, uint32_t from, uint32_t to, long long a, long long b) {
    char as[24], bs[24];
    int la = snprintf(as, sizeof as, "%lld", a);
    int lb = b >= 0 ? snprintf(bs, sizeof bs, "%lld", b) : 19;
    for (int len = la; len <= lb && len <= 19; len++) {
        char lo[24], hi[24];
        if (len == la)
            memcpy(lo, as, (size_t)len + 1);
        else {
            memset(lo, '0', (size_t)len);
            lo[0] = '1';
            lo[len] = '\0';
        }
        if (b >= 0 && len == lb)
            memcpy(hi, bs, (size_t)len + 1);
        else {
            memset(hi, '9', (size_t)len);
            hi[len] = '\0';
        }
        same_len_range(c, from, to, lo, hi, len);
    }
    if (b < 0) { /* 20 digits and more: [1-9][0-9]{19,} */
        uint32_t s = au_state(c->au), t = au_state(c->au);
        digits(c, from, s, '1', '9');
        any_digits(c, s, t, 19);
        digits(c, t, t, '0', '9');
        au_eps(c->au, t, to);
    }
}

static int emit_integer(Ctx *c, const cJSON *schema, uint32_t from, uint32_t to) {
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(schema, "minimum");
    const cJSON *mx = cJSON_GetObjectItemCaseSensitive(schema, "maximum");
    const cJSON *xmn = cJSON_GetObjectItemCaseSensitive(schema, "exclusiveMinimum");
    const cJSON *xmx = cJSON_GetObjectItemCaseSensitive(schema, "exclusiveMaximum");
    const double limit = 9.0e15; /* integers a double holds exactly */
    int has_lo = 0, has_hi = 0;
    long long lo = 0, hi = 0;
    const cJSON *bounds[4] = {mn, xmn, mx, xmx};
    const char *names[4] = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"};
    for (int i = 0; i < 4; i++) {
        if (!bounds[i])
            continue;
        if (!cJSON_IsNumber(bounds[i]))
            return fail(c, "'%s' must be a number", names[i]);
        double v = bounds[i]->valuedouble;
        if (!(fabs(v) <= limit))
            return fail(c, "'%s' %g is outside the supported integer range (+-9e15)", names[i], v);
        long long b = i < 2 ? (long long)ceil(v) : (long long)floor(v);
        if (i == 1 && (double)b == v)
            b++;
        if (i == 3 && (double)b == v)
            b--;
        if (i < 2) {
            if (!has_lo || b > lo)
                lo = b;
            has_lo = 1;
        } else {
            if (!has_hi || b < hi)
                hi = b;
            has_hi = 1;
        }
    }
    if (has_lo && has_hi && lo > hi)
        return fail(c, "no integer lies between the minimum %lld and the maximum %lld", lo, hi);
    if (!has_lo && !has_hi) { /* "0" | "-"? [1-9][0-9]* */
        au_byte(c->au, from, '0', '0', to);
        uint32_t neg = au_state(c->au), d = au_state(c->au);
        au_byte(c->au, from, '-', '-', neg);
        digits(c, from, d, '1', '9');
        digits(c, neg, d, '1', '9');
        digits(c, d, d, '0', '9');
        au_eps(c->au, d, to);
        return check_budget(c);
    }
    /* non-negative part [max(lo, 0), hi] */
    if (!has_hi || hi >= 0)
        uint_range(c, from, to, has_lo && lo > 0 ? lo : 0, has_hi ? hi : -1);
    /* negative part: "-" [max(1, -hi), -lo] */
    if (!has_lo || lo < 0) {
        uint32_t neg = au_state(c->au);
        au_byte(c->au, from, '-', '-', neg);
        uint_range(c, neg, to, has_hi && hi < 0 ? -hi : 1, has_lo ? -lo : -1);
    }
    return check_budget(c);
}

static void emit_number(Ctx *c, uint32_t from, uint32_t to) {
    /* "-"? ("0" | [1-9][0-9]*) ("." [0-9]+)? ([eE] [+-]? [0-9]+)? */
    Automaton *a = c->au;
    uint32_t sign = au_state(a), intp = au_state(a), frac0 = au_state(a), frac = au_state(a);
    uint32_t e0 = au_state(a), e1 = au_state(a), exp = au_state(a);
    au_eps(a, from, sign);
    au_byte(a, from, '-', '-', sign);
    uint32_t zero = au_state(a);
    au_byte(a, sign, '0', '0', zero);
    au_byte(a, sign, '1', '9', intp);
    au_byte(a, intp, '0', '9', intp);
    /* intp and "0" may end, or go on with a fraction or an exponent */
    uint32_t after_int = au_state(a);
    au_eps(a, intp, after_int);
    au_eps(a, zero, after_int);
    au_eps(a, after_int, to);
    au_byte(a, after_int, '.', '.', frac0);
    au_byte(a, frac0, '0', '9', frac);
    au_byte(a, frac, '0', '9', frac);
    uint32_t after_frac = au_state(a);
    au_eps(a, frac, after_frac);
    au_eps(a, after_int, after_frac);
    au_eps(a, frac, to);
    au_byte(a, after_frac, 'e', 'e', e0);
    au_byte(a, after_frac, 'E', 'E', e0);
    au_byte(a, e0, '+', '+', e1);
    au_byte(a, e0, '-', '-', e1);
    au_byte(a, e0, '0', '9', exp);
    au_byte(a, e1, '0', '9', exp);
    au_byte(a, exp, '0', '9', exp);
    au_eps(a, exp, to);
}

/* ---- strings */

static int emit_string(Ctx *c, const cJSON *schema, uint32_t from, uint32_t to) {
    const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(schema, "pattern");
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(schema, "format");
    const cJSON *min_len = cJSON_GetObjectItemCaseSensitive(schema, "minLength");
    const cJSON *max_len = cJSON_GetObjectItemCaseSensitive(schema, "maxLength");
    Automaton *a = c->au;
    const char *regex = NULL;
    if (format) {
        static const char *const formats[][2] = {
            {"date", "^(\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[1-2]\\d|3[01]))$"},
            {"time", "^([01]\\d|2[0-3]):[0-5]\\d:([0-5]\\d|60)(\\.\\d+)?(Z|[+-]([01]\\d|2[0-3]):[0-5]\\d)$"},
            {"date-time",
             "^(\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[1-2]\\d|3[01]))T([01]\\d|2[0-3]):[0-5]\\d:([0-5]\\d|60)"
             "(\\.\\d+)?(Z|[+-]([01]\\d|2[0-3]):[0-5]\\d)$"},
            {"uuid", "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"},
        };
        if (!cJSON_IsString(format))
            return fail(c, "'format' must be a string");
        for (size_t i = 0; i < sizeof formats / sizeof *formats; i++)
            if (!strcmp(format->valuestring, formats[i][0]))
                regex = formats[i][1];
        if (!regex)
            return fail(c, "unsupported format '%.40s' (supported: date, time, date-time, uuid)",
                        format->valuestring);
        if (pattern)
            return fail(c, "'format' and 'pattern' together are not supported");
    }
    if (pattern) {
        if (!cJSON_IsString(pattern))
            return fail(c, "'pattern' must be a string");
        regex = pattern->valuestring;
    }
    if (regex && (min_len || max_len))
        return fail(c, "'minLength'/'maxLength' together with '%s' are not supported",
                    pattern ? "pattern" : "format");
    uint32_t body = au_state(a), close = au_state(a);
    au_byte(a, from, '"', '"', body);
    au_byte(a, close, '"', '"', to);
    if (regex) {
        char why[200];
        if (regex_compile(a, regex, strlen(regex), body, close, why, sizeof why) != 0)
            return fail(c, "%s '%.60s': %s", pattern ? "pattern" : "format", regex, why);
        return check_budget(c);
    }
    int lo = 0, hi = -1;
    if (min_len) {
        if (!cJSON_IsNumber(min_len) || min_len->valuedouble < 0 ||
            min_len->valuedouble != floor(min_len->valuedouble))
            return fail(c, "'minLength' must be a non-negative integer");
        if (min_len->valuedouble > MAX_STRING_LENGTH_BOUND)
            return fail(c, "'minLength' %g is over the supported %d", min_len->valuedouble,
                        MAX_STRING_LENGTH_BOUND);
        lo = min_len->valueint;
    }
    if (max_len) {
        if (!cJSON_IsNumber(max_len) || max_len->valuedouble < 0 ||
            max_len->valuedouble != floor(max_len->valuedouble))
            return fail(c, "'maxLength' must be a non-negative integer");
        if (max_len->valuedouble > MAX_STRING_LENGTH_BOUND)
            return fail(c, "'maxLength' %g is over the supported %d", max_len->valuedouble,
                        MAX_STRING_LENGTH_BOUND);
        hi = max_len->valueint;
        if (hi < lo)
            return fail(c, "'maxLength' %d is below 'minLength' %d", hi, lo);
    }
    /* counted characters: state k = k characters written (k capped at lo when unbounded) */
    int last = hi >= 0 ? hi : lo;
    uint32_t cur = body;
    for (int k = 0; k <= last; k++) {
        a->plain_budget[cur] = hi >= 0 ? (uint32_t)(hi - k) : AU_PLAIN_UNLIMITED;
        a->plain_close[cur] = close;
        a->plain_need[cur] = k < lo ? (uint32_t)(lo - k) : 0;
        if (k >= lo)
            au_eps(a, cur, close);
        if (k == last) {
            if (hi < 0)
                au_json_char(a, cur, cur);
            break;
        }
        uint32_t next = au_state(a);
        au_json_char(a, cur, next);
        cur = next;
        if ((k & 63) == 0 && check_budget(c) != 0)
            return -1;
    }
    return check_budget(c);
}

/* ---- structure */

static int compile_value(Ctx *c, const cJSON *schema, uint32_t from, uint32_t to, int depth);

static const char *const annotation_keys[] = {
    "title",      "description", "$schema",   "$id",   "$comment",    "examples", "default",
    "deprecated", "readOnly",    "writeOnly", "$defs", "definitions", "$anchor",  NULL};
static const char *const value_keys[] = {"type",
                                         "properties",
                                         "required",
                                         "additionalProperties",
                                         "enum",
                                         "const",
                                         "anyOf",
                                         "items",
                                         "minItems",
                                         "maxItems",
                                         "$ref",
                                         "pattern",
                                         "format",
                                         "minimum",
                                         "maximum",
                                         "exclusiveMinimum",
                                         "exclusiveMaximum",
                                         "minLength",
                                         "maxLength",
                                         NULL};

static int in_list(const char *k, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(k, *list))
            return 1;
    return 0;
}

static int check_keywords(Ctx *c, const cJSON *schema) {
    for (const cJSON *it = schema->child; it; it = it->next) {
        if (in_list(it->string, annotation_keys) || in_list(it->string, value_keys))
            continue;
        size_t old = path_push(c, ".%.60s", it->string);
        fail(c, "unsupported keyword '%.60s'", it->string);
        path_pop(c, old);
        return -1;
    }
    return 0;
}

/* Resolves "#", "#/$defs/x" and other JSON pointers into the document. */
static const cJSON *resolve_ref(Ctx *c, const char *ref) {
    if (ref[0] != '#') {
        fail(c, "'$ref' \"%.80s\" is not supported (only references inside the schema, \"#/...\")", ref);
        return NULL;
    }
    const cJSON *node = c->doc;
    const char *p = ref + 1;
    while (*p) {
        if (*p != '/') {
            fail(c, "'$ref' \"%.80s\" is not a JSON pointer", ref);
            return NULL;
        }
        p++;
        char seg[256];
        size_t n = 0;
        while (*p && *p != '/' && n + 1 < sizeof seg) {
            if (p[0] == '~' && p[1] == '0') {
                seg[n++] = '~';
                p += 2;
            } else if (p[0] == '~' && p[1] == '1') {
                seg[n++] = '/';
                p += 2;
            } else
                seg[n++] = *p++;
        }
        seg[n] = '\0';
        if (cJSON_IsArray(node)) {
            char *end;
            long i = strtol(seg, &end, 10);
            node = *end == '\0' ? cJSON_GetArrayItem(node, (int)i) : NULL;
        } else
            node = cJSON_GetObjectItemCaseSensitive(node, seg);
        if (!node) {
            fail(c, "'$ref' \"%.80s\" points to nothing in the schema", ref);
            return NULL;
        }
    }
    return node;
}

/* The rule (entered by a call) for a recursive schema. */
static int rule_for(Ctx *c, const cJSON *target, uint32_t *start, int depth) {
    for (int i = 0; i < c->n_rules; i++)
        if (c->rules[i].schema == target) {
            *start = c->rules[i].start;
            return 0;
        }
    if (c->n_rules == MAX_RULES)
        return fail(c, "too many recursive references (over %d)", MAX_RULES);
    uint32_t s = au_state(c->au), end = au_state(c->au);
    c->rules[c->n_rules++] = (Rule){target, s};
    c->au->flags[end] |= AU_FINAL;
    *start = s;
    return compile_value(c, target, s, end, depth + 1);
}

/* The "any JSON value" rule (compact): null, booleans, numbers, strings, and
 * arrays and objects of any values. */
static uint32_t any_rule(Ctx *c) {
    if (c->any_rule)
        return c->any_rule;
    Automaton *a = c->au;
    uint32_t s = au_state(a), end = au_state(a);
    c->any_rule = s;
    a->flags[end] |= AU_FINAL;
    static const char *const lits[] = {"null", "true", "false"};
    for (int i = 0; i < 3; i++)
        au_literal(a, s, lits[i], strlen(lits[i]), end);
    emit_number(c, s, end);
    emit_string(c, NULL, s, end);
    /* arrays: "[" ("]" | value ("," value)* "]") */
    uint32_t arr = au_state(a), arr_item = au_state(a), arr_more = au_state(a);
    au_byte(a, s, '[', '[', arr);
    au_byte(a, arr, ']', ']', end);
    au_call(a, arr, s, arr_item);
    au_byte(a, arr_item, ']', ']', end);
    au_byte(a, arr_item, ',', ',', arr_more);
    au_call(a, arr_more, s, arr_item);
    /* objects: "{" ("}" | key ":" value ("," key ":" value)* "}") */
    uint32_t obj = au_state(a), key_done = au_state(a), colon = au_state(a), val_done = au_state(a),
             comma = au_state(a);
    au_byte(a, s, '{', '{', obj);
    au_byte(a, obj, '}', '}', end);
    emit_string(c, NULL, obj, key_done);
    au_byte(a, key_done, ':', ':', colon);
    au_call(a, colon, s, val_done);
    au_byte(a, val_done, '}', '}', end);
    au_byte(a, val_done, ',', ',', comma);
    emit_string(c, NULL, comma, key_done);
    return s;
}

static int emit_any(Ctx *c, uint32_t from, uint32_t to) {
    au_call(c->au, from, any_rule(c), to);
    return check_budget(c);
}

static int get_count(Ctx *c, const cJSON *schema, const char *key, int max, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(schema, key);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble != floor(v->valuedouble))
        return fail(c, "'%s' must be a non-negative integer", key);
    if (v->valuedouble > max)
        return fail(c, "'%s' %g is over the supported %d", key, v->valuedouble, max);
    *out = v->valueint;
    return 0;
}

/* Is an item schema an object, an array, or something that may expand to one? */
static int composite(const cJSON *s) {
    if (!cJSON_IsObject(s))
        return 0;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (cJSON_IsString(t))
        return !strcmp(t->valuestring, "object") || !strcmp(t->valuestring, "array");
    static const char *const keys[] = {"properties",           "items",   "$ref", "anyOf",
                                       "additionalProperties", "required"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (cJSON_GetObjectItemCaseSensitive(s, keys[i]))
            return 1;
    return cJSON_IsArray(t);
}

static int emit_array(Ctx *c, const cJSON *schema, uint32_t from, uint32_t to, int depth) {
    Automaton *a = c->au;
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(schema, "items");
    int lo = 0, hi = -1;
    if (get_count(c, schema, "minItems", MAX_ARRAY_BOUND, &lo) != 0)
        return -1;
    if (cJSON_GetObjectItemCaseSensitive(schema, "maxItems")) {
        if (get_count(c, schema, "maxItems", 1 << 30, &hi) != 0)
            return -1;
        if (hi < lo)
            return fail(c, "'maxItems' %d is below 'minItems' %d", hi, lo);
        if (hi > MAX_ARRAY_BOUND)
            return fail(c, "'maxItems' %d is over the supported %d", hi, MAX_ARRAY_BOUND);
    }
    if (items && !cJSON_IsObject(items) && !cJSON_IsBool(items))
        return fail(c, "'items' must be a schema (an object); tuple arrays are not supported");
    uint32_t open = au_state(a);
    au_byte(a, from, '[', '[', open);
    if (lo == 0)
        au_byte(a, open, ']', ']', to);
    if (hi == 0)
        return check_budget(c);
    /* item k (1-based) ends in state done[k]. Unbounded: one more copy than
     * minItems (at least two), the last one looping. Scalar items are
     * inlined per copy; objects and arrays are one rule, called per copy
     * (their strings would otherwise be cached once per copy). */
    int copies = hi >= 0 ? hi : (lo > 1 ? lo : 1) + 1;
    uint32_t prev = open, item_rule = 0;
    size_t old = path_push(c, ".items");
    if (copies > 1 && composite(items)) {
        if (rule_for(c, items, &item_rule, depth) != 0) {
            path_pop(c, old);
            return -1;
        }
    }
    for (int k = 1; k <= copies; k++) {
        uint32_t start = prev;
        if (k > 1) {
            start = au_state(a);
            au_byte(a, prev, ',', ',', start);
        }
        uint32_t done = au_state(a);
        int rc = 0;
        if (item_rule)
            au_call(a, start, item_rule, done);
        else
            rc = items && !cJSON_IsTrue(items) ? compile_value(c, items, start, done, depth + 1)
                                               : emit_any(c, start, done);
        if (rc != 0) {
            path_pop(c, old);
            return -1;
        }
        if (k >= lo)
            au_byte(a, done, ']', ']', to);
        if (hi < 0 && k == copies) /* unbounded: more items loop back (start follows a ',') */
            au_byte(a, done, ',', ',', start);
        prev = done;
    }
    path_pop(c, old);
    return check_budget(c);
}

static int emit_object(Ctx *c, const cJSON *schema, uint32_t from, uint32_t to, int depth) {
    Automaton *a = c->au;
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(schema, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(schema, "additionalProperties");
    if (props && !cJSON_IsObject(props))
        return fail(c, "'properties' must be an object");
    if (req && !cJSON_IsArray(req))
        return fail(c, "'required' must be an array of property names");
    for (const cJSON *r = req ? req->child : NULL; r; r = r->next) {
        if (!cJSON_IsString(r))
            return fail(c, "'required' must be an array of property names");
        if (!props || !cJSON_GetObjectItemCaseSensitive(props, r->valuestring))
            return fail(c, "required property '%.60s' is not in 'properties'", r->valuestring);
    }
    /* no "properties" and no "additionalProperties": any object (as xgrammar's strict mode) */
    int open_map = addl ? !cJSON_IsFalse(addl) : !props;
    if (open_map && props && props->child)
        return fail(c, "'additionalProperties' other than false together with 'properties' is not supported");
    if (addl && !cJSON_IsBool(addl) && !cJSON_IsObject(addl))
        return fail(c, "'additionalProperties' must be false, true or a schema");
    uint32_t open = au_state(a);
    au_byte(a, from, '{', '{', open);
    if (open_map) {
        /* "{" ("}" | key ":" value ("," key ":" value)* "}") with free keys */
        uint32_t key_done = au_state(a), colon = au_state(a), done = au_state(a), comma = au_state(a);
        au_byte(a, open, '}', '}', to);
        emit_string(c, NULL, open, key_done);
        emit_string(c, NULL, comma, key_done);
        au_byte(a, key_done, ':', ':', colon);
        size_t old = path_push(c, ".additionalProperties");
        int rc = !addl || cJSON_IsTrue(addl) ? emit_any(c, colon, done)
                                             : compile_value(c, addl, colon, done, depth + 1);
        path_pop(c, old);
        if (rc != 0)
            return -1;
        au_byte(a, done, '}', '}', to);
        au_byte(a, done, ',', ',', comma);
        return check_budget(c);
    }
    /* declared properties, in order; optional ones may be skipped. empty[i] /
     * some[i]: before property i, with nothing / something written so far. */
    uint32_t empty = open, some = au_state(a);
    for (const cJSON *p = props ? props->child : NULL; p; p = p->next) {
        int required = 0;
        for (const cJSON *r = req ? req->child : NULL; r; r = r->next)
            required |= !strcmp(r->valuestring, p->string);
        char *key = json_quote(p->string, strlen(p->string));
        if (!key)
            return fail(c, "out of memory");
        size_t klen = strlen(key);
        uint32_t value = au_state(a), next_empty = au_state(a), next_some = au_state(a);
        char *with_comma = malloc(klen + 3);
        if (!with_comma) {
            free(key);
            return fail(c, "out of memory");
        }
        with_comma[0] = ',';
        memcpy(with_comma + 1, key, klen);
        with_comma[klen + 1] = ':';
        with_comma[klen + 2] = '\0';
        key[klen] = ':';
        au_literal(a, empty, key, klen + 1, value);
        au_literal(a, some, with_comma, klen + 2, value);
        free(key);
        free(with_comma);
        size_t old = path_push(c, ".properties.%.60s", p->string);
        int rc = compile_value(c, p, value, next_some, depth + 1);
        path_pop(c, old);
        if (rc != 0)
            return -1;
        if (!required) {
            au_eps(a, empty, next_empty);
            au_eps(a, some, next_some);
        }
        empty = next_empty;
        some = next_some;
    }
    au_byte(a, some, '}', '}', to);
    au_byte(a, empty, '}', '}', to); /* unreachable when a property is required */
    return check_budget(c);
}

static const char *const type_names[] = {"null",   "boolean", "object", "array",
                                         "number", "integer", "string", NULL};

static int emit_type(Ctx *c, const cJSON *schema, const char *type, uint32_t from, uint32_t to, int depth) {
    if (!strcmp(type, "null")) {
        au_literal(c->au, from, "null", 4, to);
        return check_budget(c);
    }
    if (!strcmp(type, "boolean")) {
        au_literal(c->au, from, "true", 4, to);
        au_literal(c->au, from, "false", 5, to);
        return check_budget(c);
    }
    if (!strcmp(type, "object"))
        return emit_object(c, schema, from, to, depth);
    if (!strcmp(type, "array"))
        return emit_array(c, schema, from, to, depth);
    if (!strcmp(type, "integer"))
        return emit_integer(c, schema, from, to);
    if (!strcmp(type, "number")) {
        static const char *const bounds[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
        for (int i = 0; i < 4; i++)
            if (cJSON_GetObjectItemCaseSensitive(schema, bounds[i]))
                return fail(c, "'%s' on a number is not supported (only on \"type\": \"integer\")",
                            bounds[i]);
        emit_number(c, from, to);
        return check_budget(c);
    }
    if (!strcmp(type, "string"))
        return emit_string(c, schema, from, to);
    return fail(c, "unknown type '%.40s'", type);
}

/* Does JSON value v match type name t (for filtering enum/const)? */
static int value_has_type(const cJSON *v, const char *t) {
    if (!strcmp(t, "null"))
        return cJSON_IsNull(v);
    if (!strcmp(t, "boolean"))
        return cJSON_IsBool(v);
    if (!strcmp(t, "object"))
        return cJSON_IsObject(v);
    if (!strcmp(t, "array"))
        return cJSON_IsArray(v);
    if (!strcmp(t, "number"))
        return cJSON_IsNumber(v);
    if (!strcmp(t, "integer"))
        return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 9e15;
    if (!strcmp(t, "string"))
        return cJSON_IsString(v);
    return 0;
}

static int type_allows(const cJSON *type, const cJSON *v) {
    if (!type)
        return 1;
    if (cJSON_IsString(type))
        return value_has_type(v, type->valuestring);
    for (const cJSON *t = type->child; t; t = t->next)
        if (cJSON_IsString(t) && value_has_type(v, t->valuestring))
            return 1;
    return 0;
}

static int compile_value(Ctx *c, const cJSON *schema, uint32_t from, uint32_t to, int depth) {
    if (check_budget(c) != 0)
        return -1;
    if (depth > c->lim->max_depth)
        return fail(c, "the schema nests deeper than %d levels", c->lim->max_depth);
    if (cJSON_IsTrue(schema))
        return emit_any(c, from, to);
    if (cJSON_IsFalse(schema))
        return fail(c, "the schema 'false' matches no value");
    if (!cJSON_IsObject(schema))
        return fail(c, "a schema must be an object or a boolean");
    if (check_keywords(c, schema) != 0)
        return -1;
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(schema, "$ref");
    const cJSON *any_of = cJSON_GetObjectItemCaseSensitive(schema, "anyOf");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(schema, "enum");
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(schema, "const");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(schema, "type");
    if (ref) {
        if (!cJSON_IsString(ref))
            return fail(c, "'$ref' must be a string");
        for (const cJSON *it = schema->child; it; it = it->next)
            if (strcmp(it->string, "$ref") != 0 && !in_list(it->string, annotation_keys))
                return fail(c, "'$ref' with the sibling keyword '%.40s' is not supported", it->string);
        const cJSON *target = resolve_ref(c, ref->valuestring);
        if (!target)
            return -1;
        size_t old = path_push(c, "{$ref %.80s}", ref->valuestring);
        int recursive = 0;
        for (int i = 0; i < c->n_inline; i++)
            recursive |= c->inline_stack[i] == target;
        int rc;
        if (recursive) {
            uint32_t start = 0;
            rc = rule_for(c, target, &start, depth);
            if (rc == 0)
                au_call(c->au, from, start, to);
        } else if (c->n_inline == MAX_INLINE) {
            rc = fail(c, "'$ref' chain deeper than %d", c->n_inline);
        } else {
            c->inline_stack[c->n_inline++] = target;
            rc = compile_value(c, target, from, to, depth + 1);
            c->n_inline--;
        }
        path_pop(c, old);
        return rc;
    }
    if (any_of) {
        if (!cJSON_IsArray(any_of) || !any_of->child)
            return fail(c, "'anyOf' must be a non-empty array of schemas");
        if (cJSON_GetArraySize(any_of) > c->lim->max_enum)
            return fail(c, "'anyOf' has over %d branches", c->lim->max_enum);
        for (const cJSON *it = schema->child; it; it = it->next)
            if (strcmp(it->string, "anyOf") != 0 && !in_list(it->string, annotation_keys))
                return fail(
                    c, "'anyOf' with the sibling keyword '%.40s' is not supported (move it into each branch)",
                    it->string);
        int i = 0;
        for (const cJSON *b = any_of->child; b; b = b->next, i++) {
            size_t old = path_push(c, ".anyOf[%d]", i);
            int rc = compile_value(c, b, from, to, depth + 1);
            path_pop(c, old);
            if (rc != 0)
                return -1;
        }
        return 0;
    }
    if (type && !cJSON_IsString(type) && !cJSON_IsArray(type))
        return fail(c, "'type' must be a string or an array of strings");
    int type_list = type && cJSON_IsArray(type);
    const cJSON *first_type = type ? (type_list ? type->child : type) : NULL;
    for (const cJSON *t = first_type; t; t = type_list ? t->next : NULL) {
        if (!cJSON_IsString(t) || !in_list(t->valuestring, type_names))
            return fail(c, "unknown type '%.40s'", cJSON_IsString(t) ? t->valuestring : "(not a string)");
    }
    if (en || cn) {
        if (en && cn)
            return fail(c, "'enum' and 'const' together are not supported");
        if (en && (!cJSON_IsArray(en) || !en->child))
            return fail(c, "'enum' must be a non-empty array");
        int n = en ? cJSON_GetArraySize(en) : 1;
        if (n > c->lim->max_enum)
            return fail(c, "'enum' has %d values, over the limit of %d", n, c->lim->max_enum);
        const cJSON **vals =
            calloc((size_t)n, sizeof *vals); // NOLINT(bugprone-sizeof-expression): an array of pointers
        if (!vals)
            return fail(c, "out of memory");
        int m = 0;
        for (const cJSON *v = en ? en->child : cn; v; v = en ? v->next : NULL)
            if (type_allows(type, v))
                vals[m++] = v;
        int rc = m == 0 ? fail(c, "no '%s' value has the schema's type", en ? "enum" : "const")
                        : emit_values(c, from, to, vals, m);
        free(vals);
        return rc;
    }
    if (type_list) {
        if (!first_type)
            return fail(c, "'type' is an empty array");
        for (const cJSON *t = first_type; t; t = t->next)
            if (emit_type(c, schema, t->valuestring, from, to, depth) != 0)
                return -1;
        return 0;
    }
    if (type)
        return emit_type(c, schema, type->valuestring, from, to, depth);
    /* no type: guess it from the keywords, else any value */
    if (cJSON_GetObjectItemCaseSensitive(schema, "properties") ||
        cJSON_GetObjectItemCaseSensitive(schema, "required") ||
        cJSON_GetObjectItemCaseSensitive(schema, "additionalProperties"))
        return emit_object(c, schema, from, to, depth);
    if (cJSON_GetObjectItemCaseSensitive(schema, "items") ||
        cJSON_GetObjectItemCaseSensitive(schema, "minItems") ||
        cJSON_GetObjectItemCaseSensitive(schema, "maxItems"))
        return emit_array(c, schema, from, to, depth);
    if (cJSON_GetObjectItemCaseSensitive(schema, "pattern") ||
        cJSON_GetObjectItemCaseSensitive(schema, "format") ||
        cJSON_GetObjectItemCaseSensitive(schema, "minLength") ||
        cJSON_GetObjectItemCaseSensitive(schema, "maxLength"))
        return emit_string(c, schema, from, to);
    if (cJSON_GetObjectItemCaseSensitive(schema, "minimum") ||
        cJSON_GetObjectItemCaseSensitive(schema, "maximum") ||
        cJSON_GetObjectItemCaseSensitive(schema, "exclusiveMinimum") ||
        cJSON_GetObjectItemCaseSensitive(schema, "exclusiveMaximum"))
        return fail(c, "'minimum'/'maximum' without \"type\": \"integer\" are not supported");
    return emit_any(c, from, to);
}

/* A rule whose start reaches a call of itself without reading a byte would
 * recurse forever: find one (depth-first over epsilon and call edges). */
static int find_empty_cycle(const Automaton *a, uint32_t s, uint8_t *on_path, uint8_t *done) {
    if (on_path[s])
        return 1;
    if (done[s])
        return 0;
    on_path[s] = 1;
    int found = 0;
    for (uint32_t e = a->off[s]; e < a->off[s + 1] && !found; e++) {
        const AuEdge *ed = &a->edges[e];
        if (ed->kind == EDGE_EPS || ed->kind == EDGE_CALL)
            found = find_empty_cycle(a, ed->target, on_path, done);
    }
    on_path[s] = 0;
    done[s] = 1;
    return found;
}

void grammar_limits_default(GrammarLimits *l) {
    l->max_schema_bytes = 256 * 1024;
    l->max_depth = 64;
    l->max_enum = 1024;
    l->max_states = 200000;
    l->max_compile_ms = 2000;
}

static int depth_of(const cJSON *v, int depth, int limit) {
    if (depth > limit)
        return depth;
    int m = depth;
    for (const cJSON *c = v->child; c; c = c->next) {
        int d = depth_of(c, depth + 1, limit);
        if (d > m)
            m = d;
        if (m > limit)
            break;
    }
    return m;
}

static int compile_doc(Grammar **out, const GrammarVocab *vocab, const cJSON *doc, int any_object,
                       const GrammarLimits *limits, double t0, Error *err) {
    Grammar *g = calloc(1, sizeof *g);
    Ctx *c = calloc(1, sizeof *c);
    if (!g || !c) {
        free(g);
        free(c);
        return error_set(err, "out of memory");
    }
    g->vocab = vocab;
    pthread_mutex_init(&g->lazy_lock, NULL);
    au_init(&g->au, limits->max_states);
    c->au = &g->au;
    c->lim = limits;
    c->doc = doc;
    c->err = err;
    c->deadline = t0 + limits->max_compile_ms;
    uint32_t start = au_state(c->au), end = au_state(c->au);
    c->au->flags[end] |= AU_FINAL;
    c->au->start = start;
    if (doc)
        c->inline_stack[c->n_inline++] = doc; /* "$ref": "#" recurses */
    int rc;
    if (any_object) {
        const char *obj = "{\"type\":\"object\",\"additionalProperties\":true}";
        cJSON *o = cJSON_Parse(obj);
        rc = o ? compile_value(c, o, start, end, 0) : error_set(err, "out of memory");
        cJSON_Delete(o);
    } else
        rc = compile_value(c, doc, start, end, 0);
    if (rc == 0 && au_finish(c->au, err) != 0)
        rc = -1;
    if (rc == 0) {
        uint8_t *on_path = calloc(c->au->n_states, 1), *done = calloc(c->au->n_states, 1);
        if (!on_path || !done)
            rc = error_set(err, "out of memory");
        for (int i = 0; rc == 0 && i < c->n_rules; i++)
            if (find_empty_cycle(c->au, c->rules[i].start, on_path, done))
                rc =
                    error_set(err, "a '$ref' recursion reads no input before recursing (it would never end)");
        free(on_path);
        free(done);
    }
    free(c);
    if (rc != 0) {
        grammar_free(g);
        return -1;
    }
    g->stats.n_states = g->au.n_states;
    g->stats.build_ms = grammar_now_ms() - t0;
    double t1 = grammar_now_ms();
    if (grammar_build_cache(g, t0 + limits->max_compile_ms, err) != 0) {
        grammar_free(g);
        return -1;
    }
    g->stats.cache_ms = grammar_now_ms() - t1;
    *out = g;
    return 0;
}

int grammar_compile_schema(Grammar **out, const GrammarVocab *vocab, const char *schema, size_t len,
                           const GrammarLimits *limits, Error *err) {
    double t0 = grammar_now_ms();
    *out = NULL;
    GrammarLimits def;
    if (!limits) {
        grammar_limits_default(&def);
        limits = &def;
    }
    if (len > limits->max_schema_bytes)
        return error_set(err, "the schema is %zu bytes, over the limit of %zu", len,
                         limits->max_schema_bytes);
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(schema, len, &end, 0);
    if (!doc) {
        size_t at = end && end >= schema ? (size_t)(end - schema) : 0;
        return error_set(err, "the schema is not valid JSON (near byte %zu)", at);
    }
    int d = depth_of(doc, 0, limits->max_depth * 2 + 2);
    if (d > limits->max_depth * 2 + 2) {
        cJSON_Delete(doc);
        return error_set(err, "the schema document nests deeper than %d levels", limits->max_depth * 2 + 2);
    }
    int rc = compile_doc(out, vocab, doc, 0, limits, t0, err);
    cJSON_Delete(doc);
    return rc;
}

int grammar_compile_any_object(Grammar **out, const GrammarVocab *vocab, Error *err) {
    GrammarLimits lim;
    grammar_limits_default(&lim);
    *out = NULL;
    return compile_doc(out, vocab, NULL, 1, &lim, grammar_now_ms(), err);
}

void grammar_free(Grammar *g) {
    if (!g)
        return;
    grammar_free_cache(g);
    pthread_mutex_destroy(&g->lazy_lock);
    au_free(&g->au);
    free(g);
}

void grammar_stats(const Grammar *g, GrammarStats *stats) {
    *stats = g->stats;
}
