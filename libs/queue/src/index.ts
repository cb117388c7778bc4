export * from './queue.constants.js';
export * from './redis-connections.js';
export * from './pending-readings.js';
export * from './lua-script.js';
