# The README's two commands go through here: `make demo` and `make test`.
PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
CLANG   ?= clang
BPFTOOL ?= bpftool
BUILD   := build

# The kernel UAPI headers include <asm/types.h>, which Debian keeps under the multiarch path.
MULTIARCH  := $(shell gcc -dumpmachine 2>/dev/null || echo $$(uname -m)-linux-gnu)
# -fdebug-compilation-dir: the object does not depend on where the tree was cloned.
BPF_CFLAGS := -O2 -g -target bpf -Wall -Wno-unused-function -I bpf/include -I $(BUILD) \
              -fdebug-compilation-dir=. \
              -I /usr/include/$(MULTIARCH)
BPF_SRCS   := $(shell find bpf -name '*.bpf.c' | sort)
BPF_OBJS   := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
# The capture program and the offline record walker and text walk ship inside the package: a user's host has
# no clang.
SHIPPED    := xdptcp/data/xdptcp.bpf.o
SHIPPED_WALK := xdptcp/data/xdptcp_walk.bpf.o
SHIPPED_TEXT := xdptcp/data/xdptcp_text.bpf.o

.PHONY: all venv bpf bpf-cflags test lint demo bench clean shipped deb pyz dist man kmatrix pymatrix

all: bpf

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@# The editable install's import hook imports pathlib, re, urllib.parse... in every process
	@# (a tenth of a short `pybpf load`); a plain path entry in its .pth serves this tree the same.
	for pth in $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/__editable__.pybpf-*.pth; do \
		echo "$(CURDIR)" > "$$pth"; done
	touch $@

venv: $(VENV)/.installed

# vmlinux.h of the running kernel, for the CO-RE test programs.
$(BUILD)/vmlinux.h:
	@mkdir -p $(dir $@)
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/include/*.h bpf/*.h bpf/tests/*.h) $(BUILD)/vmlinux.h
	@mkdir -p $(dir $@)
	$(CLANG) $(BPF_CFLAGS) -I $(dir $<) -c $< -o $@

# A test object made of another's source (an #include) is rebuilt when that source changes.
$(BUILD)/bpf/tests/attach_netns_nonf.bpf.o: bpf/tests/attach_netns.bpf.c

bpf: $(BPF_OBJS)

# The flags the objects are built with (bench/progcost_parts.py builds variants of the program).
bpf-cflags:
	@echo $(BPF_CFLAGS)

# Rebuild the shipped object and record the hash of the sources it came from.
shipped: $(BUILD)/bpf/xdptcp.bpf.o $(BUILD)/bpf/xdptcp_walk.bpf.o $(BUILD)/bpf/xdptcp_text.bpf.o venv
	cp $(BUILD)/bpf/xdptcp.bpf.o $(SHIPPED)
	cp $(BUILD)/bpf/xdptcp_walk.bpf.o $(SHIPPED_WALK)
	cp $(BUILD)/bpf/xdptcp_text.bpf.o $(SHIPPED_TEXT)
	$(PY) -m xdptcp.objhash --write

lint: venv
	$(VENV)/bin/ruff check pybpf xdptcp tests bench .ci/dist .ci/pymatrix.py
	$(VENV)/bin/ruff format --check pybpf xdptcp tests bench .ci/dist .ci/pymatrix.py

test: venv bpf lint
	$(PY) -m pytest -q -rs $(PYTEST_ARGS)
	$(PY) .ci/pymatrix.py

# The unprivileged tests under every other CPython 3.9-3.13 found (build/py3.X venvs, one table).
pymatrix: venv
	$(PY) .ci/pymatrix.py

# The kernel matrix alone: Debian's 6.1 and 6.12 kernels booted with virtme-ng, the tests marked
# kmatrix run inside each (tests/vm/kmatrix.py). `make test` runs it too (tests/test_kernel_matrix.py).
kmatrix: venv bpf
	bash tests/vm/kernels.sh setup
	$(PY) tests/vm/kmatrix.py $(KMATRIX_ARGS)

demo: venv
	$(PY) -m xdptcp --demo

bench: venv bpf
	$(PY) -m bench

# The three ways to install (README "Install"); the scripts are in .ci/dist, the results in dist/.
DIST := dist

# xdptcp(8), pybpf(8) and their bash completions, generated from the argparse parsers.
man: venv
	$(PY) .ci/dist/manpage.py xdptcp -o $(DIST)/man/xdptcp.8
	$(PY) .ci/dist/manpage.py pybpf -o $(DIST)/man/pybpf.8
	$(PY) .ci/dist/completion.py xdptcp -o $(DIST)/completion/xdptcp
	$(PY) .ci/dist/completion.py pybpf -o $(DIST)/completion/pybpf

# pybpf_VERSION-1_all.deb for Debian's python3, python3-pyelftools and python3-construct.
deb: venv
	$(PY) .ci/dist/deb.py --out $(DIST)

# xdptcp.pyz and pybpf.pyz: one file each, pyelftools and construct inside. PYZ_PYTHONS: other
# CPythons 3.9+ to compile the modules for too (make pyz PYZ_PYTHONS="python3.9 python3.12").
PYZ_PYTHONS ?=
pyz: venv
	$(PY) .ci/dist/pyz.py --out $(DIST) $(addprefix --python=,$(PYZ_PYTHONS))

# The wheel (with the compiled capture object) and the sdist.
dist: venv
	$(PY) -m build --outdir $(DIST) .

clean:
	rm -rf $(BUILD) $(DIST)
