import { setFlagsFromString } from 'node:v8';

// V8 settings that keep the agent small (docs/footprint.md has the figures).
// Imported first by src/main.ts, before anything can compile WebAssembly.
//
// undici parses HTTP/1 with llhttp compiled to WebAssembly. By default V8
// compiles that module twice: at once with Liftoff, then again in the
// background with TurboFan, whose compile zones took ~35 MiB of malloc for
// ~200 ms after the agent's first request to Ironic (the whole process peaked
// at 113-123 MiB where it idles at ~86 MiB). Liftoff's code alone parses the
// few small responses the conductor and image servers send (the image body over
// plain http never goes through llhttp: src/io/socket-http.ts), so TurboFan is
// not worth its peak here. A runtime flag: the SEA takes no V8 flags of its own.
setFlagsFromString('--liftoff-only');

// NODE_OPTIONS (ramdisk-build/agent.env: V8's semi-space cap) was read when this process started.
// The agent's children (qemu-img, mkfs, the deployed OS's own tools in a chroot) are not this
// runtime: a Node program among them would take flags meant for the agent.
delete process.env.NODE_OPTIONS;
