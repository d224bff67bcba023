/* The emulated gfx1100 compute unit: runs one dispatch's workgroups one after another, each as wave32 waves with
 * their registers and a shared LDS, interleaving the waves so that s_barrier holds each until all have reached it.
 * Initial register state follows the kernel descriptor's enable bits, as the hardware's dispatcher sets it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "../base/env.h"
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
 * that has not ended waits at it. */
static int run_workgroup(kn_cu *cu, kn_rdna3_prog *p, kn_wave *waves, uint32_t nw) {
  uint64_t *insts = cu->st->insts;
  for (;;) {
    uint32_t done = 0, waiting = 0;
    for (uint32_t i = 0; i < nw; i++) {
      kn_wave *w = &waves[i];
      while (w->state == WAVE_RUN) {
        uint64_t off = w->pc - p->entry;
        const kn_inst *ch = off < p->size ? p->chunks[(off >> 2) / KN_CHUNK] : NULL;
        const kn_inst *in = ch ? &ch[(off >> 2) % KN_CHUNK] : NULL;
        if ((!in || !in->fn || (off & 3)) && !(in = kn_prog_decode(cu, p, w))) return -1;
        insts[in->cls]++;
        if (in->fn(cu, w, in)) return -1;
      }
      done += w->state == WAVE_DONE;
      waiting += w->state == WAVE_BARRIER;
    }
    if (done == nw) return 0;
    for (uint32_t i = 0; i < nw; i++)
      if (waves[i].state == WAVE_BARRIER) waves[i].state = WAVE_RUN;
    (void)waiting;
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
  uint32_t nwave = (wgt + KN_LANES - 1) / KN_LANES;
  kn_rdna3_cache *own = d->cache ? NULL : kn_rdna3_cache_new();
  kn_rdna3_prog *prog = own || d->cache ? kn_prog_get(d->cache ? d->cache : own, mem, k.entry, d->generic, d->name, err,
                                                      errlen) : NULL;
  if (!prog) {
    kn_rdna3_cache_free(own);
    return own || d->cache ? -1 : kn_errf(err, errlen, "rdna3: out of memory");
  }
  kn_rdna3_stats local = {0};
  kn_cu cu = {.d = d, .mem = mem, .st = &local, .err = err, .errlen = errlen, .fam = "", .w = (const uint32_t[1]){0},
            .map_rd = -1};
  cu.lds_size = d->group_segment_bytes;
  cu.entry = k.entry;
  cu.lds = calloc(cu.lds_size ? cu.lds_size : 1, 1);
  if (d->track_reads) cu.fetch = calloc(KN_FETCH_SLOTS, sizeof *cu.fetch);
  kn_wave *waves = calloc(nwave, sizeof *waves);
  int rc = 0;
  if (!cu.lds || !waves) rc = kn_errf(err, errlen, "out of memory for %u waves", nwave);
  uint32_t nwg[3];
  for (int i = 0; i < 3; i++) nwg[i] = (d->grid[i] + d->wg[i] - 1) / d->wg[i];
  for (uint32_t z = 0; !rc && z < nwg[2]; z++)
    for (uint32_t y = 0; !rc && y < nwg[1]; y++)
      for (uint32_t x = 0; !rc && x < nwg[0]; x++) {
        uint32_t wg[3] = {x, y, z}, sz[3];
        for (int i = 0; i < 3; i++) {
          uint32_t left = d->grid[i] - wg[i] * d->wg[i];
          sz[i] = left < d->wg[i] ? left : d->wg[i];
        }
        uint32_t threads = sz[0] * sz[1] * sz[2], nw = (threads + KN_LANES - 1) / KN_LANES;
        memcpy(cu.wg_id, wg, sizeof wg);
        memset(cu.lds, 0, cu.lds_size);
        for (uint32_t i = 0; i < nw; i++) init_wave(&waves[i], d, &k, wg, sz, i);
        cu.seq++;
        rc = run_workgroup(&cu, prog, waves, nw);
        local.waves += nw;
        local.workgroups++;
      }
  free(waves);
  free(cu.lds);
  kn_rdna3_cache_free(own);
  free(cu.fetch);
  for (int i = 0; i < cu.nrd; i++) {
    local.read_distinct += cu.rd[i].distinct;
    if (cu.rd[i].distinct > local.top_distinct) {
      local.second_distinct = local.top_distinct, local.second_fetched = local.top_fetched;
      local.top_distinct = cu.rd[i].distinct, local.top_fetched = cu.rd[i].fetched;
    } else if (cu.rd[i].distinct > local.second_distinct)
      local.second_distinct = cu.rd[i].distinct, local.second_fetched = cu.rd[i].fetched;
    free(cu.rd[i].seen);
  }
  if (stats) {
    for (int i = 0; i < KN_RDNA3_NCLASS; i++) stats->insts[i] += local.insts[i];
    stats->global_read += local.global_read;
    stats->global_written += local.global_written;
    stats->read_distinct += local.read_distinct;
    stats->top_distinct += local.top_distinct;
    stats->top_fetched += local.top_fetched;
    stats->second_distinct += local.second_distinct, stats->second_fetched += local.second_fetched;
    stats->waves += local.waves;
    stats->workgroups += local.workgroups;
  }
  return rc;
}
