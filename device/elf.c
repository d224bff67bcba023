/* A checked reader for the ELF64 objects LLVM emits: section table, symbol table and RELA relocations. Objects come
 * from the disk cache too, so every header field is validated against the file size before it is used. */
#include "elf.h"
#include "base/env.h"

#include <elf.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* [off, off+len) inside a file of n bytes, without overflow */
static bool in_file(uint64_t off, uint64_t len, size_t n) { return off <= n && len <= n - off; }

static void copy_name(char *dst, size_t cap, const uint8_t *obj, size_t n, const Elf64_Shdr *strtab, uint32_t idx) {
  dst[0] = 0;
  if (!strtab || idx >= strtab->sh_size || !in_file(strtab->sh_offset, strtab->sh_size, n)) return;
  const char *s = (const char *)obj + strtab->sh_offset + idx;
  size_t max = strtab->sh_size - idx;
  size_t len = strnlen(s, max);
  if (len >= cap) len = cap - 1;
  memcpy(dst, s, len);
  dst[len] = 0;
}

static int read_shdrs(const uint8_t *obj, size_t n, const Elf64_Ehdr *h, Elf64_Shdr **out, char *err, size_t errlen) {
  if (h->e_shentsize != sizeof(Elf64_Shdr))
    return kn_errf(err, errlen, "ELF e_shentsize %u (expected %zu)", h->e_shentsize, sizeof(Elf64_Shdr));
  if (!in_file(h->e_shoff, (uint64_t)h->e_shnum * sizeof(Elf64_Shdr), n))
    return kn_errf(err, errlen, "ELF section table (offset %llu, %u entries) runs past the end of the %zu-byte object",
                (unsigned long long)h->e_shoff, h->e_shnum, n);
  Elf64_Shdr *sh = calloc(h->e_shnum ? h->e_shnum : 1, sizeof *sh);
  if (!sh) return kn_errf(err, errlen, "out of memory");
  memcpy(sh, obj + h->e_shoff, (size_t)h->e_shnum * sizeof *sh);
  for (int i = 0; i < h->e_shnum; i++)
    if (sh[i].sh_type != SHT_NOBITS && !in_file(sh[i].sh_offset, sh[i].sh_size, n)) {
      free(sh);
      return kn_errf(err, errlen, "ELF section %d (offset %llu, %llu bytes) runs past the end of the %zu-byte object", i,
                  (unsigned long long)sh[i].sh_offset, (unsigned long long)sh[i].sh_size, n);
    }
  *out = sh;
  return 0;
}

static int read_symbols(const uint8_t *obj, size_t n, const Elf64_Shdr *sh, int nsh, kn_elf *e, char *err,
                        size_t errlen) {
  for (int i = 0; i < nsh; i++) {
    if (sh[i].sh_type != SHT_SYMTAB) continue;
    if (sh[i].sh_entsize != sizeof(Elf64_Sym) || sh[i].sh_link >= (uint32_t)nsh)
      return kn_errf(err, errlen, "ELF symbol table (section %d) has a bad entry size or string table link", i);
    size_t cnt = sh[i].sh_size / sizeof(Elf64_Sym);
    e->sym = calloc(cnt ? cnt : 1, sizeof *e->sym);
    if (!e->sym) return kn_errf(err, errlen, "out of memory");
    for (size_t k = 0; k < cnt; k++) {
      Elf64_Sym s;
      memcpy(&s, obj + sh[i].sh_offset + k * sizeof s, sizeof s);
      kn_elf_symbol *d = &e->sym[k];
      copy_name(d->name, sizeof d->name, obj, n, &sh[sh[i].sh_link], s.st_name);
      d->section = s.st_shndx > 0 && s.st_shndx < nsh ? s.st_shndx : -1;
      d->value = s.st_value;
      d->size = s.st_size;
      d->type = ELF64_ST_TYPE(s.st_info);
      d->bind = ELF64_ST_BIND(s.st_info);
      d->shndx = s.st_shndx;
      if (d->type == STT_SECTION && d->section >= 0) /* section symbols are nameless; use the section's name */
        snprintf(d->name, sizeof d->name, "%s", e->sec[d->section].name);
    }
    e->nsym = (int)cnt;
    return 0; /* one symbol table per relocatable object */
  }
  return 0;
}

static int read_relocs(const uint8_t *obj, const Elf64_Shdr *sh, int nsh, kn_elf *e, char *err, size_t errlen) {
  size_t total = 0;
  for (int i = 0; i < nsh; i++)
    if (sh[i].sh_type == SHT_RELA && sh[i].sh_entsize == sizeof(Elf64_Rela)) total += sh[i].sh_size / sizeof(Elf64_Rela);
  e->rel = calloc(total ? total : 1, sizeof *e->rel);
  if (!e->rel) return kn_errf(err, errlen, "out of memory");
  for (int i = 0; i < nsh; i++) {
    if (sh[i].sh_type != SHT_RELA || sh[i].sh_entsize != sizeof(Elf64_Rela)) continue;
    if (sh[i].sh_info >= (uint32_t)nsh) return kn_errf(err, errlen, "ELF relocation section %d targets section %u", i, sh[i].sh_info);
    size_t cnt = sh[i].sh_size / sizeof(Elf64_Rela);
    for (size_t k = 0; k < cnt; k++) {
      Elf64_Rela r;
      memcpy(&r, obj + sh[i].sh_offset + k * sizeof r, sizeof r);
      kn_elf_rel *d = &e->rel[e->nrel++];
      d->section = (int)sh[i].sh_info;
      d->offset = r.r_offset;
      d->type = ELF64_R_TYPE(r.r_info);
      d->addend = r.r_addend;
      uint32_t si = ELF64_R_SYM(r.r_info);
      d->sym = si < (uint32_t)e->nsym ? (int)si : -1;
      if (si < (uint32_t)e->nsym) snprintf(d->symname, sizeof d->symname, "%s", e->sym[si].name);
    }
  }
  return 0;
}

int kn_elf_parse(const uint8_t *obj, size_t n, kn_elf *e, char *err, size_t errlen) {
  memset(e, 0, sizeof *e);
  Elf64_Ehdr h;
  if (!obj || n < sizeof h) return kn_errf(err, errlen, "object too small for an ELF header (%zu bytes)", n);
  memcpy(&h, obj, sizeof h);
  if (memcmp(h.e_ident, ELFMAG, SELFMAG)) return kn_errf(err, errlen, "not an ELF object (bad magic)");
  if (h.e_ident[EI_CLASS] != ELFCLASS64 || h.e_ident[EI_DATA] != ELFDATA2LSB)
    return kn_errf(err, errlen, "ELF object is not 64-bit little-endian");
  e->machine = h.e_machine;
  e->type = h.e_type;
  e->flags = h.e_flags;
  Elf64_Shdr *sh = NULL;
  if (read_shdrs(obj, n, &h, &sh, err, errlen)) return -1;
  int nsh = h.e_shnum;
  const Elf64_Shdr *shstr = h.e_shstrndx < nsh ? &sh[h.e_shstrndx] : NULL;
  e->sec = calloc(nsh ? nsh : 1, sizeof *e->sec);
  if (!e->sec) {
    free(sh);
    return kn_errf(err, errlen, "out of memory");
  }
  e->nsec = nsh;
  for (int i = 0; i < nsh; i++) {
    kn_elf_section *s = &e->sec[i];
    copy_name(s->name, sizeof s->name, obj, n, shstr, sh[i].sh_name);
    s->type = sh[i].sh_type;
    s->flags = sh[i].sh_flags;
    s->size = sh[i].sh_size;
    s->addralign = sh[i].sh_addralign;
    s->data = sh[i].sh_type == SHT_NOBITS ? NULL : obj + sh[i].sh_offset;
    s->exec = (sh[i].sh_flags & SHF_EXECINSTR) != 0;
  }
  int rc = read_symbols(obj, n, sh, nsh, e, err, errlen);
  if (!rc) rc = read_relocs(obj, sh, nsh, e, err, errlen);
  free(sh);
  if (rc) kn_elf_free(e);
  return rc;
}

void kn_elf_free(kn_elf *e) {
  free(e->sec);
  free(e->sym);
  free(e->rel);
  memset(e, 0, sizeof *e);
}
