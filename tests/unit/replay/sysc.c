/* Tests replay/sysc.c: the seccomp program stops exactly the calls of the table (argument filters
 * included), checked by running it in a small classic-BPF interpreter for every number. */
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>

#include "replay/sysc.h"
#include "tests/test.h"

static uint32_t run(const struct sock_filter *f, int n, const struct seccomp_data *d)
{
	uint32_t A = 0;
	for (int pc = 0; pc < n;) {
		const struct sock_filter *i = &f[pc];
		switch (i->code) {
		case BPF_LD | BPF_W | BPF_ABS:
			memcpy(&A, (const uint8_t *)d + i->k, 4);
			pc++;
			break;
		case BPF_JMP | BPF_JEQ | BPF_K:
			pc += 1 + (A == i->k ? i->jt : i->jf);
			break;
		case BPF_JMP | BPF_JGT | BPF_K:
			pc += 1 + (A > i->k ? i->jt : i->jf);
			break;
		case BPF_JMP | BPF_JGE | BPF_K:
			pc += 1 + (A >= i->k ? i->jt : i->jf);
			break;
		case BPF_JMP | BPF_JA:
			pc += 1 + (int)i->k;
			break;
		case BPF_RET | BPF_K:
			return i->k;
		default:
			kt_fail(__FILE__, __LINE__, "unexpected instruction %#x at %d", i->code,
				pc);
		}
	}
	kt_fail(__FILE__, __LINE__, "fell off the end");
}

TEST(replay_seccomp_program_matches_table)
{
	static struct sock_filter f[1024];
	int n = sysc_filter_build(f, 1024);
	CHECK_GT_INT(n, 0);
	CHECK_LT_INT(n, 256);
	for (int nr = 0; nr < 600; nr++) {
		struct seccomp_data d = {.nr = nr, .arch = AUDIT_ARCH_X86_64};
		const struct sysc *s = sysc_by_nr(nr);
		uint32_t want = s ? SECCOMP_RET_USER_NOTIF : SECCOMP_RET_ALLOW;
		if (s && (s->cap.flags & KP_CAPD_ARGF)) {
			/* only the listed values stop */
			d.args[s->cap.argf_idx] = s->cap.argf_vals[0];
			CHECK_EQ_UINT(run(f, n, &d), SECCOMP_RET_USER_NOTIF);
			d.args[s->cap.argf_idx] = 0x7777;
			want = SECCOMP_RET_ALLOW;
		}
		CHECKF(run(f, n, &d) == want, "syscall %d (%s)", nr, sysc_name(nr));
	}
	/* other architectures and x32 pass untouched */
	struct seccomp_data d = {.nr = 0, .arch = AUDIT_ARCH_I386};
	CHECK_EQ_UINT(run(f, n, &d), SECCOMP_RET_ALLOW);
	d = (struct seccomp_data){.nr = 0x40000000, .arch = AUDIT_ARCH_X86_64};
	CHECK_EQ_UINT(run(f, n, &d), SECCOMP_RET_ALLOW);
	CHECK(sysc_argf_ok(sysc_by_name("fcntl"), (__u64[6]){3, F_DUPFD_CLOEXEC}));
	CHECK(!sysc_argf_ok(sysc_by_name("fcntl"), (__u64[6]){3, F_GETFL}));
}

TEST(replay_sysc_descs_are_sane)
{
	static struct kp_cap_desc d[KP_CAP_NR_MAX];
	sysc_fill_descs(d);
	int last = -1;
	for (int i = 0; i < sysc_count(); i++) {
		const struct sysc *s = sysc_at(i);
		CHECKF(s->nr > last, "%s out of order", s->name);
		last = s->nr;
		CHECK(d[s->nr].flags & KP_CAPD_RECORD);
		CHECK(d[s->nr].pay_arg < 6 && d[s->nr].aux_arg < 6 && d[s->nr].fd_arg < 6);
		CHECK(sysc_by_name(s->name) == s);
	}
	CHECK(sysc_by_nr(9) == NULL); /* mmap runs natively */
}
