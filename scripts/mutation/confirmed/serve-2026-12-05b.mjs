// The survivors of Stryker run B2 of 2026-12-05 (`MUTATE_TESTS='unit/*,serve'`)
// in src/serve/ (server.ts beyond its option checks, image-cache.ts,
// blob-responder.ts, auth.ts) that the tests of branch mutate9 kill, written
// down as must-fail mutants (names: the line:column in that run's report;
// "(restated)": a mutant of code restated on that branch). Check them with
//   node scripts/mutation/must-fail.mjs --mutants scripts/mutation/confirmed/serve-2026-12-05b.mjs
// CI does not run this list.
const server = (name, find, replace, only) => ({ name: `server:${name}`, file: 'src/serve/server.ts', find, replace, test: 'serve', only });
const cache = (name, find, replace, only) => ({ name: `image-cache:${name}`, file: 'src/serve/image-cache.ts', find, replace, test: 'serve', only });
const responder = (name, find, replace, only) => ({ name: `blob-responder:${name}`, file: 'src/serve/blob-responder.ts', find, replace, test: 'unit/blob-responder', only });

const LOG = '/v2/ is \\{\\}';
const ERRORS = 'every error names';
const CLOSE = 'port in use';
const HEAD_BYTES = 'sent.bytes || (res.writableFinished && !head ? ';
const IN_MEMORY = "if (head || blob.bytes) {";
const OUTCOME = "if (outcome && outcome !== 'complete') entry.outcome = outcome;";
const PAGE = 'return Number.isSafeInteger(n) && n >= 0 ? after.slice(0, n) : after;';
const TTL = 'tagTtl has passed';
const USERS = 'however often';
const MOVED = 'tag moved';
const EXPIRED = 'if (!entry || entry.expires <= now) {';
const FORGET = 'if (this.#byReference.get(reference)?.image === image) this.#byReference.delete(reference);';
const PROBE = 'if (head.length >= 4 && descriptor.size !== UNKNOWN_SIZE) break;';

export const MUTANTS = [
  // server.ts: listen, close, the proxy it owns
  server('107:24 listen() has no error listener', "this.server.once('error', reject);", "this.server.once('', reject);", CLOSE),
  server('109:25 listen() leaves its error listener', "this.server.off('error', reject);", "this.server.off('', reject);", CLOSE),
  server('130:46 close() does not wait for transfers under way', 'await Promise.race([Promise.allSettled([...this.#inFlight]), timeout]);', 'await Promise.race([Promise.allSettled([]), timeout]);', CLOSE),
  server('132:32 close() does not wait for the handlers it cut', 'await Promise.allSettled([...this.#inFlight]);\n      await this.#cache.close();', 'await Promise.allSettled([]);\n      await this.#cache.close();', "waits for a request's handler"),
  server('135:11 a spawned proxy left running', 'if (this.#ownsProxy) await this.proxy.close();', 'if (false) await this.proxy.close();', 'spawned'),
  server('284:36 a spawned proxy not owned', 'return new RegistryServer(proxy, true, options, checked);', 'return new RegistryServer(proxy, false, options, checked);', 'spawned'),
  { name: 'server:280:87 (no coverage) the options message emptied', file: 'src/serve/server.ts', find: "'createRegistryServer: options are required ({ proxy, repositories })'", replace: '""', test: 'unit/serve', only: 'option checks' },
  { name: 'server:283:40 the proxy config replaced by {}', file: 'src/serve/server.ts', find: 'ImageProxy.spawn(options.proxy ?? {})', replace: 'ImageProxy.spawn(options.proxy && {})', test: 'unit/serve', only: 'accepts the smallest limits' },
  // server.ts: the request log
  server("147:99 no remote address logged as text", "remoteAddress: req.socket.remoteAddress ?? ''", 'remoteAddress: req.socket.remoteAddress ?? "Stryker was here!"', 'Unix socket'),
  server('156:11 the log written before the answer went out', 'if (!res.writableFinished && !res.destroyed) await', 'if (false) await', 'larger than the socket'),
  server('156:11 waits only for a finished answer', 'if (!res.writableFinished && !res.destroyed) await', 'if (res.writableFinished && !res.destroyed) await', 'larger than the socket'),
  server('158:36 HEAD logs Content-Length as bytes', HEAD_BYTES, 'sent.bytes || (true ? ', LOG),
  server('158:36 finished || not HEAD', HEAD_BYTES, 'sent.bytes || (res.writableFinished || !head ? ', LOG),
  server('158:60 not-HEAD forced true', HEAD_BYTES, 'sent.bytes || (res.writableFinished && true ? ', LOG),
  server('158:75 (restated: head computed once in #handle) HEAD emptied', "const head = req.method === 'HEAD';", 'const head = req.method === "";', LOG),
  server('153:63 (restated: head computed once in #handle) head always false', "const head = req.method === 'HEAD';", 'const head = false;', LOG),
  server('159:18 ms as now + started', 'entry.ms = performance.now() - started;', 'entry.ms = performance.now() + started;', LOG),
  server('248:11 outcome logged when complete', OUTCOME, 'if (true) entry.outcome = outcome;', LOG),
  server('248:11 outcome || not complete', OUTCOME, "if (outcome || outcome !== 'complete') entry.outcome = outcome;", LOG),
  server('248:22 not-complete forced true', OUTCOME, 'if (outcome && true) entry.outcome = outcome;', LOG),
  // server.ts: headers and bodies
  server("178:30 /v2/'s body emptied", "return sendJson(res, '{}', head);", 'return sendJson(res, "", head);', LOG),
  server('314:22 JSON answers without headers', "res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });", 'res.writeHead(200, {});', LOG),
  server('314:40 JSON Content-Type emptied', "res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });", "res.writeHead(200, { 'Content-Type': '', 'Content-Length': Buffer.byteLength(body) });", LOG),
  server('231:9 a blob never answered from memory (HEAD streams)', IN_MEMORY, 'if (false) {', LOG),
  server('231:9 head && bytes', IN_MEMORY, 'if (head && blob.bytes) {', LOG),
  server('231:29 the in-memory answer emptied', "    if (head || blob.bytes) {\n      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': blob.size, 'Docker-Content-Digest': digest });\n      res.end(head ? undefined : blob.bytes);\n      return;\n    }", '    if (head || blob.bytes) {}', LOG),
  server('232:44 in-memory Content-Type emptied', "res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': blob.size, 'Docker-Content-Digest': digest });", "res.writeHead(200, { 'Content-Type': '', 'Content-Length': blob.size, 'Docker-Content-Digest': digest });", LOG),
  // server.ts: error messages
  server('169:68 401 message emptied', "'authentication required'", '""', 'basic auth over TLS'),
  server('173:67 405 message emptied', "'this registry is read-only: only GET and HEAD are served'", '""', ERRORS),
  server('191:64 tags message emptied', '`the source of ${route.name} cannot list its tags`', '``', ERRORS),
  server('201:85 name message emptied', '`no repository ${name} is served here`', '``', ERRORS),
  server('211:41 tag message emptied', '`no tag ${reference.tag}`', '``', ERRORS),
  server('211:69 digest message emptied', '`no manifest ${reference.digest} served yet (this source opens images by tag: fetch one first)`', '``', ERRORS),
  server('212:56 manifest message emptied', '`${name}: ${what}`', '``', ERRORS),
  // The whole file, not one test: run alone, that test killed it while the whole file did not (an earlier test had the image cached; Stryker run B3, MUTATION.md "tenth").
  server('216:36 (no coverage) every digest served converted', "if ('digest' in reference && image.manifest.digest !== reference.digest) {", "if ('digest' in reference && true) {"),
  server('216:36 (no coverage) === instead of !==', "if ('digest' in reference && image.manifest.digest !== reference.digest) {", "if ('digest' in reference && image.manifest.digest === reference.digest) {", ERRORS),
  server('216:80 (no coverage) a converted manifest served by its source digest', "      throw new RegistryError(404, 'MANIFEST_UNKNOWN', `${name}@${reference.digest} is served converted, as ${image.manifest.digest}`);\n", '', ERRORS),
  server('217:58 (no coverage) converted message emptied', '`${name}@${reference.digest} is served converted, as ${image.manifest.digest}`', '``', ERRORS),
  server('229:62 blob message emptied', '`${name}: ${digest} is not a blob of a manifest served here (fetch the manifest first)`', '``', ERRORS),
  server('240:44 (no coverage) a failed re-open answered without a body', "return sendError(res, error, 'blob', false); // e.g.", "return sendError(res, error, 'blob', true); // e.g.", MOVED),
  // server.ts: tags/list pagination
  server('324:10 isSafeInteger || n >= 0', PAGE, 'return Number.isSafeInteger(n) || n >= 0 ? after.slice(0, n) : after;', 'n=0 lists none'),
  server('324:37 n >= 0 forced true', PAGE, 'return Number.isSafeInteger(n) && true ? after.slice(0, n) : after;', 'n=0 lists none'),
  server('324:37 n > 0', PAGE, 'return Number.isSafeInteger(n) && n > 0 ? after.slice(0, n) : after;', 'n=0 lists none'),
  server("(restated) the query found by '' instead of '?'", "new URLSearchParams(url.slice(url.indexOf('?') + 1))", "new URLSearchParams(url.slice(url.indexOf('') + 1))", 'n=0 lists none'),
  server('(restated) the query starts one character early', "new URLSearchParams(url.slice(url.indexOf('?') + 1))", "new URLSearchParams(url.slice(url.indexOf('?') - 1))", 'n=0 lists none'),
  // auth.ts: Stryker counted it survived in B2; the challenge test/serve.test.ts checks kills it.
  { name: 'auth:19:22 REALM emptied', file: 'src/serve/auth.ts', find: "export const REALM = 'containers-image-proxy';", replace: 'export const REALM = "";', test: 'serve', only: 'basic auth over TLS' },

  // image-cache.ts: images kept open, released, closed
  cache('55:12 open always false', 'return this.#image !== null;', 'return false;', CLOSE),
  cache('145:48 openImages counts none', '.filter((image) => image.open)', '.filter(() => undefined)', CLOSE),
  cache('71:15 release() counted twice', 'if (released) return;', 'if (false) return;', USERS),
  cache('72:22 released never set', 'released = true;', 'released = false;', USERS),
  cache('96:9 the idle timer armed while in use', 'if (this.#users > 0) return;', 'if (false) return;', USERS),
  cache('181:32 close() closes nothing', "  async close(): Promise<void> {\n    await Promise.allSettled([...this.#byReference.values()].map((entry) => entry.image));\n    await Promise.all([...this.#byDigest.values()].map((image) => image.close()));\n  }", '  async close(): Promise<void> {}', CLOSE),
  cache('182:66 close() does not wait for resolutions under way', '.map((entry) => entry.image)', '.map(() => undefined)', TTL),
  cache('183:56 close() closes no image', '.map((image) => image.close())', '.map(() => undefined)', CLOSE),
  // image-cache.ts: re-opening an image whose tag moved
  cache('106:9 the re-opened image not checked', "      const { digest } = await this.#proxy.fetchManifestRaw(image);\n      if (digest !== this.sourceDigest) {\n        throw new RegistryError(404, 'BLOB_UNKNOWN', `the image behind this manifest changed at the source (${this.sourceDigest} is now ${digest}); fetch the manifest again`);\n      }\n", '', MOVED),
  cache('108:11 a changed image accepted', 'if (digest !== this.sourceDigest) {', 'if (false) {', MOVED),
  cache('108:41 (no coverage) the refusal emptied', "        throw new RegistryError(404, 'BLOB_UNKNOWN', `the image behind this manifest changed at the source (${this.sourceDigest} is now ${digest}); fetch the manifest again`);\n", '', MOVED),
  cache('109:54 (no coverage) message emptied', '`the image behind this manifest changed at the source (${this.sourceDigest} is now ${digest}); fetch the manifest again`', '``', MOVED),
  cache('111:21 (no coverage) a failed re-open swallowed', "    } catch (error) {\n      await image.close().catch(() => {});\n      throw error;\n    }\n    this.#image = image;", '    } catch (error) {}\n    this.#image = image;', MOVED),
  // image-cache.ts: tags and their TTL
  cache('155:9 a tag always asked again', EXPIRED, 'if (true) {', TTL),
  cache('155:19 a tag never expires', EXPIRED, 'if (!entry || false) {', TTL),
  cache('155:19 expires < now', EXPIRED, 'if (!entry || entry.expires < now) {', TTL),
  cache('155:19 expires > now', EXPIRED, 'if (!entry || entry.expires > now) {', TTL),
  cache('157:26 expires now - ttl', 'now + this.#options.tagTtlMs', 'now - this.#options.tagTtlMs', TTL),
  cache('159:25 a failed resolution kept', `image.catch(() => {\n        ${FORGET}\n      });`, 'image.catch(() => {});', TTL),
  cache('160:13 a failed resolution never forgotten', FORGET, 'if (false) this.#byReference.delete(reference);', TTL),
  cache('160:13 !== instead of ===', FORGET, 'if (this.#byReference.get(reference)?.image !== image) this.#byReference.delete(reference);', TTL),
  cache('213:104 a re-serialised config not served from memory', '...(servable.configBytes && { bytes: servable.configBytes })', '...(servable.configBytes && {})', 'written by hand'),
  server('231:9 (GET) a config never answered from memory', "    if (head || blob.bytes) {\n      res.writeHead(", "    if (head) {\n      res.writeHead(", 'written by hand'),
  cache('160:13 a failed resolution drops a newer one', FORGET, 'if (true) this.#byReference.delete(reference);', 'newer one replaced it'),
  cache('188:9 a repository forgets what it served before', 'if (!known) this.#repositories.set', 'if (true) this.#repositories.set', 'keeps serving the blobs'),
  cache('198:18 a known source manifest probed again', "      if (again) {\n        await image.close();\n        return again;\n      }", '      if (again) {}', TTL),
  cache('207:18 a manifest already served from another source manifest served again as a new image', "      if (known) {\n        await image.close();\n        return known;\n      }", '      if (known) {}', 'reformatted'),
  // image-cache.ts: probeLayer on protocol 0.2.3, where containers-storage: gives no layer sizes (skopeo 1.9.3; the podman tests run as
  // root, the second on the store the first pulled into: 'podman' runs both)
  { ...cache('240:7 the counted size negative', 'size += chunk.length;', 'size -= chunk.length;', 'podman'), release: 'oldest' },
  { ...cache('241:11 the break taken on every first chunk', PROBE, 'if (true) break;', 'podman'), release: 'oldest' },
  { ...cache('241:11 head || size known', PROBE, 'if (head.length >= 4 || descriptor.size !== UNKNOWN_SIZE) break;', 'podman'), release: 'oldest' },
  { ...cache('241:31 size known forced true', PROBE, 'if (head.length >= 4 && true) break;', 'podman'), release: 'oldest' },
  { ...cache('241:31 === UNKNOWN_SIZE', PROBE, 'if (head.length >= 4 && descriptor.size === UNKNOWN_SIZE) break;', 'podman'), release: 'oldest' },
  { ...cache('246:24 the counted size never used', 'descriptor: descriptor.size === UNKNOWN_SIZE ?', 'descriptor: false ?', 'podman'), release: 'oldest' },
  // blob-responder.ts: headers, counting, backpressure, a failure or a client gone mid-blob
  responder('50:23 Content-Type emptied', "'Content-Type': 'application/octet-stream',", "'Content-Type': '',", 'many small chunks'),
  responder('64:9 sent counts down', '        sent.bytes += held.length;\n        // Wait', '        sent.bytes -= held.length;\n        // Wait', 'many small chunks'),
  responder('80:13 the last chunk counted down', 'if (held) sent.bytes += held.length;', 'if (held) sent.bytes -= held.length;', 'many small chunks'),
  responder('66:13 a wait for drain after every write', '!res.write(held) && res.writableLength >= MAX_QUEUED_BYTES && !(await drained(res, clientIdleTimeoutMs))', '(!res.write(held) && res.writableLength >= MAX_QUEUED_BYTES) || !(await drained(res, clientIdleTimeoutMs))', 'many small chunks'),
  responder('73:9 a failure after the status rethrown', 'if (!res.headersSent) {\n      stream.destroy();', 'if (true) {\n      stream.destroy();', 'fails after the first bytes'),
  responder('95:7 a response already closed not noticed', 'if (res.destroyed) return Promise.resolve(CLIENT_GONE);', 'if (false) return Promise.resolve(CLIENT_GONE);', 'gone before the blob opened'),
  responder('103:17 (restated: one off() after the step settles) a close listener left per chunk', ".finally(() => res.off('close', onClose))", ".finally(() => res.off('', onClose))", 'many small chunks'),
  responder('120:15 a close listener left per wait for drain', "res.off('close', onClose);\n      resolve(ok);", "res.off('', onClose);\n      resolve(ok);", 'does not read'),
];
