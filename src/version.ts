// What we tell Ironic. Ironic stores agent_version and compares it with IPA
// release numbers to switch behaviour on; the public part names the IPA API
// level we implement (9.4), the local part names us (PEP 440 local version).
export const PRODUCT_VERSION = '0.1.0';
export const AGENT_VERSION = `9.4.0+metal.${PRODUCT_VERSION}`;
