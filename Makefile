# metal-agent: two commands do everything on a fresh Debian 12 machine (root):
#   make demo    the main job, end to end (see README)
#   make test    every test: unit, integration (real Ironic, loop disks), e2e (qemu)
SHELL := /bin/bash
VITEST := npx vitest run
# Each phase of `make test` prints when it starts and how long since make started (CI reads it).
ifndef MAKE_T0
MAKE_T0 := $(shell date +%s)
endif
export MAKE_T0
STAMP = @echo "== $@: $$(date -u +%T), $$(( $$(date +%s) - $(MAKE_T0) )) s since make started"

.PHONY: all deps typecheck docs test test-builds test-unit test-integration e2e bench demo guest-image ironic-2025 ironic-2026 clean

all: binary

include ramdisk-build/build.mk

deps:
	scripts/install-deps.sh

# tsc, then the layering (docs/architecture.md): dependency-cruiser with the
# rules in .dependency-cruiser.cjs; the violations listed in
# .dependency-cruiser-known-violations.json are known and ignored, any new one fails.
typecheck: deps
	$(STAMP)
	npx tsc --noEmit
	npx depcruise src steps --ignore-known --output-type err

docs: deps
	npx tsx scripts/gen-docs.ts

test-unit: deps
	$(STAMP)
	$(VITEST) test/unit

# Integration tests share loop devices, Ironic instances and namespaces with
# nothing else, so their files run one after another. The release suite runs
# against Ironic 21.4, 29.0 and 39.0 (their Debian 13 and sid roots are built once and cached:
# lab/ironic/ensure-2025.sh, ensure-2026.sh); the results are then printed per release.
test-integration: deps ironic-2025 ironic-2026
	$(STAMP)
	@mkdir -p $(BUILD)
	$(VITEST) --no-file-parallelism --reporter=default --reporter=json --outputFile.json=$(BUILD)/integration-results.json test/integration; \
	  status=$$?; npx tsx scripts/release-report.ts $(BUILD)/integration-results.json || true; exit $$status

# Ironic 29.0's Debian 13 root (/var/cache/metal-agent/ironic-2025): built once (~2-4 minutes),
# then answered from the cache in well under a second.
ironic-2025: deps
	lab/ironic/ensure-2025.sh >/dev/null

# Ironic 39.0's Debian sid root (/var/cache/metal-agent/ironic-2026): built once (~8 minutes on
# the CI machine; ensure-root.sh prints how long), then answered from the cache.
ironic-2026: deps
	lab/ironic/ensure-2026.sh >/dev/null

# The demo's flow (test/e2e/demo.test.ts) runs last: it is the whole story.
e2e: deps ramdisk guest-image
	$(STAMP)
	@mkdir -p $(BUILD)
	$(VITEST) --no-file-parallelism --reporter=default --reporter=json --outputFile.json=$(BUILD)/e2e-results.json test/e2e --exclude test/e2e/demo.test.ts; \
	  status=$$?; npx tsx scripts/release-report.ts $(BUILD)/e2e-results.json || true; exit $$status
	@rm -f $(BUILD)/demo-failure.log
	$(VITEST) test/e2e/demo.test.ts || { echo '--- the end of the failed demo run:'; cat $(BUILD)/demo-failure.log 2>/dev/null; exit 1; }

# On a fresh machine the builds before the first test take many minutes (the Debian roots of 29.0
# and 39.0, the ramdisk, the guest image) and are mostly download and unpack, so they run side by
# side; their output is printed per target when each ends. The ramdisk's own apt-get runs first,
# alone (kernel.sh's apt-get download must not overlap an apt-get update).
test-builds: deps
	$(STAMP)
	$(MAKE) --no-print-directory ramdisk-deps
	$(MAKE) --no-print-directory -j4 --output-sync=target ironic-2025 ironic-2026 ramdisk guest-image
	$(STAMP)

test: test-builds typecheck test-unit test-integration e2e
	$(STAMP)

# The tenant OS the demo and e2e tests deploy (Debian 12 minbase + kernel + GRUB; debootstrap tree
# cached under /var/cache/metal-agent, so a rebuild after an input change is quick).
# guest.raw: whole disk (kexec demo); guest-root.img: the same root as a partition image;
# guest-raid.raw: whole disk (GPT, ESP + root) that boots from inside a software RAID-1 (vm-raid-boot).
guest-image: $(BUILD)/guest.raw $(BUILD)/guest-root.img $(BUILD)/guest-raid.raw
$(BUILD)/guest.raw $(BUILD)/guest-root.img $(BUILD)/guest-raid.raw &: lab/guest-image/build.sh lab/guest-image/metal-guest-init | deps
	lab/guest-image/build.sh $(BUILD)/guest.raw $(BUILD)/guest-root.img $(BUILD)/guest-raid.raw

# The whole life of a node through a real Ironic in qemu (scripts/demo.ts);
# KEEP=1 leaves the lab running until Ctrl-C.
demo: deps ramdisk guest-image
	npx tsx scripts/demo.ts $(if $(KEEP),--keep)

# The fleet soak's length in minutes (bench/fleet-soak.ts: idle agents heartbeating, RSS and fds sampled),
# and its warm-up: an idle agent's V8 heap grows for its first 15-30 minutes until its major GCs
# settle (docs/fleet-soak.md), so the hour that is judged comes after 30 minutes.
SOAK_MINUTES ?= 90
SOAK_WARMUP_MINUTES ?= 30

# min-memory deploys a 2 GiB raw and a 2 GiB qcow2 image at each size (issue 19).
# footprint twice: as this machine is, and on one CPU, the shape of a small node (the agent hashes
# on its main thread either way; on one CPU the kernel's share of a write competes with it).
bench: deps ramdisk guest-image
	npx tsx bench/image-write.ts
	npx tsx bench/footprint.ts --binary $(BUILD)/metal-agent --deploy-mib 2048
	taskset -c 0 npx tsx bench/footprint.ts --binary $(BUILD)/metal-agent --deploy-mib 2048
	npx tsx bench/erase.ts
	npx tsx bench/ramdisk.ts
	npx tsx bench/handoff.ts
	npx tsx bench/boot-phases.ts
	npx tsx bench/min-memory.ts --image-mib 2048 --formats raw,qcow2
	npx tsx bench/fleet.ts --agents 40
	npx tsx bench/fleet-soak.ts --agents 40 --minutes $(SOAK_MINUTES) --warmup-min $(SOAK_WARMUP_MINUTES) --binary $(BUILD)/metal-agent

clean:
	rm -rf build
