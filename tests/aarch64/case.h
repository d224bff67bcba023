/* One kernel case of the aarch64 test: what gen.c writes into cases.c and runner.c runs. */
typedef struct {
  const char *name;
  void (*fn)(void **bufs, const long long *vars, long long start, long long end);
  void *bufs[4]; /* out, activations, weights (attention: out, q, the K and V caches) */
  long long pos;  /* vars[0]: attention's start position (0 for the matmuls) */
  long long global;
  float *out;
  const float *want, *tol;
  long long n;
  /* a matmul's GEMV of the same weights (or 0): each token alone through it must give the matmul's bits */
  void (*alone)(void **bufs, const long long *vars, long long start, long long end);
  long long alone_global, N, K;
} kcase;

extern const kcase kcases[];
extern const int nkcases;
