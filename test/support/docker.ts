/**
 * Docker schema 2 fixtures: an OCI layout converted with `skopeo copy
 * --format v2s2`, then given the config `docker build` writes.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { skopeo } from './env.js';
import { sha256 } from './oci-layout.js';

/**
 * Copies `source` (e.g. `oci:/layout:v1`) into a `dir:` image in Docker
 * schema 2 at `dir`, and replaces its config with the one Docker Engine would
 * write for the same image: `container`, `container_config`,
 * `docker_version`, the empty `Hostname`/`Domainname`/... fields, keys in
 * Docker's order.
 *
 * That matters: skopeo's own v2s2 config is exactly what containers/image
 * re-serialises when it converts the manifest to OCI, so the converted
 * manifest would name a config the source happens to store. For an image
 * Docker built, as here, the converted config (Docker-only fields dropped)
 * is a blob the source does not have.
 */
export function dockerDirImage(source: string, dir: string): { manifestDigest: string; configDigest: string } {
  skopeo('copy', '--quiet', '--format', 'v2s2', source, `dir:${dir}`);
  const manifestPath = join(dir, 'manifest.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
    mediaType: string;
    config: { mediaType: string; digest: string; size: number };
  };
  if (manifest.mediaType !== 'application/vnd.docker.distribution.manifest.v2+json') {
    throw new Error(`skopeo copy --format v2s2 wrote ${manifest.mediaType}`);
  }
  const oldConfigPath = join(dir, manifest.config.digest.slice('sha256:'.length));
  const config = JSON.parse(readFileSync(oldConfigPath, 'utf8')) as {
    created: string;
    architecture: string;
    os: string;
    config?: { Env?: string[]; Cmd?: string[]; Labels?: Record<string, string> };
    rootfs: unknown;
    history?: unknown[];
  };
  const containerConfig = (cmd: string[]) => ({
    Hostname: '',
    Domainname: '',
    User: '',
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    Tty: false,
    OpenStdin: false,
    StdinOnce: false,
    Env: config.config?.Env ?? null,
    Cmd: cmd,
    Image: '',
    Volumes: null,
    WorkingDir: '',
    Entrypoint: null,
    OnBuild: null,
    Labels: config.config?.Labels ?? null,
  });
  const docker = Buffer.from(
    JSON.stringify({
      architecture: config.architecture,
      config: containerConfig(config.config?.Cmd ?? []),
      container: '3c3f5d7e1e8b4a0c9d2f6b1a7e5c4d3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d',
      container_config: containerConfig(['/bin/sh', '-c', '#(nop) ', 'CMD ["/bin/sh"]']),
      created: config.created,
      docker_version: '20.10.24',
      history: config.history,
      os: config.os,
      rootfs: config.rootfs,
    }),
  );
  const configDigest = sha256(docker);
  rmSync(oldConfigPath);
  writeFileSync(join(dir, configDigest.slice('sha256:'.length)), docker);
  manifest.config = { ...manifest.config, digest: configDigest, size: docker.length };
  const raw = Buffer.from(JSON.stringify(manifest));
  writeFileSync(`${manifestPath}.tmp`, raw);
  renameSync(`${manifestPath}.tmp`, manifestPath);
  return { manifestDigest: sha256(raw), configDigest };
}
