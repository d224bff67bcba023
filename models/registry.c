/* The model registry: a table of short names, and a resumable download (libcurl) into the cache directory. The
 * file is written as NAME.part and renamed when complete, so an interrupted download is never mistaken for a
 * model. */
#include "registry.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
  const char *name, *file, *url;
} entry;

#define HF "https://huggingface.co/"
static const entry models[] = {
  {"qwen2.5:0.5b", "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf", HF "bartowski/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf"},
  {"qwen2.5:1.5b", "Qwen2.5-1.5B-Instruct-Q4_K_M.gguf", HF "bartowski/Qwen2.5-1.5B-Instruct-GGUF/resolve/main/Qwen2.5-1.5B-Instruct-Q4_K_M.gguf"},
  {"qwen2.5:3b", "Qwen2.5-3B-Instruct-Q4_K_M.gguf", HF "bartowski/Qwen2.5-3B-Instruct-GGUF/resolve/main/Qwen2.5-3B-Instruct-Q4_K_M.gguf"},
  {"qwen2.5:7b", "Qwen2.5-7B-Instruct-Q4_K_M.gguf", HF "bartowski/Qwen2.5-7B-Instruct-GGUF/resolve/main/Qwen2.5-7B-Instruct-Q4_K_M.gguf"},
  {"qwen2.5:14b", "Qwen2.5-14B-Instruct-Q4_K_M.gguf", HF "bartowski/Qwen2.5-14B-Instruct-GGUF/resolve/main/Qwen2.5-14B-Instruct-Q4_K_M.gguf"},
  {"qwen2.5-coder:7b", "Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf", HF "bartowski/Qwen2.5-Coder-7B-Instruct-GGUF/resolve/main/Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf"},
  {"qwen2.5-coder:14b", "Qwen2.5-Coder-14B-Instruct-Q4_K_M.gguf", HF "bartowski/Qwen2.5-Coder-14B-Instruct-GGUF/resolve/main/Qwen2.5-Coder-14B-Instruct-Q4_K_M.gguf"},
  {"qwen3:4b", "Qwen3-4B-Q4_K_M.gguf", HF "bartowski/Qwen_Qwen3-4B-GGUF/resolve/main/Qwen_Qwen3-4B-Q4_K_M.gguf"},
  {"qwen3:8b", "Qwen3-8B-Q4_K_M.gguf", HF "bartowski/Qwen_Qwen3-8B-GGUF/resolve/main/Qwen_Qwen3-8B-Q4_K_M.gguf"},
  {"qwen3:14b", "Qwen3-14B-Q4_K_M.gguf", HF "bartowski/Qwen_Qwen3-14B-GGUF/resolve/main/Qwen_Qwen3-14B-Q4_K_M.gguf"},
  {"llama3.2:1b", "Llama-3.2-1B-Instruct-Q4_K_M.gguf", HF "bartowski/Llama-3.2-1B-Instruct-GGUF/resolve/main/Llama-3.2-1B-Instruct-Q4_K_M.gguf"},
  {"llama3.2:3b", "Llama-3.2-3B-Instruct-Q4_K_M.gguf", HF "bartowski/Llama-3.2-3B-Instruct-GGUF/resolve/main/Llama-3.2-3B-Instruct-Q4_K_M.gguf"},
  {"llama3.1:8b", "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", HF "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF/resolve/main/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"},
};

void kn_registry_print(FILE *f) {
  fprintf(f, "%-20s %s\n", "name", "file (downloaded into $KILN_CACHE_DIR/models on first use)");
  for (size_t i = 0; i < sizeof models / sizeof *models; i++) fprintf(f, "%-20s %s\n", models[i].name, models[i].file);
}

static int models_dir(char *out, size_t n) {
  const char *d = getenv("KILN_CACHE_DIR"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
  if (d && *d) snprintf(out, n, "%s/models", d);
  else if (x && *x) snprintf(out, n, "%s/kiln/models", x);
  else snprintf(out, n, "%s/.cache/kiln/models", h ? h : ".");
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", out);
  for (char *p = tmp + 1; *p; p++)
    if (*p == '/') *p = 0, mkdir(tmp, 0755), *p = '/';
  return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

static int progress(void *ud, curl_off_t total, curl_off_t now, curl_off_t ut, curl_off_t un) {
  const char *name = ud;
  if (total > 0) {
    int w = 40, fill = (int)(now * w / total);
    fprintf(stderr, "\r%s [%.*s%*s] %5.1f%% %lld/%lld MB", name, fill, "########################################", w - fill,
            "", 100.0 * now / total, (long long)(now >> 20), (long long)(total >> 20));
  }
  return 0;
}

static int download(const entry *e, const char *path, char *err, size_t errlen) {
  char part[4200];
  snprintf(part, sizeof part, "%s.part", path);
  FILE *f = fopen(part, "ab");
  if (!f) return snprintf(err, errlen, "cannot write %s: %s", part, strerror(errno)), -1;
  long have = ftell(f);
  CURL *c = curl_easy_init();
  if (!c) return fclose(f), snprintf(err, errlen, "libcurl failed to start"), -1;
  curl_easy_setopt(c, CURLOPT_URL, e->url);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)have);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)e->name);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 20L);
  fprintf(stderr, "downloading %s from %s\n", e->name, e->url);
  CURLcode rc = curl_easy_perform(c);
  curl_easy_cleanup(c);
  if (fclose(f) || rc != CURLE_OK)
    return fprintf(stderr, "\n"), snprintf(err, errlen, "downloading %s from %s failed: %s (partial file kept in %s; rerun to resume)",
                                           e->name, e->url, curl_easy_strerror(rc), part), -1;
  fprintf(stderr, "\n");
  if (rename(part, path)) return snprintf(err, errlen, "renaming %s: %s", part, strerror(errno)), -1;
  return 0;
}

int kn_registry_resolve(const char *name, char *path, size_t pathlen, char *err, size_t errlen) {
  struct stat st;
  if (stat(name, &st) == 0) return snprintf(path, pathlen, "%s", name), 0;
  for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
    if (strcmp(models[i].name, name)) continue;
    char dir[4096];
    if (models_dir(dir, sizeof dir)) return snprintf(err, errlen, "cannot create the model directory %s", dir), -1;
    snprintf(path, pathlen, "%s/%s", dir, models[i].file);
    if (stat(path, &st) == 0) return 0;
    return download(&models[i], path, err, errlen);
  }
  return snprintf(err, errlen, "'%s' is neither a file nor a known model name (kiln run --list-models)", name), -1;
}
