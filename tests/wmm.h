/* The weight matmul kernel built by hand, for the programs that compile it outside the scheduler (bench_matmul, the
 * aarch64 generator): out[t, n] = sum_k x[t, k] * W[n, k] over the space [T, N, K], x float32 [T, K] in buffer 1,
 * W [N, K] in buffer 2 in any storage format (block formats decode inside the load, f16/bf16 are cast), out float32
 * [T, N] in buffer 0. What the scheduler builds for kn_linear, so codegen picks the same templates for it. */
#ifndef KN_TEST_WMM_H
#define KN_TEST_WMM_H

#include "codegen/kernel.h"

kn_kernel *kn_test_wmm_kernel(kn_dtype w, int64_t T, int64_t N, int64_t K);
/* One view of a 3-axis space with the given strides (0 on size-1 axes, kn_st's canonical form). */
kn_st kn_test_view3(const int64_t *shape, const int64_t *strides);

#endif
