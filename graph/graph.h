/* kiln's graph API: lazy tensors. Every operation builds a node of an immutable, hash-consed graph; nothing runs
 * until kn_realize (or a copy to the host). Model code (models/, ops/) is written against this header only: it
 * exposes the dtype table (device/base/) and the few device calls a program needs, never codegen/ or device/.
 *
 * Errors are sticky per context, like ferror(): an op with a bad argument records a message naming the op and
 * the shapes, and returns NULL; ops given NULL return NULL; kn_realize and kn_ctx_error report the first error. */
#ifndef KN_GRAPH_H
#define KN_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../device/base/dtype.h"

typedef struct kn_uop kn_uop;
typedef kn_uop *kn_t; /* a lazy tensor is a node of the graph */
typedef struct kn_ctx kn_ctx;
typedef struct kn_var kn_var;

/* ---- devices: the part of device/device.h that programs use (the rest stays behind the graph) ---- */
typedef struct kn_device kn_device;
typedef struct kn_buf kn_buf; /* device memory; tensors own theirs (kn_from_buf, kn_buffer_of) */
/* "CPU", "AMD" (the GPU behind /dev/kfd), "AMD:EMU" (the emulated gfx1100); NULL: $DEVICE, else CPU. On failure NULL
 * and a message. */
kn_device *kn_device_open(const char *name, char *err, size_t errlen);
void kn_device_close(kn_device *d);
const char *kn_device_name(const kn_device *d);
int kn_device_mem(const kn_device *d, uint64_t *total, uint64_t *avail); /* what it reports, for memory planning */
bool kn_device_host_memory(const kn_device *d); /* it computes in host memory (the CPU): host data is used in place */
int kn_device_threads(const kn_device *d);      /* CPU threads it launches on (0 for a GPU) */
/* From another thread: while on, launches fail and a kernel in flight ends early where the device can (a server's
 * shutdown stops the forward pass in flight; device.h) */
void kn_device_stop(kn_device *d, bool on);

/* ---- contexts: own the nodes made while they are current; realized buffers live on ctx's device ---- */
kn_ctx *kn_ctx_new(kn_device *dev);
void kn_ctx_free(kn_ctx *c); /* frees its nodes and the buffers only they own */
kn_ctx *kn_ctx_set(kn_ctx *c); /* make c current for this thread; returns the previous one */
kn_ctx *kn_ctx_current(void);
kn_device *kn_ctx_device(kn_ctx *c);
const char *kn_ctx_error(kn_ctx *c); /* NULL when no error */
/* Record an error in the current context (the first one sticks) and return NULL: for ops built on this API. */
kn_t kn_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kn_ctx_clear_error(kn_ctx *c);
size_t kn_ctx_nodes(kn_ctx *c); /* number of distinct nodes (hash-consing makes equal subgraphs one node) */

/* ---- properties ---- */
int kn_ndim(kn_t t);
int64_t kn_dim(kn_t t, int axis); /* negative axis counts from the end */
const int64_t *kn_shape(kn_t t);
int64_t kn_numel(kn_t t);
kn_dtype kn_dtype_of(kn_t t); /* storage dtype for buffers of block formats; values read as float32 */
void kn_print_shape(kn_t t, char *buf, size_t n);
/* Names a tensor (printf-style; at most 47 characters kept) and returns it: DEBUG=3, GRAPH=1 and VIZ=1 show it,
 * and the kernel that realizes it is named after it (digits dropped, so every layer's kernel is the same one).
 * Weights carry their GGUF names and ops name their results ("rmsnorm", "linear", "rope", ...); a later name
 * replaces an earlier one. Equal subgraphs are one node, so they share a name. Naming a view or a cast also names
 * the computed tensor under it when that has no name yet (kernels realize that tensor: a matmul's sum under its
 * reshape is named after the linear layer). */
kn_t kn_name(kn_t t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *kn_get_name(kn_t t); /* the name, or the op that made it when unnamed */
int64_t kn_shape_numel(int ndim, const int64_t *shape); /* product of the dims */

/* ---- creation ---- */
kn_t kn_empty(kn_dtype dt, int ndim, const int64_t *shape);
kn_t kn_from_host(kn_dtype dt, int ndim, const int64_t *shape, const void *data); /* copies now */
/* A tensor over an existing device buffer (e.g. kn_buf_wrap_host of an mmapped file's weights): not copied. The
 * tensor takes the kn_buf handle; a wrapped (borrowed) buffer's memory stays its owner's when the context frees it. */
kn_t kn_from_buf(kn_buf *buf, kn_dtype dt, int ndim, const int64_t *shape);
/* A tensor over nbytes of host memory that outlives it (e.g. an mmapped file's weights): used in place where the
 * device computes in host memory, else copied to a buffer of the device now. */
kn_t kn_from_host_mem(kn_dtype dt, int ndim, const int64_t *shape, const void *data, size_t nbytes);
kn_t kn_full(kn_dtype dt, double v, int ndim, const int64_t *shape);
kn_t kn_scalar(kn_dtype dt, double v); /* 0-d */
kn_t kn_arange(int64_t n, kn_dtype dt); /* 0, 1, ..., n-1 */
kn_t kn_rand(int ndim, const int64_t *shape, uint64_t seed); /* uniform [0,1) float32, counter based */

/* ---- symbolic variables: one compiled kernel serves every value ---- */
/* A variable of the current context with values in [min, max] (names are unique per context). Its value is given
 * to each run of a plan (kn_plan_run's bindings), never stored: plans of different contexts never share one. */
kn_var *kn_var_new(const char *name, int64_t min, int64_t max);
const char *kn_var_name(const kn_var *v);
kn_t kn_var_tensor(kn_var *v, kn_dtype dt); /* 0-d tensor holding the variable's value */
typedef struct {
  kn_var *var;
  int64_t value;
} kn_bind;

/* ---- elementwise (numpy broadcasting; dtypes promote) ---- */
kn_t kn_add(kn_t a, kn_t b);
kn_t kn_sub(kn_t a, kn_t b);
kn_t kn_mul(kn_t a, kn_t b);
kn_t kn_div(kn_t a, kn_t b); /* floats: true division; ints: C truncating division */
kn_t kn_mod(kn_t a, kn_t b); /* ints: C remainder */
kn_t kn_maximum(kn_t a, kn_t b);
kn_t kn_minimum(kn_t a, kn_t b);
kn_t kn_pow(kn_t a, kn_t b);
kn_t kn_lt(kn_t a, kn_t b); /* comparisons give bool */
kn_t kn_gt(kn_t a, kn_t b);
kn_t kn_le(kn_t a, kn_t b);
kn_t kn_ge(kn_t a, kn_t b);
kn_t kn_eq(kn_t a, kn_t b);
kn_t kn_ne(kn_t a, kn_t b);
kn_t kn_and(kn_t a, kn_t b);
kn_t kn_or(kn_t a, kn_t b);
kn_t kn_xor(kn_t a, kn_t b);
kn_t kn_shl(kn_t a, kn_t b);
kn_t kn_shr(kn_t a, kn_t b);
kn_t kn_where(kn_t cond, kn_t a, kn_t b);
/* with a scalar of a's dtype */
kn_t kn_adds(kn_t a, double s);
kn_t kn_muls(kn_t a, double s);
kn_t kn_neg(kn_t a);
kn_t kn_not(kn_t a);
kn_t kn_recip(kn_t a);
kn_t kn_sqrt(kn_t a);
kn_t kn_rsqrt(kn_t a);
kn_t kn_exp(kn_t a);
kn_t kn_exp2(kn_t a);
kn_t kn_log(kn_t a);
kn_t kn_log2(kn_t a);
kn_t kn_sin(kn_t a);
kn_t kn_cos(kn_t a);
kn_t kn_tanh(kn_t a);
kn_t kn_sigmoid(kn_t a);
kn_t kn_relu(kn_t a);
kn_t kn_abs(kn_t a);
kn_t kn_trunc(kn_t a);
kn_t kn_floor(kn_t a);
kn_t kn_square(kn_t a);
kn_t kn_cast(kn_t a, kn_dtype dt);
kn_t kn_bitcast(kn_t a, kn_dtype dt); /* same itemsize */

/* ---- movement: views, never copies ---- */
kn_t kn_reshape(kn_t a, int ndim, const int64_t *shape); /* one entry may be -1 */
kn_t kn_permute(kn_t a, const int *order);
kn_t kn_transpose(kn_t a, int ax0, int ax1);
kn_t kn_expand(kn_t a, int ndim, const int64_t *shape); /* size-1 axes grow; new leading axes allowed */
kn_t kn_pad(kn_t a, const int64_t *before, const int64_t *after); /* zero padding per axis */
kn_t kn_shrink(kn_t a, const int64_t *begin, const int64_t *end);
kn_t kn_shrink_var(kn_t a, int axis, kn_var *start, int64_t len); /* [start, start+len) along axis */
/* [0, len) along axis with len a variable: the axis gets a symbolic extent (its size reads as len's maximum).
 * Elementwise ops, reductions (over it or other axes), matmuls, permutes and size-1 reshapes keep it; kernels
 * iterate to the variable's value, compiled once for all values. A realized symbolic tensor holds its maximum
 * size; elements past the current length are unspecified. */
kn_t kn_shrink_sym(kn_t a, int axis, kn_var *len);
int kn_symvar(kn_t t, int axis); /* the variable id of a symbolic axis, or -1 */
kn_t kn_flip(kn_t a, int axis);
kn_t kn_unsqueeze(kn_t a, int axis);
kn_t kn_squeeze(kn_t a, int axis);

/* ---- reductions: keepdim keeps reduced axes as size 1 ---- */
kn_t kn_sum(kn_t a, int naxes, const int *axes, bool keepdim);
kn_t kn_max(kn_t a, int naxes, const int *axes, bool keepdim);
kn_t kn_prod(kn_t a, int naxes, const int *axes, bool keepdim);
kn_t kn_mean(kn_t a, int naxes, const int *axes, bool keepdim);
/* a [..., M, K] @ b [..., K, N] with broadcasting over batch axes; b may be a block-format weight viewed as
 * (K, N) (a transposed GGUF [N][K] tensor): the product is one fused dequant-matmul kernel. */
kn_t kn_matmul(kn_t a, kn_t b);

/* ---- realization ---- */
kn_t kn_contiguous(kn_t a);              /* a kernel boundary: materialize */
kn_t kn_assign(kn_t target, kn_t value); /* write value into target (a view of a buffer); returns the buffer */
/* Row scatter: value [T, ...] into rows rows[t] (int32 [T], chosen at run time) of target [N, ...] (a buffer, the
 * same trailing shape); returns the buffer. Rows must be distinct and in [0, N): not checked at run time. */
kn_t kn_assign_rows(kn_t target, kn_t rows, kn_t value);
/* A fused-kernel op (template kernels such as attention): inputs are realized, the op is one kernel. */
kn_t kn_custom_attention(kn_t q, kn_t kcache, kn_t vcache, kn_var *pos, int n_q, float scale);
/* The same over the last `window` keys of each query (sliding-window layers; 0: every earlier key). */
kn_t kn_custom_attention_window(kn_t q, kn_t kcache, kn_t vcache, kn_var *pos, int n_q, float scale, int window);
/* Batched rows: query t of q [T, n_head, head_dim] is the key at cache row rows[t] (int32 [T]) of caches
 * [N, n_kv_head, head_dim] made of segments of seg rows (one sequence each: rows s*seg ... s*seg + seg - 1), and
 * attends the rows of its segment from the segment's start up to rows[t] (with window > 0: the last `window`). */
kn_t kn_custom_attention_rows(kn_t q, kn_t kcache, kn_t vcache, kn_t rows, int64_t seg, float scale, int window);
kn_t kn_gather_rows(kn_t table, kn_t ids); /* table [V, D] (any dtype), ids int32 [T] -> [T, D] float32 */
int kn_realize(kn_t *ts, int n);         /* 0, or -1 with kn_ctx_error set (graphs without variables) */
/* Realize t and copy its elements to host memory in t's dtype (contiguous, row-major). */
int kn_to_host(kn_t t, void *dst, size_t nbytes);
/* The device buffer of a realized tensor (NULL if not realized or not contiguous). */
kn_buf *kn_buffer_of(kn_t t);

/* ---- plans: schedule + compile once, run many times with new variable values (decode-step capture) ---- */
typedef struct kn_plan kn_plan;
kn_plan *kn_plan_new(kn_t *outputs, int n); /* NULL with kn_ctx_error on failure */
/* Run with these values of the plan's variables: every variable a kernel uses must be bound, within its range;
 * otherwise -1 with an error naming it (kn_ctx_error). */
int kn_plan_run(kn_plan *p, const kn_bind *binds, int n);
void kn_plan_free(kn_plan *p);
int kn_plan_kernels(const kn_plan *p);
/* Plans that never run at the same time may share their intermediates: each takes buffers from one kn_scratch
 * (created for a device, freed after the last plan using it), so the set costs about as much as its largest. */
typedef struct kn_scratch kn_scratch;
kn_scratch *kn_scratch_new(kn_device *dev);
void kn_scratch_free(kn_scratch *s);
size_t kn_scratch_bytes(const kn_scratch *s); /* bytes its buffers hold */
kn_plan *kn_plan_new_shared(kn_t *outputs, int n, kn_scratch *s);
size_t kn_plan_scratch_bytes(const kn_plan *p); /* bytes of the intermediates a plan uses */

/* ---- captured steps (TinyJit): a graph built once per key, replayed with new inputs and variable values ---- */
#define KN_CAPTURE_MAXIO 8
typedef struct kn_capture kn_capture;
typedef struct {
  kn_t inputs[KN_CAPTURE_MAXIO];  /* buffers (kn_empty) each replay fills from host memory */
  kn_t outputs[KN_CAPTURE_MAXIO]; /* what each replay copies back (realized contiguously) */
  kn_var *vars[KN_CAPTURE_MAXIO]; /* the variables each replay binds, in the order of its values */
  int n_inputs, n_outputs, n_vars;
  bool keep;                      /* never evicted (e.g. the decode step) */
  char name[64];                  /* what the step is, for DEBUG=1 and errors ("pass of 4 rows, ..."); "": its key */
} kn_capture_io;
/* Builds key's graph with a fresh context current: creates its variables and input buffers, fills io. 0, or -1
 * (the context's error says why). */
typedef int (*kn_capture_build)(void *user, int64_t key, kn_capture_io *io);
/* At most `keep` captures not marked keep stay resident (least recently used evicted first). */
kn_capture *kn_capture_new(kn_device *dev, kn_capture_build build, void *user, int keep);
void kn_capture_free(kn_capture *c);
void kn_capture_clear(kn_capture *c); /* drop every capture (e.g. before the tensors they read are freed) */
int kn_capture_count(const kn_capture *c);
size_t kn_capture_scratch_bytes(const kn_capture *c); /* intermediates, shared by all its captures */
/* Build, schedule and compile key's graph now if it is not captured yet, without running it. */
int kn_capture_prepare(kn_capture *c, int64_t key, char *err, size_t errlen);
/* Replay key (capturing it first if needed): in[i] (in_bytes[i]) into input i, run with vals[v] bound to io.vars[v],
 * then out_bytes[i] bytes of output i into out[i]. 0, or -1 with err. */
int kn_capture_run(kn_capture *c, int64_t key, const void *const *in, const size_t *in_bytes, const int64_t *vals,
                   void *const *out, const size_t *out_bytes, char *err, size_t errlen);

/* ---- introspection for tests and DEBUG ---- */
typedef struct {
  int kernels;       /* kernels in the last schedule */
  int64_t compiled;  /* kernels compiled (not from a cache) */
  int64_t cache_hits;    /* read from the disk cache */
  int64_t memory_hits;   /* compiled or loaded earlier in this process */
  /* process totals: over one kn_plan_new, compiled + cache_hits + memory_hits grow by its kernel count */
} kn_sched_stats;
kn_sched_stats kn_last_schedule(void);
/* Schedule without running: number of kernels realizing these tensors would take (-1 on error). */
int kn_schedule_count(kn_t *ts, int n);

#endif
