/* Every gfx1100 kernel the test suites compiled runs on the emulator with no unimplemented instruction: walks every
 * code object in the kernel caches under the directory given (build/tests/kcache*: the AMD:EMU suites' own, the
 * cross-compiled AMD objects of the op/fusion/attention/codegen suites), and for each kernel function decodes every
 * instruction with the interpreter's decoder, checks its length and mnemonic against LLVM's disassembler and runs it
 * once on a scratch wave (kn_rdna3_probe). A failure names the cache entry, the kernel, the pc and the mnemonic.
 * meson runs it after the suites (lowest priority, not in parallel); with no gfx1100 object cached it skips (77). */
#include <dirent.h>
#include <llvm-c/Disassembler.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "codegen/cache.h"
#include "codegen/llvm_target.h"
#include "device/amd/rdna3.h"
#include "device/elf.h"

static int objects, kernels, insts, bad;
static LLVMDisasmContextRef dc;

/* LLVM's mnemonic: the first word, without the _e32/_e64/_dpp suffixes */
static void llvm_mnemonic(const char *text, char *out, size_t cap) {
  while (*text == ' ' || *text == '\t') text++;
  size_t k = 0;
  while (text[k] && text[k] != ' ' && text[k] != '\t' && k + 1 < cap) out[k] = text[k], k++;
  out[k] = 0;
  for (size_t len; (len = strlen(out)) > 4 &&
                   (!strcmp(out + len - 4, "_e32") || !strcmp(out + len - 4, "_e64") || !strcmp(out + len - 4, "_dpp"));)
    out[len - 4] = 0;
}

static void walk_kernel(const char *dir, const kn_cache_entry *e, const kn_elf_section *sec, const kn_elf_symbol *s) {
  kernels++;
  const uint8_t *code = sec->data + s->value;
  uint64_t size = s->size ? s->size : sec->size - s->value;
  for (uint64_t off = 0; off + 4 <= size;) {
    uint32_t words[4] = {0};
    size_t nw = (size - off) / 4 > 4 ? 4 : (size_t)((size - off) / 4);
    memcpy(words, code + off, nw * 4);
    if (!s->size && words[0] == 0xbf9f0000u) break; /* s_code_end: the padding after the last kernel */
    char text[256] = "", want[64], err[512] = "";
    size_t llen = LLVMDisasmInstruction(dc, (uint8_t *)code + off, size - off, off, text, sizeof text);
    llvm_mnemonic(text, want, sizeof want);
    const char *fam, *name;
    unsigned op, len = kn_rdna3_decode(words, nw, &fam, &op, &name);
    insts++;
    if (!llen || len != llen || (strcmp(fam, "vopd") && (!name || strcmp(name, want)))) {
      if (bad++ < 20)
        fail_line("%s/%s (%s): %s pc entry+%llu '%s': decoded as %s '%s', %u bytes (LLVM: %zu)", dir, e->key, e->entry,
                  s->name, (unsigned long long)off, text, len ? fam : "nothing", len && name ? name : "?", len, llen);
      if (!llen && !len) break;
      off += llen ? llen : 4;
      continue;
    }
    if (!kn_rdna3_probe(words, nw, s->name, off, err, sizeof err) && bad++ < 20)
      fail_line("%s/%s (%s): %s pc entry+%llu '%s': %s", dir, e->key, e->entry, s->name, (unsigned long long)off, text,
                err);
    off += len;
  }
}

typedef struct {
  const char *dir;
} walk_ctx;

static int visit(const kn_cache_entry *ce, void *vctx) {
  walk_ctx *w = vctx;
  if (strncmp(ce->triple, "amdgcn", 6) || strcmp(ce->cpu, "gfx1100") || !ce->ok) return 0;
  kn_cache_entry e;
  char *ir = NULL;
  uint8_t *obj = NULL;
  size_t n = 0;
  if (kn_cache_read_entry(ce->key, &e, &ir, &obj, &n) || !obj) {
    fail_line("%s/%s: cannot read the entry", w->dir, ce->key);
    bad++;
    free(ir), free(obj);
    return 0;
  }
  kn_elf elf;
  char err[256];
  if (kn_elf_parse(obj, n, &elf, err, sizeof err)) {
    fail_line("%s/%s (%s): ELF: %s", w->dir, e.key, e.entry, err);
    bad++;
  } else {
    objects++;
    int found = 0;
    for (int i = 0; i < elf.nsym; i++) {
      const kn_elf_symbol *s = &elf.sym[i];
      if (s->type != 2 /* STT_FUNC */ || s->section < 0 || !elf.sec[s->section].exec || !elf.sec[s->section].data ||
          s->value >= elf.sec[s->section].size)
        continue;
      walk_kernel(w->dir, &e, &elf.sec[s->section], s);
      found++;
    }
    if (!found) fail_line("%s/%s (%s): no kernel function in the object", w->dir, e.key, e.entry), bad++;
    kn_elf_free(&elf);
  }
  free(ir), free(obj);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    printf("usage: test_amd_kcache DIR (walks DIR/kcache*)\n");
    return 2;
  }
  kn_llvm_init();
  dc = LLVMCreateDisasmCPU("amdgcn-amd-amdhsa", "gfx1100", NULL, 0, NULL, NULL);
  if (!check(dc != NULL, "LLVM's gfx1100 disassembler")) return check_summary();
  /* the probe itself: an instruction the emulator implements passes, one it does not is refused by name */
  char err[512] = "";
  const uint32_t add[1] = {0x06000501u};                 /* v_add_f32_e32 v0, v1, v2 */
  const uint32_t cube[2] = {0xd60c0001u, 0x03d9e8f2u};   /* v_cubeid_f32 v1, 1.0, 2.0, 4.0 */
  check(kn_rdna3_probe(add, 1, "self-check", 0, err, sizeof err) == 4, "probe runs v_add_f32: %s", err);
  err[0] = 0;
  check(!kn_rdna3_probe(cube, 2, "self-check", 8, err, sizeof err) && strstr(err, "v_cubeid_f32") &&
            strstr(err, "not implemented") && strstr(err, "entry+8"),
        "probe refuses v_cubeid_f32 by name: %s", err);
  DIR *d = opendir(argv[1]);
  if (!d) {
    printf("FAIL: cannot open %s\n", argv[1]);
    return 1;
  }
  struct dirent *de;
  while ((de = readdir(d))) {
    if (strncmp(de->d_name, "kcache", 6)) continue;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", argv[1], de->d_name);
    setenv("KILN_CACHE_DIR", path, 1);
    walk_ctx w = {de->d_name};
    int before = objects;
    kn_cache_list(visit, &w);
    printf("%s: %d gfx1100 objects\n", de->d_name, objects - before);
  }
  closedir(d);
  LLVMDisasmDispose(dc);
  if (!objects) {
    printf("SKIP: no gfx1100 object in %s/kcache* (the AMD:EMU and AMD compile suites put them there)\n", argv[1]);
    return 77;
  }
  printf("%d gfx1100 objects, %d kernels, %d instructions walked\n", objects, kernels, insts);
  check(!bad, "%d gfx1100 objects, %d kernels, %d instructions: each decodes as LLVM does and runs on the emulator",
        objects, kernels, insts);
  return check_summary();
}
