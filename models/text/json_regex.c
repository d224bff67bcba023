/* models/text/json_regex.c: pattern -> a Thompson automaton over code points, reduced to its character positions (the
 * epsilon moves folded into each position's successor set), with a table of which positions can reach a match in
 * exactly L more characters so a string's length bounds and its pattern are enforced together. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/base/bytes.h"
#include "models/text/json_regex.h"

enum { R_CHAR, R_SPLIT, R_EPS, R_MATCH };
#define MAX_RAW 20000   /* automaton states while building (repetition copies included) */
#define MAX_MIN_LEN 4096 /* minLength beside a pattern */
#define MAX_MAX_LEN 65536 /* a larger maxLength beside a pattern counts as unbounded */
#define CP_MAX 0x10FFFFu

typedef struct rng {
  uint32_t lo, hi;
} rng;

typedef struct rstate {
  int kind, out, out2, r0, nr;
} rstate;

typedef struct frag {
  int start, end; /* end: an R_EPS state whose out is still open */
} frag;

typedef struct rset {
  rng *r;
  int n, cap;
} rset;

typedef struct parser {
  const unsigned char *p;
  size_t pos, n;
  rstate *st;
  int nst, cap;
  rng *rg;
  int nrg, rcap;
  char *err;
  size_t errlen;
  int failed;
} parser;

struct kn_regex {
  int n, match, min_len, max_len, lmax;
  kn_reset start;
  kn_reset *next; /* per position: the positions after its character */
  int *r0, *nr;
  rng *rg;
  kn_reset *reach; /* reach[L]: positions from which a match is L characters away, L = 0..lmax */
  kn_reset *live;  /* live[count]: positions that can still end in a match of an allowed length, count = 0..cmax */
  int cmax;
};

static int pfail(parser *P, const char *fmt, ...) {
  if (P->failed) return -1;
  P->failed = 1;
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(P->err, P->errlen, "pattern: %s", msg);
  return -1;
}

/* ---- sets of code points ----------------------------------------------------------------------------------- */

static void set_add(parser *P, rset *s, uint32_t lo, uint32_t hi) {
  if (kn_grow(&s->r, &s->cap, s->n + 1, sizeof *s->r, 8)) return (void)pfail(P, "out of memory");
  s->r[s->n++] = (rng){lo, hi};
}

static int rng_cmp(const void *a, const void *b) {
  const rng *x = a, *y = b;
  return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static void set_norm(rset *s) {
  if (!s->n) return;
  qsort(s->r, (size_t)s->n, sizeof *s->r, rng_cmp);
  int k = 0;
  for (int i = 1; i < s->n; i++) {
    if (s->r[i].lo <= s->r[k].hi + 1) {
      if (s->r[i].hi > s->r[k].hi) s->r[k].hi = s->r[i].hi;
    } else {
      s->r[++k] = s->r[i];
    }
  }
  s->n = k + 1;
}

static void set_negate(parser *P, rset *s) {
  set_norm(s);
  rset o = {0};
  uint32_t at = 0;
  for (int i = 0; i < s->n; i++) {
    if (s->r[i].lo > at) set_add(P, &o, at, s->r[i].lo - 1);
    at = s->r[i].hi + 1;
  }
  if (at <= CP_MAX) set_add(P, &o, at, CP_MAX);
  free(s->r);
  *s = o;
}

/* What a JSON string can hold here: raw characters from U+0020 (no surrogates), and the control characters that have
 * short escapes (\b \t \n \f \r). */
static void set_emittable(parser *P, rset *s) {
  static const rng ok[] = {{8, 10}, {12, 13}, {0x20, 0xD7FF}, {0xE000, CP_MAX}};
  set_norm(s);
  rset o = {0};
  for (int i = 0; i < s->n; i++)
    for (size_t k = 0; k < sizeof ok / sizeof *ok; k++) {
      uint32_t lo = s->r[i].lo > ok[k].lo ? s->r[i].lo : ok[k].lo, hi = s->r[i].hi < ok[k].hi ? s->r[i].hi : ok[k].hi;
      if (lo <= hi) set_add(P, &o, lo, hi);
    }
  free(s->r);
  *s = o;
}

static void class_escape(parser *P, rset *s, unsigned char c) {
  static const rng digit[] = {{'0', '9'}};
  static const rng word[] = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
  static const rng space[] = {{9, 13}, {0x20, 0x20}, {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A},
                              {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}, {0xFEFF, 0xFEFF}};
  const rng *r;
  size_t n;
  switch (c | 0x20) {
  case 'd': r = digit, n = 1; break;
  case 'w': r = word, n = 4; break;
  default: r = space, n = sizeof space / sizeof *space;
  }
  rset t = {0};
  for (size_t i = 0; i < n; i++) set_add(P, &t, r[i].lo, r[i].hi);
  if (c >= 'A' && c <= 'Z') set_negate(P, &t);
  for (int i = 0; i < t.n; i++) set_add(P, s, t.r[i].lo, t.r[i].hi);
  free(t.r);
}

/* ---- the pattern text ------------------------------------------------------------------------------------ */

static int peek(const parser *P) { return P->pos < P->n ? P->p[P->pos] : -1; }

static uint32_t utf8_cp(parser *P) {
  unsigned c = P->p[P->pos++];
  int more = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
  uint32_t cp = more ? c & (0x3Fu >> more) : c;
  for (; more && P->pos < P->n; more--) cp = cp << 6 | (P->p[P->pos++] & 0x3Fu);
  return cp;
}

static int hex_digits(parser *P, int n, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < n; i++) {
    int c = peek(P);
    int d = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
    if (d < 0) return pfail(P, "expected a hex digit at offset %zu", P->pos);
    v = v * 16 + (uint32_t)d, P->pos++;
  }
  *out = v;
  return 0;
}

/* An escape naming one character (after the backslash). */
static int escape_char(parser *P, int in_class, uint32_t *cp) {
  int c = peek(P);
  if (c < 0) return pfail(P, "a trailing backslash");
  P->pos++;
  switch (c) {
  case 't': *cp = 9; return 0;
  case 'n': *cp = 10; return 0;
  case 'r': *cp = 13; return 0;
  case 'f': *cp = 12; return 0;
  case 'v': *cp = 11; return 0;
  case '0':
    if (peek(P) >= '0' && peek(P) <= '9') return pfail(P, "octal escapes are not supported");
    *cp = 0;
    return 0;
  case 'x': return hex_digits(P, 2, cp);
  case 'u':
    if (peek(P) == '{') {
      uint32_t v = 0;
      P->pos++;
      int nd = 0;
      while (peek(P) != '}' && nd < 7) {
        uint32_t d = 0;
        if (hex_digits(P, 1, &d)) return -1;
        v = v * 16 + d, nd++;
      }
      if (peek(P) != '}' || !nd || v > CP_MAX) return pfail(P, "a bad \\u{...} escape");
      P->pos++;
      *cp = v;
      return 0;
    }
    return hex_digits(P, 4, cp);
  case 'c': {
    int l = peek(P);
    if (!((l | 0x20) >= 'a' && (l | 0x20) <= 'z')) return pfail(P, "a bad \\c escape");
    P->pos++;
    *cp = (uint32_t)(l & 31);
    return 0;
  }
  case 'b':
    if (in_class) { *cp = 8; return 0; }
    return pfail(P, "word boundaries (\\b) are not supported");
  case 'B': return pfail(P, "word boundaries (\\B) are not supported");
  case 'k': return pfail(P, "back-references (\\k<name>) are not supported");
  case 'p': case 'P': return pfail(P, "Unicode property escapes (\\%c{...}) are not supported", c);
  default:
    if (c >= '1' && c <= '9') return pfail(P, "back-references (\\%c) are not supported", c);
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return pfail(P, "unknown escape \\%c", c);
    P->pos--;
    *cp = utf8_cp(P);
    return 0;
  }
}

/* ---- building the automaton ------------------------------------------------------------------------------ */

static int new_state(parser *P, int kind, int out, int out2) {
  if (P->nst >= MAX_RAW) return pfail(P, "too large (repetitions expand to more than %d states)", MAX_RAW);
  if (kn_grow(&P->st, &P->cap, P->nst + 1, sizeof *P->st, 64)) return pfail(P, "out of memory");
  P->st[P->nst] = (rstate){kind, out, out2, 0, 0};
  return P->nst++;
}

static frag f_empty(parser *P) {
  int e = new_state(P, R_EPS, -1, -1);
  return (frag){e, e};
}

static frag f_set(parser *P, rset *s) {
  set_emittable(P, s);
  int e = new_state(P, R_EPS, -1, -1), c = new_state(P, R_CHAR, e, -1);
  if (P->failed) return (frag){-1, -1};
  if (kn_grow(&P->rg, &P->rcap, P->nrg + s->n, sizeof *P->rg, 16)) {
    pfail(P, "out of memory");
    return (frag){-1, -1};
  }
  memcpy(P->rg + P->nrg, s->r, (size_t)s->n * sizeof *s->r);
  P->st[c].r0 = P->nrg, P->st[c].nr = s->n;
  P->nrg += s->n;
  return (frag){c, e};
}

static frag f_cat(parser *P, frag a, frag b) {
  if (P->failed) return a;
  P->st[a.end].out = b.start;
  return (frag){a.start, b.end};
}

static frag f_alt(parser *P, frag a, frag b) {
  int e = new_state(P, R_EPS, -1, -1), s = new_state(P, R_SPLIT, a.start, b.start);
  if (P->failed) return a;
  P->st[a.end].out = e, P->st[b.end].out = e;
  return (frag){s, e};
}

static frag f_opt(parser *P, frag a, int loop) {
  int e = new_state(P, R_EPS, -1, -1), s = new_state(P, R_SPLIT, a.start, e);
  if (P->failed) return a;
  P->st[a.end].out = loop ? s : e;
  return (frag){s, e};
}

static frag f_any(parser *P, int dot) {
  rset s = {0};
  if (dot) { /* '.': anything but line terminators */
    set_add(P, &s, 10, 10), set_add(P, &s, 13, 13), set_add(P, &s, 0x2028, 0x2029);
    set_negate(P, &s);
  } else {
    set_add(P, &s, 0, CP_MAX);
  }
  frag f = f_set(P, &s);
  free(s.r);
  return f;
}

static frag parse_alt(parser *P, int top);

static frag parse_class(parser *P) {
  rset s = {0};
  int neg = 0;
  if (peek(P) == '^') neg = 1, P->pos++;
  while (!P->failed) {
    int c = peek(P);
    if (c < 0) { pfail(P, "an unterminated class [...]"); break; }
    if (c == ']') { P->pos++; break; }
    uint32_t lo = 0, hi;
    if (c == '\\') {
      P->pos++;
      int e = peek(P);
      if (e >= 0 && strchr("dDwWsS", e)) {
        P->pos++;
        class_escape(P, &s, (unsigned char)e);
        continue;
      }
      if (escape_char(P, 1, &lo)) break;
    } else {
      lo = utf8_cp(P);
    }
    hi = lo;
    if (peek(P) == '-' && P->pos + 1 < P->n && P->p[P->pos + 1] != ']') {
      P->pos++;
      if (peek(P) == '\\') {
        P->pos++;
        int e = peek(P);
        if (e >= 0 && strchr("dDwWsS", e)) { pfail(P, "a class escape as the end of a range"); break; }
        if (escape_char(P, 1, &hi)) break;
      } else {
        hi = utf8_cp(P);
      }
      if (hi < lo) { pfail(P, "a range out of order in a class"); break; }
    }
    set_add(P, &s, lo, hi);
  }
  if (neg) set_negate(P, &s);
  frag f = P->failed ? (frag){-1, -1} : f_set(P, &s);
  free(s.r);
  return f;
}

static frag parse_atom(parser *P) {
  int c = peek(P);
  frag bad = {-1, -1};
  switch (c) {
  case '(': {
    P->pos++;
    if (peek(P) == '?') {
      P->pos++;
      int k = peek(P);
      if (k == ':') P->pos++;
      else if (k == '=' || k == '!') return pfail(P, "lookahead (?%c...) is not supported", k), bad;
      else if (k == '<' && P->pos + 1 < P->n && (P->p[P->pos + 1] == '=' || P->p[P->pos + 1] == '!'))
        return pfail(P, "lookbehind (?<%c...) is not supported", P->p[P->pos + 1]), bad;
      else if (k == '<') {
        while (peek(P) >= 0 && peek(P) != '>') P->pos++;
        if (peek(P) != '>') return pfail(P, "an unterminated group name"), bad;
        P->pos++;
      } else {
        return pfail(P, "the group (?%c...) is not supported", k < 0 ? ' ' : k), bad;
      }
    }
    frag f = parse_alt(P, 0);
    if (P->failed) return bad;
    if (peek(P) != ')') return pfail(P, "an unclosed group"), bad;
    P->pos++;
    return f;
  }
  case '[': P->pos++; return parse_class(P);
  case '.': P->pos++; return f_any(P, 1);
  case '*': case '+': case '?': case '{':
    return pfail(P, "nothing to repeat before '%c' at offset %zu", c, P->pos), bad;
  case '\\': {
    P->pos++;
    int e = peek(P);
    rset s = {0};
    uint32_t cp;
    if (e >= 0 && strchr("dDwWsS", e)) P->pos++, class_escape(P, &s, (unsigned char)e);
    else if (!escape_char(P, 0, &cp)) set_add(P, &s, cp, cp);
    frag f = P->failed ? bad : f_set(P, &s);
    free(s.r);
    return f;
  }
  default: {
    rset s = {0};
    uint32_t cp = utf8_cp(P);
    set_add(P, &s, cp, cp);
    frag f = f_set(P, &s);
    free(s.r);
    return f;
  }
  }
}

static int read_int(parser *P, int *v) {
  int n = 0, any = 0;
  while (peek(P) >= '0' && peek(P) <= '9') {
    n = n * 10 + (peek(P) - '0'), P->pos++, any = 1;
    if (n > 1000) return pfail(P, "a repetition count above 1000");
  }
  *v = n;
  return any ? 0 : -1;
}

static frag parse_repeat(parser *P) {
  size_t at = P->pos;
  frag a = parse_atom(P);
  if (P->failed) return a;
  int lo = 0, hi = 0, c = peek(P);
  if (c == '*') lo = 0, hi = -1;
  else if (c == '+') lo = 1, hi = -1;
  else if (c == '?') lo = 0, hi = 1;
  else if (c == '{') {
    P->pos++;
    if (read_int(P, &lo)) return pfail(P, "'{' that is not a repetition {m,n}"), a;
    hi = lo;
    if (peek(P) == ',') {
      P->pos++;
      hi = -1;
      if (peek(P) != '}' && read_int(P, &hi)) return pfail(P, "a bad repetition {m,n}"), a;
    }
    if (peek(P) != '}') return pfail(P, "a bad repetition {m,n}"), a;
    if (hi >= 0 && hi < lo) return pfail(P, "a repetition {%d,%d} out of order", lo, hi), a;
  } else {
    return a;
  }
  P->pos++;
  if (peek(P) == '?') P->pos++; /* lazy: the same strings */
  if (peek(P) == '*' || peek(P) == '+' || peek(P) == '?' || peek(P) == '{')
    return pfail(P, "nothing to repeat before '%c' at offset %zu", peek(P), P->pos), a;
  size_t after = P->pos;
  int used = 0;
#define COPY() (used++ ? (P->pos = at, parse_atom(P)) : a)
  frag r = f_empty(P);
  for (int i = 0; i < lo && !P->failed; i++) r = f_cat(P, r, COPY());
  if (hi < 0) r = f_cat(P, r, f_opt(P, COPY(), 1));
  else
    for (int i = lo; i < hi && !P->failed; i++) r = f_cat(P, r, f_opt(P, COPY(), 0));
#undef COPY
  P->pos = after;
  return r;
}

static frag parse_concat(parser *P, int top) {
  int anchor_s = 0, anchor_e = 0;
  if (peek(P) == '^') {
    if (!top) return pfail(P, "the anchor ^ inside a group is not supported"), (frag){-1, -1};
    anchor_s = 1, P->pos++;
  }
  frag f = f_empty(P);
  while (!P->failed && peek(P) >= 0 && peek(P) != '|' && peek(P) != ')') {
    if (peek(P) == '$') {
      if (!top) return pfail(P, "the anchor $ inside a group is not supported"), f;
      P->pos++;
      if (peek(P) >= 0 && peek(P) != '|') return pfail(P, "the anchor $ before the end is not supported"), f;
      anchor_e = 1;
      break;
    }
    if (peek(P) == '^') return pfail(P, "the anchor ^ after the start is not supported"), f;
    f = f_cat(P, f, parse_repeat(P));
  }
  if (top && !P->failed) {
    if (!anchor_s) f = f_cat(P, f_opt(P, f_any(P, 0), 1), f);
    if (!anchor_e) f = f_cat(P, f, f_opt(P, f_any(P, 0), 1));
  }
  return f;
}

static frag parse_alt(parser *P, int top) {
  frag f = parse_concat(P, top);
  while (!P->failed && peek(P) == '|') {
    P->pos++;
    f = f_alt(P, f, parse_concat(P, top));
  }
  return f;
}

/* ---- the position automaton ------------------------------------------------------------------------------ */

static void set_bit(kn_reset *s, int i) { s->w[i >> 6] |= 1ull << (i & 63); }
static int has_bit(kn_reset s, int i) { return (int)(s.w[i >> 6] >> (i & 63) & 1); }
static int meets(kn_reset a, kn_reset b) { return ((a.w[0] & b.w[0]) | (a.w[1] & b.w[1])) != 0; }
static void join(kn_reset *a, kn_reset b) { a->w[0] |= b.w[0], a->w[1] |= b.w[1]; }

/* The positions reachable from raw state s without reading a character. */
static void eclose(const parser *P, const int *pos_of, int s, char *seen, kn_reset *out) {
  while (s >= 0 && !seen[s]) {
    seen[s] = 1;
    const rstate *r = &P->st[s];
    if (r->kind == R_CHAR || r->kind == R_MATCH) {
      if (pos_of[s] >= 0) set_bit(out, pos_of[s]);
      return;
    }
    if (r->kind == R_SPLIT) eclose(P, pos_of, r->out2, seen, out);
    s = r->out;
  }
}

kn_regex *kn_regex_compile(const char *pattern, int min_len, int max_len, char *err, size_t errlen) {
  parser P = {.p = (const unsigned char *)pattern, .n = strlen(pattern), .err = err, .errlen = errlen};
  kn_regex *r = NULL;
  int *pos_of = NULL;
  char *seen = NULL;
  frag f = parse_alt(&P, 1);
  if (!P.failed && peek(&P) == ')') pfail(&P, "an unmatched ')' at offset %zu", P.pos);
  int m = P.failed ? -1 : new_state(&P, R_MATCH, -1, -1);
  if (P.failed) goto out;
  P.st[f.end].out = m;
  if (min_len > MAX_MIN_LEN) { pfail(&P, "minLength above %d beside a pattern is not supported", MAX_MIN_LEN); goto out; }
  if (max_len > MAX_MAX_LEN) max_len = -1;
  pos_of = malloc((size_t)P.nst * sizeof *pos_of);
  seen = malloc((size_t)P.nst);
  r = calloc(1, sizeof *r);
  if (!pos_of || !seen || !r) { pfail(&P, "out of memory"); goto out; }
  int n = 0;
  for (int i = 0; i < P.nst; i++) {
    int keep = (P.st[i].kind == R_CHAR && P.st[i].nr > 0) || P.st[i].kind == R_MATCH;
    pos_of[i] = keep ? n++ : -1;
  }
  if (n > KN_RE_MAX_POS) { pfail(&P, "too large (%d character positions, at most %d)", n, KN_RE_MAX_POS); goto out; }
  r->n = n, r->match = pos_of[m], r->min_len = min_len, r->max_len = max_len, r->lmax = min_len + n;
  r->next = calloc((size_t)n, sizeof *r->next);
  r->r0 = calloc((size_t)n, sizeof *r->r0);
  r->nr = calloc((size_t)n, sizeof *r->nr);
  r->rg = malloc((size_t)(P.nrg ? P.nrg : 1) * sizeof *r->rg);
  r->reach = calloc((size_t)r->lmax + 1, sizeof *r->reach);
  if (!r->next || !r->r0 || !r->nr || !r->rg || !r->reach) { pfail(&P, "out of memory"); goto out; }
  memcpy(r->rg, P.rg, (size_t)P.nrg * sizeof *r->rg);
  memset(seen, 0, (size_t)P.nst);
  eclose(&P, pos_of, f.start, seen, &r->start);
  for (int i = 0; i < P.nst; i++) {
    int p = pos_of[i];
    if (p < 0 || P.st[i].kind != R_CHAR) continue;
    r->r0[p] = P.st[i].r0, r->nr[p] = P.st[i].nr;
    memset(seen, 0, (size_t)P.nst);
    eclose(&P, pos_of, P.st[i].out, seen, &r->next[p]);
  }
  set_bit(&r->reach[0], r->match);
  for (int L = 1; L <= r->lmax; L++)
    for (int p = 0; p < n; p++)
      if (p != r->match && meets(r->next[p], r->reach[L - 1])) set_bit(&r->reach[L], p);
  /* live[count]: the union of reach[L] for the lengths L still allowed. A shortest match of at least a more
   * characters is at most a + n long (a longer one repeats a position and can drop the loop), so L <= a + n. */
  r->cmax = max_len >= 0 ? max_len : min_len;
  if (!(r->live = calloc((size_t)r->cmax + 1, sizeof *r->live))) { pfail(&P, "out of memory"); goto out; }
  for (int count = 0; count <= r->cmax; count++) {
    int a = min_len > count ? min_len - count : 0, b = a + n;
    if (max_len >= 0 && b > max_len - count) b = max_len - count;
    for (int L = a; L <= b; L++) join(&r->live[count], r->reach[L]);
  }
  if (!kn_regex_live(r, r->start, 0)) {
    pfail(&P, max_len >= 0 || min_len > 0 ? "no string of the allowed length matches" : "no string matches");
    goto out;
  }
out:
  free(pos_of), free(seen), free(P.st), free(P.rg);
  if (P.failed) {
    kn_regex_free(r);
    return NULL;
  }
  return r;
}

void kn_regex_free(kn_regex *r) {
  if (!r) return;
  free(r->next), free(r->r0), free(r->nr), free(r->rg), free(r->reach), free(r->live);
  free(r);
}

kn_reset kn_regex_start(const kn_regex *r) { return r->start; }

static int in_ranges(const kn_regex *r, int p, uint32_t lo, uint32_t hi) {
  for (int k = 0; k < r->nr[p]; k++) {
    const rng *g = &r->rg[r->r0[p] + k];
    if (g->lo <= hi && lo <= g->hi) return 1;
  }
  return 0;
}

kn_reset kn_regex_step(const kn_regex *r, kn_reset s, uint32_t cp) {
  kn_reset o = {{0, 0}};
  s.w[r->match >> 6] &= ~(1ull << (r->match & 63));
  for (int w = 0; w < 2; w++)
    for (uint64_t m = s.w[w]; m; m &= m - 1) {
      int p = w * 64 + __builtin_ctzll(m);
      if (in_ranges(r, p, cp, cp)) join(&o, r->next[p]);
    }
  return o;
}

int kn_regex_live(const kn_regex *r, kn_reset s, int count) {
  if (count > r->cmax) {
    if (r->max_len >= 0) return 0;
    count = r->cmax; /* past minLength, unbounded: the same from here on */
  }
  return meets(s, r->live[count]);
}

int kn_regex_can(const kn_regex *r, kn_reset s, uint32_t lo, uint32_t hi, int count) {
  s.w[r->match >> 6] &= ~(1ull << (r->match & 63));
  for (int w = 0; w < 2; w++)
    for (uint64_t m = s.w[w]; m; m &= m - 1) {
      int p = w * 64 + __builtin_ctzll(m);
      if (in_ranges(r, p, lo, hi) && kn_regex_live(r, r->next[p], count)) return 1;
    }
  return 0;
}

int kn_regex_final(const kn_regex *r, kn_reset s) { return has_bit(s, r->match); }

/* A code point of position p's set, plain printable ASCII preferred (no quote or backslash: they need escapes). */
static uint32_t pick_cp(const kn_regex *r, int p) {
  static const rng pref[] = {{'a', 'z'}, {'0', '9'}, {'A', 'Z'}, {0x21, 0x7E}, {0x20, 0xD7FF}, {0, CP_MAX}};
  for (size_t k = 0; k < sizeof pref / sizeof *pref; k++)
    for (int i = 0; i < r->nr[p]; i++) {
      const rng *g = &r->rg[r->r0[p] + i];
      uint32_t lo = g->lo > pref[k].lo ? g->lo : pref[k].lo, hi = g->hi < pref[k].hi ? g->hi : pref[k].hi;
      for (uint32_t c = lo; c <= hi && c <= lo + 2; c++)
        if (k == 5 || (c != '"' && c != '\\')) return c;
    }
  return r->rg[r->r0[p]].lo;
}

int kn_regex_next(const kn_regex *r, kn_reset s, int count, uint32_t *cp) {
  if (kn_regex_final(r, s) && count >= r->min_len) return 0;
  int a = r->min_len > count ? r->min_len - count : 1;
  if (a < 1) a = 1;
  for (int L = a; L <= r->lmax && (r->max_len < 0 || L <= r->max_len - count); L++)
    for (int p = 0; p < r->n; p++)
      if (has_bit(s, p) && has_bit(r->reach[L], p)) {
        *cp = pick_cp(r, p);
        return 1;
      }
  *cp = 'a'; /* not reached for a live state */
  return 1;
}

int kn_regex_matches(const kn_regex *r, const char *utf8, size_t n) {
  parser P = {.p = (const unsigned char *)utf8, .n = n};
  kn_reset s = r->start;
  int count = 0;
  while (P.pos < P.n) s = kn_regex_step(r, s, utf8_cp(&P)), count++;
  return kn_regex_final(r, s) && count >= r->min_len && (r->max_len < 0 || count <= r->max_len);
}
