export * from './paths.js';
export * from './db.js';
export * from './loops.js';
export * from './config.js';
export * from './iterations.js';
export * from './db-fault.js';
