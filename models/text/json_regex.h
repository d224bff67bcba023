/* models/text/json_regex.h: the regular expressions of JSON Schema's `pattern` (and of `format`) as an automaton over
 * code points, so a string can be constrained while it is written. The subset: literals, escapes (\d \w \s and their
 * negations, \t \n \r \f \v \0 \xHH \uHHHH \u{H...}, escaped syntax characters), classes [...] and [^...] with ranges,
 * '.', the quantifiers * + ? {m} {m,} {m,n} (lazy forms too: same strings), '|', groups (...), (?:...) and (?<name>...),
 * and the anchors ^ and $ at the ends of the pattern or of its top-level alternatives. Back-references, lookaround,
 * word boundaries and Unicode property escapes are refused with a message naming the construct. As in JSON Schema
 * (ECMAScript regexes with the u flag), a pattern matches anywhere in the string unless anchored.
 *
 * A state is the set of automaton positions still alive (128 at most). Liveness counts string length too: a state is
 * live when some completion both matches and keeps the length within [min_len, max_len]. */
#ifndef KN_JSON_REGEX_H
#define KN_JSON_REGEX_H

#include <stddef.h>
#include <stdint.h>

#define KN_RE_MAX_POS 128 /* character positions of the automaton (bits of a state) */

typedef struct kn_reset {
  uint64_t w[2];
} kn_reset;

typedef struct kn_regex kn_regex;

/* NULL with a message naming the problem. max_len -1: unbounded. */
kn_regex *kn_regex_compile(const char *pattern, int min_len, int max_len, char *err, size_t errlen);
void kn_regex_free(kn_regex *r);

kn_reset kn_regex_start(const kn_regex *r);
/* The state after the code point cp. */
kn_reset kn_regex_step(const kn_regex *r, kn_reset s, uint32_t cp);
/* Some code point in [lo, hi] leads from s to a live state with count characters written (counting it). */
int kn_regex_can(const kn_regex *r, kn_reset s, uint32_t lo, uint32_t hi, int count);
/* s (count characters written) can still end in a match of an allowed length. */
int kn_regex_live(const kn_regex *r, kn_reset s, int count);
/* The string may end here: s holds a match (the length is checked by the caller). */
int kn_regex_final(const kn_regex *r, kn_reset s);
/* A code point that moves s toward its shortest allowed completion; 0 when the string should end here instead. */
int kn_regex_next(const kn_regex *r, kn_reset s, int count, uint32_t *cp);
/* Whole-string match of UTF-8 text (tests). */
int kn_regex_matches(const kn_regex *r, const char *utf8, size_t n);

#endif
