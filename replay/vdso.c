/*
 * vdso.c - makes a tracee's clock reads visible: at the exec stop, each vDSO clock entry point
 * (clock_gettime, gettimeofday, time) is overwritten with `mov $NR, %eax; syscall; ret`, so the
 * read becomes a real system call that the replay's seccomp filter stops and answers from virtual
 * time. The vDSO getrandom (kernels 6.11+) is made to return -ENOSYS so libc falls back to the
 * getrandom system call, which is served from the recording.
 *
 * Also here: where a process's dynamic loader lives, so calls it makes can be told apart.
 *
 * The vDSO pages are read-only and process_vm_writev refuses them; writes through /proc/PID/mem
 * (FOLL_FORCE) go to a private copy of the page, as for a debugger's breakpoint. The symbols come
 * from the vDSO's own ELF dynamic symbol table, read from the tracee.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "common/util.h"
#include "replay/internal.h"

#define VDSO_MAX (64u << 10)

/* The value of auxiliary vector entry `type` of process pid; 0 when it has none. */
static int auxv_get(pid_t pid, uint64_t type, uint64_t *val)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/auxv", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	Elf64_auxv_t av[128];
	ssize_t n = read(fd, av, sizeof(av));
	close(fd);
	*val = 0;
	for (ssize_t i = 0; n > 0 && i < n / (ssize_t)sizeof(av[0]); i++)
		if (av[i].a_type == type)
			*val = av[i].a_un.a_val;
	return 0;
}

static int vdso_range(pid_t pid, uint64_t *base, uint64_t *size)
{
	char path[64], line[512];
	*size = 0;
	int rc = auxv_get(pid, AT_SYSINFO_EHDR, base);
	if (rc < 0)
		return rc;
	if (!*base)
		return -ENOENT; /* no vDSO: clock reads are system calls already */
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	*size = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (strstr(line, "[vdso]") && sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo == *base)
			*size = hi - lo;
	}
	fclose(f);
	return *size ? 0 : -ENOENT;
}

struct stub {
	const char *names[2];
	uint8_t code[8];
};

static const struct stub stubs[] = {
	{{"__vdso_clock_gettime", "clock_gettime"}, {0xb8, 228, 0, 0, 0, 0x0f, 0x05, 0xc3}},
	{{"__vdso_gettimeofday", "gettimeofday"}, {0xb8, 96, 0, 0, 0, 0x0f, 0x05, 0xc3}},
	{{"__vdso_time", "time"}, {0xb8, 201, 0, 0, 0, 0x0f, 0x05, 0xc3}},
	/* mov $-ENOSYS, %rax; ret */
	{{"__vdso_getrandom", "getrandom"}, {0x48, 0xc7, 0xc0, 0xda, 0xff, 0xff, 0xff, 0xc3}},
};

int replay__vdso_patch(pid_t pid, int memfd, char *err, size_t errlen)
{
	uint64_t base, size;
	int ret = vdso_range(pid, &base, &size);
	if (ret == -ENOENT)
		return 0;
	if (ret < 0) {
		snprintf(err, errlen, "vDSO of %d: %s", pid, strerror(-ret));
		return ret;
	}
	if (size > VDSO_MAX || size < sizeof(Elf64_Ehdr)) {
		snprintf(err, errlen, "vDSO of %d is %lu bytes: unexpected", pid,
			 (unsigned long)size);
		return -EINVAL;
	}
	uint8_t *img = xmalloc(size);
	int patched = 0;
	if (pread(memfd, img, size, (off_t)base) != (ssize_t)size) {
		ret = -errno;
		snprintf(err, errlen, "cannot read the vDSO of %d: %s", pid, strerror(errno));
		goto cleanup;
	}
	const Elf64_Ehdr *eh = (const void *)img;
	ret = -EINVAL;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_phentsize != sizeof(Elf64_Phdr) ||
	    eh->e_shoff > size || eh->e_shnum > (size - eh->e_shoff) / sizeof(Elf64_Shdr) ||
	    eh->e_phoff > size || eh->e_phnum > (size - eh->e_phoff) / sizeof(Elf64_Phdr)) {
		snprintf(err, errlen, "vDSO of %d: not a 64-bit ELF image I can read", pid);
		goto cleanup;
	}
	uint64_t load_vaddr = 0;
	const Elf64_Phdr *ph = (const void *)(img + eh->e_phoff);
	for (int i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_LOAD) {
			load_vaddr = ph[i].p_vaddr - ph[i].p_offset;
			break;
		}
	const Elf64_Shdr *sh = (const void *)(img + eh->e_shoff);
	const Elf64_Shdr *dynsym = NULL, *dynstr = NULL;
	for (int i = 0; i < eh->e_shnum; i++)
		if (sh[i].sh_type == SHT_DYNSYM && sh[i].sh_link < eh->e_shnum) {
			dynsym = &sh[i];
			dynstr = &sh[sh[i].sh_link];
		}
	if (!dynsym || dynsym->sh_offset > size || dynsym->sh_size > size - dynsym->sh_offset ||
	    dynstr->sh_offset > size || dynstr->sh_size > size - dynstr->sh_offset) {
		snprintf(err, errlen, "vDSO of %d: no readable dynamic symbol table", pid);
		goto cleanup;
	}
	const Elf64_Sym *sym = (const void *)(img + dynsym->sh_offset);
	size_t nsym = dynsym->sh_size / sizeof(Elf64_Sym);
	const char *str = (const char *)img + dynstr->sh_offset;
	uint64_t done[16];
	int ndone = 0;
	for (size_t i = 0; i < nsym; i++) {
		if (sym[i].st_name >= dynstr->sh_size || ELF64_ST_TYPE(sym[i].st_info) != STT_FUNC)
			continue;
		const char *name = str + sym[i].st_name;
		if (!memchr(name, 0, dynstr->sh_size - sym[i].st_name))
			continue;
		for (size_t k = 0; k < KP_ARRAY_SIZE(stubs); k++) {
			if (strcmp(name, stubs[k].names[0]) && strcmp(name, stubs[k].names[1]))
				continue;
			uint64_t off = sym[i].st_value - load_vaddr;
			if (off > size - sizeof(stubs[k].code))
				continue;
			uint64_t addr = base + off;
			bool seen = false;
			for (int d = 0; d < ndone; d++)
				seen |= done[d] == addr;
			if (seen || ndone == (int)KP_ARRAY_SIZE(done))
				continue;
			if (pwrite(memfd, stubs[k].code, sizeof(stubs[k].code), (off_t)addr) !=
			    (ssize_t)sizeof(stubs[k].code)) {
				ret = -errno;
				snprintf(err, errlen, "cannot patch %s in the vDSO of %d: %s", name,
					 pid, strerror(errno));
				goto cleanup;
			}
			done[ndone++] = addr;
			patched++;
		}
	}
	ret = patched;
cleanup:
	free(img);
	return ret;
}

int replay__loader_range(pid_t pid, uint64_t *lo, uint64_t *hi)
{
	char path[64], line[4096 + 128], file[4096] = "";
	uint64_t base;
	int rc = auxv_get(pid, AT_BASE, &base);
	if (rc < 0)
		return rc;
	if (!base)
		return -ENOENT;
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	*lo = UINT64_MAX;
	*hi = 0;
	/* first the file mapped at AT_BASE, then every mapping of that file */
	for (int pass = 0; pass < 2; pass++) {
		rewind(f);
		while (fgets(line, sizeof(line), f)) {
			unsigned long a, b;
			int off = 0;
			if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &a, &b, &off) < 2 || !off)
				continue;
			char *name = line + off;
			name[strcspn(name, "\n")] = 0;
			if (pass == 0 && a == base) {
				snprintf(file, sizeof(file), "%s", name);
				break;
			}
			if (pass == 1 && file[0] && !strcmp(name, file)) {
				if (a < *lo)
					*lo = a;
				if (b > *hi)
					*hi = b;
			}
		}
		if (!file[0])
			break;
	}
	fclose(f);
	return *hi > *lo ? 0 : -ENOENT;
}
