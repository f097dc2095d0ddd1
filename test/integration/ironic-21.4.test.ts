import { ironicReleaseSuite } from './ironic-release-suite.ts';

// The release suite against Ironic 21.4 (OpenStack 2023.1), Debian 12's package on the host.
ironicReleaseSuite('21.4', '52:54:00:a0:21:04');
