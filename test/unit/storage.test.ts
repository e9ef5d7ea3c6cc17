/** containers-storage: references: the store specifier and the hints built from it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tagOf } from '../../src/cli/commands/pull.js';
import { parseStorageReference, storeNotFoundHint } from '../../src/storage.js';

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
