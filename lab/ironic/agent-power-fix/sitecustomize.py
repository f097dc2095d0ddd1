# Loaded by the demo's Ironic 21.4 (PYTHONPATH): keeps agent_url, the agent
# token and its CA for nodes on the `agent` power interface until
# AgentPower.reboot has sent standby.run_image (it wipes URL and token itself
# right after). Without it, node_power_action(REBOOT) wipes them first
# (wipe_internal_info_on_power_off) and the end-of-deploy run_image fails with
# "Agent driver requires agent_url in driver_internal_info" (21.4 and 29.0
# alike; pinned by test/integration/fast-track-kexec.test.ts). Same change as
# that test's the same fix: the shape of a conductor fix, not agent behaviour.
#
# Applied lazily, when Ironic itself imports ironic.conductor.utils: importing
# Ironic here, before ironic.cmd monkey-patches with eventlet, would load ssl
# unpatched, and every HTTPS call to the agent then dies with RecursionError.
import sys

_TARGET = 'ironic.conductor.utils'
_KEEP = ('agent_url', 'agent_secret_token', 'agent_verify_ca')


def _patch(mod):
    orig = mod.wipe_internal_info_on_power_off
    if getattr(orig, '_metal_agent_shim', False):
        return

    def wipe(node):
        kept = {k: node.driver_internal_info.get(k) for k in _KEEP} if node.power_interface == 'agent' else {}
        orig(node)
        for k, v in kept.items():
            if v is not None:
                node.set_driver_internal_info(k, v)

    wipe._metal_agent_shim = True
    mod.wipe_internal_info_on_power_off = wipe


class _Finder:
    def find_spec(self, name, path=None, target=None):
        if name != _TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, 'find_spec'):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        orig_exec = loader.exec_module

        def exec_module(module):
            orig_exec(module)
            _patch(module)

        loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _Finder())
