/* A read-only view of a 64-bit little-endian ELF relocatable object (sections, symbols, relocations) with every
 * offset and size checked against the file: codegen's disassembler and object checks, and device/amd's code-object
 * loader, share this one reader. */
#ifndef KN_ELF_H
#define KN_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  char name[64];
  uint32_t type;
  uint64_t flags, size, addralign;
  const uint8_t *data; /* NULL for SHT_NOBITS */
  bool exec;           /* SHF_EXECINSTR */
} kn_elf_section;

typedef struct {
  char name[96];
  int section; /* index into sec, -1 for undefined/absolute */
  uint64_t value, size;
  uint8_t type, bind; /* STT_*, STB_* */
  uint16_t shndx;     /* raw st_shndx (SHN_UNDEF 0, SHN_ABS 0xfff1, ...) */
} kn_elf_symbol;

typedef struct {
  int section; /* section the relocation patches */
  uint64_t offset;
  uint32_t type;
  int64_t addend;
  int sym; /* index into sym, -1 when out of range */
  char symname[96];
} kn_elf_rel;

typedef struct {
  uint16_t machine; /* EM_X86_64 62, EM_AARCH64 183, EM_AMDGPU 224 */
  uint16_t type;    /* ET_REL 1, ET_DYN 3 */
  uint32_t flags;   /* e_flags (EF_AMDGPU_MACH_* in the low byte on AMDGPU) */
  int nsec, nsym, nrel;
  kn_elf_section *sec;
  kn_elf_symbol *sym;
  kn_elf_rel *rel;
} kn_elf;

/* 0, or -1 with a message naming the bad field and its offset. e borrows obj: keep obj alive while using e. */
int kn_elf_parse(const uint8_t *obj, size_t n, kn_elf *e, char *err, size_t errlen);
void kn_elf_free(kn_elf *e);

#endif
