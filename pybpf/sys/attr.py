"""``union bpf_attr``: one declaration per command, named as in ``include/uapi/linux/bpf.h``.

The kernel reads only the part of the union that belongs to the command (and insists that anything
past the fields it knows is zero). We pass the size of our declaration: a shorter attr than the
kernel's is zero-filled by the kernel, so one declaration works on old and new kernels.
"""

from __future__ import annotations

from pybpf.sys.layout import Default, Int32sn, Int32un, Int64un, PaddedString, Padding, Struct
from pybpf.sys.uapi import BPF_OBJ_NAME_LEN

# Host byte order throughout: the kernel reads these in its own order. ``PTR`` is an
# ``__aligned_u64`` holding a user-space address. Every field defaults to 0.

U32 = Default(Int32un, 0)
U64 = Default(Int64un, 0)
PTR = U64
OBJ_NAME = Default(PaddedString(BPF_OBJ_NAME_LEN, "ascii"), "")

map_create_attr = Struct(
    "map_type" / U32,
    "key_size" / U32,
    "value_size" / U32,
    "max_entries" / U32,
    "map_flags" / U32,
    "inner_map_fd" / U32,
    "numa_node" / U32,
    "map_name" / OBJ_NAME,
    "map_ifindex" / U32,
    "btf_fd" / U32,
    "btf_key_type_id" / U32,
    "btf_value_type_id" / U32,
    "btf_vmlinux_value_type_id" / U32,
    "map_extra" / U64,
)

# BPF_MAP_*_ELEM, BPF_MAP_GET_NEXT_KEY and BPF_MAP_FREEZE: ``value`` doubles as ``next_key``.
map_elem_attr = Struct(
    "map_fd" / U32,
    Padding(4),
    "key" / PTR,
    "value" / PTR,
    "flags" / U64,
)

map_batch_attr = Struct(
    "in_batch" / PTR,
    "out_batch" / PTR,
    "keys" / PTR,
    "values" / PTR,
    "count" / U32,
    "map_fd" / U32,
    "elem_flags" / U64,
    "flags" / U64,
)

prog_load_attr = Struct(
    "prog_type" / U32,
    "insn_cnt" / U32,
    "insns" / PTR,
    "license" / PTR,
    "log_level" / U32,
    "log_size" / U32,
    "log_buf" / PTR,
    "kern_version" / U32,
    "prog_flags" / U32,
    "prog_name" / OBJ_NAME,
    "prog_ifindex" / U32,
    "expected_attach_type" / U32,
    "prog_btf_fd" / U32,
    "func_info_rec_size" / U32,
    "func_info" / PTR,
    "func_info_cnt" / U32,
    "line_info_rec_size" / U32,
    "line_info" / PTR,
    "line_info_cnt" / U32,
    "attach_btf_id" / U32,
    "attach_btf_obj_fd" / U32,  # a union with attach_prog_fd
    "core_relo_cnt" / U32,
    "fd_array" / PTR,
    "core_relos" / PTR,
    "core_relo_rec_size" / U32,
    "log_true_size" / U32,  # out (6.4+): the buffer size the whole log needs
)

obj_attr = Struct(
    "pathname" / PTR,
    "bpf_fd" / U32,
    "file_flags" / U32,
)

test_attr = Struct(
    "prog_fd" / U32,
    "retval" / U32,
    "data_size_in" / U32,
    "data_size_out" / U32,
    "data_in" / PTR,
    "data_out" / PTR,
    "repeat" / U32,
    "duration" / U32,
    "ctx_size_in" / U32,
    "ctx_size_out" / U32,
    "ctx_in" / PTR,
    "ctx_out" / PTR,
    "flags" / U32,
    "cpu" / U32,
    "batch_size" / U32,
    Padding(4),
)

# BPF_*_GET_NEXT_ID and BPF_*_GET_FD_BY_ID: ``start_id`` is a union with prog_id/map_id/...
get_id_attr = Struct(
    "start_id" / U32,
    "next_id" / U32,
    "open_flags" / U32,
)

info_attr = Struct(
    "bpf_fd" / U32,
    "info_len" / U32,
    "info" / PTR,
)

btf_load_attr = Struct(
    "btf" / PTR,
    "btf_log_buf" / PTR,
    "btf_size" / U32,
    "btf_log_size" / U32,
    "btf_log_level" / U32,
    "btf_log_true_size" / U32,
)

link_create_attr = Struct(
    "prog_fd" / U32,
    "target_fd" / U32,  # a union with target_ifindex
    "attach_type" / U32,
    "flags" / U32,
    "target_btf_id" / U32,
    Padding(4),
)

link_update_attr = Struct(
    "link_fd" / U32,
    "new_prog_fd" / U32,
    "flags" / U32,
    "old_prog_fd" / U32,
)

link_detach_attr = Struct("link_fd" / U32)
enable_stats_attr = Struct("type" / U32)

# BPF_LINK_CREATE's other union members, each its own declaration: the four u32 above, then the
# union (8-byte aligned, at offset 16) as the attach type needs it.
link_create_perf_event_attr = Struct(  # BPF_PERF_EVENT: kprobe, uprobe, tracepoint, perf_event
    "prog_fd" / U32,
    "target_fd" / U32,  # the perf event fd
    "attach_type" / U32,
    "flags" / U32,
    "bpf_cookie" / U64,  # perf_event.bpf_cookie: what bpf_get_attach_cookie() returns
)

link_create_tracing_attr = Struct(  # BPF_TRACE_FENTRY/FEXIT/RAW_TP, MODIFY_RETURN, LSM_MAC
    "prog_fd" / U32,
    "target_fd" / U32,
    "attach_type" / U32,
    "flags" / U32,
    "target_btf_id" / U32,  # tracing.target_btf_id
    Padding(4),
    "cookie" / U64,  # tracing.cookie (6.0+)
)

link_create_iter_attr = Struct(  # BPF_TRACE_ITER
    "prog_fd" / U32,
    "target_fd" / U32,
    "attach_type" / U32,
    "flags" / U32,
    "iter_info" / PTR,  # union bpf_iter_link_info (a map fd, a cgroup, a task...)
    "iter_info_len" / U32,
    Padding(4),
)

link_create_kprobe_multi_attr = Struct(  # BPF_TRACE_KPROBE_MULTI
    "prog_fd" / U32,
    "target_fd" / U32,
    "attach_type" / U32,
    "flags" / U32,
    "kprobe_multi_flags" / U32,  # kprobe_multi.flags: BPF_F_KPROBE_MULTI_RETURN
    "cnt" / U32,
    "syms" / PTR,  # const char **
    "addrs" / PTR,
    "cookies" / PTR,
)

link_create_uprobe_multi_attr = Struct(  # BPF_TRACE_UPROBE_MULTI (6.6+)
    "prog_fd" / U32,
    "target_fd" / U32,
    "attach_type" / U32,
    "flags" / U32,
    "path" / PTR,  # const char *: the binary
    "offsets" / PTR,  # u64[cnt]: file offsets
    "ref_ctr_offsets" / PTR,  # u64[cnt] or NULL: USDT semaphores
    "cookies" / PTR,  # u64[cnt] or NULL
    "cnt" / U32,
    "uprobe_multi_flags" / U32,  # BPF_F_UPROBE_MULTI_RETURN
    "pid" / U32,  # 0: every process
)

raw_tracepoint_open_attr = Struct(
    "name" / PTR,  # NULL for tp_btf/fentry/fexit/lsm loaded with an attach_btf_id
    "prog_fd" / U32,
    Padding(4),
    "cookie" / U64,  # 6.10+
)

iter_create_attr = Struct(
    "link_fd" / U32,
    "flags" / U32,
)

# BPF_PROG_ATTACH and BPF_PROG_DETACH: the attachments older than bpf_link (cgroups, sockmaps).
prog_attach_attr = Struct(
    "target_fd" / U32,  # a union with target_ifindex
    "attach_bpf_fd" / U32,
    "attach_type" / U32,
    "attach_flags" / U32,
    "replace_bpf_fd" / U32,
    "relative_fd" / U32,  # a union with relative_id
    "expected_revision" / U64,
)

prog_query_attr = Struct(
    "target_fd" / U32,  # a union with target_ifindex
    "attach_type" / U32,
    "query_flags" / U32,
    "attach_flags" / U32,
    "prog_ids" / PTR,
    "prog_cnt" / U32,  # in: room in prog_ids; out: how many are attached
    Padding(4),
    "prog_attach_flags" / PTR,
    "link_ids" / PTR,
    "link_attach_flags" / PTR,
    "revision" / U64,
)

# BPF_LINK_CREATE for BPF_NETFILTER: the union after ``flags`` holds the hook (the link is made
# in the caller's network namespace; target_fd must be 0).
link_create_netfilter_attr = Struct(
    "prog_fd" / U32,
    "target_fd" / U32,
    "attach_type" / U32,
    "flags" / U32,
    "pf" / U32,
    "hooknum" / U32,
    "priority" / Default(Int32sn, 0),
    "netfilter_flags" / U32,
)
