/* One kernel case of the aarch64 test: what gen.c writes into cases.c and runner.c runs. */
typedef struct {
  const char *name;
  void (*fn)(void **bufs, const long long *vars, long long start, long long end);
  void *bufs[3]; /* out, activations, weights */
  long long global;
  float *out;
  const float *want, *tol;
  long long n;
} kcase;

extern const kcase kcases[];
extern const int nkcases;
