// The survivors and no-coverage mutants of src/extract/rootfs-writer.ts (runs E1 and E2 of
// 2026-12-05, MUTATION.md: the ones section "later (branch mutate2)" kept as "real, no test
// here produces") and of src/extract/tar-reader.ts (run TR, MUTATION.md "ninth") that the tests
// of branch mutate11 kill, written down as must-fail mutants (names: line:column, mutator and
// replacement as scored; find/replace: the same break of the current code). Check them with
//   node scripts/mutation/must-fail.mjs --mutants scripts/mutation/confirmed/extract-2026-12-05b.mjs
// Some are also in the CI list (must-fail-mutants.mjs); CI does not run this one.
const RW = 'src/extract/rootfs-writer.ts';
const DEPTH = "const depth = (rel: string) => (rel === '' ? 0 : rel.split('/').length);";
const SORT = 'const dirs = [...rootfs.deferred].sort(([a], [b]) => depth(b) - depth(a));';
const OPEN_GONE = "if (['ENOENT', 'ELOOP', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '')) continue;";
const WRITE = 'writeSync(file.fd, chunk, at, chunk.length - at, offset + at)';
const NOT_USER = 'if (!isUser && !this.#rootfs.canSetAnyXattr) {';
const rw = (name, find, replace, only) => ({ name, file: RW, find, replace, test: 'unit/extract', only });
const ORDER = 'deepest directories first';
const REFUSED = 'names what the kernel refuses';
const GONE = 'the root is gone or replaced';
const OTHER_FS = 'skips xattrs a file system does not support';
const UNSUPPORTED = "if (code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw error;";
const CATCH = "{\n        const code = (error as NodeJS.ErrnoException).code;\n        if (code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw error;\n        this.#skip(name, 'the target filesystem does not support it');\n      }";
export const MUTANTS = [
  // finish(): deepest first, as a user without CAP_DAC_OVERRIDE needs it
  rw("266:37 ConditionalExpression true (every depth 0: the layer's order, parents first)", DEPTH, DEPTH.replace("rel === ''", 'true'), ORDER),
  rw("266:37 ConditionalExpression false (the root's depth 1: set before a directory in it)", DEPTH, DEPTH.replace("rel === ''", 'false'), ORDER),
  rw("266:37 EqualityOperator rel !== ''", DEPTH, DEPTH.replace("rel === ''", "rel !== ''"), ORDER),
  rw('266:45 StringLiteral "Stryker was here!"', DEPTH, DEPTH.replace("rel === ''", 'rel === "Stryker was here!"'), ORDER),
  rw('267:18 MethodExpression (no sort: the layer\'s order)', SORT, 'const dirs = [...rootfs.deferred];', ORDER),
  rw('267:58 ArithmeticOperator depth(b) + depth(a)', SORT, SORT.replace('depth(b) - depth(a)', 'depth(b) + depth(a)'), ORDER),
  // finish(): which open errors are "gone"
  rw('275:13 ConditionalExpression true (EACCES skipped too)', OPEN_GONE, 'if (true) continue;', REFUSED),
  rw('275:13 ConditionalExpression false (a root gone fails finish)', OPEN_GONE, 'if (false) continue;', GONE),
  rw('275:14 StringLiteral "" (ENOENT)', OPEN_GONE, OPEN_GONE.replace("'ENOENT'", '""'), GONE),
  rw('275:24 StringLiteral "" (ELOOP)', OPEN_GONE, OPEN_GONE.replace("'ELOOP'", '""'), GONE),
  rw('275:33 StringLiteral "" (ENOTDIR)', OPEN_GONE, OPEN_GONE.replace("'ENOTDIR'", '""'), GONE),
  // the defaults of a user who is not root
  rw('301:20 ConditionalExpression true (isRoot)', 'const isRoot = process.getuid?.() === 0;', 'const isRoot = true;', ORDER),
  // a short write to a regular file
  rw('338:81 ArithmeticOperator chunk.length + at', WRITE, WRITE.replace('chunk.length - at', 'chunk.length + at'), 'file size limit'),
  rw('338:100 ArithmeticOperator offset - at', WRITE, WRITE.replace('offset + at', 'offset - at'), 'file size limit'),
  // xattrs
  rw('452:26 ArrowFunction () => undefined (no xattr on symlinks and nodes)', 'this.#xattrs(header, (name, value) => native.setXattr(path, name, value), isSymlink);', 'this.#xattrs(header, () => undefined, isSymlink);', 'on symlinks and fifos as root'),
  rw('517:38 StringLiteral "" (every xattr a user one)', "const isUser = name.startsWith('user.');", 'const isUser = name.startsWith("");', ORDER),
  rw('518:11 ConditionalExpression false', NOT_USER, 'if (false) {', ORDER),
  rw('518:11 BooleanLiteral isUser', NOT_USER, 'if (isUser && !this.#rootfs.canSetAnyXattr) {', ORDER),
  rw('518:52 BlockStatement {}', "{\n        this.#skip(name, 'only root may set attributes outside the user.* namespace');\n        continue;\n      }", '{}', ORDER),
  rw('519:26 StringLiteral ""', "this.#skip(name, 'only root may set attributes outside the user.* namespace');", 'this.#skip(name, "");', ORDER),
  rw('538:15 UpdateOperator seen.entries--', 'if (seen) seen.entries++;', 'if (seen) seen.entries--;', ORDER),
  // AUFS bookkeeping names
  rw('463:9 ConditionalExpression false', 'if (name.startsWith(AUFS_META_PREFIX)) return;', 'if (false) return;', 'AUFS bookkeeping'),
  rw('463:9 MethodExpression endsWith', 'if (name.startsWith(AUFS_META_PREFIX)) return;', 'if (name.endsWith(AUFS_META_PREFIX)) return;', 'AUFS bookkeeping'),
  // errno hints and the message without a syscall
  rw('570:11 StringLiteral "" (EACCES)', "EACCES: 'permission denied',", 'EACCES: "",', REFUSED),
  rw('571:10 StringLiteral "" (EPERM)', "EPERM: 'operation not permitted',", 'EPERM: "",', REFUSED),
  rw('574:10 StringLiteral "" (EFBIG)', "EFBIG: 'the file is too large for the target filesystem',", 'EFBIG: "",', 'file size limit'),
  rw("584:92 StringLiteral \"Stryker was here!\" (an error without a syscall: the addon's)", "${syscall ? ` in ${syscall}` : ''}", '${syscall ? ` in ${syscall}` : "Stryker was here!"}', REFUSED),
  // other file systems (a child with mounts of its own) and an xattr the kernel refuses
  rw('443:52 ConditionalExpression true (a same-numbered inode on another device taken for the link)', 'if (existing && existing.ino === source.ino && existing.dev === source.dev) return;', 'if (existing && existing.ino === source.ino && true) return;', OTHER_FS),
  rw('528:23 BlockStatement {} (xattr errors swallowed)', CATCH, '{}', OTHER_FS),
  rw('530:13 ConditionalExpression true (ENOTSUP fails the layer)', UNSUPPORTED, 'if (true) throw error;', OTHER_FS),
  rw('530:13 ConditionalExpression false (E2BIG skipped)', UNSUPPORTED, 'if (false) throw error;', 'E2BIG'),
  rw("530:13 ConditionalExpression code !== 'ENOTSUP' -> true", UNSUPPORTED, "if (true && code !== 'EOPNOTSUPP') throw error;", OTHER_FS),
  rw('530:22 StringLiteral "" (ENOTSUP)', UNSUPPORTED, "if (code !== \"\" && code !== 'EOPNOTSUPP') throw error;", OTHER_FS),
  rw("530:35 EqualityOperator code === 'EOPNOTSUPP' (E2BIG skipped)", UNSUPPORTED, "if (code !== 'ENOTSUP' && code === 'EOPNOTSUPP') throw error;", 'E2BIG'),
  rw('531:26 StringLiteral ""', "this.#skip(name, 'the target filesystem does not support it');", 'this.#skip(name, "");', OTHER_FS),
  rw('568:11 StringLiteral "" (ENOSPC)', "ENOSPC: 'no space left on the device',", 'ENOSPC: "",', OTHER_FS),
  rw('572:10 StringLiteral "" (EROFS)', "EROFS: 'the target filesystem is read-only',", 'EROFS: "",', OTHER_FS),
  {"name":"479:60 (run TR) Regex: the first trim unanchored (an inner space dropped)","file":"src/extract/tar-reader.ts","find":"const field = block.toString('latin1', 148, 156).replace(/^[\\0 ]+|[\\0 ]+$/g, '');","replace":"const field = block.toString('latin1', 148, 156).replace(/[\\0 ]+|[\\0 ]+$/g, '');","test":"unit/tar-reader","only":"refuses malformed numbers"},
  {"name":"479:60 (run TR) Regex: the second trim unanchored (an inner space dropped)","file":"src/extract/tar-reader.ts","find":"const field = block.toString('latin1', 148, 156).replace(/^[\\0 ]+|[\\0 ]+$/g, '');","replace":"const field = block.toString('latin1', 148, 156).replace(/^[\\0 ]+|[\\0 ]+/g, '');","test":"unit/tar-reader","only":"refuses malformed numbers"},
  {"name":"480:18 (run TR) Regex: octal digits only at the end (a leading + read by parseInt)","file":"src/extract/tar-reader.ts","find":"/^[0-7]+$/.test(field)","replace":"/[0-7]+$/.test(field)","test":"unit/tar-reader","only":"refuses malformed numbers"},
  {"name":"480:18 (run TR) Regex: octal digits only at the start (a trailing x ignored by parseInt)","file":"src/extract/tar-reader.ts","find":"/^[0-7]+$/.test(field)","replace":"/^[0-7]+/.test(field)","test":"unit/tar-reader","only":"refuses malformed numbers"},
];
