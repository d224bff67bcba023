/* The GGUF formats: half-precision conversions against the hardware's, single blocks decoded by hand, the reference
 * dequantizers (tests/ref_quant.c) against the production ones (models/quantize.c), quantizers' error bounds and
 * stability, and — with ../shared/testdata — the real files: quantized tensors close to the F16 file's, and our
 * quantizers reproducing the reference implementation's bytes. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/gguf.h"
#include "device/base/formats.h"
#include "ref_quant.h"
#include "check.h"



static const kn_dtype quants[] = {KN_Q4_0, KN_Q4_1, KN_Q5_0, KN_Q5_1, KN_Q8_0,
                                  KN_Q2_K, KN_Q3_K, KN_Q4_K, KN_Q5_K, KN_Q6_K};
#define NQ (int)(sizeof quants / sizeof quants[0])

static bool same_bits(float a, float b) { return !memcmp(&a, &b, 4) || (isnan(a) && isnan(b)); }

/* ---- half precision ---- */

static void test_halves(void) {
  int bad_ref = 0, bad_hw = 0, bad_rt = 0, bad_bf = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    float a = kn_f16_to_f32((uint16_t)h), b = kn_ref_f16_to_f32((uint16_t)h);
    _Float16 hw;
    memcpy(&hw, &h, 2);
    bad_ref += !same_bits(a, b);
    bad_hw += !same_bits(a, (float)hw);
    if (!isnan(a)) bad_rt += kn_f32_to_f16(a) != h || kn_ref_f32_to_f16(a) != h;
    float c = kn_bf16_to_f32((uint16_t)h);
    bad_bf += !same_bits(c, kn_ref_bf16_to_f32((uint16_t)h)) || (!isnan(c) && kn_f32_to_bf16(c) != h);
  }
  check(!bad_ref, "f16->f32 differs from the reference for %d of 65536 halves", bad_ref);
  check(!bad_hw, "f16->f32 differs from the hardware conversion for %d halves", bad_hw);
  check(!bad_rt, "f32->f16 does not round-trip %d halves", bad_rt);
  check(!bad_bf, "bf16 conversions disagree for %d values", bad_bf);
  /* random floats over many magnitudes, including ties and values past the f16 range */
  uint64_t s = 7;
  int bad = 0, badb = 0;
  for (int i = 0; i < 2000000; i++) {
    uint32_t bits = (uint32_t)kn_ref_rand(&s);
    if (i % 4 == 0) bits = (bits & 0xffffe000u) | 0x1000u; /* exactly halfway between two halves */
    float f;
    memcpy(&f, &bits, 4);
    _Float16 hw = (_Float16)f;
    uint16_t hb;
    memcpy(&hb, &hw, 2);
    uint16_t mine = kn_f32_to_f16(f);
    if (isnan(f)) bad += (mine & 0x7c00) != 0x7c00 || !(mine & 0x3ff);
    else bad += mine != hb || kn_ref_f32_to_f16(f) != hb;
    badb += kn_f32_to_bf16(f) != kn_ref_f32_to_bf16(f);
  }
  check(!bad, "f32->f16 differs from the hardware rounding for %d of 2e6 floats", bad);
  check(!badb, "f32->bf16 differs from the reference for %d floats", badb);
}

/* ---- hand-decoded blocks ---- */

typedef struct {
  kn_dtype t;
  struct { int at; uint8_t v; } bytes[12];
  struct { int e; float want; } elems[4];
} hand_case;

/* Each block is zero except the listed bytes; the expected values are worked out from the format definitions:
 * f16 0x3c00 = 1, 0x3800 = 0.5, 0x3400 = 0.25, 0x3000 = 0.125, 0x4000 = 2, 0xbc00 = -1. */
static const hand_case hand[] = {
  /* Q4_0: d=0.5; qs[0]=0xa3 -> e0=(3-8)*.5, e16=(10-8)*.5; qs[15]=0xf0 -> e15=(0-8)*.5, e31=(15-8)*.5 */
  {KN_Q4_0, {{1, 0x38}, {2, 0xa3}, {17, 0xf0}}, {{0, -2.5f}, {16, 1.0f}, {15, -4.0f}, {31, 3.5f}}},
  /* Q4_1: d=0.25 m=-1; qs[0]=0x5c -> e0=12*.25-1, e16=5*.25-1 */
  {KN_Q4_1, {{1, 0x34}, {3, 0xbc}, {4, 0x5c}}, {{0, 2.0f}, {16, 0.25f}, {1, -1.0f}}},
  /* Q5_0: d=1; qh bits 0 and 31; qs[0]=0x21 -> e0=(1|16)-16, e16=2-16; qs[15]=0x7f -> e15=15-16, e31=(7|16)-16 */
  {KN_Q5_0, {{1, 0x3c}, {2, 0x01}, {5, 0x80}, {6, 0x21}, {21, 0x7f}}, {{0, 1}, {16, -14}, {15, -1}, {31, 7}}},
  /* Q5_1: d=0.5 m=2; qh bit 16; qs[0]=0x31 -> e0=1*.5+2, e16=(3|16)*.5+2 */
  {KN_Q5_1, {{1, 0x38}, {3, 0x40}, {6, 0x01}, {8, 0x31}}, {{0, 2.5f}, {16, 11.5f}, {5, 2.0f}}},
  /* Q8_0: d=0.25; qs[0]=-128, qs[31]=127 */
  {KN_Q8_0, {{1, 0x34}, {2, 0x80}, {33, 0x7f}}, {{0, -32.0f}, {31, 31.75f}, {7, 0.0f}}},
  /* Q2_K: d=1 dmin=.5; scales[0]=0x23 (3, min 2), scales[5]=0x14 (4, min 1), scales[8]=0x51 (1, min 5);
   * e0: bits 0-1 of qs[0]=0xe4 -> 0 -> 0-1; e80: bits 4-5 of qs[16]=0x30 -> 3 -> 12-.5; e129: bits 0-1 of
   * qs[33]=0x02 -> 2 -> 2-2.5 */
  {KN_Q2_K, {{81, 0x3c}, {83, 0x38}, {0, 0x23}, {5, 0x14}, {8, 0x51}, {16, 0xe4}, {32, 0x30}, {49, 0x02}},
   {{0, -1.0f}, {80, 11.5f}, {129, -0.5f}}},
  /* Q3_K: d=1; sub-block 0 scale 33-32=1 (low 1, high 2), sub-block 2 scale 63-32=31, sub-block 13 scale 21-32=-11;
   * e0: low bits 3, hmask clear -> 3-4 = -1; e32: low bits (0x07>>2)&3 = 1, hmask bit 1 set -> 1 -> 31;
   * e208: low bits (qs[48]=0x20 >> 4)&3 = 2, hmask[16] bit 6 set -> 2 -> -22 */
  {KN_Q3_K, {{109, 0x3c}, {96, 0x01}, {104, 0x02}, {98, 0x0f}, {106, 0x03}, {101, 0x50}, {105, 0x40}, {32, 0x07},
             {0, 0x02}, {80, 0x20}, {16, 0x40}},
   {{0, -1.0f}, {32, 31.0f}, {208, -22.0f}, {1, -4.0f * 1}}},
  /* Q4_K: d=1 dmin=.5; sub-block 0: sc 3 m 2; sub-block 1: sc 1 m 4; sub-block 6: sc 7|1<<4=23, m 2|2<<4=34;
   * e0 = 3*10-1, e32 = 1*5-2, e192 = 23*4-17 */
  {KN_Q4_K, {{1, 0x3c}, {3, 0x38}, {4, 0x03}, {8, 0x02}, {5, 0x01}, {9, 0x04}, {14, 0x27}, {6, 0x40}, {10, 0x80},
             {16, 0x5a}, {112, 0x04}},
   {{0, 29.0f}, {32, 3.0f}, {192, 75.0f}}},
  /* Q5_K: d=.5 dmin=.25; sub-block 0: sc 2 m 4; sub-block 7: sc 3|3<<4=51, m 1; e0: 15+16 -> .5*2*31-1;
   * e1: 1 -> 1-1; e255: high nibble 9 + 16 -> .5*51*25-.25 */
  {KN_Q5_K, {{1, 0x38}, {3, 0x34}, {4, 0x02}, {8, 0x04}, {15, 0x13}, {7, 0xc0}, {48, 0x0f}, {16, 0x01}, {49, 0x01},
             {175, 0x90}, {47, 0x80}},
   {{0, 30.0f}, {1, 0.0f}, {255, 637.25f}}},
  /* Q6_K: d=.125; e0: (7|2<<4)-32=7, scale -2; e101: (10|1<<4)-32=-6, scale 16; e194: (3|3<<4)-32=19, scale 3 */
  {KN_Q6_K, {{209, 0x30}, {0, 0x07}, {128, 0x02}, {192, 0xfe}, {37, 0xa0}, {133, 0x40}, {198, 0x10}, {66, 0x30},
             {162, 0x30}, {204, 0x03}},
   {{0, -1.75f}, {101, -12.0f}, {194, 7.125f}}},
};

static void test_hand_blocks(void) {
  for (size_t c = 0; c < sizeof hand / sizeof hand[0]; c++) {
    const hand_case *h = &hand[c];
    uint8_t block[292] = {0};
    for (int k = 0; k < 12 && (h->bytes[k].at || h->bytes[k].v); k++) block[h->bytes[k].at] = h->bytes[k].v;
    int be = kn_dtype_get(h->t)->block_elems;
    float out[256], out2[256];
    check(!kn_ref_dequant(h->t, block, be, out) && !kn_dequantize(h->t, block, be, out2), "%s: dequant failed",
          kn_dtype_name(h->t));
    for (int k = 0; k < 4; k++) {
      const int e = h->elems[k].e;
      if (k && !e) break;
      check(out[e] == h->elems[k].want, "%s hand block: ref element %d = %g, expected %g", kn_dtype_name(h->t), e,
            (double)out[e], (double)h->elems[k].want);
      check(out2[e] == h->elems[k].want, "%s hand block: element %d = %g, expected %g", kn_dtype_name(h->t), e,
            (double)out2[e], (double)h->elems[k].want);
    }
  }
  /* scalar formats */
  const uint8_t f16[] = {0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00, 0xff, 0x7b, 0x00, 0x80};
  const float want16[] = {1.0f, -2.0f, 5.9604644775390625e-08f, 65504.0f, -0.0f};
  const uint8_t bf16[] = {0x80, 0x3f, 0xa0, 0xc0};
  float o[5];
  kn_ref_dequant(KN_F16, f16, 5, o);
  for (int i = 0; i < 5; i++) check(same_bits(o[i], want16[i]), "f16 element %d = %g", i, (double)o[i]);
  kn_ref_dequant(KN_BF16, bf16, 2, o);
  check(o[0] == 1.0f && o[1] == -5.0f, "bf16 = %g %g, expected 1 -5", (double)o[0], (double)o[1]);
}

/* ---- the table and the reference against production ---- */

static void test_geometry(void) {
  /* bytes per block from each format's fields: f16 scales, quant bits, high-bit masks, sub-block scales */
  const struct { kn_dtype t; int elems, bytes; } g[] = {
    {KN_Q4_0, 32, 2 + 16}, {KN_Q4_1, 32, 2 + 2 + 16}, {KN_Q5_0, 32, 2 + 4 + 16}, {KN_Q5_1, 32, 2 + 2 + 4 + 16},
    {KN_Q8_0, 32, 2 + 32}, {KN_Q2_K, 256, 16 + 64 + 2 + 2}, {KN_Q3_K, 256, 32 + 64 + 12 + 2},
    {KN_Q4_K, 256, 2 + 2 + 12 + 128}, {KN_Q5_K, 256, 2 + 2 + 12 + 32 + 128}, {KN_Q6_K, 256, 128 + 64 + 16 + 2},
  };
  for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
    const kn_dtype_info *d = kn_dtype_get(g[i].t);
    check(d->block_elems == g[i].elems && d->block_bytes == g[i].bytes, "%s: table says %d elements / %d bytes",
          d->name, d->block_elems, d->block_bytes);
  }
  check(kn_dtype_from_ggml(-1) == -1, "kn_dtype_from_ggml(-1) = %d", kn_dtype_from_ggml(-1));
}

static void test_ref_vs_production(void) {
  uint64_t s = 1234;
  const kn_dtype all[] = {KN_F32, KN_F16, KN_BF16, KN_Q4_0, KN_Q4_1, KN_Q5_0, KN_Q5_1, KN_Q8_0, KN_Q8_1,
                          KN_Q2_K, KN_Q3_K, KN_Q4_K, KN_Q5_K, KN_Q6_K, KN_Q8_K};
  const int64_t n = 256 * 64;
  uint8_t *blocks = malloc((size_t)n * 4);
  float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4);
  for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
    kn_dtype t = all[k];
    check(!kn_ref_fill_random(t, blocks, n, &s), "%s: fill_random failed", kn_dtype_name(t));
    check(!kn_ref_dequant(t, blocks, n, a) && !kn_dequantize(t, blocks, n, b), "%s: dequant failed", kn_dtype_name(t));
    int64_t diff = 0, nonfinite = 0, zeros = 0;
    float amax = 0;
    for (int64_t i = 0; i < n; i++) {
      diff += !same_bits(a[i], b[i]) || !same_bits(a[i], kn_ref_dequant_one(t, blocks, i));
      nonfinite += !isfinite(a[i]);
      zeros += a[i] == 0;
      amax = fmaxf(amax, fabsf(a[i]));
    }
    check(!diff, "%s: production dequant differs from the reference at %lld of %lld elements", kn_dtype_name(t),
          (long long)diff, (long long)n);
    check(!nonfinite && zeros < n / 4 && amax > 0.5f && amax < 64, "%s: random blocks not sane (%lld non-finite, "
          "%lld zeros, max |x| %g)", kn_dtype_name(t), (long long)nonfinite, (long long)zeros, (double)amax);
  }
  check(kn_ref_dequant(KN_Q4_0, blocks, 33, a) == -1 && kn_dequantize(KN_Q4_K, blocks, 255, a) == -1 &&
        kn_ref_dequant(KN_I32, blocks, 32, a) == -1 && kn_dequantize(KN_I32, blocks, 32, a) == -1,
        "partial blocks or unsupported formats were accepted");
  free(blocks), free(a), free(b);
}

/* ---- quantizers ---- */

static double rel_err(const float *x, const float *y, int64_t n) {
  double e = 0, d = 0;
  for (int64_t i = 0; i < n; i++) e += ((double)x[i] - y[i]) * ((double)x[i] - y[i]), d += (double)x[i] * x[i];
  return d ? sqrt(e / d) : sqrt(e);
}

/* RMS error bounds relative to the data, about 1.5x what the reference quantizer reaches on these inputs */
static double bound(kn_dtype t) {
  switch (t) {
  case KN_Q8_0: return 0.011;
  case KN_Q4_0: return 0.18;
  case KN_Q4_1: return 0.15;
  case KN_Q5_0: return 0.09;
  case KN_Q5_1: return 0.075;
  case KN_Q2_K: return 0.5;
  case KN_Q3_K: return 0.3;
  case KN_Q4_K: return 0.13;
  case KN_Q5_K: return 0.07;
  case KN_Q6_K: return 0.035;
  default: return 0;
  }
}

/* Per element for the 32-element formats: at most half a step (a full step at the clamped top level of the
 * symmetric ones), plus the f16 rounding of the stored scale and minimum. */
static int64_t step_violations(kn_dtype t, const float *x, const float *y, const uint8_t *q, int64_t n) {
  const kn_dtype_info *info = kn_dtype_get(t);
  int64_t bad = 0;
  for (int64_t i = 0; i < n; i++) {
    const uint8_t *b = q + (i / 32) * info->block_bytes;
    float d = fabsf(kn_ref_f16_to_f32((uint16_t)(b[0] | b[1] << 8)));
    bool sym = t == KN_Q4_0 || t == KN_Q5_0;
    float m = t == KN_Q4_1 || t == KN_Q5_1 ? fabsf(kn_ref_f16_to_f32((uint16_t)(b[2] | b[3] << 8))) : 0;
    float lim = (sym ? 1.0f : 0.5f) * d * 1.001f + (fabsf(x[i]) + m) * 0x1p-10f + 1e-7f;
    bad += fabsf(x[i] - y[i]) > lim;
  }
  return bad;
}

static void test_quantizers(void) {
  const int64_t n = 256 * 128;
  float *x = malloc(n * 4), *y = malloc(n * 4), *z = malloc(n * 4);
  uint8_t *q = malloc(n * 2), *q2 = malloc(n * 2);
  char err[200];
  for (int dist = 0; dist < 3; dist++) {
    uint64_t s = 99 + (uint64_t)dist;
    for (int64_t i = 0; i < n; i++)
      x[i] = dist == 0 ? kn_ref_normal(&s) : dist == 1 ? 2 * kn_ref_uniform(&s) - 1
                                                       : kn_ref_normal(&s) * kn_ref_normal(&s) * 3 + 0.5f;
    for (int k = 0; k < NQ; k++) {
      kn_dtype t = quants[k];
      const char *nm = kn_dtype_name(t);
      if (kn_quantize(t, x, n, q, err, sizeof err) || kn_dequantize(t, q, n, y)) {
        check(false, "%s: quantize failed: %s", nm, err);
        continue;
      }
      double e1 = rel_err(x, y, n);
      check(e1 < bound(t), "%s dist %d: relative error %.4f over the bound %.4f", nm, dist, e1, bound(t));
      if (kn_dtype_get(t)->block_elems == 32) {
        int64_t bad = step_violations(t, x, y, q, n);
        check(!bad, "%s dist %d: %lld elements further than a step from their input", nm, dist, (long long)bad);
      }
      /* requantizing dequantized data lands (nearly) where it was */
      kn_quantize(t, y, n, q2, err, sizeof err), kn_dequantize(t, q2, n, z);
      double e2 = rel_err(y, z, n), lim = kn_dtype_get(t)->block_elems == 32 ? 1e-6 : 0.4 * e1;
      check(e2 <= lim, "%s dist %d: requantizing moved the data by %.5f (first error %.5f)", nm, dist, e2, e1);
      /* the reference dequantizer reads what the quantizer wrote */
      kn_ref_dequant(t, q, n, z);
      check(!memcmp(y, z, n * 4), "%s: reference and production dequantizers disagree on quantized data", nm);
    }
  }
  free(x), free(y), free(z), free(q), free(q2);
}

static void test_constants(void) {
  /* magnitudes whose scales stay f16 normals (tiny ones lose precision to subnormal scales, as in any writer) */
  const float cs[] = {0.37f, -1.25f, 1000.0f, 2.5f, 0.0f};
  float x[512], y[512];
  uint8_t q[512 * 2];
  char err[200];
  for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++)
    for (int k = 0; k < NQ; k++) {
      kn_dtype t = quants[k];
      for (int i = 0; i < 512; i++) x[i] = cs[c];
      if (kn_quantize(t, x, 512, q, err, sizeof err) || kn_dequantize(t, q, 512, y)) {
        check(false, "%s constant %g: %s", kn_dtype_name(t), (double)cs[c], err);
        continue;
      }
      int bad = 0;
      for (int i = 0; i < 512; i++) bad += fabsf(y[i] - cs[c]) > 2e-3f * fabsf(cs[c]) || (cs[c] == 0 && y[i] != 0);
      check(!bad, "%s: constant %g comes back as %g (%d elements off)", kn_dtype_name(t), (double)cs[c], (double)y[0], bad);
    }
  x[5] = NAN;
  check(kn_quantize(KN_Q4_K, x, 512, q, err, sizeof err) == -1 && strstr(err, "element 5"),
        "a NaN input was not reported: %s", err);
  check(kn_quantize(KN_Q8_0, x, 48, q, err, sizeof err) == -1 && strstr(err, "blocks"),
        "a partial block was not reported: %s", err);
}

/* ---- real files ---- */

static float *dequant_tensor(const kn_gguf_tensor *t) {
  float *out = malloc((size_t)t->nelems * 4);
  if (out && kn_dequantize((kn_dtype)t->dtype, t->data, t->nelems, out)) free(out), out = NULL;
  return out;
}

static double file_bound(int dtype) {
  switch (dtype) {
  case KN_Q8_0: return 0.01;
  case KN_Q6_K: return 0.03;
  case KN_Q4_0: case KN_Q4_K: return 0.10;
  default: return 1e-3;
  }
}

static void compare_file(kn_gguf *f16, const char *path, const char *name) {
  char err[512];
  kn_gguf *q = kn_gguf_open(path, err, sizeof err);
  if (!q) {
    check(false, "%s", err);
    return;
  }
  int compared = 0;
  for (size_t i = 0; i < kn_gguf_tensor_count(q); i++) {
    const kn_gguf_tensor *t = kn_gguf_tensor_at(q, i), *r = kn_gguf_tensor_find(f16, t->name);
    if (!r) {
      check(false, "%s: tensor %s is not in the F16 file", name, t->name);
      continue;
    }
    float *a = dequant_tensor(t), *b = dequant_tensor(r);
    if (!a || !b) {
      check(false, "%s: %s: cannot dequantize %s", name, t->name, t->type_name);
      free(a), free(b);
      continue;
    }
    double e = rel_err(b, a, t->nelems);
    check(e < file_bound(t->dtype), "%s: %s (%s) is %.4f away from the F16 file", name, t->name, t->type_name, e);
    float *c = malloc((size_t)t->nelems * 4);
    check(!kn_ref_dequant((kn_dtype)t->dtype, t->data, t->nelems, c) && !memcmp(a, c, (size_t)t->nelems * 4),
          "%s: %s: reference and production dequantizers disagree", name, t->name);
    /* our quantizer on the F16 weights against the reference quantizer's bytes (which it made from F32) */
    if (kn_dtype_is_quant((kn_dtype)t->dtype)) {
      uint8_t *mine = malloc(t->nbytes);
      kn_quantize((kn_dtype)t->dtype, b, t->nelems, mine, err, sizeof err);
      uint64_t same = 0;
      for (uint64_t k = 0; k < t->nbytes; k++) same += mine[k] == ((const uint8_t *)t->data)[k];
      check(same >= t->nbytes * 0.97, "%s: %s: our %s bytes match the file's for only %.2f%%", name, t->name,
            t->type_name, 100.0 * same / t->nbytes);
      free(mine);
    }
    free(a), free(b), free(c);
    compared++;
  }
  check(compared == 39, "%s: compared %d tensors, expected 39", name, compared);
  kn_gguf_close(q);
}

static int test_files(void) {
  const char *td = getenv("KILN_TESTDATA");
  char path[1024], err[512];
  snprintf(path, sizeof path, "%s/models/tiny-llama-F16.gguf", td ? td : "../shared/testdata");
  kn_gguf *f16 = kn_gguf_open(path, err, sizeof err);
  if (!f16) return printf("skip real-file checks: %s\n", err), 0;
  const char *names[] = {"tiny-llama-Q8_0", "tiny-llama-Q4_0", "tiny-llama-Q4_K_M"};
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/models/%s.gguf", td ? td : "../shared/testdata", names[i]);
    compare_file(f16, path, names[i]);
  }
  kn_gguf_close(f16);
  return 1;
}

int main(void) {
  test_halves();
  test_hand_blocks();
  test_geometry();
  test_ref_vs_production();
  test_quantizers();
  test_constants();
  int files = test_files();
  printf("%d passed, %d failed%s\n", passed, failed, files ? "" : " (real-file checks skipped: no testdata)");
  return failed ? 1 : 0;
}
