/* codegen: kernel AST -> loop IR -> LLVM IR (LLVM C API) -> object code for a device's target, through the
 * kernel disk cache. The public header of codegen/; graph/ includes it. */
#ifndef KN_CODEGEN_H
#define KN_CODEGEN_H

#include "../device/base/dtype.h"
#include "kernel.h"
#include "../device/device.h"

#define KN_CODEGEN_VERSION 1 /* bump when generated code changes for the same IR-independent inputs */

typedef struct {
  char name[64];         /* display name, tinygrad-style: E_ elementwise, r_ reduce, sizes after opts */
  char entry[96];        /* symbol of the kernel function in obj */
  uint8_t *obj;          /* relocatable object for the target (malloc'd) */
  size_t obj_size;
  int64_t global[3], local[3]; /* launch geometry; on the CPU global[0] work items are split across threads */
  bool cache_hit;        /* object came from the disk cache */
  bool memo_hit;         /* compiled earlier in this process (neither compiled nor read from disk now) */
  char key[33];          /* its disk cache key (`kiln cache show KEY`); "" with CACHELEVEL=0 */
  double compile_s;      /* time spent in kn_compile */
} kn_compiled;

/* Compile a kernel for a target. 0 on success; -1 and a message in err otherwise. */
int kn_compile(const kn_kernel *k, const kn_target *t, kn_compiled *out, char *err, size_t errlen);
void kn_compiled_free(kn_compiled *c);

/* VIZ=1: the text of every stage of one kernel for a target (malloc'd; NULL where a stage does not exist, e.g. the
 * loop IR of a template kernel): AST, loop IR, LLVM IR as built, and the target assembly after optimization. */
typedef struct {
  char *ast, *loopir, *llvm_ir, *asm_text;
} kn_kernel_texts;
int kn_kernel_texts_get(const kn_kernel *k, const kn_target *t, kn_kernel_texts *out, char *err, size_t errlen);
void kn_kernel_texts_free(kn_kernel_texts *x);

/* Cache statistics of this process (hits, misses, compiles), for DEBUG=1 summaries and tests. */
typedef struct {
  int64_t hits, misses, corrupt;
} kn_cache_stats;
kn_cache_stats kn_cache_process_stats(void);

/* ---- AMDGPU code objects (amdgpu_check.c) ---- */

/* A target for amdgcn-amd-amdhsa with the given arch ("gfx1100" when NULL or empty). */
void kn_target_amdgpu(kn_target *t, const char *arch);

/* One kernel's descriptor, read from an emitted object. */
typedef struct {
  uint32_t lds_bytes, scratch_bytes, kernarg_size;
  uint32_t rsrc1, rsrc2;
  uint16_t props; /* kernel_code_properties: user SGPRs asked for, wave32 bit */
  int wave;       /* 32 or 64 */
} kn_amdgpu_kd;
int kn_amdgpu_kd_read(const uint8_t *obj, size_t n, const char *entry, kn_amdgpu_kd *kd, char *err, size_t errlen);
/* 0 when entry keeps kiln's kernel ABI: kernarg = nbufs pointers then nvars i64 and nothing hidden, no dispatch or
 * queue pointer, no scratch; -1 with a message naming what is wrong. */
int kn_amdgpu_check(const uint8_t *obj, size_t n, const char *entry, int nbufs, int nvars, char *err, size_t errlen);

#endif
