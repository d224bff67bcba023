/* Private to codegen/: the attention template kernel. */
#ifndef KN_ATTENTION_H
#define KN_ATTENTION_H

#include <llvm-c/Core.h>

#include "kernel.h"
#include "../device/device.h"

/* A module with one function `entry` in the CPU calling convention over kn_attention_items work items. NULL with
 * err for layouts it does not handle. */
/* Work items of the attention kernel on t: per query head (AMDGPU), per tile of queries and KV head (CPU prefill),
 * else per query and KV head. */
int64_t kn_attention_items(const kn_attn *a, const kn_target *t);

LLVMModuleRef kn_attention_module(LLVMContextRef c, const kn_kernel *k, const kn_target *t, const char *entry, char *err,
                                  size_t errlen);

#endif
