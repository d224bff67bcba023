/* Private to codegen/: LLVM target machines, the optimization pipeline, object emission and disassembly.
 * The IR builder (llvm_emit.c) produces a module; this turns it into bytes a device can load. */
#ifndef KN_LLVM_TARGET_H
#define KN_LLVM_TARGET_H

#include <llvm-c/Core.h>
#include <stddef.h>
#include <stdint.h>

#include "../device/device.h"

/* Initialise the LLVM targets kiln uses (host, AMDGPU when built in); safe to call many times. */
void kn_llvm_init(void);
/* Stamp mod with t's triple and data layout before building IR whose types depend on it (GPU allocas live in
 * their own address space). 0 or -1 with err. */
int kn_llvm_set_target(LLVMModuleRef mod, const kn_target *t, char *err, size_t errlen);
/* Run the O-level pipeline on mod (in place) and emit a relocatable object for t. 0 or -1 with err. */
int kn_llvm_optimize(LLVMModuleRef mod, const kn_target *t, int opt_level, char *err, size_t errlen);
int kn_llvm_emit_object(LLVMModuleRef mod, const kn_target *t, uint8_t **obj, size_t *n, char *err, size_t errlen);
/* Target assembly text of mod for t (DEBUG=7), malloc'd; NULL on failure. */
char *kn_llvm_emit_asm(LLVMModuleRef mod, const kn_target *t);
/* Disassembly of an object's code sections (kiln cache show), malloc'd; NULL on failure. */
char *kn_llvm_disassemble(const uint8_t *obj, size_t n, const kn_target *t);
/* "19.1.7" */
const char *kn_llvm_version(void);

#endif
