export * from './names.js';
export * from './git.js';
export * from './lock.js';
export * from './repos.js';
export * from './worktree.js';
export * from './prune.js';
