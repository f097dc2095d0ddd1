import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { execa } from 'execa';
import type { ReleaseIronic } from './ironic-release.ts';

// An agent token handed to the ramdisk before it boots, as Ironic's
// virtual-media boot interfaces do: the conductor keeps it through power
// actions (wipe_internal_info_on_power_off spares a pregenerated token) and
// the agent gets it on its command line (--agent-token).

/** A token as Ironic makes them (secrets.token_urlsafe(): 32 random bytes, 43 characters). */
export const ironicLikeToken = () => randomBytes(32).toString('base64url');

/** What Ironic's virtual-media boot interfaces do before the ramdisk boots (manager_utils.add_secret_token(node, pregenerated=True)), written into the conductor's sqlite database. */
export async function pregenerateToken(ironic: ReleaseIronic, uuid: string, token: string): Promise<void> {
  const py = [
    'import json,sqlite3,sys',
    'c=sqlite3.connect(sys.argv[1],timeout=10)',
    'r=c.execute("select driver_internal_info from nodes where uuid=?",(sys.argv[2],)).fetchone()',
    'd=json.loads((r and r[0]) or "{}")',
    'd["agent_secret_token"]=sys.argv[3]',
    'd["agent_secret_token_pregenerated"]=True',
    'c.execute("update nodes set driver_internal_info=? where uuid=?",(json.dumps(d),sys.argv[2]))',
    'c.commit()',
  ].join('\n');
  await execa('/usr/bin/python3', ['-c', py, join(ironic.stateDir, 'ironic.sqlite'), uuid, token]);
}
