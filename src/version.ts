// What we tell Ironic in every heartbeat (agent_version): the public part names
// the IPA release whose wire API we implement, the local part names us (PEP 440
// local version: 10.2.0+metal.0.1.0).
//
// Why 10.2.0 (IPA of OpenStack 2025.1, shipped beside Ironic 29.0 in Debian 13):
// - Neither Ironic 21.4 nor 29.0 compares agent_version with anything: both only
//   store it in driver_internal_info (agent_base.heartbeat); there is no version
//   gate in either release (grep agent_version in ironic/ of both). What they
//   use of an agent is found out by asking: a command that answers 'Unknown
//   command' or an AgentAPIError turns a feature off (service.get_service_steps
//   -> no service steps, standby.sync -> a warning), and the lookup `config`
//   tells the agent what the conductor allows. So the number enables nothing by
//   itself in these releases; it is what operators, logs and future Ironic
//   gates read, and it must not promise more than we do.
// - Up to IPA 10.2 we implement what both releases call: clean/deploy steps,
//   service.get_service_steps / service.execute_service_step (service_steps,
//   service_result, service_step, service_version), system.lockdown, IPA 10's
//   token rule for GETs of /v1/commands (Ironic 29.0 sends agent_token there),
//   and the 29.0 lookup keys (agent_md5_checksum_enable, permitted_image_formats,
//   disable_deep_image_inspection), and rescue.finalize_rescue (IPA 6.0's
//   {rescue_password, hashed} form, which 21.4, 29.0 and 39.0 all send first;
//   docs/rescue.md).
// See docs/ironic-releases.md.
export const PRODUCT_VERSION = '0.1.0';
export const IPA_API_VERSION = '10.2.0';
export const AGENT_VERSION = `${IPA_API_VERSION}+metal.${PRODUCT_VERSION}`;
