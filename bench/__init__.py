"""Benchmarks of pybpf and xdptcp against tcpdump and xdpdump, on this machine's kernel.

``python -m bench`` runs them all and prints their tables; see bench/README.md.
"""
