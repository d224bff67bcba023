/* models/text/json_schema_run.c: the byte automaton of a compiled schema. A thread is a stack of open values (object,
 * array, string, number, literal); each byte either advances it or is refused, so every prefix that is accepted can
 * still be completed into a valid document. anyOf splits a thread into one per branch (kept while they agree). A
 * value is only opened when its shortest completion fits in the frames left (recursive $refs end there); bounded
 * numbers follow the set of values their digits can still reach; strings with a pattern carry its automaton state. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "models/text/json_schema_impl.h"

enum { K_VALUE = 1, K_OBJ, K_ARR, K_STR, K_NUM, K_LIT };
enum { O_FIRST, O_KEY, O_COLON, O_AFTER };        /* object: after '{', after ',', after a key, after a value */
enum { A_FIRST, A_AFTER };                        /* array: after '[', after an item */
enum { S_CH, S_ESC, S_U, S_UTF8 };                /* string: characters, after '\', \uXXXX, inside a UTF-8 sequence */
enum { N_START, N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

#define MAX_WS 2        /* whitespace bytes in a row between tokens, at most one of them a newline */
#define WS_NL 0x80
#define MAX_INT_DIGITS 15 /* integer part: stays an exact double */
#define MAX_EXP_DIGITS 2
#define KEY_EXTRA 0xFFFFu

static const char *const builtin[3] = {"true", "false", "null"};

typedef struct outset {
  kn_jsv_thread *t;
  int n;
} outset;

static size_t thread_bytes(const kn_jsv_thread *t) { return offsetof(kn_jsv_thread, f) + t->depth * sizeof t->f[0]; }

/* The live part: the open frames, and the hashes of a uniqueItems array's items. */
static void copy_thread(kn_jsv_thread *d, const kn_jsv_thread *s) {
  memcpy(d, s, thread_bytes(s));
  if (s->nu) memcpy(d->uh, s->uh, s->nu * sizeof s->uh[0]);
}

static int same_thread(const kn_jsv_thread *a, const kn_jsv_thread *b) {
  return a->depth == b->depth && !memcmp(a, b, thread_bytes(a)) && !memcmp(a->uh, b->uh, a->nu * sizeof a->uh[0]);
}

static void emit(outset *o, const kn_jsv_thread *t) {
  for (int i = 0; i < o->n; i++)
    if (same_thread(&o->t[i], t)) return;
  if (o->n < KN_JSV_THREADS) copy_thread(&o->t[o->n++], t);
}

/* ---- uniqueItems over strings and numbers: each item's value hashed (strings by code point, so "\/" equals "/";
 * numbers by their exact value, so 1.0 equals 1); an item whose hash the array already holds is refused where it
 * would end, and a byte is refused when every way to end the item from there is an item already written ---------- */

static uint64_t mix64(uint64_t x) { /* splitmix64's finalizer */
  x ^= x >> 30, x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27, x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
static uint64_t str_step(uint64_t h, uint32_t cp) { return mix64(h + 0x9e3779b97f4a7c15ull + cp); }
static uint64_t str_hash(uint64_t h, uint32_t count) { return mix64(h ^ ((uint64_t)count << 32 | 0x22)); }
static uint64_t num_hash(js_grid v) {
  unsigned __int128 u = (unsigned __int128)v;
  return mix64((uint64_t)u ^ mix64((uint64_t)(u >> 64) ^ 0x6e756d));
}

static int written(const kn_jsv_thread *t, uint64_t h) {
  for (int i = 0; i < t->nu; i++)
    if (t->uh[i] == h) return 1;
  return 0;
}

/* Frame index d is an item of a uniqueItems array of strings or numbers: its thread (whose uh are the items written),
 * else NULL. */
static const kn_jsv_thread *hashed_item(const kn_jschema *s, const kn_jsv_thread *t, int d) {
  return d >= 1 && t->f[d - 1].kind == K_ARR && s->nodes[t->f[d - 1].node].unique == JS_UNIQ_HASH ? t : NULL;
}

static kn_jsv_frame *push_frame(kn_jsv_thread *t, int kind, unsigned node) {
  kn_jsv_frame *f = &t->f[t->depth++];
  memset(f, 0, sizeof *f);
  f->kind = (uint8_t)kind, f->node = (uint16_t)node;
  return f;
}

static uint64_t all_props(const js_node *nd) { return nd->n_props >= 64 ? ~0ull : (1ull << nd->n_props) - 1; }

/* A value of node may open as frame index vidx: its shortest completion fits in the frames left. */
static int fits(const kn_jschema *s, int node, int vidx) { return node >= 0 && vidx + s->nodes[node].need <= KN_JSV_DEPTH; }

/* The properties whose values fit at frame index vidx. */
static uint64_t fit_props(const kn_jschema *s, const js_node *nd, int vidx) {
  uint64_t m = 0;
  for (int i = 0; i < nd->n_props; i++)
    if (fits(s, nd->pnode[i], vidx)) m |= 1ull << i;
  return m;
}

static int is_digit(unsigned c) { return c >= '0' && c <= '9'; }
static int is_hex(unsigned c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* A string byte of a key: narrow the candidate property names. 0 when no key can come of it. */
static int key_byte(const kn_jschema *s, kn_jsv_thread *t, kn_jsv_frame *f, unsigned char c) {
  const js_node *nd = &s->nodes[f->node];
  uint64_t nc = 0;
  for (int i = 0; i < nd->n_props; i++)
    if ((f->cand >> i & 1) && (unsigned char)nd->names[i][f->pos] == c) nc |= 1ull << i;
  f->cand = nc, f->pos++;
  uint64_t seen = t->f[t->depth - 2].seen;
  return (nc & ~seen) || (nd->extra >= 0 && fits(s, nd->extra, t->depth - 1));
}

/* The closing quote of a key: which property it names (KEY_EXTRA: another key), or -1 when it may not be used. */
static int key_close(const kn_jschema *s, const kn_jsv_thread *t, const kn_jsv_frame *f) {
  const js_node *nd = &s->nodes[f->node];
  uint64_t seen = t->f[t->depth - 2].seen;
  for (int i = 0; i < nd->n_props; i++)
    if ((f->cand >> i & 1) && nd->names[i][f->pos] == 0) return (seen >> i & 1) ? -1 : i;
  return nd->extra >= 0 && fits(s, nd->extra, t->depth - 1) ? (int)KEY_EXTRA : -1;
}

/* A pattern string's automaton state lives in the frame: the position set in seen/cand, a partial code point in pos. */
static kn_reset re_get(const kn_jsv_frame *f) { return (kn_reset){{f->seen, f->cand}}; }
static void re_put(kn_jsv_frame *f, kn_reset r) { f->seen = r.w[0], f->cand = r.w[1]; }

static uint32_t escape_cp(unsigned char c) {
  switch (c) {
  case 'b': return 8;
  case 'f': return 12;
  case 'n': return 10;
  case 'r': return 13;
  case 't': return 9;
  default: return c; /* " \ / */
  }
}

/* The code points a UTF-8 lead byte can start (the automaton already refuses invalid sequences). */
static void lead_range(unsigned char c, uint32_t *lo, uint32_t *hi) {
  if (c <= 0xDF) *lo = (uint32_t)(c & 0x1F) << 6, *hi = *lo + 0x3F;
  else if (c == 0xE0) *lo = 0x800, *hi = 0xFFF;
  else if (c == 0xED) *lo = 0xD000, *hi = 0xD7FF;
  else if (c <= 0xEF) *lo = (uint32_t)(c & 0x0F) << 12, *hi = *lo + 0xFFF;
  else if (c == 0xF0) *lo = 0x10000, *hi = 0x3FFFF;
  else if (c == 0xF4) *lo = 0x100000, *hi = 0x10FFFF;
  else *lo = (uint32_t)(c & 0x07) << 18, *hi = *lo + 0x3FFFF;
}

/* A byte of a string with a pattern (f->sub as before the byte): 0 when no match can follow. */
static int pattern_byte(const js_node *nd, kn_jsv_frame *f, unsigned char c) {
  const kn_regex *re = nd->re;
  kn_reset r = re_get(f);
  int n = (int)f->count;
  switch (f->sub) {
  case S_CH:
    if (c == '\\') {
      for (const char *e = "\"\\/bfnrt"; *e; e++)
        if (kn_regex_can(re, r, escape_cp((unsigned char)*e), escape_cp((unsigned char)*e), n + 1)) return 1;
      return 0;
    }
    if (c < 0x80) {
      if (!kn_regex_can(re, r, c, c, n + 1)) return 0;
      re_put(f, kn_regex_step(re, r, c));
      return 1;
    }
    uint32_t lo, hi;
    lead_range(c, &lo, &hi);
    f->pos = lo >> (6 * (c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1));
    return kn_regex_can(re, r, lo, hi, n + 1);
  case S_ESC:
    if (c == 'u' || !kn_regex_can(re, r, escape_cp(c), escape_cp(c), n)) return 0; /* \u escapes: not with a pattern */
    re_put(f, kn_regex_step(re, r, escape_cp(c)));
    return 1;
  default: { /* S_UTF8: f->need continuation bytes were still due */
    uint32_t p = f->pos << 6 | (c & 0x3Fu);
    int rest = 6 * (f->need - 1);
    uint32_t lo = p << rest, hi = ((p + 1) << rest) - 1;
    if (!kn_regex_can(re, r, lo, hi, n)) return 0;
    f->pos = p;
    if (f->need == 1) re_put(f, kn_regex_step(re, r, p));
    return 1;
  }
  }
}

/* A byte of a string item of a uniqueItems array (f->sub as before the byte; the main automaton checks the rest):
 * its code points are hashed into f->seen (a partial one in f->pos). Refused: \u escapes (one code point, many
 * spellings), and a character after which the string can only close (maxLength reached) as one already written; the
 * closing quote of such a string is refused by the caller. Before the last character there are more ways to go on
 * than items written (64 continuation bytes, 95 ASCII characters, > KN_JSV_UNIQUE), so no prefix is a dead end. */
static int unique_string_byte(const js_node *nd, const kn_jsv_thread *t, kn_jsv_frame *f, unsigned char c) {
  uint32_t n = f->count + (f->sub == S_CH); /* characters once this byte's is written */
  int last = nd->max_len >= 0 && n >= (uint32_t)nd->max_len;
  uint32_t cp;
  switch (f->sub) {
  case S_CH:
    if (c == '\\') { /* at the last character: some escape must make a new string */
      for (const char *e = "\"\\/bfnrt"; last && *e; e++)
        if (!written(t, str_hash(str_step(f->seen, escape_cp((unsigned char)*e)), n))) return 1;
      return !last;
    }
    if (c >= 0x80) {
      f->pos = c & (c >= 0xF0 ? 0x07u : c >= 0xE0 ? 0x0Fu : 0x1Fu);
      return 1;
    }
    cp = c;
    break;
  case S_ESC:
    if (c == 'u') return 0;
    cp = escape_cp(c);
    break;
  case S_UTF8:
    cp = f->pos << 6 | (c & 0x3Fu);
    if (f->need > 1) {
      f->pos = cp;
      return 1;
    }
    break;
  default: return 0;
  }
  uint64_t h = str_step(f->seen, cp);
  if (last && written(t, str_hash(h, n))) return 0;
  f->seen = h;
  return 1;
}

static int string_byte(const kn_jschema *s, kn_jsv_thread *t, kn_jsv_frame *f, unsigned char c) {
  const js_node *nd = &s->nodes[f->node];
  int key = f->aux;
  const kn_jsv_thread *uq = key ? NULL : hashed_item(s, t, t->depth - 1);
  if (f->sub == S_CH && c == '"') {
    if (!key) {
      if ((int)f->count < nd->min_len) return 0;
      if (nd->re && !kn_regex_final(nd->re, re_get(f))) return 0;
      if (uq) {
        uint64_t h = str_hash(f->seen, f->count);
        if (written(t, h)) return 0;
        t->uh[t->nu++] = h;
      }
      t->depth--;
      return 1;
    }
    int p = key_close(s, t, f);
    if (p < 0) return 0;
    t->depth--;
    kn_jsv_frame *o = &t->f[t->depth - 1];
    o->sub = O_COLON, o->pos = (uint32_t)p;
    if (p != (int)KEY_EXTRA) o->seen |= 1ull << p;
    return 1;
  }
  if (!key && nd->re) {
    if (f->sub == S_CH && (c < 0x20 || (nd->max_len >= 0 && (int)f->count >= nd->max_len))) return 0;
    if (f->sub == S_UTF8 && (c < f->lo || c > f->hi)) return 0;
    if (f->sub == S_CH && c >= 0x80 && !(c >= 0xC2 && c <= 0xF4)) return 0;
    if (!pattern_byte(nd, f, c)) return 0;
  }
  if (uq && !unique_string_byte(nd, t, f, c)) return 0;
  switch (f->sub) {
  case S_CH:
    if (c < 0x20) return 0;
    if (!key && nd->max_len >= 0 && (int)f->count >= nd->max_len) return 0;
    if (c == '\\') f->sub = S_ESC;
    else if (c >= 0x80) {
      f->lo = 0x80, f->hi = 0xBF;
      if (c >= 0xC2 && c <= 0xDF) f->need = 1;
      else if (c == 0xE0) f->need = 2, f->lo = 0xA0;
      else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) f->need = 2;
      else if (c == 0xED) f->need = 2, f->hi = 0x9F;
      else if (c == 0xF0) f->need = 3, f->lo = 0x90;
      else if (c >= 0xF1 && c <= 0xF3) f->need = 3;
      else if (c == 0xF4) f->need = 3, f->hi = 0x8F;
      else return 0;
      f->sub = S_UTF8;
    }
    f->count++;
    break;
  case S_ESC:
    if (c == 'u') f->sub = S_U, f->need = 4;
    else if (c && strchr("\"\\/bfnrt", c)) f->sub = S_CH;
    else return 0;
    break;
  case S_U: /* no surrogates: a pair would count as two characters here and one for validators */
    if (!is_hex(c)) return 0;
    if (f->need == 4) f->hi = c;
    if (f->need == 3 && (f->hi == 'd' || f->hi == 'D') && !(c >= '0' && c <= '7')) return 0;
    if (--f->need == 0) f->sub = S_CH;
    break;
  default: /* S_UTF8 */
    if (c < f->lo || c > f->hi) return 0;
    f->lo = 0x80, f->hi = 0xBF;
    if (--f->need == 0) f->sub = S_CH;
  }
  return key ? key_byte(s, t, f, c) : 1;
}

/* ---- bounded numbers: the digits so far (sign in need, integer part in seen with count digits, fraction in cand
 * with pos digits) and the values they can still reach, on the 1e-15 grid -------------------------------------- */

static js_grid p10(int k) {
  js_grid r = 1;
  while (k-- > 0) r *= 10;
  return r;
}

/* The values a, a + step, ..., b (or their negations) that lie in the node's range: how many (all), else 1 when there
 * is one that the uniqueItems array of thread u has not written yet (u NULL: one at all), 0 when none. */
static js_grid prog_reach(js_grid a, js_grid b, js_grid step, int neg, const js_node *nd, const kn_jsv_thread *u, int all) {
  if (neg) {
    js_grid t = -b;
    b = -a, a = t;
  }
  js_grid from = a > nd->lo ? a : nd->lo, to = b < nd->hi ? b : nd->hi;
  if (from > to) return 0;
  js_grid first = a + (from - a + step - 1) / step * step;
  if (first > to) return 0;
  js_grid n = (to - first) / step + 1;
  if (all) return n;
  if (!u || n > u->nu) return 1;
  for (js_grid v = first; v <= to; v += step)
    if (!written(u, num_hash(v))) return 1;
  return 0;
}

static js_grid num_value(const kn_jsv_frame *f) {
  js_grid x = (js_grid)f->seen * p10(JS_NUM_DIGITS);
  if (f->sub == N_FRAC) x += (js_grid)f->cand * p10(JS_NUM_DIGITS - (int)f->pos);
  return f->need ? -x : x;
}

static int ranged_final(const js_node *nd, const kn_jsv_frame *f) {
  if (f->sub != N_ZERO && f->sub != N_INT && f->sub != N_FRAC) return 0;
  js_grid x = num_value(f);
  return x >= nd->lo && x <= nd->hi;
}

/* The values in range that can still be written from this state: how many (all), else 1 when one can (one not yet
 * written in u's uniqueItems array, when u is given), 0 when none. */
static js_grid ranged_reach(const js_node *nd, const kn_jsv_frame *f, const kn_jsv_thread *u, int all) {
  int int_only = f->aux, k = (int)f->count, neg = f->need;
  js_grid I = (js_grid)f->seen, D = p10(JS_NUM_DIGITS), sum = 0, r;
  switch (f->sub) {
  case N_START: {
    kn_jsv_frame g = *f;
    g.sub = N_MINUS;
    if ((r = ranged_reach(nd, &g, u, all)) && !all) return 1; /* positive */
    sum += r;
    g.need = 1;
    return sum + ranged_reach(nd, &g, u, all);
  }
  case N_MINUS: /* the first digit is due (need: a minus was written) */
    for (int d = 0; d <= 9; d++) {
      kn_jsv_frame g = *f;
      g.sub = d ? N_INT : N_ZERO, g.count = 1, g.seen = (uint64_t)d;
      if ((r = ranged_reach(nd, &g, u, all)) && !all) return 1;
      sum += r;
    }
    return sum;
  case N_ZERO: case N_INT:
    for (int j = 0; j + k <= JS_NUM_DIGITS && (j == 0 || f->sub == N_INT); j++) {
      js_grid step = int_only ? D : p10(k + j);
      js_grid a = I * p10(j) * D, b = (I + 1) * p10(j) * D - step;
      if ((r = prog_reach(a, b, step, neg, nd, u, all)) && !all) return 1;
      sum += r;
    }
    return sum;
  case N_DOT:
    return prog_reach(I * D, (I + 1) * D - p10(k), p10(k), neg, nd, u, all);
  default: { /* N_FRAC */
    int nf = (int)f->pos;
    js_grid base = I * D + (js_grid)f->cand * p10(JS_NUM_DIGITS - nf);
    if (k + nf >= JS_NUM_DIGITS) return prog_reach(base, base, 1, neg, nd, u, all);
    return prog_reach(base, base + p10(JS_NUM_DIGITS - nf) - p10(k), p10(k), neg, nd, u, all);
  }
  }
}

static int ranged_live(const js_node *nd, const kn_jsv_frame *f, const kn_jsv_thread *u) { return ranged_reach(nd, f, u, 0) > 0; }

int js_range_possible(const js_node *nd) {
  kn_jsv_frame f = {.kind = K_NUM, .sub = N_START, .aux = !(nd->types & T_NUM)};
  return ranged_live(nd, &f, NULL);
}

js_grid js_range_count(const js_node *nd) {
  kn_jsv_frame f = {.kind = K_NUM, .sub = N_START, .aux = !(nd->types & T_NUM)};
  return ranged_reach(nd, &f, NULL, 1) - (nd->lo <= 0 && nd->hi >= 0); /* 0 is counted as "0" and as "-0" */
}

js_grid js_range_free(void) { return p10(2 * JS_NUM_DIGITS) - 1; }

/* A bounded number: at most JS_NUM_DIGITS digits, no exponent. 1 taken, 0 refused, 2 ended before c. u: the thread
 * when the number is an item of a uniqueItems array (then some value not yet written must stay reachable). */
static int ranged_byte(const js_node *nd, kn_jsv_frame *f, unsigned char c, const kn_jsv_thread *u) {
  kn_jsv_frame g = *f;
  int d = is_digit(c);
  switch (g.sub) {
  case N_START:
    if (c == '-') {
      g.sub = N_MINUS, g.need = 1;
      break;
    }
    /* fall through */
  case N_MINUS:
    if (!d) return 0;
    g.sub = c == '0' ? N_ZERO : N_INT, g.count = 1, g.seen = (uint64_t)(c - '0');
    break;
  case N_INT:
    if (d && g.count < JS_NUM_DIGITS) {
      g.seen = g.seen * 10 + (uint64_t)(c - '0'), g.count++;
      break;
    }
    /* fall through */
  case N_ZERO:
    if (c == '.' && !g.aux && g.count < JS_NUM_DIGITS) {
      g.sub = N_DOT, g.cand = 0, g.pos = 0;
      break;
    }
    return ranged_final(nd, f) ? 2 : 0;
  case N_DOT:
    if (!d) return 0;
    g.sub = N_FRAC, g.cand = (uint64_t)(c - '0'), g.pos = 1;
    break;
  default: /* N_FRAC */
    if (d && g.count + g.pos < JS_NUM_DIGITS) {
      g.cand = g.cand * 10 + (uint64_t)(c - '0'), g.pos++;
      break;
    }
    return ranged_final(nd, f) ? 2 : 0;
  }
  if (!ranged_live(nd, &g, u)) return 0;
  *f = g;
  return 1;
}

/* Number bytes: 1 taken, 0 refused, 2 the number ended before c (c belongs to what follows). */
static int number_byte(const js_node *nd, kn_jsv_frame *f, unsigned char c, const kn_jsv_thread *u) {
  if (nd->ranged) return ranged_byte(nd, f, c, u);
  int d = is_digit(c), int_only = f->aux;
  switch (f->sub) {
  case N_START:
    if (c == '-') return f->sub = N_MINUS, 1;
    /* fall through */
  case N_MINUS:
    if (!d) return 0;
    f->sub = c == '0' ? N_ZERO : N_INT, f->count = 1;
    return 1;
  case N_INT:
    if (d) return f->count < MAX_INT_DIGITS ? (f->count++, 1) : 2;
    /* fall through */
  case N_ZERO:
    if (int_only) return 2;
    if (c == '.') return f->sub = N_DOT, 1;
    if (c == 'e' || c == 'E') return f->sub = N_E, 1;
    return 2;
  case N_DOT:
    return d ? (f->sub = N_FRAC, 1) : 0;
  case N_FRAC:
    if (d) return 1;
    if (c == 'e' || c == 'E') return f->sub = N_E, 1;
    return 2;
  case N_E:
    if (c == '+' || c == '-') return f->sub = N_ESIGN, 1;
    /* fall through */
  case N_ESIGN:
    return d ? (f->sub = N_EXP, f->pos = 1, 1) : 0;
  default: /* N_EXP */
    if (d) return f->pos < MAX_EXP_DIGITS ? (f->pos++, 1) : 2;
    return 2;
  }
}

static int number_final(const kn_jschema *s, const kn_jsv_frame *f) {
  if (f->kind != K_NUM) return 0;
  const js_node *nd = &s->nodes[f->node];
  if (nd->ranged) return ranged_final(nd, f);
  return f->sub == N_ZERO || f->sub == N_INT || f->sub == N_FRAC || f->sub == N_EXP;
}

static const char *lit_of(const kn_jschema *s, const kn_jsv_frame *f, int i) {
  return f->aux ? builtin[i] : s->nodes[f->node].lits[i];
}
static int lit_count(const kn_jschema *s, const kn_jsv_frame *f) { return f->aux ? 3 : s->nodes[f->node].n_lits; }

/* The array frame below frame index d when it wants unique items (its seen: the literals already written). */
static kn_jsv_frame *unique_parent(const kn_jschema *s, kn_jsv_thread *t, int d) {
  if (d < 1) return NULL;
  kn_jsv_frame *p = &t->f[d - 1];
  return p->kind == K_ARR && s->nodes[p->node].unique == JS_UNIQ_LITS ? p : NULL;
}

/* The literals of a node that may still be written at frame index d (unique items leave out those already written). */
static uint64_t lit_choices(const kn_jschema *s, kn_jsv_thread *t, int d, int node, int builtin_lits) {
  const js_node *nd = &s->nodes[node];
  uint64_t m = builtin_lits ? (nd->types & T_BOOL ? 3u : 0u) | (nd->types & T_NULL ? 4u : 0u)
                            : nd->n_lits >= 64 ? ~0ull : (1ull << nd->n_lits) - 1;
  kn_jsv_frame *p = unique_parent(s, t, d);
  return p ? m & ~p->seen : m;
}

/* The literal frame on top ends: an array of unique items remembers which literal it was. */
static void lit_end(const kn_jschema *s, kn_jsv_thread *t) {
  int d = t->depth - 1;
  kn_jsv_frame *f = &t->f[d], *p = unique_parent(s, t, d);
  if (p)
    for (int i = 0; i < lit_count(s, f); i++)
      if ((f->cand >> i & 1) && !lit_of(s, f, i)[f->pos]) p->seen |= 1ull << i;
  t->depth--;
}

/* Literal bytes (enum values, true/false/null): 1 taken, 0 refused, 2 ended before c. */
static int literal_byte(const kn_jschema *s, kn_jsv_thread *t, kn_jsv_frame *f, unsigned char c) {
  uint64_t nc = 0;
  for (int i = 0; i < lit_count(s, f); i++)
    if ((f->cand >> i & 1) && (unsigned char)lit_of(s, f, i)[f->pos] == c && c) nc |= 1ull << i;
  if (!nc) return f->sub ? 2 : 0; /* a complete number literal ends here */
  f->cand = nc, f->pos++;
  int complete = 0, longer = 0;
  for (int i = 0; i < lit_count(s, f); i++)
    if (nc >> i & 1) lit_of(s, f, i)[f->pos] ? (longer = 1) : (complete = 1);
  if (complete && !longer) lit_end(s, t);
  else f->sub = (uint8_t)complete;
  return 1;
}

/* A value of node starts with c: turn the frame into what c opens. 1 taken, 0 refused, 3 c must be read again by
 * the new frame. */
static int value_start(const kn_jschema *s, kn_jsv_thread *t, kn_jsv_frame *f, unsigned char c) {
  const js_node *nd = &s->nodes[f->node];
  int d = t->depth - 1;
  if (nd->n_lits) {
    f->kind = K_LIT, f->aux = 0, f->cand = lit_choices(s, t, d, f->node, 0);
    return f->cand ? 3 : 0;
  }
  unsigned ty = nd->types;
  switch (c) {
  case '{':
    if (!(ty & T_OBJ) || d + nd->obj_need > KN_JSV_DEPTH) return 0;
    f->kind = K_OBJ, f->sub = O_FIRST;
    return 1;
  case '[':
    if (!(ty & T_ARR) || d + nd->arr_need > KN_JSV_DEPTH) return 0;
    f->kind = K_ARR, f->sub = A_FIRST;
    if (nd->unique == JS_UNIQ_HASH) t->nu = 0; /* no other such array is open: their items are scalars */
    return 1;
  case '"':
    if (!(ty & T_STR)) return 0;
    f->kind = K_STR, f->sub = S_CH;
    if (nd->re) re_put(f, kn_regex_start(nd->re));
    return 1;
  case 't': case 'f': case 'n':
    if (!(ty & (c == 'n' ? T_NULL : T_BOOL))) return 0;
    f->kind = K_LIT, f->aux = 1, f->cand = lit_choices(s, t, d, f->node, 1) & (c == 'n' ? 4 : 3);
    return f->cand ? 3 : 0;
  default:
    if (!(ty & (T_INT | T_NUM)) || !(c == '-' || is_digit(c))) return 0;
    f->kind = K_NUM, f->sub = N_START, f->aux = !(ty & T_NUM);
    return 3;
  }
}

static int ws_byte(unsigned char c) { return c == ' ' || c == '\n'; }

/* Another item may follow in the array frame f (index d): within maxItems, a node for it that fits, and for unique
 * items one not yet written: a literal left, room for one more hash, a number not yet written (strings: always). */
static int item_may_follow(const kn_jschema *s, const kn_jsv_thread *t, const kn_jsv_frame *f, int d) {
  const js_node *nd = &s->nodes[f->node];
  if (nd->max_items >= 0 && (int)f->count >= nd->max_items) return 0;
  int it = js_item_node(nd, f->count);
  if (!fits(s, it, d + 1)) return 0;
  const js_node *in = &s->nodes[js_deref(s, it)];
  if (nd->unique == JS_UNIQ_LITS) {
    uint64_t all = in->n_lits ? (in->n_lits >= 64 ? ~0ull : (1ull << in->n_lits) - 1)
                              : (in->types & T_BOOL ? 3u : 0u) | (in->types & T_NULL ? 4u : 0u);
    if (!(all & ~f->seen)) return 0;
  } else if (nd->unique == JS_UNIQ_HASH) {
    if (t->nu >= KN_JSV_UNIQUE) return 0;
    kn_jsv_frame g = {.kind = K_NUM, .sub = N_START, .aux = !(in->types & T_NUM)};
    if (in->types != T_STR && !ranged_live(in, &g, t)) return 0;
  }
  return 1;
}

/* Feed c to thread t: 1 taken (t advanced in place), 0 refused, 2 t split (the results are in o). */
static int feed(const kn_jschema *s, kn_jsv_thread *t, unsigned char c, outset *o) {
  int ws = ws_byte(c);
again:
  if (t->depth == 0) return 0;
  kn_jsv_frame *f = &t->f[t->depth - 1];
  const js_node *nd = &s->nodes[f->node];
  int r;
  switch (f->kind) {
  case K_VALUE:
    if (ws) goto space;
    if (nd->n_alts) {
      for (int i = 0; i < nd->n_alts; i++) {
        if (!fits(s, nd->alts[i], t->depth - 1)) continue;
        kn_jsv_thread u;
        copy_thread(&u, t);
        u.f[u.depth - 1].node = (uint16_t)nd->alts[i];
        if (feed(s, &u, c, o) == 1) emit(o, &u);
      }
      return 2;
    }
    r = value_start(s, t, f, c);
    if (r == 3) goto again;
    if (r == 0) return 0;
    break;
  case K_LIT:
    r = literal_byte(s, t, f, c);
    if (r == 2) { lit_end(s, t); goto again; }
    if (r == 0) return 0;
    break;
  case K_NUM: {
    const kn_jsv_thread *uq = hashed_item(s, t, t->depth - 1);
    r = number_byte(nd, f, c, uq);
    if (r == 2 && uq) { /* an item of a uniqueItems array ends: a value not written before */
      uint64_t h = num_hash(num_value(f));
      if (written(t, h)) return 0;
      t->uh[t->nu++] = h;
    }
    if (r == 2) { t->depth--; goto again; }
    if (r == 0) return 0;
    break;
  }
  case K_STR:
    if (!string_byte(s, t, f, c)) return 0;
    t->ws = 0;
    return 1;
  case K_OBJ: {
    if (ws) goto space;
    uint64_t room = fit_props(s, nd, t->depth) & ~f->seen;
    int extra = nd->extra >= 0 && fits(s, nd->extra, t->depth);
    if (f->sub == O_FIRST || f->sub == O_KEY) {
      uint64_t req = nd->required & ~f->seen;
      if (c == '}' && f->sub == O_FIRST && !req) { t->depth--; break; }
      if (c != '"' || t->depth >= KN_JSV_DEPTH) return 0;
      if (!room && !extra) return 0;
      kn_jsv_frame *k = push_frame(t, K_STR, f->node);
      k->aux = 1, k->cand = room | (all_props(nd) & f->seen); /* seen names stay: a longer key may extend one */
      break;
    }
    if (f->sub == O_COLON) {
      if (c != ':' || t->depth >= KN_JSV_DEPTH) return 0;
      f->sub = O_AFTER;
      push_frame(t, K_VALUE, f->pos == KEY_EXTRA ? (unsigned)nd->extra : (unsigned)nd->pnode[f->pos]);
      break;
    }
    if (c == ',' && (room || extra) && t->depth < KN_JSV_DEPTH) { f->sub = O_KEY; break; }
    if (c == '}' && !(nd->required & ~f->seen)) { t->depth--; break; }
    return 0;
  }
  case K_ARR:
    if (ws) goto space;
    if (f->sub == A_FIRST) {
      if (c == ']' && nd->min_items == 0) { t->depth--, t->nu = 0; break; }
      if (nd->max_items == 0 || t->depth >= KN_JSV_DEPTH || !item_may_follow(s, t, f, t->depth - 1)) return 0;
      f->sub = A_AFTER, f->count = 1;
      push_frame(t, K_VALUE, (unsigned)js_item_node(nd, 0));
      goto again;
    }
    if (c == ',' && t->depth < KN_JSV_DEPTH && item_may_follow(s, t, f, t->depth - 1)) {
      push_frame(t, K_VALUE, (unsigned)js_item_node(nd, f->count));
      f->count++;
      break;
    }
    if (c == ']' && (int)f->count >= nd->min_items) { t->depth--, t->nu = 0; break; }
    return 0;
  default:
    return 0;
  }
  t->ws = 0;
  return 1;
space: /* t->ws: bytes in this run, plus WS_NL once it holds a newline */
  if ((t->ws & ~WS_NL) >= MAX_WS || (c == '\n' && (t->ws & WS_NL))) return 0;
  t->ws = (uint8_t)((t->ws + 1) | (c == '\n' ? WS_NL : 0));
  return 1;
}

/* ---- the state -------------------------------------------------------------------------------------------- */

void kn_jsv_init(kn_jsv *v, const kn_jschema *s) {
  v->s = s, v->n = 1;
  v->t[0].depth = 0, v->t[0].ws = 0, v->t[0].nu = 0;
  push_frame(&v->t[0], K_VALUE, (unsigned)s->root);
}

void kn_jsv_copy(kn_jsv *d, const kn_jsv *s) {
  d->s = s->s, d->n = s->n;
  for (int i = 0; i < s->n; i++) copy_thread(&d->t[i], &s->t[i]);
}

int kn_jsv_push(kn_jsv *v, unsigned char c) {
  kn_jsv_thread out[KN_JSV_THREADS], t;
  outset o = {out, 0};
  for (int i = 0; i < v->n; i++) {
    copy_thread(&t, &v->t[i]);
    if (feed(v->s, &t, c, &o) == 1) emit(&o, &t);
  }
  if (!o.n) return 0;
  for (int i = 0; i < o.n; i++) copy_thread(&v->t[i], &out[i]);
  v->n = (uint8_t)o.n;
  return 1;
}

static int any_done(const kn_jsv_thread *t, int n) {
  for (int i = 0; i < n; i++)
    if (t[i].depth == 0) return 1;
  return 0;
}

size_t kn_jsv_prefix(const kn_jsv *v, const void *bytes, size_t n, int *done) {
  const unsigned char *b = bytes;
  size_t i = 0;
  kn_jsv w;
  if (v->n == 1) { /* the common case: one thread, advanced in place without copies */
    kn_jsv_thread out[KN_JSV_THREADS], t;
    copy_thread(&t, &v->t[0]);
    for (; i < n; i++) {
      outset o = {out, 0};
      int r = feed(v->s, &t, b[i], &o);
      if (r == 0 || (r == 2 && !o.n)) break;
      if (r == 2) {
        w.s = v->s, w.n = (uint8_t)o.n;
        for (int k = 0; k < o.n; k++) copy_thread(&w.t[k], &out[k]);
        goto general;
      }
    }
    *done = t.depth == 0;
    return i;
  }
  kn_jsv_copy(&w, v);
  i = (size_t)-1;
general:
  for (i++; i < n; i++)
    if (!kn_jsv_push(&w, b[i])) break;
  *done = any_done(w.t, w.n);
  return i;
}

int kn_jsv_accepts(const kn_jsv *v, const void *bytes, size_t n) {
  int done;
  return kn_jsv_prefix(v, bytes, n, &done) == n;
}

int kn_jsv_free_string(const kn_jsv *v) {
  if (v->n != 1 || v->t[0].depth < 1) return -1;
  const kn_jsv_thread *t = &v->t[0];
  const kn_jsv_frame *f = &t->f[t->depth - 1];
  if (f->kind != K_STR || f->sub != S_CH) return -1;
  const js_node *nd = &v->s->nodes[f->node];
  if (f->aux) /* a key: free where the object takes other keys than its properties' (key_byte) */
    return nd->extra >= 0 && fits(v->s, nd->extra, t->depth - 1) ? INT_MAX : -1;
  if (nd->re || hashed_item(v->s, t, t->depth - 1)) return -1;
  return nd->max_len < 0 ? INT_MAX : nd->max_len > (int)f->count ? nd->max_len - (int)f->count : 0;
}

int kn_jsv_done(const kn_jsv *v) {
  for (int i = 0; i < v->n; i++)
    if (v->t[i].depth == 0) return 1;
  return 0;
}

/* ---- the shortest completion ------------------------------------------------------------------------------ */

static int shortest_lit(const kn_jschema *s, const kn_jsv_frame *f, uint64_t cand) {
  int best = -1;
  size_t bl = 0;
  for (int i = 0; i < lit_count(s, f); i++) {
    size_t l = strlen(lit_of(s, f, i));
    if ((cand >> i & 1) && (best < 0 || l < bl)) best = i, bl = l;
  }
  return best;
}

static int takes(const kn_jschema *s, const kn_jsv_thread *t, int b) {
  kn_jsv_thread u, out[KN_JSV_THREADS];
  outset o = {out, 0};
  copy_thread(&u, t);
  int r = feed(s, &u, (unsigned char)b, &o);
  return r == 1 || (r == 2 && o.n);
}

/* The first byte thread t accepts: of the string cands, else of [lo, hi] (-1: none). */
static int first_ok(const kn_jschema *s, const kn_jsv_thread *t, const char *cands, int lo, int hi) {
  if (cands) {
    for (; *cands; cands++)
      if (takes(s, t, (unsigned char)*cands)) return (unsigned char)*cands;
    return -1;
  }
  for (int c = lo; c <= hi; c++)
    if (takes(s, t, c)) return c;
  return -1;
}

/* The first byte of the shortest value of node (no anyOf: closure resolves those first) at frame index d. */
static int start_byte(const kn_jschema *s, kn_jsv_thread *t, int d) {
  const kn_jsv_frame *f = &t->f[d];
  const js_node *nd = &s->nodes[f->node];
  if (nd->n_lits) {
    kn_jsv_frame g = *f;
    g.aux = 0;
    int i = shortest_lit(s, &g, lit_choices(s, t, d, f->node, 0));
    return i < 0 ? -1 : (unsigned char)nd->lits[i][0];
  }
  unsigned ty = nd->types;
  uint64_t b = lit_choices(s, t, d, f->node, 1);
  if (b & 4) return 'n';
  if (b & 1) return 't';
  if (b & 2) return 'f';
  if (ty & (T_INT | T_NUM)) {
    if (!nd->ranged) return '0';
    kn_jsv_frame g = {.kind = K_NUM, .sub = N_START, .aux = !(ty & T_NUM)};
    for (const char *c = "0123456789-"; *c; c++) {
      kn_jsv_frame h = g;
      if (ranged_byte(nd, &h, (unsigned char)*c, hashed_item(s, t, d)) == 1) return *c;
    }
  }
  if (ty & T_STR) return '"';
  if ((ty & T_ARR) && d + nd->arr_need <= KN_JSV_DEPTH) return '[';
  if ((ty & T_OBJ) && d + nd->obj_need <= KN_JSV_DEPTH) return '{';
  return -1;
}

/* One byte toward the end of the document for the frame at index d of t (-1: none). */
static int close_byte(const kn_jschema *s, kn_jsv_thread *t, int d) {
  if (d < 0) return -1;
  const kn_jsv_frame *f = &t->f[d];
  const js_node *nd = &s->nodes[f->node];
  switch (f->kind) {
  case K_VALUE: return start_byte(s, t, d);
  case K_NUM: {
    const kn_jsv_thread *uq = hashed_item(s, t, d);
    if (number_final(s, f) && !(uq && written(t, num_hash(num_value(f))))) return close_byte(s, t, d - 1);
    if (!nd->ranged) return '0';
    for (const char *c = "0123456789.-"; *c; c++) {
      kn_jsv_frame h = *f;
      if (ranged_byte(nd, &h, (unsigned char)*c, uq) == 1) return *c;
    }
    return -1;
  }
  case K_LIT: {
    if (f->sub) return close_byte(s, t, d - 1);
    return (unsigned char)lit_of(s, f, shortest_lit(s, f, f->cand))[f->pos];
  }
  case K_OBJ:
    if (f->sub == O_COLON) return ':';
    if (f->sub == O_AFTER) return nd->required & ~f->seen ? ',' : '}';
    return f->sub == O_FIRST && !(nd->required & ~f->seen) ? '}' : '"';
  case K_ARR:
    return (int)f->count < nd->min_items ? ',' : ']';
  default: /* K_STR */
    if (f->aux) { /* a key: spell the first property still possible, required ones first */
      uint64_t seen = t->f[d - 1].seen, live = f->cand & ~seen & fit_props(s, nd, d), req = live & nd->required;
      uint64_t pick = req ? req : live;
      if (pick) {
        int i = __builtin_ctzll(pick);
        return nd->names[i][f->pos] ? (unsigned char)nd->names[i][f->pos] : '"';
      }
    }
    if (!f->aux && nd->re) {
      if (f->sub == S_ESC) return first_ok(s, t, "n\"\\/bfrt", 0, 0);
      if (f->sub == S_UTF8) return first_ok(s, t, NULL, f->lo, f->hi);
      uint32_t cp;
      if (!kn_regex_next(nd->re, re_get(f), (int)f->count, &cp)) return '"';
      if (cp == '"' || cp == '\\' || cp < 0x20) return '\\';
      if (cp < 0x80) return (int)cp;
      return cp < 0x800 ? 0xC0 | (int)(cp >> 6) : cp < 0x10000 ? 0xE0 | (int)(cp >> 12) : 0xF0 | (int)(cp >> 18);
    }
    const kn_jsv_thread *uq = f->aux ? NULL : hashed_item(s, t, d);
    if (f->sub == S_ESC) return uq ? first_ok(s, t, "n\"\\/bfrt", 0, 0) : 'n';
    if (f->sub == S_U) return '0';
    if (f->sub == S_UTF8) return uq ? first_ok(s, t, NULL, f->lo, f->hi) : f->lo;
    if (!f->aux && uq && ((int)f->count < nd->min_len || !takes(s, t, '"'))) { /* not an item already written */
      int b = first_ok(s, t, "abcdefghijklmnopqrstuvwxyz0123456789", 0, 0);
      return b >= 0 ? b : first_ok(s, t, NULL, 0x20, 0x7e);
    }
    if (!f->aux) return (int)f->count < nd->min_len ? 'a' : '"';
    for (int i = 0; i < nd->n_props; i++) /* the key so far is a property already given: make it another key */
      if ((f->cand >> i & 1) && nd->names[i][f->pos] == 0) return '_';
    return '"';
  }
}

/* Steps of the closure that write nothing: an anyOf becomes its shortest branch; an array that needs items opens
 * its first. 1 when one was taken. */
static int close_silent(const kn_jschema *s, kn_jsv_thread *t) {
  kn_jsv_frame *f = &t->f[t->depth - 1];
  const js_node *nd = &s->nodes[f->node];
  if (f->kind == K_VALUE && nd->n_alts) {
    int best = -1;
    for (int i = 0; i < nd->n_alts; i++)
      if (fits(s, nd->alts[i], t->depth - 1) && (best < 0 || s->nodes[nd->alts[i]].need < s->nodes[nd->alts[best]].need))
        best = i;
    if (best < 0) return -1;
    f->node = (uint16_t)nd->alts[best];
    return 1;
  }
  if (f->kind == K_ARR && f->sub == A_FIRST && nd->min_items > 0) {
    if (t->depth >= KN_JSV_DEPTH) return -1;
    f->sub = A_AFTER, f->count = 1;
    push_frame(t, K_VALUE, (unsigned)js_item_node(nd, 0));
    return 1;
  }
  return 0;
}

char *kn_jsv_closure(const kn_jsv *v, size_t *n) {
  kn_jsv_thread t, out[KN_JSV_THREADS];
  size_t len = 0, cap = 64;
  char *buf = malloc(cap);
  if (!buf || v->n == 0) return free(buf), NULL;
  copy_thread(&t, &v->t[0]);
  for (int guard = 0; t.depth > 0; guard++) {
    int q = close_silent(v->s, &t);
    if (q < 0 || guard > 1 << 20) return free(buf), NULL;
    if (q) continue;
    int c = close_byte(v->s, &t, t.depth - 1);
    outset o = {out, 0};
    int r = c < 0 ? 0 : feed(v->s, &t, (unsigned char)c, &o);
    if (r == 2 && o.n) copy_thread(&t, &out[0]);
    else if (r != 1) return free(buf), NULL;
    if (len + 2 > cap) {
      char *g = realloc(buf, cap *= 2);
      if (!g) return free(buf), NULL;
      buf = g;
    }
    buf[len++] = (char)c;
  }
  buf[len] = 0;
  *n = len;
  return buf;
}

int js_thread_complete(const kn_jschema *s, int node, const char *bytes, size_t n) {
  kn_jsv v;
  v.s = s, v.n = 1, v.t[0].depth = 0, v.t[0].ws = 0, v.t[0].nu = 0;
  push_frame(&v.t[0], K_VALUE, (unsigned)node);
  for (size_t i = 0; i < n; i++)
    if (!kn_jsv_push(&v, (unsigned char)bytes[i])) return 0;
  for (int i = 0; i < v.n; i++) {
    const kn_jsv_thread *t = &v.t[i];
    if (t->depth == 0) return 1;
    const kn_jsv_frame *f = &t->f[t->depth - 1];
    if (t->depth == 1 && (number_final(s, f) || (f->kind == K_LIT && f->sub))) return 1;
  }
  return 0;
}

int kn_jschema_valid(const kn_jschema *s, const void *bytes, size_t n) {
  return js_thread_complete(s, s->root, bytes, n);
}
