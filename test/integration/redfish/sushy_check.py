# Drives lab/redfish/emulator.ts through sushy, the library Ironic's redfish
# drivers use, the way they use it; prints one line per fact for the test.
#   sushy_check.py BMC_URL PASSWORD ISO_URL
import sys
import time

import sushy

url, password, iso = sys.argv[1:4]
try:
    sushy.Sushy(url, username='admin', password=password + '-wrong').get_system('/redfish/v1/Systems/n1')
    print('wrong-password accepted')
except sushy.exceptions.AccessError:
    print('wrong-password refused')

conn = sushy.Sushy(url, username='admin', password=password)
system = conn.get_system('/redfish/v1/Systems/n1')
print('power', system.power_state.value)
print('resets', ','.join(sorted(v.value for v in system.get_allowed_reset_system_values())))
print('targets', ','.join(sorted(v.value for v in system.get_allowed_system_boot_source_values())))
system.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_CD, enabled=sushy.BOOT_SOURCE_ENABLED_ONCE,
                               mode=sushy.BOOT_SOURCE_MODE_UEFI)
system.refresh()
print('boot', system.boot.target.value, system.boot.enabled.value, system.boot.mode.value)
try:  # past sushy's own check, straight to the BMC: it must refuse the value
    conn._conn.patch(system.path, data={'Boot': {'BootSourceOverrideMode': 'Bogus'}})
    print('bogus-mode accepted')
except sushy.exceptions.BadRequestError:
    print('bogus-mode refused')
media = [m for mgr in system.managers for m in mgr.virtual_media.get_members()]
cd = [m for m in media if sushy.VIRTUAL_MEDIA_CD in m.media_types][0]
cd.insert_media(iso, inserted=True, write_protected=True)
cd.refresh()
print('inserted', cd.inserted, cd.image)
system.reset_system(sushy.RESET_ON)
system.refresh()
# The one-time override is consumed by this power on.
print('after-on', system.power_state.value, system.boot.enabled.value)
time.sleep(1)
cd.eject_media()
cd.refresh()
print('ejected', cd.inserted, cd.image)
system.reset_system(sushy.RESET_FORCE_OFF)
system.refresh()
print('after-off', system.power_state.value)
