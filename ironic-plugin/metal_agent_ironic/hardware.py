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
