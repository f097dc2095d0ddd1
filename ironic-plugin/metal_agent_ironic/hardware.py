# Hardware types that accept the `direct-kexec` deploy interface.
#
# Ironic checks a node's interfaces against its hardware type by exact class
# (driver_factory.get_interface: `type(impl) not in hw_type.supported_<x>_interfaces`, the same in
# 21.4 and 29.0), so a subclass of AgentDeploy is refused by the stock ipmi, redfish and
# manual-management types; only fake-hardware accepts any interface. These types are the stock
# ones with KexecAgentDeploy added in front of their deploy interfaces (first: without
# [DEFAULT]default_deploy_interface a node of these types gets direct-kexec by default). Nothing
# else differs: power, management, boot, ... are the stock types' own.
from ironic.drivers import generic
from ironic.drivers import ipmi
from ironic.drivers import redfish

from metal_agent_ironic.deploy import KexecAgentDeploy


def _with_kexec(base_type):
    class KexecHardware(base_type):
        @property
        def supported_deploy_interfaces(self):
            return [KexecAgentDeploy] + super().supported_deploy_interfaces

    KexecHardware.__name__ = KexecHardware.__qualname__ = base_type.__name__.replace('Hardware', 'KexecHardware')
    KexecHardware.__doc__ = '%s, also accepting the direct-kexec deploy interface.' % base_type.__name__
    return KexecHardware


ManualManagementKexecHardware = _with_kexec(generic.ManualManagementHardware)
IPMIKexecHardware = _with_kexec(ipmi.IPMIHardware)
RedfishKexecHardware = _with_kexec(redfish.RedfishHardware)


# Ironic 21.4 and 29.0 pick the settings for the ISOs they build (redfish-virtual-media: Swift or
# the local web server, [redfish]kernel_append_params, the http_root subfolder) by the node's
# hardware type NAME (image_utils.ImageHandler, a table keyed "redfish", "idrac", "ilo", "ilo5"), so
# a node on redfish-kexec with redfish-virtual-media boot fails to prepare its ramdisk with
# KeyError: 'redfish-kexec'. 39.0 (2026.2) asks the boot interface instead and uses the name only
# as a fallback. Until then, our type names are read as the stock type they extend; every other
# name goes through unchanged. This is the plugin's only change to Ironic's own behaviour, applied
# once when Ironic loads these hardware types.
STOCK_NAMES = {'redfish-kexec': 'redfish', 'ipmi-kexec': 'ipmi', 'manual-management-kexec': 'manual-management'}


def _image_handler_reads_stock_names():
    try:
        from ironic.drivers.modules import image_utils
    except ImportError:  # an Ironic without ISO building
        return
    handler = getattr(image_utils, 'ImageHandler', None)
    if handler is None or getattr(handler, '_metal_agent_stock_names', False):
        return
    original = handler.update_driver_config

    def update_driver_config(self, driver, *args, **kwargs):
        return original(self, STOCK_NAMES.get(driver, driver), *args, **kwargs)

    handler.update_driver_config = update_driver_config
    handler._metal_agent_stock_names = True


_image_handler_reads_stock_names()
