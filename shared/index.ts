/** `upload-hub/protocol`: everything both sides of the wire share. Browser-safe. */
export * from './errors.js';
export * from './messages.js';
export * from './frame.js';
export * from './codec.js';
export * from './progress.js';
export * from './throttle.js';
