/** containers-storage: references: the store specifier and the hints built from it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tagOf } from '../../src/cli/commands/pull.js';
import { parseStorageReference, STORE_BLOB_HINT, storeLayers, storeNotFoundHint } from '../../src/storage.js';

describe('parseStorageReference', () => {
  it('splits [driver@root+runroot:options] as containers/image does', () => {
    assert.deepEqual(parseStorageReference('containers-storage:[vfs@/s/root+/s/run]localhost/app:v1'), {
      driver: 'vfs',
      root: '/s/root',
      runroot: '/s/run',
      image: 'localhost/app:v1',
    });
    assert.deepEqual(parseStorageReference('containers-storage:[overlay@/s/root+/s/run:overlay.mount_program=/usr/bin/fuse-overlayfs]app'), {
      driver: 'overlay',
      root: '/s/root',
      runroot: '/s/run',
      options: 'overlay.mount_program=/usr/bin/fuse-overlayfs',
      image: 'app',
    });
    assert.deepEqual(parseStorageReference('containers-storage:[/s/root]app@sha256:abc'), { root: '/s/root', image: 'app@sha256:abc' });
    assert.deepEqual(parseStorageReference('containers-storage:localhost/app:v1'), { image: 'localhost/app:v1' });
    assert.deepEqual(parseStorageReference('containers-storage:6a7d6f56d390'), { image: '6a7d6f56d390' });
  });

  it('is undefined for other transports and an unclosed bracket', () => {
    assert.equal(parseStorageReference('oci:/x:v1'), undefined);
    assert.equal(parseStorageReference('docker://quay.io/a/b'), undefined);
    assert.equal(parseStorageReference('containers-storage:[vfs@/s/root'), undefined);
  });
});

describe('storeNotFoundHint', () => {
  it('names the store searched and the same store with the other driver', () => {
    const hint = storeNotFoundHint('containers-storage:[overlay@/s/root+/s/run]localhost/app:v1')!;
    assert.match(hint, /may be in another store or storage driver: the overlay store at \/s\/root does not have it/);
    assert.ok(hint.includes('containers-storage:[vfs@/s/root+/s/run]localhost/app:v1'), hint);
    assert.ok(storeNotFoundHint('containers-storage:[vfs@/s/root+/s/run]app')!.includes('containers-storage:[overlay@/s/root+/s/run]app'));
  });

  it('shows the [vfs@ROOT+RUNROOT] form for the default store', () => {
    const hint = storeNotFoundHint('containers-storage:localhost/app:v1')!;
    assert.match(hint, /the default store/);
    assert.ok(hint.includes('containers-storage:[vfs@ROOT+RUNROOT]localhost/app:v1'), hint);
  });

  it('is undefined for other transports', () => {
    assert.equal(storeNotFoundHint('oci:/x:v1'), undefined);
  });
});

describe('pull: the default tag of a containers-storage: reference', () => {
  it('is the tag of NAME:TAG, else latest; the store specifier is not mistaken for one', () => {
    assert.equal(tagOf('containers-storage:[vfs@/s/root+/s/run]localhost/app:v1'), 'v1');
    assert.equal(tagOf('containers-storage:[overlay@/s/root+/s/run:overlay.mountopt=nodev]localhost:5000/app'), 'latest');
    assert.equal(tagOf('containers-storage:localhost:5000/app:2.0'), '2.0');
    assert.equal(tagOf('containers-storage:[vfs@/s:x/root+/s/run]app@sha256:' + 'a'.repeat(64)), 'latest');
    assert.equal(tagOf('containers-storage:6a7d6f56d390'), 'latest');
  });
});

describe('containers-storage:, each part', () => {
  it('parseStorageReference: each part may be empty or missing, at the very start of the bracket too', () => {
    assert.deepEqual(parseStorageReference('containers-storage:[@/s/root+/s/run]app'), { driver: '', root: '/s/root', runroot: '/s/run', image: 'app' });
    assert.deepEqual(parseStorageReference('containers-storage:[:opt=1]app'), { options: 'opt=1', image: 'app' });
    assert.deepEqual(parseStorageReference('containers-storage:[+/s/run]app'), { runroot: '/s/run', image: 'app' });
    assert.deepEqual(parseStorageReference('containers-storage:[vfs@]app'), { driver: 'vfs', image: 'app' });
  });

  it('storeNotFoundHint: the whole hint, for a store named by its root and for the default store with a driver', () => {
    const how =
      `A store's images are found only through the driver that wrote them (an image pulled with "podman --storage-driver vfs" is not found through the default overlay driver), and each user has a store of their own. `;
    const prints = `("podman info --format '{{.Store.GraphDriverName}}@{{.Store.GraphRoot}}+{{.Store.RunRoot}}'" prints a store's)`;
    assert.equal(
      storeNotFoundHint('containers-storage:[/s/root]app'),
      `the image may be in another store or storage driver: the store at /s/root does not have it. ${how}Name the store in the reference, e.g. containers-storage:[vfs@/s/root+RUNROOT]app ${prints}`,
    );
    assert.equal(
      storeNotFoundHint('containers-storage:[vfs@]app'),
      'the image may be in another store or storage driver: the default store with the vfs driver (from storage.conf: /var/lib/containers/storage as root, ~/.local/share/containers/storage rootless) does not have it. ' +
        `${how}Name the store in the reference, e.g. containers-storage:[overlay@ROOT+RUNROOT]app ${prints}`,
    );
    assert.match(storeNotFoundHint('containers-storage:app')!, /: the default store \(from storage\.conf/);
  });

  it('storeLayers: a layer under its manifest digest keeps its descriptor, others are uncompressed tar of unknown size', () => {
    const manifest = [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${'1'.repeat(64)}`, size: 10 }];
    const diffIds = [`sha256:${'2'.repeat(64)}`];
    assert.deepEqual(storeLayers(manifest, diffIds), [{ digest: diffIds[0], size: -1, mediaType: 'application/vnd.oci.image.layer.v1.tar' }]);
    assert.deepEqual(storeLayers(manifest, [manifest[0]!.digest]), [manifest[0]]);
  });

  it('STORE_BLOB_HINT says why and what to fetch instead', () => {
    assert.equal(
      STORE_BLOB_HINT,
      'containers-storage keeps layers uncompressed and serves them under their diff_ids, not the compressed digests its manifest names: fetch the blobs getLayerInfo() (CLI: layers) lists',
    );
  });
});
