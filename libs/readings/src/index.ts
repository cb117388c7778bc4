export * from './reading.types.js';
export * from './validation.js';
export * from './billing-period.js';
export * from './flags.js';
export * from './batch.js';
export * from './reading-id.js';
