"""Stage 5: attaching loaded programs to where events happen.

``netlink`` attaches XDP through rtnetlink (an attachment that outlives the process), ``bpflink``
wraps a ``bpf_link`` (an attachment that ends when its last fd closes). The modules here take
file descriptors, or objects with an ``fd``; they never import the objects of the layer above.
"""
