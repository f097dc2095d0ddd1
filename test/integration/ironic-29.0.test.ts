import { ironicReleaseSuite } from './ironic-release-suite.ts';

// The release suite against Ironic 29.0 (OpenStack 2025.1), run from the Debian 13 root that
// lab/ironic/ensure-2025.sh keeps cached (built on first use, ~4 minutes).
// What only 29.0 does (service steps, system.lockdown, the md5 switch) is in ironic-29.0-only.test.ts.
ironicReleaseSuite('29.0', '52:54:00:a0:29:00');
