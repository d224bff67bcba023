/* The kernel disk cache: SHA-256 against the FIPS test vectors, key sensitivity to every input, store/load round
 * trips on random objects, corrupt and truncated entries (detected, reported, removed, a miss), concurrent writers
 * from forked processes, CACHELEVEL=0, an unwritable directory, and list/verify/clear. */
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codegen/cache.h"
#include "codegen/sha256.h"
#include "check.h"



static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng;
}

static kn_target host = {.kind = KN_TARGET_CPU, .triple = "x86_64-pc-linux-gnu", .cpu = "znver4",
                         .features = "+avx2,+fma", .vector_bytes = 32, .ncores = 4};

static char *random_ir(size_t n) {
  char *s = malloc(n + 1);
  for (size_t i = 0; i < n; i++) s[i] = "abcdefgh %=@()\n0123456789"[rnd() % 25];
  s[n] = 0;
  return s;
}

static uint8_t *random_obj(size_t n) {
  uint8_t *p = malloc(n ? n : 1);
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rnd();
  return p;
}

static void path_of(const char *key, const char *suffix, char *out, size_t cap) {
  snprintf(out, cap, "%s/%s.%s", kn_cache_dir(), key, suffix);
}

static int count_files(const char *prefix) {
  DIR *d = opendir(kn_cache_dir());
  if (!d) return 0;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)))
    if (!strncmp(de->d_name, prefix, strlen(prefix))) n++;
  closedir(d);
  return n;
}

static void test_sha256(void) {
  struct {
    const char *msg, *hex;
  } v[] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
  };
  for (int i = 0; i < 3; i++) {
    kn_sha256 s;
    uint8_t d[32];
    char hex[65];
    kn_sha256_init(&s);
    kn_sha256_update(&s, v[i].msg, strlen(v[i].msg));
    kn_sha256_final(&s, d);
    kn_sha256_hex(d, 32, hex);
    check(!strcmp(hex, v[i].hex), "sha256('%s') = %s", v[i].msg, hex);
  }
  /* one million 'a', fed in uneven pieces to exercise the block buffering */
  kn_sha256 s;
  uint8_t d[32];
  char hex[65], a[997];
  memset(a, 'a', sizeof a);
  kn_sha256_init(&s);
  size_t left = 1000000;
  for (size_t k = 1; left; k = k % 997 + 1) {
    size_t take = k < left ? k : left;
    kn_sha256_update(&s, a, take);
    left -= take;
  }
  kn_sha256_final(&s, d);
  kn_sha256_hex(d, 32, hex);
  check(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "sha256(1M a) = %s", hex);
}

static void test_keys(void) {
  char *ir = random_ir(3000);
  char k0[33], k1[33];
  kn_cache_key(ir, &host, 2, k0);
  kn_cache_key(ir, &host, 2, k1);
  int hex = strlen(k0) == 32;
  for (int i = 0; i < 32; i++) hex &= (k0[i] >= '0' && k0[i] <= '9') || (k0[i] >= 'a' && k0[i] <= 'f');
  check(hex && !strcmp(k0, k1), "key is 32 hex chars and deterministic (%s)", k0);
  kn_target t = host;
  kn_cache_key(ir, &t, 3, k1);
  check(strcmp(k0, k1), "key changes with the opt level");
  snprintf(t.triple, sizeof t.triple, "aarch64-unknown-linux-gnu");
  kn_cache_key(ir, &t, 2, k1);
  check(strcmp(k0, k1), "key changes with the triple");
  t = host;
  snprintf(t.cpu, sizeof t.cpu, "znver3");
  kn_cache_key(ir, &t, 2, k1);
  check(strcmp(k0, k1), "key changes with the cpu");
  t = host;
  snprintf(t.features, sizeof t.features, "+avx2,-fma");
  kn_cache_key(ir, &t, 2, k1);
  check(strcmp(k0, k1), "key changes with the features");
  for (int i = 0; i < 20; i++) { /* a one-character change anywhere in the IR */
    size_t pos = rnd() % 3000;
    char c = ir[pos];
    ir[pos] = c == 'a' ? 'b' : 'a';
    kn_cache_key(ir, &host, 2, k1);
    check(strcmp(k0, k1), "key changes with IR byte %zu", pos);
    ir[pos] = c;
  }
  /* field boundaries matter: moving a character from the cpu to the features changes the key */
  kn_target a = host, b = host;
  snprintf(a.cpu, sizeof a.cpu, "x");
  snprintf(a.features, sizeof a.features, "yz");
  snprintf(b.cpu, sizeof b.cpu, "xy");
  snprintf(b.features, sizeof b.features, "z");
  kn_cache_key(ir, &a, 2, k0);
  kn_cache_key(ir, &b, 2, k1);
  check(strcmp(k0, k1), "key separates fields");
  free(ir);
}

/* Store a random entry; returns its key (static storage per call site is the caller's). */
static void store_random(char key[33], uint8_t **obj, size_t *n, char **ir) {
  *ir = random_ir(100 + rnd() % 5000);
  *n = 1 + rnd() % 20000;
  *obj = random_obj(*n);
  kn_cache_key(*ir, &host, 2, key);
  check(!kn_cache_store(key, "r_4_16", "r_4_16_entry", &host, *ir, *obj, *n), "store %s", key);
}

static void test_round_trip(void) {
  for (int r = 0; r < 5; r++) {
    char key[33], *ir;
    uint8_t *obj, *got = NULL;
    size_t n, gn = 0;
    store_random(key, &obj, &n, &ir);
    int64_t h0, m0, c0, h1, m1, c1;
    kn_cache_counts(&h0, &m0, &c0);
    check(kn_cache_load(key, &got, &gn) == 1 && gn == n && !memcmp(got, obj, n), "round trip %d (%zu bytes)", r, n);
    free(got);
    kn_cache_load(key, &got, &gn);
    free(got);
    kn_cache_counts(&h1, &m1, &c1);
    check(h1 == h0 + 2 && m1 == m0 && c1 == c0, "two hits counted (%lld -> %lld)", (long long)h0, (long long)h1);
    kn_cache_entry e;
    char *gir = NULL;
    check(!kn_cache_read_entry(key, &e, &gir, &got, &gn) && e.ok && !strcmp(e.name, "r_4_16") &&
              !strcmp(e.entry, "r_4_16_entry") && !strcmp(e.triple, host.triple) && !strcmp(e.cpu, host.cpu) &&
              e.hits == 2 && gir && !strcmp(gir, ir) && gn == n && !memcmp(got, obj, n) && e.age_s < 60,
          "read_entry returns header, IR, object and 2 hits (hits %lld)", (long long)e.hits);
    free(gir), free(got), free(obj), free(ir);
  }
  char k[33] = "0123456789abcdef0123456789abcdef";
  uint8_t *got = (uint8_t *)1;
  size_t gn = 7;
  check(kn_cache_load(k, &got, &gn) == 0 && !got && !gn, "absent key is a miss");
  check(kn_cache_load("../../../etc/passwd", &got, &gn) == 0, "malformed key is a miss");
  check(kn_cache_store("../x", "n", "e", &host, "ir", (const uint8_t *)"o", 1) != 0, "malformed key not stored");
}

/* Damage an entry with fn, then a load must report it (DEBUG>=1), remove it and miss. */
static void expect_corrupt(const char *what, void (*damage)(const char *path, size_t size, size_t arg), size_t arg) {
  char key[33], *ir, path[4200], log[4200];
  uint8_t *obj, *got = NULL;
  size_t n, gn;
  store_random(key, &obj, &n, &ir);
  path_of(key, "entry", path, sizeof path);
  struct stat st;
  stat(path, &st);
  damage(path, (size_t)st.st_size, arg % (size_t)st.st_size);
  kn_cache_entry e;
  check(kn_cache_read_entry(key, &e, NULL, NULL, NULL) != 0 && !e.ok, "%s: read_entry flags it", what);
  /* capture stderr around the load to see the report */
  snprintf(log, sizeof log, "%s/stderr.log", kn_cache_dir());
  fflush(stderr);
  int saved = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(fd, 2);
  close(fd);
  int64_t c0, c1;
  kn_cache_counts(NULL, NULL, &c0);
  int hit = kn_cache_load(key, &got, &gn);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  kn_cache_counts(NULL, NULL, &c1);
  char msg[8192] = "";
  FILE *f = fopen(log, "r");
  if (f) {
    msg[fread(msg, 1, sizeof msg - 1, f)] = 0;
    fclose(f);
  }
  unlink(log);
  check(!hit && !got, "%s: load misses", what);
  check(c1 == c0 + 1, "%s: counted as corrupt", what);
  check(access(path, F_OK) != 0, "%s: entry removed", what);
  check(strstr(msg, path) && strstr(msg, "corrupt"), "%s: reported with the path (got '%s')", what, msg);
  free(obj), free(ir);
}

static void flip_byte(const char *path, size_t size, size_t pos) {
  int fd = open(path, O_RDWR);
  uint8_t c;
  if (pread(fd, &c, 1, (off_t)pos) == 1) {
    c ^= 0x20;
    if (pwrite(fd, &c, 1, (off_t)pos) != 1) printf("pwrite failed\n");
  }
  close(fd);
}
static void cut(const char *path, size_t size, size_t len) {
  if (truncate(path, (off_t)len)) printf("truncate failed\n");
}
static void cut_end(const char *path, size_t size, size_t k) {
  if (truncate(path, (off_t)(size - 1 - k % 40))) printf("truncate failed\n");
}
static void append(const char *path, size_t size, size_t k) {
  FILE *f = fopen(path, "ab");
  fputs("junk", f);
  fclose(f);
}

static void test_corrupt(void) {
  expect_corrupt("flipped magic byte", flip_byte, 2);
  expect_corrupt("flipped header byte", flip_byte, 20);
  for (int i = 0; i < 6; i++) expect_corrupt("flipped random byte", flip_byte, (size_t)rnd());
  expect_corrupt("truncated to 0", cut, 0);
  expect_corrupt("truncated to 7", cut, 7);
  expect_corrupt("truncated to 60", cut, 60);
  expect_corrupt("truncated near the end", cut_end, (size_t)rnd());
  expect_corrupt("trailing junk", append, 0);
  /* an intact entry under another key's name */
  char ka[33], kb[33], *ira, *irb, pa[4200], pb[4200];
  uint8_t *oa, *ob, *got = NULL;
  size_t na, nb, gn;
  store_random(ka, &oa, &na, &ira);
  store_random(kb, &ob, &nb, &irb);
  path_of(ka, "entry", pa, sizeof pa);
  path_of(kb, "entry", pb, sizeof pb);
  check(!rename(pa, pb), "rename for the wrong-key case");
  int saved = dup(2), fd = open("/dev/null", O_WRONLY);
  dup2(fd, 2), close(fd);
  int hit = kn_cache_load(kb, &got, &gn);
  dup2(saved, 2), close(saved);
  check(!hit && access(pb, F_OK) != 0, "entry holding another key is refused and removed");
  free(oa), free(ob), free(ira), free(irb), free(got);
}

/* Several processes store the same key at once while this one keeps loading it: every load is a miss or a whole,
 * valid entry; at the end the entry is valid and no temporary file is left. */
static void test_concurrent(void) {
  char *ir = random_ir(4000), key[33];
  kn_cache_key(ir, &host, 2, key);
  enum { NPROC = 6, ROUNDS = 40 };
  size_t sizes[NPROC];
  uint8_t *objs[NPROC];
  for (int p = 0; p < NPROC; p++) {
    sizes[p] = 2000 + 3000 * (size_t)p;
    objs[p] = random_obj(sizes[p]);
  }
  pid_t pids[NPROC];
  for (int p = 0; p < NPROC; p++) {
    pids[p] = fork();
    if (pids[p] == 0) {
      int bad = 0;
      for (int r = 0; r < ROUNDS; r++) bad |= kn_cache_store(key, "concurrent", "e", &host, ir, objs[p], sizes[p]) != 0;
      _exit(bad);
    }
  }
  int torn = 0, hits = 0;
  for (int r = 0; r < 300; r++) {
    uint8_t *got = NULL;
    size_t gn = 0;
    if (kn_cache_load(key, &got, &gn)) {
      hits++;
      int match = 0;
      for (int p = 0; p < NPROC; p++) match |= gn == sizes[p] && !memcmp(got, objs[p], gn);
      torn += !match;
    }
    free(got);
  }
  int children_ok = 1;
  for (int p = 0; p < NPROC; p++) {
    int status = 0;
    waitpid(pids[p], &status, 0);
    children_ok &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  int64_t c0, c1;
  kn_cache_counts(NULL, NULL, &c0);
  uint8_t *got = NULL;
  size_t gn = 0;
  int final = kn_cache_load(key, &got, &gn);
  kn_cache_counts(NULL, NULL, &c1);
  int match = 0;
  for (int p = 0; p < NPROC; p++) match |= final && gn == sizes[p] && !memcmp(got, objs[p], gn);
  check(children_ok, "concurrent writers all stored");
  check(!torn, "no load saw a mixed entry (%d of %d hits)", torn, hits);
  check(match && c1 == c0, "final entry is one writer's whole object");
  check(count_files(".tmp-") == 0, "no temporary files left");
  free(got), free(ir);
  for (int p = 0; p < NPROC; p++) free(objs[p]);
}

static void test_disabled(void) {
  setenv("CACHELEVEL", "0", 1);
  char *ir = random_ir(500), key[33], path[4200];
  kn_cache_key(ir, &host, 2, key);
  path_of(key, "entry", path, sizeof path);
  check(!kn_cache_enabled(), "CACHELEVEL=0 disables");
  check(kn_cache_store(key, "n", "e", &host, ir, (const uint8_t *)"abc", 3) != 0 && access(path, F_OK) != 0,
        "CACHELEVEL=0: nothing stored");
  unsetenv("CACHELEVEL");
  check(kn_cache_enabled(), "CACHELEVEL unset enables");
  check(!kn_cache_store(key, "n", "e", &host, ir, (const uint8_t *)"abc", 3), "store after re-enabling");
  setenv("CACHELEVEL", "0", 1);
  uint8_t *got = NULL;
  size_t gn;
  check(kn_cache_load(key, &got, &gn) == 0, "CACHELEVEL=0: present entry not used");
  unsetenv("CACHELEVEL");
  free(ir);
}

/* In a child: the store flag is sticky for the process, as it should be for a real run. */
static void test_unwritable(const char *base) {
  char file[4200], dir[4300];
  snprintf(file, sizeof file, "%s/plainfile", base);
  FILE *f = fopen(file, "w");
  if (f) fclose(f);
  snprintf(dir, sizeof dir, "%s/sub", file); /* a directory below a regular file: mkdir fails, even as root */
  int pfd[2];
  if (pipe(pfd)) return;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pfd[1], 2);
    close(pfd[0]);
    setenv("KILN_CACHE_DIR", dir, 1);
    char key[33];
    kn_cache_key("ir", &host, 2, key);
    int a = kn_cache_store(key, "n", "e", &host, "ir", (const uint8_t *)"x", 1);
    int b = kn_cache_store(key, "n", "e", &host, "ir", (const uint8_t *)"x", 1);
    uint8_t *got = NULL;
    size_t gn;
    int c = kn_cache_load(key, &got, &gn);
    _exit(a != 0 && b != 0 && c == 0 ? 0 : 1);
  }
  close(pfd[1]);
  char msg[4096] = "";
  size_t got = 0;
  ssize_t k;
  while ((k = read(pfd[0], msg + got, sizeof msg - 1 - got)) > 0) got += (size_t)k;
  msg[got] = 0;
  close(pfd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "unwritable dir: stores fail, loads miss, no crash");
  char *first = strstr(msg, "kernel cache off");
  check(first && strstr(msg, dir) && !strstr(first + 1, "kernel cache off"), "unwritable dir reported once: '%s'", msg);
  unlink(file);
}

typedef struct {
  int n, ok, hits;
} tally;

static int visit(const kn_cache_entry *e, void *ctx) {
  tally *t = ctx;
  t->n++;
  t->ok += e->ok;
  t->hits += (int)e->hits;
  return 0;
}

static void test_list_clear(void) {
  int before = kn_cache_clear();
  check(before >= 0, "clear before listing");
  char keys[5][33], *ir;
  uint8_t *obj;
  size_t n;
  for (int i = 0; i < 5; i++) {
    store_random(keys[i], &obj, &n, &ir);
    free(obj), free(ir);
  }
  uint8_t *got;
  size_t gn;
  for (int i = 0; i < 3; i++) kn_cache_load(keys[1], &got, &gn), free(got);
  char path[4200];
  path_of(keys[3], "entry", path, sizeof path);
  flip_byte(path, 0, 100);
  tally t = {0};
  int rc = kn_cache_list(visit, &t);
  check(!rc && t.n == 5 && t.ok == 4 && t.hits == 3, "list: 5 entries, 4 ok, 3 hits (got %d, %d, %d)", t.n, t.ok,
        t.hits);
  check(!kn_cache_remove(keys[3]) && kn_cache_remove(keys[3]) != 0, "remove one entry (then it is gone)");
  t = (tally){0};
  kn_cache_list(visit, &t);
  check(t.n == 4 && t.ok == 4, "list after remove: 4 entries");
  check(kn_cache_clear() == 4, "clear removes 4 entries");
  check(count_files("") == 2, "directory empty after clear (only . and ..)");
  t = (tally){0};
  check(!kn_cache_list(visit, &t) && t.n == 0, "list of an empty cache");
}

int main(void) {
  setenv("DEBUG", "1", 1); /* corrupt entries are reported at DEBUG>=1 */
  const char *base = getenv("KILN_CACHE_DIR");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/test_cache.%ld", base && *base ? base : "/tmp", (long)getpid());
  setenv("KILN_CACHE_DIR", dir, 1);
  unsetenv("CACHELEVEL");
  test_sha256();
  test_keys();
  test_round_trip();
  check(strcmp(kn_cache_dir(), dir) == 0, "cache dir follows KILN_CACHE_DIR");
  test_corrupt();
  test_concurrent();
  test_disabled();
  test_unwritable(dir);
  test_list_clear();
  rmdir(dir);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
