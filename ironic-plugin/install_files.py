#!/usr/bin/python3
"""Installs this package into a site-packages directory the way pip would, without pip or network.

    install_files.py SITE_DIR        e.g. /usr/local/lib/python3.11/dist-packages, or ROOT/usr/local/...

For the project's lab (lab/ironic/install-plugin.sh): Debian's python refuses `pip install` into the
system (PEP 668) and the Ironic 29.0 root has no pip. It writes the package and a
metal_agent_ironic-VERSION.dist-info (METADATA, entry_points.txt from pyproject.toml, RECORD,
INSTALLER), so importlib.metadata and stevedore (Ironic's entry-point loader) see the entry points
and `pip uninstall metal-agent-ironic` can remove it. A copy whose source hash matches is left
alone (prints "unchanged"); otherwise the old copy is removed first. Python 3.11+ (tomllib).
"""
import base64
import hashlib
import os
import shutil
import sys
import tempfile
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = 'metal_agent_ironic'
HASH_FILE = 'METAL_AGENT_SOURCE_SHA256'


def source_files():
    pkg = os.path.join(HERE, PACKAGE)
    names = sorted(n for n in os.listdir(pkg) if n.endswith('.py'))
    return [os.path.join(pkg, n) for n in names]


def source_hash():
    h = hashlib.sha256()
    for path in [os.path.join(HERE, 'pyproject.toml'), *source_files()]:
        h.update(os.path.relpath(path, HERE).encode() + b'\0')
        with open(path, 'rb') as f:
            h.update(f.read() + b'\0')
    return h.hexdigest()


def record_line(site, path):
    with open(path, 'rb') as f:
        data = f.read()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
    return '%s,sha256=%s,%d' % (os.path.relpath(path, site), digest, len(data))


def main(site):
    with open(os.path.join(HERE, 'pyproject.toml'), 'rb') as f:
        project = tomllib.load(f)['project']
    name, version = project['name'], project['version']
    dist_name = '%s-%s.dist-info' % (name.replace('-', '_'), version)
    want = source_hash()
    os.makedirs(site, exist_ok=True)
    old_dists = [d for d in os.listdir(site) if d.startswith(name.replace('-', '_') + '-') and d.endswith('.dist-info')]
    current = os.path.join(site, dist_name, HASH_FILE)
    if old_dists == [dist_name] and os.path.isfile(current) and open(current).read().strip() == want:
        print('%s %s unchanged in %s' % (name, version, site))
        return
    # Built beside the target and moved in, so a reader never sees half a package.
    stage = tempfile.mkdtemp(prefix='.%s-' % PACKAGE, dir=site)
    try:
        pkg = os.path.join(stage, PACKAGE)
        os.makedirs(pkg)
        for src in source_files():
            shutil.copy2(src, pkg)
        dist = os.path.join(stage, dist_name)
        os.makedirs(dist)
        with open(os.path.join(dist, 'METADATA'), 'w') as f:
            f.write('Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: %s\n'
                    % (name, version, project.get('description', '')))
        with open(os.path.join(dist, 'entry_points.txt'), 'w') as f:
            for group, eps in project.get('entry-points', {}).items():
                f.write('[%s]\n' % group)
                f.writelines('%s = %s\n' % kv for kv in eps.items())
                f.write('\n')
        with open(os.path.join(dist, 'INSTALLER'), 'w') as f:
            f.write('metal-agent-lab\n')
        with open(os.path.join(dist, HASH_FILE), 'w') as f:
            f.write(want + '\n')
        files = [os.path.join(root, n) for root, _, ns in os.walk(stage) for n in ns]
        with open(os.path.join(dist, 'RECORD'), 'w') as f:
            for path in sorted(files):
                f.write(record_line(stage, path) + '\n')
            f.write('%s/RECORD,,\n' % dist_name)
        for old in old_dists:
            shutil.rmtree(os.path.join(site, old))
        shutil.rmtree(os.path.join(site, PACKAGE), ignore_errors=True)
        os.rename(pkg, os.path.join(site, PACKAGE))
        os.rename(dist, os.path.join(site, dist_name))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    print('%s %s installed in %s' % (name, version, site))


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
