/*
 * capture.h - the replay capture record, shared by the kernel side (bpf/capture.bpf.c), the
 * recorder (replay/capture.c) and the recording format (replay/rec.c), which keeps these records
 * unchanged in its per-thread streams. Plain fixed-width structs, no includes (the kernel side
 * gets __u64 & co. from vmlinux.h, user space from <linux/types.h>).
 *
 * One record per captured system call, written at the call's exit: number, the six argument
 * registers, return value, enter/exit times (CLOCK_MONOTONIC), the payload the call moved
 * (read/recv/getrandom/readlink... bytes returned; write/send bytes written; the path of
 * open/stat calls), a small "aux" blob with the structures the kernel wrote (sockaddr, pollfd
 * array, epoll events, struct stat, timespec, pipe fds...), the inode kind of the fd argument and,
 * for inet sockets, the connection's addresses. What is captured per syscall number is not decided
 * here: user space fills the `descs` map with one struct kp_cap_desc per number (replay/sysc.c is
 * the one table), so the kernel side stays generic.
 *
 * Record layout in the ring buffer and in a recording's streams (little-endian, 8-byte aligned):
 *
 *   +----------------------------+  struct kp_cap_rec (128 bytes)
 *   | len kind flags nr pid tid  |
 *   | ord seq ts_enter ts_exit   |
 *   | ret args[6] payload_len    |
 *   | aux_len fd_mode fd_ino ip  |
 *   +----------------------------+
 *   | payload[payload_len]       |  KP_CAP_F_TRUNC: the call moved more than was kept
 *   | aux[aux_len]               |  layout per enum kp_cap_aux
 *   | struct kp_cap_sock         |  only with KP_CAP_F_SOCK (40 bytes)
 *   | zero padding to 8          |
 *   +----------------------------+
 *
 * Process events use the same header: KP_CAP_FORK (args[0] child tid, args[1] child tgid,
 * KP_CAP_F_THREAD for a thread), KP_CAP_EXEC (payload: the file name; aux: the new argument
 * vector as NUL-terminated strings, as in /proc/PID/cmdline, cut at KP_CAP_MAX_AUX bytes, so a
 * recording built from the agent's capture knows the command line; args[0]: AT_BASE, where the
 * dynamic loader was mapped, 0 for a static program), KP_CAP_EXIT (ret: the
 * exit code as the kernel keeps it, i.e. a wait status). KP_CAP_LOADER comes from user space
 * (the recorder at an exec stop, the agent when it drains an exec record): args[0..1] the
 * address range of the process's dynamic loader from then on (0, 0: none known); the recording
 * writer flags calls made from there KP_CAP_F_LOADER. The agent's also carry, as payload, the
 * process's working directory, a NUL, and its environment (NUL-separated), read from /proc.
 * KP_CAP_LOST comes from user space too (the agent): args[0] records the kernel side lost
 * (ring buffer full) since the previous KP_CAP_LOST, pid/tid 0, ts_exit when it was noticed;
 * the appliance marks recordings that overlap it incomplete. Recordings never hold one.
 */
#ifndef KP_CAPTURE_H
#define KP_CAPTURE_H

#define KP_CAP_MAX_PAYLOAD 65536 /* upper bound of replay.capture.maxBytes */
#define KP_CAP_MAX_PATH	   4096	 /* paths are kept whole up to this, whatever maxBytes says */
#define KP_CAP_MAX_AUX	   1024
#define KP_CAP_NR_MAX	   512 /* syscall numbers below this can be captured */
#define KP_CAP_MAX_IOV	   8   /* iovecs walked per call; more -> KP_CAP_F_TRUNC */
#define KP_CAP_MAX_COMMS   8
#define KP_CAP_HDR_LEN	   128
#define KP_CAP_SOCK_LEN	   40
#define KP_CAP_REC_MAX	   (KP_CAP_HDR_LEN + KP_CAP_MAX_PAYLOAD + KP_CAP_MAX_AUX + KP_CAP_SOCK_LEN + 8)

enum kp_cap_kind {
	KP_CAP_CALL = 1,
	KP_CAP_FORK = 2,
	KP_CAP_EXEC = 3,
	KP_CAP_EXIT = 4,
	KP_CAP_LOADER = 5,
	KP_CAP_LOST = 6,
};

/* kp_cap_rec.flags */
#define KP_CAP_F_TRUNC	 0x01 /* payload (or aux) cut at the capture bound */
#define KP_CAP_F_SOCK	 0x02 /* a struct kp_cap_sock follows the aux blob */
#define KP_CAP_F_NOENTER 0x04 /* the call began before capture started: ts_enter unknown */
#define KP_CAP_F_THREAD	 0x08 /* FORK: the child is a thread of the parent's process */
#define KP_CAP_F_LOADER	 0x10 /* made by the dynamic loader (set by the recording writer) */

struct kp_cap_rec {
	__u32 len;	/* whole record, header + payload + aux + sock + padding */
	__u8 kind;	/* enum kp_cap_kind */
	__u8 flags;	/* KP_CAP_F_* */
	__u16 nr;	/* syscall number (x86-64) */
	__u32 pid, tid; /* tgid and thread id, root pid namespace */
	__u32 ord;	/* per-thread ordinal, assigned by the recording writer */
	__u32 pad0;
	__u64 seq;	/* global order of exits, assigned by the recording writer (from 1) */
	__u64 ts_enter; /* CLOCK_MONOTONIC ns */
	__u64 ts_exit;
	__s64 ret; /* return value or -errno */
	__u64 args[6];
	__u32 payload_len;
	__u16 aux_len;
	__u16 fd_mode; /* S_IFMT bits of the inode behind the fd argument, 0 if none */
	__u64 fd_ino;  /* that inode's number */
	__u64 ip;      /* user instruction pointer after the system call instruction */
};

/* The connection an inet socket fd belongs to, read from the socket after the call. */
struct kp_cap_sock {
	__u16 family;	/* AF_INET or AF_INET6 */
	__u16 type;	/* SOCK_STREAM, SOCK_DGRAM */
	__u16 sport;	/* local port, host order */
	__u16 dport;	/* remote port, host order (0: not connected) */
	__u8 saddr[16]; /* local address; IPv4 in the first 4 bytes, network order */
	__u8 daddr[16];
};

/* What to capture for one syscall number (one slot of the `descs` array map). */
enum kp_cap_pay {
	KP_PAY_NONE = 0,
	KP_PAY_BUF,    /* args[arg] points at ret bytes (read, write, getrandom, ...) */
	KP_PAY_IOV,    /* args[arg] iovec array, args[arg+1] count; ret bytes in all */
	KP_PAY_MSG,    /* args[arg] struct msghdr; ret bytes in its iovecs */
	KP_PAY_STR,    /* args[arg] NUL-terminated path (kept up to KP_CAP_MAX_PATH) */
	KP_PAY_ARGLEN, /* args[arg] points at args[arg+1] bytes (connect's sockaddr) */
};

enum kp_cap_aux {
	KP_AUX_NONE = 0,
	KP_AUX_FIXED,	 /* size bytes at args[arg] when ret >= 0 and the pointer is set */
	KP_AUX_SOCKADDR, /* u32 len (*args[arg+1] after the call), then min(len, 128) bytes at
			  * args[arg] (accept, recvfrom, getsockname, getpeername) */
	KP_AUX_SOCKOPT,	 /* as SOCKADDR with optval = args[3], optlen = args[4], up to 256 */
	KP_AUX_POLL,	 /* the pollfd array: args[0], args[1] entries (8 bytes each) */
	KP_AUX_EPOLL,	 /* ret epoll_events (12 bytes each) at args[1] */
	KP_AUX_FDSETS,	 /* u32 bytes per set (nfds/8 rounded up to 8), then the read, write and
			  * except sets (zeros for NULL), then 16 bytes of timeout (args[4]) */
	KP_AUX_MSG,	 /* recvmsg: u32 namelen, u32 flags, u32 controllen, u32 pad, name, control
			  * (name up to 128 bytes, control up to 512) */
	KP_AUX_IOCTL,	 /* by request: TCGETS 36 bytes, TIOCGWINSZ 8, FIONREAD 4 (at args[2]) */
};

/* kp_cap_desc.flags */
#define KP_CAPD_RECORD 0x01 /* capture this syscall */
#define KP_CAPD_FD     0x02 /* args[fd_arg] is an fd: fill fd_mode/fd_ino (and sock) */
#define KP_CAPD_NEWFD  0x04 /* the return value is a new fd: describe it instead */
#define KP_CAPD_ARGF   0x08 /* capture only when args[argf_idx] is one of argf_vals */

struct kp_cap_desc {
	__u8 flags;
	__u8 fd_arg;
	__u8 pay; /* enum kp_cap_pay */
	__u8 pay_arg;
	__u8 aux; /* enum kp_cap_aux */
	__u8 aux_arg;
	__u16 aux_size;
	__u8 argf_idx;
	__u8 pad[3];
	__u32 argf_vals[4]; /* 0xffffffff = unused slot */
};

/* Selected processes (the `pids` hash, tgid -> state). */
#define KP_CAP_PID_PENDING 1 /* selected, starts at its next exec (kprobe record's child) */
#define KP_CAP_PID_ACTIVE  2
#define KP_CAP_PID_FOLLOW  0x10 /* or-ed in: children become selected too */

/* Kernel-side counters, one slot per CPU (PERCPU_ARRAY). */
enum kp_cap_counter {
	KP_CAP_CNT_EMITTED = 0,
	KP_CAP_CNT_DROP_RINGBUF, /* ring buffer full: record lost (the recording is incomplete) */
	KP_CAP_CNT_TRUNC,	 /* records with a cut payload */
	KP_CAP_CNT_MAX
};

#endif
