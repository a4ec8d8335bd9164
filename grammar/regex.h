/* A regex subset (JSON schema "pattern", string "format") compiled to a DFA
 * and emitted into the automaton between two states.
 *
 * Subset (grammar/README.md): literals (UTF-8), '.', classes [a-z0-9_] and
 * [^...] (ASCII ranges; a negated class and '.' also match any non-ASCII
 * character), escapes \d \w \s \D \W \S and escaped punctuation, groups
 * (...) and (?:...), alternation |, quantifiers * + ? {n} {n,} {n,m}
 * (m <= 1000), '^' at the start and '$' at the end (the whole string must
 * match). A generated string never holds '"', '\' or control characters: they
 * are left out of classes, and a pattern that needs one is an error. Limits:
 * 20000 NFA states, 2000 DFA states. */
#ifndef GRAMMAR_REGEX_H
#define GRAMMAR_REGEX_H

#include <stddef.h>
#include <stdint.h>

#include "grammar/automaton.h"

/* Adds from -> (a string matching pattern) -> to. Returns 0, or -1 with a
 * reason in why ("unsupported regex syntax '(?=' at offset 3"). */
int regex_compile(Automaton *a, const char *pattern, size_t len, uint32_t from, uint32_t to, char *why,
                  size_t why_len);

#endif
