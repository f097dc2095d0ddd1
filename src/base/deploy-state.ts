// What a deploy leaves for the commands after it (get_partition_uuids,
// install_bootloader, a kexec handoff). Steps write it, commands and
// system/kexec read it, the agent clears it for a new session: a shared
// type with no behaviour, so it lives in the base layer where all of them
// may import it. It imports nothing of ours.

export interface DeployState {
  /** The disk the last image went to. */
  rootDevice?: string;
  isWholeDisk?: boolean;
  /** standby.get_partition_uuids' answer. */
  partitionUuids: Record<string, unknown>;
  /** Custom kernel parameters for the deployed OS (install_bootloader and kexec add them). */
  kernelParams: string[];
}
