/**
 * A process to kill: runs pullImage or extractImage (argv: pull|extract
 * REFERENCE DIR) with the skopeo of $SKOPEO and prints each event's type on
 * stdout as it happens, so the test can SIGKILL it at a chosen moment.
 */
import { writeSync } from 'node:fs';
import { extractImage, pullImage, type ImageProgressEvent } from '../../src/index.js';
import { baseConfig } from './env.js';

const [what, reference, dir] = process.argv.slice(2) as [string, string, string];
const onProgress = (event: ImageProgressEvent): void => {
  writeSync(1, `${event.type}\n`); // synchronous: the line is out before the work goes on
};
const options = { jobs: 3, progressInterval: 0, onProgress };
if (what === 'pull') await pullImage(baseConfig(), reference, dir, options);
else await extractImage(baseConfig(), reference, dir, options);
