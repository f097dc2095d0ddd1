# The conversation with the ramdisk that a kexec handoff needs, over Ironic's own agent client
# (so the agent's URL, token and TLS certificate are used exactly as Ironic uses them):
#
#   1. arm:  the in-band deploy step `kexec_handoff` finds the deployed OS's kernel, initrd and
#            command line, stages and loads them (`kexec -l`). A missing kernel, an agent without the
#            step (stock IPA) or a refused load ends here, while the agent still answers, so the
#            caller can fall back to a power cycle.
#   2. fire: `standby.run_image`. An armed metal-agent answers it with `kexec -e` instead of a
#            reboot; it quiesces (stops its API) first, so "the agent stopped answering" after an
#            accepted run_image means the deployed kernel is starting.
#
# Nothing here touches the BMC or the node's power state.
import time

from oslo_log import log

from ironic.common import exception

LOG = log.getLogger(__name__)

STEP_NAME = 'kexec_handoff'
ARM_STEP = {'interface': 'deploy', 'step': STEP_NAME, 'args': {}, 'priority': 0}


class HandoffUnavailable(Exception):
    """The agent cannot (or did not) hand off; the deploy must end the usual way."""


def _step_of(command):
    result = command.get('command_result') or {}
    return (result.get('deploy_step') or {}).get('step')


def _error_text(command):
    error = command.get('command_error')
    if isinstance(error, dict):
        return error.get('details') or error.get('message') or str(error)
    return str(error)


def armed_by_this_deploy(commands):
    """True if a kexec_handoff step succeeded after the last write_image (a deploy template may ask
    for it with kernel_params; arming again would drop them). One armed before the last
    write_image belongs to an image that is gone."""
    last_write, last_armed = -1, -1
    for i, cmd in enumerate(commands):
        if cmd.get('command_name') != 'execute_deploy_step':
            continue
        step = _step_of(cmd)
        if step == 'write_image':
            last_write = i
        elif (step == STEP_NAME and cmd.get('command_status') == 'SUCCEEDED'
              and ((cmd.get('command_result') or {}).get('deploy_result') or {}).get('armed')):
            last_armed = i
    return last_armed > last_write


def agent_offers_step(node):
    """False only when the agent's cached deploy steps are known and lack kexec_handoff."""
    cached = node.driver_internal_info.get('agent_cached_deploy_steps')
    if not cached:
        return True
    return any(s.get('step') == STEP_NAME for s in cached.get('deploy', []))


def _wait_until_done(client, node, name, timeout, interval=1.0):
    """Polls the agent's command list until the last `name` command is no longer RUNNING.

    Returns that command, or None when the agent stopped answering (connection refused or timed
    out). Raises HandoffUnavailable when it is still running at the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            commands = client.get_commands_status(node, retry_connection=False, expect_errors=True)
        except exception.AgentConnectionFailed:
            return None
        last = next((c for c in reversed(commands) if c.get('command_name') == name), None)
        if last is not None and last.get('command_status') != 'RUNNING':
            return last
        if time.monotonic() > deadline:
            raise HandoffUnavailable('%s still running after %d s' % (name, timeout))
        time.sleep(interval)


def arm(client, node, ports, timeout):
    """Makes sure the agent holds a loaded handoff for the deployed disk; returns its plan."""
    commands = client.get_commands_status(node)
    if armed_by_this_deploy(commands):
        LOG.info('Node %s: the deploy already armed the kexec handoff (kexec_handoff step); '
                 'using it', node.uuid)
        return None
    if not agent_offers_step(node):
        raise HandoffUnavailable('the agent does not offer the %s deploy step '
                                 '(not a metal-agent ramdisk, or no kexec in it)' % STEP_NAME)
    try:
        client.execute_deploy_step(dict(ARM_STEP), node, ports)
    except exception.IronicException as e:
        raise HandoffUnavailable('the agent refused %s: %s' % (STEP_NAME, e))
    done = _wait_until_done(client, node, 'execute_deploy_step', timeout)
    if done is None:
        raise HandoffUnavailable('the agent stopped answering while arming the handoff')
    if done.get('command_status') != 'SUCCEEDED':
        raise HandoffUnavailable('%s failed: %s' % (STEP_NAME, _error_text(done)))
    plan = (done.get('command_result') or {}).get('deploy_result') or {}
    if not plan.get('armed'):
        raise HandoffUnavailable('%s did not arm a handoff: %s' % (STEP_NAME, plan))
    return plan


def fire(client, node, timeout):
    """Sends standby.run_image and waits for the agent to go (or, in a dry run, to report).

    Returns the run_image result when the agent reported one (a dry run outside a ramdisk), None
    when it stopped answering (the kexec). Raises HandoffUnavailable when run_image failed.
    """
    try:
        client.reboot(node)  # AgentClient.reboot is standby.run_image
    except exception.IronicException as e:
        raise HandoffUnavailable('the agent refused standby.run_image: %s' % e)
    done = _wait_until_done(client, node, 'run_image', timeout)
    if done is None:
        return None
    if done.get('command_status') != 'SUCCEEDED':
        raise HandoffUnavailable('standby.run_image failed: %s' % _error_text(done))
    return done.get('command_result') or {}
