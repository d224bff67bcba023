/* LLVM back-end plumbing: target registration, target machines for a kn_target, the new-pass-manager optimization
 * pipeline, object and assembly emission to memory, and disassembly of an emitted ELF object (kiln cache show).
 * Everything that turns an LLVM module into bytes lives here, so the IR builder never touches a TargetMachine. */
#include "../device/base/env.h"
#include "llvm_target.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Disassembler.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../device/base/bytes.h"
#include "../device/elf.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_targets(void) {
  /* Every target the LLVM build has (Debian's includes X86, AArch64, AMDGPU, NVPTX): cheap registrations, and a
   * target missing from the build then fails with LLVM's own "no such target" message instead of a link error. */
  LLVMInitializeAllTargetInfos();
  LLVMInitializeAllTargets();
  LLVMInitializeAllTargetMCs();
  LLVMInitializeAllAsmPrinters();
  LLVMInitializeAllAsmParsers();
  LLVMInitializeAllDisassemblers();
}

void kn_llvm_init(void) { pthread_once(&init_once, init_targets); }

static char version[32];

static void fill_version(void) {
  unsigned maj = 0, min = 0, patch = 0;
  LLVMGetVersion(&maj, &min, &patch);
  snprintf(version, sizeof version, "%u.%u.%u", maj, min, patch);
}

const char *kn_llvm_version(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, fill_version);
  return version;
}

/* A target machine for t. CPU code is position independent (the JIT places it anywhere); GPU code objects are PIC
 * by definition. The default code model is small on x86-64, which a per-object JIT allocation satisfies. */
static LLVMTargetMachineRef create_tm(const kn_target *t, char *err, size_t errlen) {
  kn_llvm_init();
  if (!t || !t->triple[0]) {
    kn_errf(err, errlen, "no target triple");
    return NULL;
  }
  LLVMTargetRef target;
  char *msg = NULL;
  if (LLVMGetTargetFromTriple(t->triple, &target, &msg)) {
    kn_errf(err, errlen, "target %s: %s", t->triple, msg ? msg : "not available in this LLVM build");
    LLVMDisposeMessage(msg);
    return NULL;
  }
  LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, t->triple, t->cpu, t->features,
                                                    LLVMCodeGenLevelAggressive, LLVMRelocPIC, LLVMCodeModelDefault);
  if (!tm) kn_errf(err, errlen, "target %s (cpu %s): cannot create a target machine", t->triple, t->cpu);
  return tm;
}

/* One cached target machine per thread: creating one costs about as much as compiling a small kernel, and a
 * TargetMachine must not generate code on two threads at once, so threads do not share them. */
typedef struct {
  LLVMTargetMachineRef tm;
  char triple[64], cpu[64], features[1024];
} tm_slot;

static pthread_key_t tm_key;
static pthread_once_t tm_once = PTHREAD_ONCE_INIT;

static void tm_slot_free(void *p) {
  tm_slot *s = p;
  if (s && s->tm) LLVMDisposeTargetMachine(s->tm);
  free(s);
}
static void tm_key_init(void) { pthread_key_create(&tm_key, tm_slot_free); }

static LLVMTargetMachineRef get_tm(const kn_target *t, char *err, size_t errlen) {
  pthread_once(&tm_once, tm_key_init);
  tm_slot *s = pthread_getspecific(tm_key);
  if (!s) {
    if (!(s = calloc(1, sizeof *s)) || pthread_setspecific(tm_key, s)) {
      free(s);
      return create_tm(t, err, errlen); /* uncached; the caller's dispose below handles it */
    }
  }
  if (s->tm && t && !strcmp(s->triple, t->triple) && !strcmp(s->cpu, t->cpu) && !strcmp(s->features, t->features))
    return s->tm;
  LLVMTargetMachineRef tm = create_tm(t, err, errlen);
  if (!tm) return NULL;
  if (s->tm) LLVMDisposeTargetMachine(s->tm);
  s->tm = tm;
  snprintf(s->triple, sizeof s->triple, "%s", t->triple);
  snprintf(s->cpu, sizeof s->cpu, "%s", t->cpu);
  snprintf(s->features, sizeof s->features, "%s", t->features);
  return tm;
}

/* Release a machine from get_tm: only the uncached fallback is disposed. */
static void put_tm(LLVMTargetMachineRef tm) {
  tm_slot *s = pthread_getspecific(tm_key);
  if (!s || s->tm != tm) LLVMDisposeTargetMachine(tm);
}

/* Stamp the module with the target's triple and data layout, so the optimizer's cost model matches the back end. */
static void set_target(LLVMModuleRef mod, LLVMTargetMachineRef tm, const kn_target *t) {
  LLVMSetTarget(mod, t->triple);
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
  LLVMSetModuleDataLayout(mod, td);
  LLVMDisposeTargetData(td);
}

int kn_llvm_set_target(LLVMModuleRef mod, const kn_target *t, char *err, size_t errlen) {
  LLVMTargetMachineRef tm = get_tm(t, err, errlen);
  if (!tm) return -1;
  set_target(mod, tm, t);
  put_tm(tm);
  return 0;
}

int kn_llvm_optimize(LLVMModuleRef mod, const kn_target *t, int opt_level, char *err, size_t errlen) {
  LLVMTargetMachineRef tm = get_tm(t, err, errlen);
  if (!tm) return -1;
  set_target(mod, tm, t);
  char *msg = NULL;
  /* A malformed module would crash the back end; the verifier turns it into a readable error instead. */
  if (LLVMVerifyModule(mod, LLVMReturnStatusAction, &msg)) {
    kn_errf(err, errlen, "invalid LLVM IR: %s", msg ? msg : "(no detail)");
    LLVMDisposeMessage(msg);
    put_tm(tm);
    return -1;
  }
  LLVMDisposeMessage(msg);
  int rc = 0;
  if (opt_level > 0) {
    char pipeline[32];
    snprintf(pipeline, sizeof pipeline, "default<O%d>", opt_level > 3 ? 3 : opt_level);
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(po, 1);
    LLVMPassBuilderOptionsSetSLPVectorization(po, 1);
    LLVMPassBuilderOptionsSetLoopUnrolling(po, 1);
    LLVMErrorRef e = LLVMRunPasses(mod, pipeline, tm, po);
    if (e) {
      char *em = LLVMGetErrorMessage(e);
      kn_errf(err, errlen, "optimizing for %s: %s", t->triple, em);
      LLVMDisposeErrorMessage(em);
      rc = -1;
    }
    LLVMDisposePassBuilderOptions(po);
  }
  put_tm(tm);
  return rc;
}

static int emit(LLVMModuleRef mod, const kn_target *t, LLVMCodeGenFileType type, uint8_t **out, size_t *n, char *err,
                size_t errlen) {
  LLVMTargetMachineRef tm = get_tm(t, err, errlen);
  if (!tm) return -1;
  set_target(mod, tm, t);
  char *msg = NULL;
  LLVMMemoryBufferRef mb = NULL;
  int rc = -1;
  if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, type, &msg, &mb)) {
    kn_errf(err, errlen, "emitting code for %s (cpu %s): %s", t->triple, t->cpu, msg ? msg : "failed");
  } else {
    size_t sz = LLVMGetBufferSize(mb);
    uint8_t *p = malloc(sz + 1); /* +1: assembly text gets a terminator */
    if (!p) {
      kn_errf(err, errlen, "out of memory (%zu bytes of object code)", sz);
    } else {
      memcpy(p, LLVMGetBufferStart(mb), sz);
      p[sz] = 0;
      *out = p;
      *n = sz;
      rc = 0;
    }
    LLVMDisposeMemoryBuffer(mb);
  }
  LLVMDisposeMessage(msg);
  put_tm(tm);
  return rc;
}

int kn_llvm_emit_object(LLVMModuleRef mod, const kn_target *t, uint8_t **obj, size_t *n, char *err, size_t errlen) {
  *obj = NULL;
  *n = 0;
  return emit(mod, t, LLVMObjectFile, obj, n, err, errlen);
}

char *kn_llvm_emit_asm(LLVMModuleRef mod, const kn_target *t) {
  uint8_t *p = NULL;
  size_t n = 0;
  char err[256];
  if (emit(mod, t, LLVMAssemblyFile, &p, &n, err, sizeof err)) return NULL;
  return (char *)p;
}

/* ---- disassembly ---- */

/* Name of the symbol a relocation at [off, off+len) of section sec refers to, or NULL. */
static const char *reloc_at(const kn_elf *e, int sec, uint64_t off, uint64_t len) {
  for (int i = 0; i < e->nrel; i++) {
    const kn_elf_rel *r = &e->rel[i];
    if (r->section == sec && r->offset >= off && r->offset < off + len) return r->symname;
  }
  return NULL;
}

static void disasm_section(kn_bytes *b, LLVMDisasmContextRef dc, const kn_elf *e, int si) {
  const kn_elf_section *s = &e->sec[si];
  kn_bytes_printf(b, "section %s (%llu bytes):\n", s->name, (unsigned long long)s->size);
  uint64_t off = 0;
  while (off < s->size) {
    for (int k = 0; k < e->nsym; k++)
      if (e->sym[k].section == si && e->sym[k].value == off && e->sym[k].name[0])
        kn_bytes_printf(b, "%s:\n", e->sym[k].name);
    char text[256];
    size_t len = LLVMDisasmInstruction(dc, (uint8_t *)s->data + off, s->size - off, off, text, sizeof text);
    if (!len) { /* bytes the disassembler does not know (padding, data in code): show them and move on */
      kn_bytes_printf(b, "%8llx:\t.byte 0x%02x\n", (unsigned long long)off, s->data[off]);
      off++;
      continue;
    }
    const char *rs = reloc_at(e, si, off, len);
    kn_bytes_printf(b, "%8llx:%s%s%s\n", (unsigned long long)off, text, rs ? "\t\t# reloc " : "", rs ? rs : "");
    off += len;
  }
}

char *kn_llvm_disassemble(const uint8_t *obj, size_t n, const kn_target *t) {
  kn_llvm_init();
  char err[256];
  kn_elf e;
  kn_bytes b = {0};
  if (kn_elf_parse(obj, n, &e, err, sizeof err)) {
    kn_bytes_printf(&b, "(cannot disassemble: %s)\n", err);
    return b.s;
  }
  LLVMDisasmContextRef dc = LLVMCreateDisasmCPUFeatures(t->triple, t->cpu, t->features, NULL, 0, NULL, NULL);
  if (!dc) {
    kn_bytes_printf(&b, "(no disassembler for %s %s)\n", t->triple, t->cpu);
  } else {
    LLVMSetDisasmOptions(dc, LLVMDisassembler_Option_PrintImmHex);
    int any = 0;
    for (int i = 0; i < e.nsec; i++)
      if (e.sec[i].exec && e.sec[i].size && e.sec[i].data) {
        disasm_section(&b, dc, &e, i);
        any = 1;
      }
    if (!any) kn_bytes_printf(&b, "(object has no code sections)\n");
    LLVMDisasmDispose(dc);
  }
  kn_elf_free(&e);
  if (b.oom) {
    free(b.s);
    return NULL;
  }
  return b.s;
}
