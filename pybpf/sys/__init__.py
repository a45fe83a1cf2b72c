"""Stage 4: the bpf(2) system call and what owns its file descriptors.

``uapi`` names the kernel's enums (commands, map, program and attach types, flags), ``syscall``
calls bpf() through ctypes with every ``bpf_attr`` variant declared once, ``fd`` is the base of
every object that owns a kernel fd, ``bpffs`` finds or mounts the BPF filesystem for pins.
"""
