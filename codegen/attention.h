/* Private to codegen/: the attention template kernel. */
#ifndef KN_ATTENTION_H
#define KN_ATTENTION_H

#include <llvm-c/Core.h>

#include "kernel.h"
#include "../device/device.h"

/* A module with one function `entry` in the CPU calling convention over n_q * n_head work items (one per query
 * and head). NULL with err for layouts it does not handle. */
LLVMModuleRef kn_attention_module(LLVMContextRef c, const kn_kernel *k, const kn_target *t, const char *entry, char *err,
                                  size_t errlen);

#endif
