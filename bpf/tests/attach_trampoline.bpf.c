// The trampoline kinds (fentry, fexit, fmod_ret, lsm), each counting what it saw of one process
// (target_tgid, set before load) in `hits`. Apart from attach_tracing.bpf.c because some kernels
// refuse to load them at all (EPERM: no BPF trampolines allowed), which must not stop the others.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

#define EPERM 1
#define EACCES 13

const volatile __u64 target_ino = 0;  /* lsm: the inode whose opening is refused */
const volatile __u32 denied_mode = 0; /* fmod_ret: the chmod mode that is refused */

enum hit { HIT_FENTRY, HIT_FEXIT, HIT_FEXIT_RET, HIT_FMOD_RET, HIT_LSM, HIT_MAX };

#include "hits.h"

SEC("fentry/do_unlinkat")
int BPF_PROG(fentry_unlinkat, int dfd, struct filename *name)
{
	if (mine())
		hit(HIT_FENTRY, 1);
	return 0;
}

SEC("fexit/do_unlinkat")
int BPF_PROG(fexit_unlinkat, int dfd, struct filename *name, int ret)
{
	if (mine()) {
		hit(HIT_FEXIT, 1);
		hit(HIT_FEXIT_RET, -ret); /* sums the errnos the calls returned */
	}
	return 0;
}

SEC("fmod_ret/security_path_chmod")
int BPF_PROG(fmod_ret_chmod, const struct path *path, umode_t mode, int ret)
{
	if (!mine() || (mode & 07777) != denied_mode)
		return ret;
	hit(HIT_FMOD_RET, 1);
	return -EACCES;
}

SEC("lsm/file_open")
int BPF_PROG(lsm_file_open, struct file *file, int ret)
{
	if (ret || !mine() || BPF_CORE_READ(file, f_inode, i_ino) != target_ino)
		return ret;
	hit(HIT_LSM, 1);
	return -EPERM;
}
