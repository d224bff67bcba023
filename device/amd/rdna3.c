/* The emulated gfx1100 compute unit: runs one dispatch's workgroups one after another, each as wave32 waves with
 * their registers and a shared LDS, interleaving the waves so that s_barrier holds each until all have reached it.
 * Initial register state follows the kernel descriptor's enable bits, as the hardware's dispatcher sets it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "../base/env.h"
#include "../pool.h"
#include "rdna3.h"
#include "rdna3_ops.h"
#include "rdna3_wave.h"

/* kernel descriptor fields (llvm_amdhsa_kernel_descriptor_t) */
enum { KD_GROUP = 0, KD_PRIVATE = 4, KD_KERNARG = 8, KD_ENTRY = 16, KD_RSRC3 = 44, KD_RSRC1 = 48, KD_RSRC2 = 52,
       KD_PROPS = 56 };
/* kernel_code_properties bits */
enum { P_PRIV_BUF = 1 << 0, P_DISPATCH_PTR = 1 << 1, P_QUEUE_PTR = 1 << 2, P_KERNARG = 1 << 3, P_DISPATCH_ID = 1 << 4,
       P_FLAT_SCRATCH = 1 << 5, P_PRIV_SIZE = 1 << 6, P_WAVE32 = 1 << 10 };

/* ---- operands ---- */

uint32_t kn_literal(const kn_cu *cu) { return cu->w[cu->len / 4 - 1]; }

static uint32_t inline_float(unsigned src, int t) {
  static const float f[] = {0.5f, -0.5f, 1.0f, -1.0f, 2.0f, -2.0f, 4.0f, -4.0f};
  static const uint16_t h[] = {0x3800, 0xb800, 0x3c00, 0xbc00, 0x4000, 0xc000, 0x4400, 0xc400};
  if (src == 248) return t == T_F16 ? 0x3118 : 0x3e22f983; /* 1/(2*pi) */
  return t == T_F16 ? h[src - 240] : f2u(f[src - 240]);
}

uint32_t kn_sread(const kn_cu *cu, const kn_wave *w, unsigned src, int t) {
  if (src < 128) return src == OP_NULL ? 0 : w->s[src];
  if (src <= 192) return src - 128;
  if (src <= 208) return (uint32_t)(192 - (int)src);
  if (src >= 240 && src <= 248) return inline_float(src, t);
  switch (src) {
  case OP_VCCZ: return w->s[OP_VCC_LO] == 0;
  case OP_EXECZ: return w->s[OP_EXEC_LO] == 0;
  case OP_SCC: return (uint32_t)w->scc;
  case OP_LITERAL: return kn_literal(cu);
  case OP_SHARED_BASE: case OP_SHARED_LIMIT: case OP_PRIVATE_BASE: case OP_PRIVATE_LIMIT: return 0;
  default: return 0;
  }
}

uint64_t kn_sread64(const kn_cu *cu, const kn_wave *w, unsigned src, int t) {
  if (src < 128) return src == OP_NULL ? 0 : (w->s[src] | (uint64_t)w->s[(src + 1) & 127] << 32);
  if (src <= 192) return src - 128;
  if (src <= 208) return (uint64_t)(int64_t)(192 - (int)src);
  if (src >= 240 && src <= 248) {
    if (t == T_F64) {
      static const double f[] = {0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 4.0, -4.0};
      return src == 248 ? 0x3fc45f306dc9c882ull : d2u(f[src - 240]);
    }
    return inline_float(src, t);
  }
  if (src == OP_LITERAL) return t == T_F64 ? (uint64_t)kn_literal(cu) << 32 : kn_literal(cu);
  return kn_sread(cu, w, src, t);
}

int kn_swrite(kn_cu *cu, kn_wave *w, unsigned dst, uint32_t v) {
  if (dst == OP_NULL) return 0;
  if (dst < 128 && (dst <= OP_VCC_HI || dst >= OP_M0)) {
    w->s[dst] = v;
    return 0;
  }
  return kn_cu_fail(cu, w, "write to scalar operand %u", dst);
}

int kn_swrite64(kn_cu *cu, kn_wave *w, unsigned dst, uint64_t v) {
  if (dst == OP_NULL) return 0;
  if (kn_swrite(cu, w, dst, (uint32_t)v)) return -1;
  return kn_swrite(cu, w, dst + 1, (uint32_t)(v >> 32));
}

/* ---- errors and memory ---- */

static void describe(const kn_cu *cu, const kn_wave *w, char *buf, size_t n) {
  const char *name = kn_rdna3_opname(!strcmp(cu->fam, "vopd") ? "vopdx" : cu->fam, cu->op);
  snprintf(buf, n, "kernel %s: pc entry%+lld: %s opcode %u (%s, word 0x%08x)", cu->d->name ? cu->d->name : "?",
           (long long)(w->pc - cu->entry), cu->fam, cu->op, name ? name : "unknown to LLVM", cu->w[0]);
}

int kn_cu_fail(kn_cu *cu, const kn_wave *w, const char *fmt, ...) {
  char where[256], what[256];
  describe(cu, w, where, sizeof where);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return kn_errf(cu->err, cu->errlen, "rdna3: %s: %s", where, what);
}

int kn_cu_unimplemented(kn_cu *cu, const kn_wave *w) {
  char where[256];
  describe(cu, w, where, sizeof where);
  return kn_errf(cu->err, cu->errlen, "rdna3: %s: instruction not implemented by the emulator", where);
}

/* Read tracking: marks [va, va+n) read in the mapping's bitmap, counting new bytes as distinct, and counts the
 * bytes as fetched unless a lane of the same instruction in the same wave read the same bytes (a wave's lanes are
 * coalesced into one request; a second wave of the workgroup reading them again is a second fetch: on a GPU it
 * may hit the cache, but a kernel that leans on that re-reads a block's header in every wave, which the counts
 * should show). */
static void track_read(kn_cu *cu, const kn_wave *w, uint64_t va, size_t n) {
  if (cu->map_rd < 0) return;
  struct kn_rdbuf *b = &cu->rd[cu->map_rd];
  unsigned h = (unsigned)((va * 0x9e3779b97f4a7c15ull ^ cu->pc * 0xc2b2ae3d27d4eb4full ^ w->id * 0x165667b19e3779f9ull) >> 40) &
             (KN_FETCH_SLOTS - 1);
  for (int probe = 0;; probe++, h = (h + 1) & (KN_FETCH_SLOTS - 1)) {
    struct kn_fetch *f = &cu->fetch[h];
    if (f->seq != cu->seq) {
      f->seq = cu->seq, f->va = va, f->n = (uint32_t)n, f->pc = cu->pc, f->wave = w->id;
      b->fetched += n;
      break;
    }
    if (f->va == va && f->n == n && f->pc == cu->pc && f->wave == w->id) break; /* the same bytes as another lane's */
    if (probe == 1024) { /* a full table: count it (a workgroup reads far fewer places than it holds) */
      b->fetched += n;
      break;
    }
  }
  for (uint64_t off = va - b->lo, end = off + n; off < end;) { /* at most 16 bits of the bitmap at a time */
    unsigned k = end - off > 16 ? 16 : (unsigned)(end - off);
    uint32_t win, mask = ((1u << k) - 1) << (off & 7);
    memcpy(&win, b->seen + (off >> 3), 4);
    b->distinct += (uint64_t)__builtin_popcount(mask & ~win);
    win |= mask;
    memcpy(b->seen + (off >> 3), &win, 4);
    off += k;
  }
}

/* the tracker of mapping [lo, lo+n): found, started, or -1 when 16 are in use or memory is short */
static int tracker(kn_cu *cu, uint64_t lo, uint64_t n) {
  if (!cu->fetch) return -1;
  for (int i = 0; i < cu->nrd; i++)
    if (cu->rd[i].lo == lo) return i;
  if (cu->nrd == 16) return -1;
  uint8_t *seen = calloc(n / 8 + 8, 1);
  if (!seen) return -1;
  cu->rd[cu->nrd] = (struct kn_rdbuf){.lo = lo, .n = n, .seen = seen};
  return cu->nrd++;
}

void *kn_cu_mem(kn_cu *cu, const kn_wave *w, uint64_t va, size_t n, bool write) {
  if (va - cu->map_lo < cu->map_n && n <= cu->map_n - (va - cu->map_lo)) {
    if (!write && cu->fetch) cu->pc = w->pc, track_read(cu, w, va, n);
    return cu->map_host + (va - cu->map_lo);
  }
  if (cu->mem->region) {
    uint64_t lo, len;
    uint8_t *h = cu->mem->region(cu->mem->ctx, va, &lo, &len);
    if (h && va - lo < len && n <= len - (va - lo)) {
      cu->map_lo = lo, cu->map_n = len, cu->map_host = h;
      cu->map_rd = tracker(cu, lo, len);
      if (!write && cu->fetch) cu->pc = w->pc, track_read(cu, w, va, n);
      return h + (va - lo);
    }
  }
  void *p = cu->mem->translate(cu->mem->ctx, va, n);
  if (!p) kn_cu_fail(cu, w, "%s of %zu bytes at unmapped address 0x%llx", write ? "write" : "read", n,
                     (unsigned long long)va);
  return p;
}

/* ---- dispatch ---- */

typedef struct {
  uint32_t group, priv, rsrc1, rsrc2, props;
  uint64_t entry;
} kdesc;

static int read_kd(const kn_rdna3_dispatch *d, const kn_rdna3_mem *m, kdesc *k, char *err, size_t errlen) {
  const uint8_t *p = m->translate(m->ctx, d->kd_va, 64);
  if (!p) return kn_errf(err, errlen, "rdna3: kernel %s: descriptor at 0x%llx is not mapped", d->name,
                         (unsigned long long)d->kd_va);
  int64_t off;
  uint16_t props;
  memcpy(&k->group, p + KD_GROUP, 4);
  memcpy(&k->priv, p + KD_PRIVATE, 4);
  memcpy(&off, p + KD_ENTRY, 8);
  memcpy(&k->rsrc1, p + KD_RSRC1, 4);
  memcpy(&k->rsrc2, p + KD_RSRC2, 4);
  memcpy(&props, p + KD_PROPS, 2);
  k->props = props;
  k->entry = d->kd_va + (uint64_t)off;
  if (!(props & P_WAVE32)) return kn_errf(err, errlen, "rdna3: kernel %s: wave64 kernels are not emulated", d->name);
  if (props & (P_PRIV_BUF | P_QUEUE_PTR | P_FLAT_SCRATCH | P_PRIV_SIZE | P_DISPATCH_ID))
    return kn_errf(err, errlen, "rdna3: kernel %s: asks for user SGPRs the emulator does not provide (kernel code "
                   "properties 0x%x: private segment, queue ptr, flat scratch or dispatch id)", d->name, props);
  if ((props & P_DISPATCH_PTR) && !d->aql_packet_va)
    return kn_errf(err, errlen, "rdna3: kernel %s: asks for a dispatch ptr, and the dispatch has no AQL packet "
                   "address", d->name);
  if (k->priv || (k->rsrc2 & 1))
    return kn_errf(err, errlen, "rdna3: kernel %s: uses %u bytes of scratch (private segment), not emulated",
                   d->name, k->priv);
  if (k->rsrc2 & (1u << 10))
    return kn_errf(err, errlen, "rdna3: kernel %s: asks for workgroup info SGPR, not emulated", d->name);
  return 0;
}

/* Initial SGPRs, VGPRs and EXEC of wave `wi` of a workgroup of dims sz[] (partial sizes at the grid's edge). */
static void init_wave(kn_wave *w, const kn_rdna3_dispatch *d, const kdesc *k, const uint32_t wg[3],
                      const uint32_t sz[3], uint32_t wi) {
  memset(w->s, 0, sizeof w->s);
  unsigned s = 0;
  if (k->props & P_DISPATCH_PTR) w->s[s++] = (uint32_t)d->aql_packet_va, w->s[s++] = (uint32_t)(d->aql_packet_va >> 32);
  if (k->props & P_KERNARG) w->s[s++] = (uint32_t)d->kernarg_va, w->s[s++] = (uint32_t)(d->kernarg_va >> 32);
  s = bits(k->rsrc2, 5, 1); /* system SGPRs follow USER_SGPR_COUNT (gfx11 pads it), not the last user SGPR */
  for (int i = 0; i < 3; i++)
    if (k->rsrc2 & (1u << (7 + i))) w->s[s++] = wg[i];
  uint32_t threads = sz[0] * sz[1] * sz[2];
  uint32_t exec = 0;
  for (uint32_t l = 0; l < KN_LANES; l++) {
    uint32_t t = wi * KN_LANES + l;
    if (t >= threads) {
      w->v[0][l] = 0;
      continue;
    }
    exec |= 1u << l;
    uint32_t x = t % sz[0], y = t / sz[0] % sz[1], z = t / (sz[0] * sz[1]);
    w->v[0][l] = x | y << 10 | z << 20;
  }
  w->s[OP_EXEC_LO] = exec;
  w->pc = k->entry;
  w->scc = 0;
  w->state = WAVE_RUN;
  w->id = wi;
}

/* Runs the waves of one workgroup: each runs until it ends or waits at a barrier; a barrier opens when every wave
 * that has not ended waits at it. Decoded slots are read with acquire loads: another thread may be filling them
 * (kn_prog_decode publishes a slot's handler last). */
static int run_workgroup(kn_cu *cu, kn_rdna3_prog *p, kn_wave *waves, uint32_t nw) {
  uint64_t *insts = cu->st->insts;
  for (;;) {
    uint32_t done = 0;
    for (uint32_t i = 0; i < nw; i++) {
      kn_wave *w = &waves[i];
      while (w->state == WAVE_RUN) {
        uint64_t off = w->pc - p->entry;
        const kn_inst *ch = off < p->size ? __atomic_load_n(&p->chunks[(off >> 2) / KN_CHUNK], __ATOMIC_ACQUIRE) : NULL;
        const kn_inst *in = ch ? &ch[(off >> 2) % KN_CHUNK] : NULL;
        kn_inst_fn fn = in ? __atomic_load_n(&in->fn, __ATOMIC_ACQUIRE) : NULL;
        if (!fn || (off & 3)) {
          if (!(in = kn_prog_decode(cu, p, w))) return -1;
          fn = in->fn;
        }
        insts[in->cls]++;
        if (fn(cu, w, in)) return -1;
      }
      done += w->state == WAVE_DONE;
    }
    if (done == nw) return 0;
    for (uint32_t i = 0; i < nw; i++)
      if (waves[i].state == WAVE_BARRIER) waves[i].state = WAVE_RUN;
  }
}

/* One dispatch as the threads share it: workgroups are claimed in launch order from `next`; `failed` is the lowest
 * workgroup index that failed (UINT64_MAX while none), past which no thread claims more. */
typedef struct {
  const kn_rdna3_dispatch *d;
  const kn_rdna3_mem *mem;
  const kdesc *k;
  kn_rdna3_prog *prog;
  uint32_t nwg[3];
  uint64_t total, chunk;
  uint64_t next, failed; /* atomics */
  size_t errlen;
  struct runner {
    kn_rdna3_stats st;
    uint64_t failed_at; /* UINT64_MAX: none */
    char *err;
    int rc;
  } *r;
} job;

/* Thread t's share of the dispatch: its own compute-unit state (LDS, waves, the mapping it hit last) and counters. */
static void run_part(void *ctx, int64_t t, int64_t end) {
  job *j = ctx;
  (void)end;
  struct runner *r = &j->r[t];
  const kn_rdna3_dispatch *d = j->d;
  kn_cu cu = {.d = d, .mem = j->mem, .st = &r->st, .err = r->err, .errlen = j->errlen, .fam = "",
            .w = (const uint32_t[1]){0}, .map_rd = -1};
  cu.lds_size = d->group_segment_bytes;
  cu.entry = j->k->entry;
  uint32_t wgt = d->wg[0] * d->wg[1] * d->wg[2], nwave = (wgt + KN_LANES - 1) / KN_LANES;
  cu.lds = calloc(cu.lds_size ? cu.lds_size : 1, 1);
  if (d->track_reads) cu.fetch = calloc(KN_FETCH_SLOTS, sizeof *cu.fetch);
  kn_wave *waves = calloc(nwave, sizeof *waves);
  if (!cu.lds || !waves) {
    r->rc = kn_errf(r->err, j->errlen, "out of memory for %u waves", nwave);
    r->failed_at = 0;
    __atomic_store_n(&j->failed, 0, __ATOMIC_RELAXED);
  }
  while (!r->rc) {
    uint64_t first = __atomic_fetch_add(&j->next, j->chunk, __ATOMIC_RELAXED);
    if (first >= j->total) break;
    uint64_t last = first + j->chunk < j->total ? first + j->chunk : j->total;
    for (uint64_t idx = first; idx < last && !r->rc; idx++) {
      if (idx > __atomic_load_n(&j->failed, __ATOMIC_RELAXED)) break; /* an earlier workgroup failed */
      if (d->stop && __atomic_load_n(d->stop, __ATOMIC_ACQUIRE)) {
        r->rc = kn_errf(r->err, j->errlen, "rdna3: kernel %s: stopped by the host before workgroup %llu of %llu",
                        d->name, (unsigned long long)idx, (unsigned long long)j->total);
        r->failed_at = idx;
        uint64_t cur = __atomic_load_n(&j->failed, __ATOMIC_RELAXED);
        while (idx < cur && !__atomic_compare_exchange_n(&j->failed, &cur, idx, false, __ATOMIC_RELAXED,
                                                         __ATOMIC_RELAXED)) {}
        break;
      }
      uint32_t wg[3] = {(uint32_t)(idx % j->nwg[0]), (uint32_t)(idx / j->nwg[0] % j->nwg[1]),
                        (uint32_t)(idx / ((uint64_t)j->nwg[0] * j->nwg[1]))}, sz[3];
      for (int i = 0; i < 3; i++) {
        uint32_t left = d->grid[i] - wg[i] * d->wg[i];
        sz[i] = left < d->wg[i] ? left : d->wg[i];
      }
      uint32_t threads = sz[0] * sz[1] * sz[2], nw = (threads + KN_LANES - 1) / KN_LANES;
      memcpy(cu.wg_id, wg, sizeof wg);
      memset(cu.lds, 0, cu.lds_size);
      for (uint32_t i = 0; i < nw; i++) init_wave(&waves[i], d, j->k, wg, sz, i);
      cu.seq++;
      if (run_workgroup(&cu, j->prog, waves, nw)) {
        r->rc = -1, r->failed_at = idx;
        uint64_t cur = __atomic_load_n(&j->failed, __ATOMIC_RELAXED);
        while (idx < cur && !__atomic_compare_exchange_n(&j->failed, &cur, idx, false, __ATOMIC_RELAXED,
                                                         __ATOMIC_RELAXED)) {}
      }
      r->st.waves += nw;
      r->st.workgroups++;
    }
  }
  free(waves);
  free(cu.lds);
  free(cu.fetch);
  for (int i = 0; i < cu.nrd; i++) {
    r->st.read_distinct += cu.rd[i].distinct;
    if (cu.rd[i].distinct > r->st.top_distinct) {
      r->st.second_distinct = r->st.top_distinct, r->st.second_fetched = r->st.top_fetched;
      r->st.top_distinct = cu.rd[i].distinct, r->st.top_fetched = cu.rd[i].fetched;
    } else if (cu.rd[i].distinct > r->st.second_distinct)
      r->st.second_distinct = cu.rd[i].distinct, r->st.second_fetched = cu.rd[i].fetched;
    free(cu.rd[i].seen);
  }
}

int kn_rdna3_run(const kn_rdna3_dispatch *d, const kn_rdna3_mem *mem, kn_rdna3_stats *stats, char *err,
                 size_t errlen) {
  kdesc k = {0};
  if (read_kd(d, mem, &k, err, errlen)) return -1;
  for (int i = 0; i < 3; i++)
    if (!d->wg[i] || !d->grid[i]) return kn_errf(err, errlen, "rdna3: kernel %s: empty grid or workgroup", d->name);
  uint32_t wgt = d->wg[0] * d->wg[1] * d->wg[2];
  if (wgt > 1024 || d->wg[0] > 1024 || d->wg[1] > 1024 || d->wg[2] > 1024)
    return kn_errf(err, errlen, "rdna3: kernel %s: workgroup %ux%ux%u exceeds 1024 work-items", d->name, d->wg[0],
                   d->wg[1], d->wg[2]);
  if (d->group_segment_bytes > 65536)
    return kn_errf(err, errlen, "rdna3: kernel %s: %u bytes of LDS (64 KiB per workgroup)", d->name,
                   d->group_segment_bytes);
  kn_rdna3_cache *own = d->cache ? NULL : kn_rdna3_cache_new();
  kn_rdna3_prog *prog = own || d->cache ? kn_prog_get(d->cache ? d->cache : own, mem, k.entry, d->generic, d->name, err,
                                                      errlen) : NULL;
  if (!prog) {
    kn_rdna3_cache_free(own);
    return own || d->cache ? -1 : kn_errf(err, errlen, "rdna3: out of memory");
  }
  /* stopped already: not even the JIT compile below (seconds for a large kernel on a loaded host) */
  if (d->stop && __atomic_load_n(d->stop, __ATOMIC_ACQUIRE)) {
    kn_rdna3_cache_free(own);
    return kn_errf(err, errlen, "rdna3: kernel %s: stopped by the host before workgroup 0", d->name);
  }
  /* a program that has run many waves is compiled to host code before this dispatch's threads start */
  if (!prog->jitted && !d->generic && prog->waves_run >= KN_JIT_WAVES && kn_jit_enabled() &&
      kn_jit_program(prog, d->name, err, errlen)) {
    kn_rdna3_cache_free(own);
    return -1;
  }
  job j = {.d = d, .mem = mem, .k = &k, .prog = prog, .failed = UINT64_MAX, .errlen = errlen ? errlen : 1};
  j.total = 1;
  for (int i = 0; i < 3; i++) j.nwg[i] = (d->grid[i] + d->wg[i] - 1) / d->wg[i], j.total *= j.nwg[i];
  /* threads: one per few workgroups at least; read tracking counts fetches per workgroup in launch order, alone */
  int nt = d->pool && !d->track_reads ? kn_pool_threads(d->pool) : 1;
  if ((uint64_t)nt > j.total / 2) nt = j.total / 2 > 1 ? (int)(j.total / 2) : 1;
  j.chunk = j.total / ((uint64_t)nt * 16);
  if (!j.chunk) j.chunk = 1;
  j.r = calloc((size_t)nt, sizeof *j.r);
  char *errs = calloc((size_t)nt, j.errlen);
  int rc = 0;
  if (!j.r || !errs) rc = kn_errf(err, errlen, "rdna3: out of memory");
  else {
    for (int t = 0; t < nt; t++) j.r[t].err = errs + (size_t)t * j.errlen, j.r[t].failed_at = UINT64_MAX;
    if (nt > 1) kn_pool_run(d->pool, run_part, &j, nt);
    else run_part(&j, 0, 1);
    int first = -1;
    for (int t = 0; t < nt; t++)
      if (j.r[t].rc && (first < 0 || j.r[t].failed_at < j.r[first].failed_at)) first = t;
    if (first >= 0) rc = kn_errf(err, errlen, "%s", j.r[first].err);
  }
  if (stats && j.r)
    for (int t = 0; t < nt; t++) {
      const kn_rdna3_stats *l = &j.r[t].st;
      for (int i = 0; i < KN_RDNA3_NCLASS; i++) stats->insts[i] += l->insts[i];
      stats->global_read += l->global_read;
      stats->global_written += l->global_written;
      stats->read_distinct += l->read_distinct;
      stats->top_distinct += l->top_distinct;
      stats->top_fetched += l->top_fetched;
      stats->second_distinct += l->second_distinct, stats->second_fetched += l->second_fetched;
      stats->waves += l->waves;
      stats->workgroups += l->workgroups;
    }
  for (int t = 0; j.r && t < nt; t++) prog->waves_run += j.r[t].st.waves;
  free(j.r);
  free(errs);
  kn_rdna3_cache_free(own);
  return rc;
}
