# Deploy interface `direct-kexec`: Ironic's `direct` deploy (AgentDeploy), except that the deploy
# ends with a kexec from the ramdisk into the deployed OS instead of a power cycle.
#
# Stock `direct` ends every deploy in tear_down_agent (priority 40) by powering the node off, in band
# (standby.power_off) or through the power interface, and boot_instance (priority 20) powers it on
# again: the firmware runs a second time. With the `agent` power interface it sends run_image
# instead, but node_power_action(REBOOT) wipes agent_url first and the command never leaves the
# conductor (21.4 and 29.0 alike).
#
# Here tear_down_agent arms the handoff (the agent's in-band kexec_handoff step), sends
# standby.run_image itself and never calls a power action, so the node is still on when
# boot_instance asks the power interface: with any power interface (ipmitool, redfish, fake,
# agent) the node is neither powered off nor passed through its firmware. Whenever the agent cannot
# hand off (no such step, no kernel on the deployed disk, kexec -l refused, run_image failed) the
# deploy ends the stock way, through the power interface, and the reason is logged.
from oslo_log import log

from ironic.common import states
from ironic.conductor import task_manager
from ironic.conductor import utils as manager_utils
from ironic.conf import CONF
from ironic.drivers import base
from ironic.drivers import utils as driver_utils
from ironic.drivers.modules import agent
from ironic.drivers.modules import agent_base
from ironic.drivers.modules import agent_client

from metal_agent_ironic import handoff

LOG = log.getLogger(__name__)

# driver_internal_info: set by tear_down_agent when the agent took the handoff, read (and removed)
# by boot_instance. Anything else Ironic keeps for a deploy is left as it is.
HANDED_OFF = 'metal_agent_kexec_handoff'
RUN_IMAGE_TIMEOUT = 120


def _can_power_on(task):
    return states.POWER_ON in task.driver.power.get_supported_power_states(task)


class KexecAgentDeploy(agent.AgentDeploy):
    """`direct` deploy that ends in a kexec handoff instead of a reboot (metal-agent ramdisk)."""

    @base.deploy_step(priority=40)
    @task_manager.require_exclusive_lock
    def tear_down_agent(self, task):
        """Hands the node to the deployed OS by kexec; the stock power-off path if it cannot."""
        node = task.node
        node.del_driver_internal_info(HANDED_OFF)
        node.save()
        if CONF.agent.deploy_logs_collect == 'always':
            driver_utils.collect_ramdisk_logs(node)
        client = agent_client.get_client(task)
        arm_timeout = CONF.agent.command_wait_attempts * CONF.agent.command_wait_interval
        try:
            client.sync(node)
            plan = handoff.arm(client, node, task.ports, arm_timeout)
            if plan:
                LOG.info('Node %(node)s: kexec handoff armed: %(kernel)s, cmdline %(cmdline)s%(dry)s',
                         {'node': node.uuid, 'kernel': (plan.get('kernel') or {}).get('path'),
                          'cmdline': plan.get('cmdline'), 'dry': ' (dry run)' if plan.get('dry_run') else ''})
            result = handoff.fire(client, node, RUN_IMAGE_TIMEOUT)
        except Exception as e:  # HandoffUnavailable, or the agent failing sync/the step: fall back
            return self._fall_back(task, client, e)
        if result is None:
            LOG.info('Node %s: run_image sent, the agent stopped answering: the deployed OS is '
                     'starting by kexec; no power action', node.uuid)
        else:
            LOG.info('Node %(node)s: run_image answered without leaving the ramdisk (%(msg)s); '
                     'no power action', {'node': node.uuid, 'msg': result.get('message')})
        # The ramdisk is gone, as after a power-off: its URL, token, certificate and cached steps
        # must not outlive it. The power state is left as it is (on).
        manager_utils.wipe_internal_info_on_power_off(node)
        node.set_driver_internal_info(HANDED_OFF, True)
        node.save()

    def _fall_back(self, task, client, why):
        node = task.node
        can_power_on = _can_power_on(task)
        how = ('a power cycle through the %s power interface' if can_power_on
               else "the agent's reboot (standby.run_image: the %s power interface cannot power on)")
        LOG.warning('Node %(node)s: no kexec handoff (%(why)s); ending the deploy with %(how)s',
                    {'node': node.uuid, 'why': why, 'how': how % node.power_interface})
        if can_power_on:
            return super().tear_down_agent(task)
        # A power interface that cannot power on (`agent`): its only way out is run_image, which an
        # agent that could not arm the handoff answers with a reboot. Sent here rather than through
        # node_power_action(REBOOT), which wipes agent_url before AgentPower.reboot can use it.
        try:
            client.reboot(node)
        except Exception as e:
            msg = 'Error rebooting node %s after deploy. %s: %s' % (node.uuid, e.__class__.__name__, e)
            agent_base.log_and_raise_deployment_error(task, msg, exc=e)
        manager_utils.wipe_internal_info_on_power_off(node)
        node.save()

    @base.deploy_step(priority=20)
    @task_manager.require_exclusive_lock
    def boot_instance(self, task):
        """After a handoff the node already runs the deployed OS: no power action unless it is off."""
        node = task.node
        handed_off = node.del_driver_internal_info(HANDED_OFF)
        node.save()
        if handed_off and _can_power_on(task):
            state = task.driver.power.get_power_state(task)
            if state == states.POWER_ON:
                LOG.info('Node %s runs the deployed OS after the kexec handoff; power is on, '
                         'leaving it as it is', node.uuid)
                return
            LOG.warning('Node %(node)s is %(state)s after the kexec handoff; powering it on',
                        {'node': node.uuid, 'state': state})
        return super().boot_instance(task)
