// IPA's BlockDevice, field for field (ironic_python_agent/hardware.py, 9.4):
// Ironic stores these in the inventory and matches root device hints on them.
export interface BlockDevice {
  /** Kernel device path, e.g. /dev/sda. */
  name: string;
  model: string;
  /** Bytes. */
  size: number;
  rotational: boolean;
  wwn: string | null;
  serial: string | null;
  vendor: string | null;
  wwn_with_extension: string | null;
  wwn_vendor_extension: string | null;
  hctl: string | null;
  by_path: string | null;
  uuid?: string | null;
  partuuid?: string | null;
  logical_sectors?: number | null;
  physical_sectors?: number | null;
  /** Transport: nvme, sata, virtio, usb, ... (lsblk TRAN). */
  tran?: string | null;
}
