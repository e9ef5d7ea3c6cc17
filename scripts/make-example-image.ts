/**
 * Writes the small OCI image bundled with the repo (examples/hello-image),
 * used by `npm run demo`. Deterministic: re-running it changes nothing.
 */
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildImage } from '../test/support/oci-layout.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const layout = join(root, 'examples', 'hello-image');
rmSync(layout, { recursive: true, force: true });
const image = buildImage(layout, 'latest', [
  {
    entries: [
      { type: 'dir', name: 'etc/' },
      { type: 'file', name: 'etc/os-release', content: 'NAME="Hello Image"\nID=hello\n' },
      { type: 'dir', name: 'usr/' },
      { type: 'dir', name: 'usr/share/' },
      { type: 'dir', name: 'usr/share/hello/' },
      { type: 'file', name: 'usr/share/hello/greeting.txt', content: 'Hello from a container layer!\n' },
      { type: 'file', name: 'usr/share/hello/obsolete.txt', content: 'removed by the next layer\n' },
    ],
  },
  {
    compression: 'none',
    entries: [
      { type: 'dir', name: 'usr/share/hello/' },
      { type: 'file', name: 'usr/share/hello/.wh.obsolete.txt', content: '' },
      { type: 'file', name: 'usr/share/hello/packages.txt', content: 'hello-2.12-1.x86_64.rpm\nhello_2.12-1_amd64.deb\n' },
      { type: 'symlink', name: 'usr/share/hello/latest', target: 'greeting.txt' },
    ],
  },
]);
console.log(`wrote ${image.reference} (${image.manifestDigest})`);
