/**
 * Types of the OCI image format documents the proxy returns (image-spec 1.1).
 * Fields the spec marks optional are optional here too.
 */

/** The media types of the documents and layers this library reads and writes. */
export const MediaType = {
  /** An OCI image index (a manifest list). */
  ImageIndex: 'application/vnd.oci.image.index.v1+json',
  /** An OCI image manifest. */
  ImageManifest: 'application/vnd.oci.image.manifest.v1+json',
  /** An OCI image configuration. */
  ImageConfig: 'application/vnd.oci.image.config.v1+json',
  /** An uncompressed tar layer. */
  Layer: 'application/vnd.oci.image.layer.v1.tar',
  /** A gzip-compressed tar layer. */
  LayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  /** A zstd-compressed tar layer (zstd:chunked layers too). */
  LayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  /** A Docker image manifest, schema 2. */
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  /** A Docker manifest list. */
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  /** A gzip-compressed Docker layer. */
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** A content descriptor: what a manifest says about a blob. */
export interface Descriptor {
  /** The media type of the blob (see {@link MediaType}). */
  mediaType: string;
  /** The blob's digest, `sha256:` and 64 hex digits. */
  digest: string;
  /** The blob's size in bytes. */
  size: number;
  /** Other places the blob may be fetched from. */
  urls?: string[];
  /** Arbitrary metadata (zstd:chunked layers carry their table of contents' position here). */
  annotations?: Record<string, string>;
  /** The platform of the image a manifest list entry points to. */
  platform?: {
    /** CPU architecture, as Go's GOARCH: `amd64`, `arm64`, … */
    architecture: string;
    /** Operating system, as Go's GOOS: `linux`, … */
    os: string;
    /** Operating system version (Windows images). */
    'os.version'?: string;
    /** Operating system features (Windows images). */
    'os.features'?: string[];
    /** CPU variant: `v8` for arm64, `v7` for arm, … */
    variant?: string;
  };
  /** The type of an artifact, when the blob is one. */
  artifactType?: string;
}

/** An OCI image manifest (the proxy converts Docker schema 2 manifests to this). */
export interface ImageManifest {
  /** Always 2. */
  schemaVersion: 2;
  /** {@link MediaType.ImageManifest} when present. */
  mediaType?: string;
  /** The type of an artifact, when the manifest describes one. */
  artifactType?: string;
  /** The image configuration. */
  config: Descriptor;
  /** The layers, base first. */
  layers: Descriptor[];
  /** The manifest this one refers to (signatures, SBOMs). */
  subject?: Descriptor;
  /** Arbitrary metadata. */
  annotations?: Record<string, string>;
}

/** An OCI image index (manifest list). */
export interface ImageIndex {
  /** Always 2. */
  schemaVersion: 2;
  /** {@link MediaType.ImageIndex} when present. */
  mediaType?: string;
  /** The manifests, each with its platform. */
  manifests: Descriptor[];
  /** Arbitrary metadata. */
  annotations?: Record<string, string>;
}

/** An OCI image configuration. */
export interface ImageConfig {
  /** When the image was created (RFC 3339). */
  created?: string;
  /** Who made the image. */
  author?: string;
  /** CPU architecture, as Go's GOARCH. */
  architecture: string;
  /** Operating system, as Go's GOOS. */
  os: string;
  /** Operating system version (Windows images). */
  'os.version'?: string;
  /** Operating system features (Windows images). */
  'os.features'?: string[];
  /** CPU variant. */
  variant?: string;
  /** How a container of this image runs. */
  config?: {
    /** The user (and group) processes run as: `name`, `uid`, `uid:gid`, … */
    User?: string;
    /** Ports to expose, as keys `port/protocol`. */
    ExposedPorts?: Record<string, object>;
    /** Environment, `NAME=value` entries. */
    Env?: string[];
    /** The command line prefix. */
    Entrypoint?: string[];
    /** Default arguments (the command when there is no entrypoint). */
    Cmd?: string[];
    /** Paths that are volumes, as keys. */
    Volumes?: Record<string, object>;
    /** The working directory. */
    WorkingDir?: string;
    /** Arbitrary metadata. */
    Labels?: Record<string, string>;
    /** The signal that stops the container. */
    StopSignal?: string;
  };
  /** The root filesystem: the layers' uncompressed digests. */
  rootfs: {
    /** Always `layers`. */
    type: 'layers';
    /** Digests of the uncompressed layers, in order. */
    diff_ids: string[];
  };
  /** How each layer was made, base first. */
  history?: Array<{
    /** When the step ran (RFC 3339). */
    created?: string;
    /** The command of the step. */
    created_by?: string;
    /** Who made the step. */
    author?: string;
    /** A free comment. */
    comment?: string;
    /** The step made no layer. */
    empty_layer?: boolean;
  }>;
}

/** A blob the proxy can serve through `getBlob`, as GetLayerInfo reports it. */
export interface ConvertedLayerInfo {
  /** The blob's digest. */
  digest: string;
  /** Bytes; -1 when the proxy cannot tell before the blob is fetched (`containers-storage:` before protocol 0.2.5). */
  size: number;
  /** The blob's media type. */
  mediaType: string;
}
