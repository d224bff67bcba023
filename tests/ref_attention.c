/* Plain-C reference attention: see ref_attention.h. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "ref_attention.h"

void kn_ref_attention(const float *q, const float *k, const float *v, float *out, int T, int H, int KV, int D, int pos,
                      float scale, int window) {
  double *p = malloc((size_t)(pos + T) * sizeof *p);
  for (int t = 0; t < T; t++)
    for (int h = 0; h < H; h++) {
      int kh = h / (H / KV), n = pos + t + 1, j0 = window > 0 && n > window ? n - window : 0;
      const float *qr = q + ((size_t)t * H + h) * D;
      double m = -INFINITY, sum = 0;
      for (int j = j0; j < n; j++) {
        double s = 0;
        for (int d = 0; d < D; d++) s += (double)qr[d] * k[((size_t)j * KV + kh) * D + d];
        p[j] = s * scale;
        if (p[j] > m) m = p[j];
      }
      for (int j = j0; j < n; j++) sum += p[j] = exp(p[j] - m);
      for (int d = 0; d < D; d++) {
        double o = 0;
        for (int j = j0; j < n; j++) o += p[j] * v[((size_t)j * KV + kh) * D + d];
        out[((size_t)t * H + h) * D + d] = (float)(o / sum);
      }
    }
  free(p);
}
