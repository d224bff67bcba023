/* The table of architectures: general.architecture -> the file that loads and runs it. Adding one is a file in
 * models/arch/ and one row here; a program may register its own at run time. */
#include <stdio.h>
#include <string.h>

#include "arch.h"

extern const kn_arch kn_arch_llama, kn_arch_qwen2, kn_arch_qwen3, kn_arch_gemma3;

static const kn_arch *const builtin[] = {&kn_arch_llama, &kn_arch_qwen2, &kn_arch_qwen3, &kn_arch_gemma3};

/* registered at run time; looked up before the built-in rows so a program can replace one */
static const kn_arch *registered[32];
static int n_registered;

const kn_arch *kn_arch_find(const char *name) {
  for (int i = n_registered - 1; i >= 0; i--)
    if (!strcmp(registered[i]->name, name)) return registered[i];
  for (size_t i = 0; i < sizeof builtin / sizeof *builtin; i++)
    if (!strcmp(builtin[i]->name, name)) return builtin[i];
  return NULL;
}

int kn_arch_register(const kn_arch *a) {
  if (!a || !a->name || !a->load || !a->forward) return -1;
  for (int i = 0; i < n_registered; i++)
    if (!strcmp(registered[i]->name, a->name)) return registered[i] = a, 0;
  if (n_registered == (int)(sizeof registered / sizeof *registered)) return -1;
  registered[n_registered++] = a;
  return 0;
}

void kn_arch_names(char *buf, size_t n) {
  size_t o = 0;
  buf[0] = 0;
  for (size_t i = 0; i < sizeof builtin / sizeof *builtin && o < n; i++)
    o += snprintf(buf + o, n - o, "%s%s", i ? ", " : "", builtin[i]->name);
  for (int i = 0; i < n_registered && o < n; i++)
    o += snprintf(buf + o, n - o, ", %s", registered[i]->name);
}
