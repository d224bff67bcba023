/* Private to device/amd/: an AMDGPU code object as codegen emits it (an ET_REL ELF for amdgcn-amd-amdhsa), laid
 * out for loading without a linker: sections placed, R_AMDGPU_* relocations applied against the load address,
 * and each kernel's descriptor and metadata (from the NT_AMDGPU_METADATA msgpack note) read out. */
#ifndef KN_AMD_CODEOBJ_H
#define KN_AMD_CODEOBJ_H

#include <stddef.h>
#include <stdint.h>

enum { KN_ARG_GLOBAL_BUFFER, KN_ARG_BY_VALUE, KN_ARG_HIDDEN }; /* .value_kind, hidden_* kinds folded */

typedef struct {
  uint32_t offset, size;
  int kind;
  char hidden[32]; /* the hidden_* kind's name when kind is KN_ARG_HIDDEN */
} kn_codeobj_arg;

typedef struct {
  char name[96];
  uint64_t kd_offset;   /* of the 64-byte kernel descriptor in the loaded image */
  uint32_t kernarg_size, kernarg_align;
  uint32_t group_segment_size, private_segment_size;
  uint32_t vgpr_count, sgpr_count, wavefront_size;
  uint32_t max_flat_workgroup_size;
  int nargs;
  kn_codeobj_arg args[64];
} kn_codeobj_kernel;

typedef struct {
  char arch[16];        /* "gfx1100", from e_flags */
  uint8_t *image;       /* the laid-out image: copy it to GPU memory at `load_va` (relocations assume it) */
  size_t image_size;
  uint64_t load_va;
  int nkernels;
  kn_codeobj_kernel *kernels;
} kn_codeobj;

/* Lay out obj for execution at GPU address load_va. 0, or -1 with a message naming the bad field. */
int kn_codeobj_load(const void *obj, size_t n, uint64_t load_va, kn_codeobj *co, char *err, size_t errlen);
const kn_codeobj_kernel *kn_codeobj_find(const kn_codeobj *co, const char *name);
void kn_codeobj_free(kn_codeobj *co);

#endif
