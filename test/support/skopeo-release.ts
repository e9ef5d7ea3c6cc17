/**
 * What the skopeo release under test ($SKOPEO) can do, derived from its
 * version (`skopeo --version`) and skopeo's own history, never from the
 * library: tests compare what the library reports or picks
 * (`protocolVersion`, `supports()`, the default transfer) against this, so
 * a library that misjudges a proxy fails instead of quietly testing less.
 */
import { skopeo } from './env.js';

/** Dotted versions compared numerically (kept apart from the library's compareVersions on purpose). */
function atLeast(version: string, minimum: string): boolean {
  const a = version.split('.').map(Number);
  const b = minimum.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}

/**
 * The first skopeo release speaking each protocol version (the history of
 * `protocolVersion` in skopeo's cmd/skopeo/proxy.go): 0.2.4 and 0.2.5 first
 * shipped together in 1.11.0, as did 0.2.7 and 0.2.8 in 1.19.0.
 */
const PROTOCOL_SINCE: ReadonlyArray<readonly [skopeo: string, protocol: string]> = [
  ['1.19.0', '0.2.8'],
  ['1.13.0', '0.2.6'],
  ['1.11.0', '0.2.5'],
  ['1.6.0', '0.2.3'],
];

function releaseOf(output: string): string {
  const match = /version (\d+\.\d+\.\d+)/.exec(output);
  if (!match) throw new Error(`cannot tell the skopeo release from ${JSON.stringify(output)}`);
  return match[1]!;
}

/** e.g. `1.22.0`. */
export const SKOPEO_RELEASE = releaseOf(skopeo('--version'));

const since = (release: string): boolean => atLeast(SKOPEO_RELEASE, release);

/** What this release's proxy does. */
export const RELEASE = {
  /** The protocol version its Initialize reports. */
  protocol: PROTOCOL_SINCE.find(([release]) => since(release))?.[1] ?? 'older than 0.2.3',
  /** OpenImageOptional (0.2.4). */
  openImageOptional: since('1.11.0'),
  /** GetLayerInfo (0.2.5). */
  getLayerInfo: since('1.11.0'),
  /** OpenImage enforces the signature policy (0.2.6). */
  policyEnforcement: since('1.13.0'),
  /** GetLayerInfoPiped (0.2.7). */
  getLayerInfoPiped: since('1.19.0'),
  /** GetRawBlob (0.2.8). */
  getRawBlob: since('1.19.0'),
  /**
   * containers/image re-requests the rest of a blob (an HTTP Range) when the
   * connection breaks mid-body (its docker/body_reader.go, vendored from
   * skopeo 1.12.0 on), so a reset mid-body is no failure at all.
   */
  resumesInterruptedBodies: since('1.12.0'),
} as const;

/** The blob transfers this release can serve. */
export const TRANSFERS: ReadonlyArray<'GetBlob' | 'GetRawBlob'> = RELEASE.getRawBlob ? ['GetBlob', 'GetRawBlob'] : ['GetBlob'];

/** The transfer getBlob should pick by default on this release. */
export const DEFAULT_TRANSFER: 'GetBlob' | 'GetRawBlob' = RELEASE.getRawBlob ? 'GetRawBlob' : 'GetBlob';
