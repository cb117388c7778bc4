export * from './queue.constants.js';
export * from './redis-connections.js';
export * from './lua-script.js';
export * from './readings-queue.js';
