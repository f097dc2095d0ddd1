import { ironicReleaseSuite } from './ironic-release-suite.ts';

// The release suite against Ironic 39.0 (OpenStack 2026.2), run from the Debian sid root that
// lab/ironic/ensure-2026.sh keeps cached (built on first use, ~8 minutes).
ironicReleaseSuite('39.0', '52:54:00:a0:39:00');
