/* One instruction checked without a dispatch: decoded, then run once by its executor on a scratch wave (registers
 * zero, every lane active, 64 KiB of LDS, every address mapped to a zero page), so a test can walk every
 * instruction of a code object and tell one the emulator implements from one it would refuse at run time, with the
 * same message the refusal would give. */
#include <stdlib.h>

#include "rdna3.h"
#include "rdna3_wave.h"
#include "../base/env.h"

typedef int (*executor)(kn_cu *, kn_wave *);
static const struct {
  const char *fam;
  executor fn;
} families[] = {
  {"sop2", kn_exec_sop2}, {"sopk", kn_exec_sopk}, {"sop1", kn_exec_sop1}, {"sopc", kn_exec_sopc},
  {"sopp", kn_exec_sopp}, {"smem", kn_exec_smem}, {"vop1", kn_exec_vop1}, {"vop2", kn_exec_vop2},
  {"vopc", kn_exec_vopc}, {"vop3", kn_exec_vop3}, {"vop3p", kn_exec_vop3p}, {"vopd", kn_exec_vopd},
  {"ds", kn_exec_ds}, {"global", kn_exec_flat}, {"flat", kn_exec_flat}, {"scratch", kn_exec_flat},
  {"mubuf", kn_exec_mubuf},
};

static _Alignas(16) uint8_t zero_page[4096];

static void *any_address(void *ctx, uint64_t va, size_t n) {
  (void)ctx, (void)va;
  if (n > sizeof zero_page) return NULL;
  memset(zero_page, 0, n); /* a store from the previous probe does not leak into a load */
  return zero_page;
}

unsigned kn_rdna3_probe(const uint32_t *words, size_t n, const char *kernel, uint64_t pc, char *err, size_t errlen) {
  const char *fam;
  unsigned op;
  unsigned len = kn_rdna3_decode(words, n, &fam, &op, NULL);
  if (!len) {
    kn_errf(err, errlen, "rdna3: kernel %s: pc entry%+lld: word 0x%08x is not a gfx11 encoding the emulator decodes",
            kernel, (long long)pc, n ? words[0] : 0);
    return 0;
  }
  uint32_t w4[4] = {0};
  for (size_t i = 0; i < n && i < 4; i++) w4[i] = words[i];
  kn_rdna3_dispatch d = {.name = kernel};
  kn_rdna3_mem mem = {any_address, NULL};
  kn_rdna3_stats st = {0};
  uint8_t *lds = calloc(65536, 1);
  kn_wave *w = calloc(1, sizeof *w);
  if (!lds || !w) {
    free(lds), free(w);
    kn_errf(err, errlen, "rdna3 probe: out of memory");
    return 0;
  }
  enum { BASE = 0x10000 };
  kn_cu cu = {.d = &d, .mem = &mem, .st = &st, .lds = lds, .lds_size = 65536, .entry = BASE, .err = err,
              .errlen = errlen, .w = w4, .len = len, .fam = fam, .op = op};
  w->pc = BASE + pc;
  w->s[OP_EXEC_LO] = ~0u;
  w->state = WAVE_RUN;
  int rc = -1;
  size_t i = 0;
  for (; i < sizeof families / sizeof families[0]; i++)
    if (!strcmp(families[i].fam, fam)) break;
  if (i == sizeof families / sizeof families[0]) rc = kn_cu_unimplemented(&cu, w);
  else rc = families[i].fn(&cu, w);
  free(lds), free(w);
  return rc ? 0 : len;
}
