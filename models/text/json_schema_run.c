/* models/text/json_schema_run.c: the byte automaton of a compiled schema. A thread is a stack of open values (object,
 * array, string, number, literal); each byte either advances it or is refused, so every prefix that is accepted can
 * still be completed into a valid document. anyOf splits a thread into one per branch (kept while they agree). */
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

static void copy_thread(kn_jsv_thread *d, const kn_jsv_thread *s) { memcpy(d, s, thread_bytes(s)); }

static void emit(outset *o, const kn_jsv_thread *t) {
  for (int i = 0; i < o->n; i++)
    if (o->t[i].depth == t->depth && !memcmp(&o->t[i], t, thread_bytes(t))) return;
  if (o->n < KN_JSV_THREADS) copy_thread(&o->t[o->n++], t);
}

static kn_jsv_frame *push_frame(kn_jsv_thread *t, int kind, unsigned node) {
  kn_jsv_frame *f = &t->f[t->depth++];
  memset(f, 0, sizeof *f);
  f->kind = (uint8_t)kind, f->node = (uint16_t)node;
  return f;
}

static uint64_t all_props(const js_node *nd) { return nd->n_props >= 64 ? ~0ull : (1ull << nd->n_props) - 1; }

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
  return (nc & ~seen) || nd->extra >= 0;
}

/* The closing quote of a key: which property it names (KEY_EXTRA: another key), or -1 when it may not be used. */
static int key_close(const kn_jschema *s, const kn_jsv_thread *t, const kn_jsv_frame *f) {
  const js_node *nd = &s->nodes[f->node];
  uint64_t seen = t->f[t->depth - 2].seen;
  for (int i = 0; i < nd->n_props; i++)
    if ((f->cand >> i & 1) && nd->names[i][f->pos] == 0) return (seen >> i & 1) ? -1 : i;
  return nd->extra >= 0 ? (int)KEY_EXTRA : -1;
}

static int string_byte(const kn_jschema *s, kn_jsv_thread *t, kn_jsv_frame *f, unsigned char c) {
  const js_node *nd = &s->nodes[f->node];
  int key = f->aux;
  if (f->sub == S_CH && c == '"') {
    if (!key) {
      if ((int)f->count < nd->min_len) return 0;
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

/* Number bytes: 1 taken, 0 refused, 2 the number ended before c (c belongs to what follows). */
static int number_byte(kn_jsv_frame *f, unsigned char c) {
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

static int number_final(const kn_jsv_frame *f) {
  return f->kind == K_NUM && (f->sub == N_ZERO || f->sub == N_INT || f->sub == N_FRAC || f->sub == N_EXP);
}

static const char *lit_of(const kn_jschema *s, const kn_jsv_frame *f, int i) {
  return f->aux ? builtin[i] : s->nodes[f->node].lits[i];
}
static int lit_count(const kn_jschema *s, const kn_jsv_frame *f) { return f->aux ? 3 : s->nodes[f->node].n_lits; }

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
  if (complete && !longer) t->depth--;
  else f->sub = (uint8_t)complete;
  return 1;
}

/* A value of node starts with c: turn the frame into what c opens. 1 taken, 0 refused, 3 c must be read again by
 * the new frame. */
static int value_start(const kn_jschema *s, kn_jsv_thread *t, kn_jsv_frame *f, unsigned char c) {
  const js_node *nd = &s->nodes[f->node];
  if (nd->n_lits) {
    f->kind = K_LIT, f->aux = 0, f->cand = nd->n_lits >= 64 ? ~0ull : (1ull << nd->n_lits) - 1;
    return 3;
  }
  unsigned ty = nd->types;
  switch (c) {
  case '{':
    if (!(ty & T_OBJ)) return 0;
    f->kind = K_OBJ, f->sub = O_FIRST;
    return 1;
  case '[':
    if (!(ty & T_ARR)) return 0;
    f->kind = K_ARR, f->sub = A_FIRST;
    return 1;
  case '"':
    if (!(ty & T_STR)) return 0;
    f->kind = K_STR, f->sub = S_CH;
    return 1;
  case 't': case 'f': case 'n':
    if (!(ty & (c == 'n' ? T_NULL : T_BOOL))) return 0;
    f->kind = K_LIT, f->aux = 1, f->cand = c == 'n' ? 4 : 3;
    return 3;
  default:
    if (!(ty & (T_INT | T_NUM)) || !(c == '-' || is_digit(c))) return 0;
    f->kind = K_NUM, f->sub = N_START, f->aux = !(ty & T_NUM);
    return 3;
  }
  (void)t;
}

static int ws_byte(unsigned char c) { return c == ' ' || c == '\n'; }

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
    if (r == 2) { t->depth--; goto again; }
    if (r == 0) return 0;
    break;
  case K_NUM:
    r = number_byte(f, c);
    if (r == 2) { t->depth--; goto again; }
    if (r == 0) return 0;
    break;
  case K_STR:
    if (!string_byte(s, t, f, c)) return 0;
    t->ws = 0;
    return 1;
  case K_OBJ:
    if (ws) goto space;
    if (f->sub == O_FIRST || f->sub == O_KEY) {
      uint64_t req = nd->required & ~f->seen;
      if (c == '}' && f->sub == O_FIRST && !req) { t->depth--; break; }
      if (c != '"' || t->depth >= KN_JSV_DEPTH) return 0;
      if (!(all_props(nd) & ~f->seen) && nd->extra < 0) return 0;
      kn_jsv_frame *k = push_frame(t, K_STR, f->node);
      k->aux = 1, k->cand = all_props(nd);
      break;
    }
    if (f->sub == O_COLON) {
      if (c != ':' || t->depth >= KN_JSV_DEPTH) return 0;
      f->sub = O_AFTER;
      push_frame(t, K_VALUE, f->pos == KEY_EXTRA ? (unsigned)nd->extra : (unsigned)nd->pnode[f->pos]);
      break;
    }
    if (c == ',' && ((all_props(nd) & ~f->seen) || nd->extra >= 0) && t->depth < KN_JSV_DEPTH) { f->sub = O_KEY; break; }
    if (c == '}' && !(nd->required & ~f->seen)) { t->depth--; break; }
    return 0;
  case K_ARR:
    if (ws) goto space;
    if (f->sub == A_FIRST) {
      if (c == ']' && nd->min_items == 0) { t->depth--; break; }
      if (nd->max_items == 0 || t->depth >= KN_JSV_DEPTH) return 0;
      f->sub = A_AFTER, f->count = 1;
      push_frame(t, K_VALUE, (unsigned)nd->items);
      goto again;
    }
    if (c == ',' && (nd->max_items < 0 || (int)f->count < nd->max_items) && t->depth < KN_JSV_DEPTH) {
      f->count++;
      push_frame(t, K_VALUE, (unsigned)nd->items);
      break;
    }
    if (c == ']' && (int)f->count >= nd->min_items) { t->depth--; break; }
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
  v->t[0].depth = 0, v->t[0].ws = 0;
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

int kn_jsv_done(const kn_jsv *v) {
  for (int i = 0; i < v->n; i++)
    if (v->t[i].depth == 0) return 1;
  return 0;
}

/* ---- the shortest completion ------------------------------------------------------------------------------ */

static int shortest_lit(const kn_jschema *s, const kn_jsv_frame *f) {
  int best = -1;
  size_t bl = 0;
  for (int i = 0; i < lit_count(s, f); i++) {
    size_t l = strlen(lit_of(s, f, i));
    if ((f->cand >> i & 1) && (best < 0 || l < bl)) best = i, bl = l;
  }
  return best;
}

static int start_byte(const kn_jschema *s, int node) {
  const js_node *nd = &s->nodes[node];
  if (nd->n_alts) return start_byte(s, nd->alts[0]);
  if (nd->n_lits) {
    kn_jsv_frame f = {.node = (uint16_t)node, .cand = nd->n_lits >= 64 ? ~0ull : (1ull << nd->n_lits) - 1};
    return (unsigned char)nd->lits[shortest_lit(s, &f)][0];
  }
  unsigned ty = nd->types;
  return ty & T_NULL ? 'n' : ty & T_BOOL ? 't' : ty & (T_INT | T_NUM) ? '0' : ty & T_STR ? '"' : ty & T_ARR ? '[' : '{';
}

/* One byte toward the end of the document for the frame at index d of t (-1: none). */
static int close_byte(const kn_jschema *s, const kn_jsv_thread *t, int d) {
  if (d < 0) return -1;
  const kn_jsv_frame *f = &t->f[d];
  const js_node *nd = &s->nodes[f->node];
  switch (f->kind) {
  case K_VALUE: return start_byte(s, f->node);
  case K_NUM:
    if (number_final(f)) return close_byte(s, t, d - 1);
    return '0';
  case K_LIT: {
    if (f->sub) return close_byte(s, t, d - 1);
    return (unsigned char)lit_of(s, f, shortest_lit(s, f))[f->pos];
  }
  case K_OBJ:
    if (f->sub == O_COLON) return ':';
    if (f->sub == O_AFTER) return nd->required & ~f->seen ? ',' : '}';
    return f->sub == O_FIRST && !(nd->required & ~f->seen) ? '}' : '"';
  case K_ARR:
    if (f->sub == A_FIRST) return nd->min_items > 0 ? start_byte(s, nd->items) : ']';
    return (int)f->count < nd->min_items ? ',' : ']';
  default: /* K_STR */
    if (f->aux) { /* a key: spell the first property still possible, required ones first */
      uint64_t seen = t->f[d - 1].seen, live = f->cand & ~seen, req = live & nd->required;
      uint64_t pick = req ? req : live;
      if (pick) {
        int i = __builtin_ctzll(pick);
        return nd->names[i][f->pos] ? (unsigned char)nd->names[i][f->pos] : '"';
      }
    }
    if (f->sub == S_ESC) return 'n';
    if (f->sub == S_U) return '0';
    if (f->sub == S_UTF8) return f->lo;
    if (!f->aux) return (int)f->count < nd->min_len ? 'a' : '"';
    for (int i = 0; i < nd->n_props; i++) /* the key so far is a property already given: make it another key */
      if ((f->cand >> i & 1) && nd->names[i][f->pos] == 0) return '_';
    return '"';
  }
}

char *kn_jsv_closure(const kn_jsv *v, size_t *n) {
  kn_jsv_thread t, out[KN_JSV_THREADS];
  size_t len = 0, cap = 64;
  char *buf = malloc(cap);
  if (!buf || v->n == 0) return free(buf), NULL;
  copy_thread(&t, &v->t[0]);
  for (int guard = 0; t.depth > 0; guard++) {
    int c = close_byte(v->s, &t, t.depth - 1);
    outset o = {out, 0};
    int r = c < 0 || guard > 1 << 20 ? 0 : feed(v->s, &t, (unsigned char)c, &o);
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
  v.s = s, v.n = 1, v.t[0].depth = 0, v.t[0].ws = 0;
  push_frame(&v.t[0], K_VALUE, (unsigned)node);
  for (size_t i = 0; i < n; i++)
    if (!kn_jsv_push(&v, (unsigned char)bytes[i])) return 0;
  for (int i = 0; i < v.n; i++) {
    const kn_jsv_thread *t = &v.t[i];
    if (t->depth == 0) return 1;
    const kn_jsv_frame *f = &t->f[t->depth - 1];
    if (t->depth == 1 && (number_final(f) || (f->kind == K_LIT && f->sub))) return 1;
  }
  return 0;
}

int kn_jschema_valid(const kn_jschema *s, const void *bytes, size_t n) {
  return js_thread_complete(s, s->root, bytes, n);
}
