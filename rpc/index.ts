export * from './messages.js';
export * from './reader.js';
export * from './peer.js';
export * from './params.js';
