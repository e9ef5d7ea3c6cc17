// Hand-written mutants for scripts/mutation/must-fail.mjs: breaks of src/
// that a test must notice. Each: `find` (exact text, once in `file`) becomes
// `replace`; `test` names the test file (.build/test/NAME.test.js) and
// `only` a --test-name-pattern within it, to keep the run short; `release:
// 'oldest'` runs it on the oldest skopeo of the matrix (a fallback path).
// Keep the whole list under ~2 minutes: add the breaks that matter most and
// that a test once missed (see MUTATION.md).
export const MUTANTS = [
  // --- AbortSignal honoured by every call (test/signals.test.ts)
  {
    name: 'fetchConfigRaw ignores its signal',
    file: 'src/proxy.ts',
    find: '(call) => fetchConfigRaw(this.#supervisor, image, call)',
    replace: '(call) => fetchConfigRaw(this.#supervisor, image, { policy: call.policy })',
    test: 'signals',
    only: 'fetchConfigRaw',
  },
  {
    name: 'fetchConfig drops its signal',
    file: 'src/proxy.ts',
    find: 'return parseConfig(await this.fetchConfigRaw(image, options));',
    replace: 'return parseConfig(await this.fetchConfigRaw(image, {}));',
    test: 'signals',
    only: 'fetchConfig:',
  },
  {
    name: 'getLayerInfo drops its signal',
    file: 'src/proxy.ts',
    find: 'servedLayers(this.#supervisor, image, call))).layers',
    replace: 'servedLayers(this.#supervisor, image, { policy: call.policy }))).layers',
    test: 'signals',
    only: 'getLayerInfo',
  },
  {
    name: 'getLayerDiffIds fetches the config without its signal',
    file: 'src/metadata.ts',
    find: 'const config = served.config ?? parseConfig(await fetchConfigRaw(supervisor, image, call));',
    replace: 'const config = served.config ?? parseConfig(await fetchConfigRaw(supervisor, image, { policy: call.policy }));',
    test: 'signals',
    only: 'getLayerDiffIds',
  },
  {
    name: 'openImageOptional (OpenImageOptional) ignores its signal',
    file: 'src/images.ts',
    find: "supervisor.call('OpenImageOptional', () => [reference], 'plain', requestOptions(call, closeAbandonedImage(call.policy)))",
    replace: "supervisor.call('OpenImageOptional', () => [reference], 'plain', requestOptions({ policy: call.policy }, closeAbandonedImage(call.policy)))",
    test: 'signals',
    only: 'openImageOptional',
  },
  {
    name: 'openImageOptional (0.2.3 fallback) drops its signal',
    file: 'src/images.ts',
    find: 'image = await openImage(supervisor, owner, reference, call);',
    replace: 'image = await openImage(supervisor, owner, reference, { policy: call.policy });',
    test: 'signals',
    only: 'openImageOptional',
    release: 'oldest',
  },
  {
    name: 'closeImage ignores its signal',
    file: 'src/images.ts',
    find: 'await untilAborted(closed, call.signal);',
    replace: 'await closed;',
    test: 'signals',
    only: 'closeImage',
  },
  // --- Retries (test/stall.test.ts)
  {
    name: 'the retrying blob stream never re-opens',
    file: 'src/retry.ts',
    find: 'if (this.#emitted > 0 || this.#attempt >= this.policy.attempts || !isRetryable(error)) {',
    replace: 'if (true) {',
    test: 'stall',
    only: 'stalls before its first byte',
  },
  {
    name: 'getBlob does not retry opening the blob',
    file: 'src/blobs/index.ts',
    find: 'if (!policy || policy.attempts <= 1) return open();',
    replace: 'return open();',
    test: 'stall',
    only: 'first-attempt 503: with a retry policy',
  },
  {
    name: 'getBlob retries without being asked (a failure would never show)',
    file: 'src/blobs/index.ts',
    find: 'const policy = call.policy.retry;',
    replace: 'const policy = call.policy.retry ?? { attempts: 3, backoff: 50 };',
    test: 'stall',
    only: 'first-attempt 503: without retry',
  },
  // Stryker survivors on skopeo 1.22, where skopeo resumes a reset body and
  // the stall test never reaches these branches (test/unit/retry.test.ts).
  {
    name: 'the retrying blob stream starts over after bytes went out',
    file: 'src/retry.ts',
    find: 'if (this.#emitted > 0 || this.#attempt >= this.policy.attempts || !isRetryable(error)) {',
    replace: 'if (this.#attempt >= this.policy.attempts || !isRetryable(error)) {',
    test: 'unit/retry',
    only: 'bytes went out',
  },
  {
    name: 'the retrying blob stream tries once more than its policy allows',
    file: 'src/retry.ts',
    find: 'if (this.#emitted > 0 || this.#attempt >= this.policy.attempts || !isRetryable(error)) {',
    replace: 'if (this.#emitted > 0 || this.#attempt > this.policy.attempts || !isRetryable(error)) {',
    test: 'unit/retry',
    only: 'exactly `attempts` tries',
  },
  // --- Streams and the CLI
  {
    name: 'a GetBlob stream does not ask FinishPipe for the verdict at EOF',
    file: 'src/blobs/finish-pipe-stream.ts',
    find: '      this.#idle();\n      this.#sendFinish();\n      this.#maybeComplete();',
    replace: '      this.#idle();\n      this.#maybeComplete();',
    test: 'faults',
    only: 'mid-stream \\(GetBlob\\)',
  },
  {
    name: "FinishPipe's verdict is ignored",
    file: 'src/blobs/finish-pipe-stream.ts',
    find: 'const { error } = this.#verdict;',
    replace: 'const error = undefined;',
    test: 'proxy',
    only: 'corrupted blob',
  },
  {
    name: 'GetRawBlob streams skip the digest check',
    file: 'src/blobs/raw-blob-stream.ts',
    find: '    if (actual !== this.digest) {\n      this.destroy(new BlobVerificationError(this.digest, this.expectedSize, this.#received, `digest mismatch: the bytes hash to ${actual}`));\n      return;',
    replace: '    if (false) {\n      this.destroy(new BlobVerificationError(this.digest, this.expectedSize, this.#received, `digest mismatch: the bytes hash to ${actual}`));\n      return;',
    test: 'proxy',
    only: 'corrupted blob',
  },
  {
    name: 'an OpenImage abandoned in flight is not closed on the server',
    file: 'src/images.ts',
    find: "if (typeof reply.value !== 'number' || reply.value <= 0) return;",
    replace: 'return;',
    test: 'faults',
    only: 'abandoned in flight',
  },
  {
    name: 'pull --to-devnull fetches nothing',
    file: 'src/pull-image.ts',
    find: '  await pipeline(stream, sniffer.step(step), new Writable({ write: (_chunk, _encoding, done) => done() }), signal ? { signal } : {});',
    replace: '  stream.destroy();',
    test: 'cli',
    only: 'to-devnull',
  },
  {
    name: 'an aborted blob stream closes without AbortError',
    file: 'src/blobs/stream-kit.ts',
    find: 'stream.destroy(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));',
    replace: 'stream.destroy();',
    test: 'soak',
  },
  {
    name: 'supports() says no to everything (the GetRawBlob tests would quietly not run)',
    file: 'src/supervisor.ts',
    find: 'return compareVersions(this.protocolVersion, FEATURE_VERSIONS[feature]) >= 0;',
    replace: 'return false;',
    test: 'versions',
    only: 'supports\\(\\) agrees',
  },
  // --- Reply deadlines and closing (test/deadlines.test.ts)
  {
    name: 'FinishPipe has no reply deadline',
    file: 'src/replies.ts',
    find: 'this.#finished ??= this.owner.finishPipe(this.pipeId, this.#deadline);',
    replace: "this.#finished ??= this.owner.finishPipe(this.pipeId, new ReplyDeadline('FinishPipe', 0));",
    test: 'deadlines',
    only: 'FinishPipe gets no answer',
  },
  {
    name: 'an aborted close never sends CloseImage',
    file: 'src/images.ts',
    find: "  const closed = supervisor\n    .call('CloseImage', id, 'plain', requestOptions({ policy: call.policy }))",
    replace: "  call.signal?.throwIfAborted();\n  const closed = supervisor\n    .call('CloseImage', id, 'plain', requestOptions({ policy: call.policy }))",
    test: 'deadlines',
    only: 'close call is aborted',
  },
  // --- Extraction (test/unit/extract.test.ts)
  {
    name: 'extraction lets ".." climb out of the root',
    file: 'src/extract/rootfs-writer.ts',
    find: "if (parts.includes('..')) throw hostile(",
    replace: "if (false) throw hostile(",
    test: 'unit/extract',
    only: 'refuses',
  },
  // --- Whole images (test/images.test.ts)
  {
    name: 'extractImage frees a fetch slot before the layer is applied (unbounded spool)',
    file: 'src/extract-image.ts',
    find: 'await applier.applied(position, jobSignal);',
    replace: '',
    test: 'images',
    only: 'at most .jobs. layers',
  },
  // --- serve (test/serve.test.ts)
  {
    name: 'serve sends the last chunk of a blob before it is verified',
    file: 'src/serve/blob-responder.ts',
    find: '      held = next.value;',
    replace: '      held = next.value;\n      sent.bytes += held.length;\n      res.write(held);\n      held = undefined;',
    test: 'serve',
    only: 'corrupt at the source',
  },
  {
    name: 'serve takes layer media types on trust (no probe of the bytes)',
    file: 'src/serve/image-cache.ts',
    find: 'for (const descriptor of servable.layers) layers.push(await probeLayer(proxy, image, descriptor));',
    replace: "for (const descriptor of servable.layers) layers.push({ descriptor, compression: /zstd/.test(descriptor.mediaType) ? 'zstd' : /gzip/.test(descriptor.mediaType) ? 'gzip' : 'none' });",
    test: 'serve',
    only: 'docker-archive:',
  },
  {
    name: 'serve accepts any repository name (no grammar)',
    file: 'src/serve/repositories.ts',
    find: '  return name.length <= MAX_NAME_LENGTH && NAME.test(name);',
    replace: '  return name.length > 0;',
    test: 'serve',
    only: 'traversal',
  },

];
