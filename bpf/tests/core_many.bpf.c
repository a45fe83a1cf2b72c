// About a hundred CO-RE relocations over common kernel structs: the load for
// bench/core_resolve.py (how long resolving a realistic object's relocations takes).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

__u64 results[128];

#define OFF(p, f) results[__COUNTER__ & 127] = bpf_core_field_offset(p->f)

SEC("xdp")
int core_many(struct xdp_md *ctx)
{
	struct task_struct *t = 0;
	struct sk_buff *skb = 0;
	struct net_device *dev = 0;
	struct sock *sk = 0;
	struct mm_struct *mm = 0;
	struct file *file = 0;
	struct inode *inode = 0;
	struct xdp_buff *xdp = 0;

	OFF(t, pid); OFF(t, tgid); OFF(t, comm); OFF(t, flags); OFF(t, mm); OFF(t, real_parent);
	OFF(t, parent); OFF(t, prio); OFF(t, static_prio); OFF(t, normal_prio); OFF(t, policy);
	OFF(t, cred); OFF(t, real_cred); OFF(t, start_time); OFF(t, utime); OFF(t, stime);
	OFF(t, nvcsw); OFF(t, nivcsw); OFF(t, exit_code); OFF(t, exit_signal); OFF(t, files);
	OFF(t, fs); OFF(t, nsproxy); OFF(t, signal); OFF(t, sighand);
	OFF(skb, len); OFF(skb, data_len); OFF(skb, mac_len); OFF(skb, hdr_len); OFF(skb, protocol);
	OFF(skb, mark); OFF(skb, priority); OFF(skb, dev); OFF(skb, sk); OFF(skb, head);
	OFF(skb, data); OFF(skb, tail); OFF(skb, end); OFF(skb, truesize); OFF(skb, users);
	OFF(skb, transport_header); OFF(skb, network_header); OFF(skb, mac_header);
	OFF(dev, name); OFF(dev, ifindex); OFF(dev, flags); OFF(dev, mtu); OFF(dev, type);
	OFF(dev, addr_len); OFF(dev, features); OFF(dev, hard_header_len); OFF(dev, min_mtu);
	OFF(dev, max_mtu);
	OFF(sk, sk_rcvbuf); OFF(sk, sk_sndbuf); OFF(sk, sk_priority); OFF(sk, sk_mark);
	OFF(sk, sk_err); OFF(sk, sk_type); OFF(sk, __sk_common.skc_family);
	OFF(sk, __sk_common.skc_num); OFF(sk, __sk_common.skc_dport);
	OFF(mm, mmap_base); OFF(mm, task_size); OFF(mm, pgd); OFF(mm, start_code);
	OFF(mm, end_code); OFF(mm, start_data); OFF(mm, end_data); OFF(mm, start_brk);
	OFF(mm, brk); OFF(mm, start_stack); OFF(mm, arg_start); OFF(mm, arg_end);
	OFF(mm, env_start); OFF(mm, env_end);
	OFF(file, f_flags); OFF(file, f_mode); OFF(file, f_pos); OFF(file, f_inode);
	OFF(file, f_cred);
	OFF(inode, i_mode); OFF(inode, i_uid); OFF(inode, i_gid); OFF(inode, i_flags);
	OFF(inode, i_ino); OFF(inode, i_size); OFF(inode, i_sb);
	OFF(xdp, data); OFF(xdp, data_end); OFF(xdp, data_meta); OFF(xdp, data_hard_start);
	OFF(xdp, rxq); OFF(xdp, frame_sz);
	results[__COUNTER__ & 127] = bpf_core_type_size(struct task_struct);
	results[__COUNTER__ & 127] = bpf_core_type_size(struct sk_buff);
	results[__COUNTER__ & 127] = bpf_core_type_exists(struct net_device);
	results[__COUNTER__ & 127] = bpf_core_enum_value(enum bpf_map_type, BPF_MAP_TYPE_RINGBUF);
	results[__COUNTER__ & 127] = bpf_core_enum_value(enum bpf_prog_type, BPF_PROG_TYPE_XDP);
	results[__COUNTER__ & 127] = bpf_core_enum_value(enum xdp_action, XDP_PASS);
	results[__COUNTER__ & 127] = bpf_core_field_size(t->comm);
	results[__COUNTER__ & 127] = bpf_core_field_size(skb->len);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
