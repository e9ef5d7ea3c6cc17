// Equivalent survivors in src/blobs/ (format: scripts/mutation/equivalent.mjs).
export const EQUIVALENT = [];
