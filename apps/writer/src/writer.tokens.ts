export const LOGGER = Symbol('LOGGER');
export const METRICS_REGISTRY = Symbol('METRICS_REGISTRY');
export const WRITER_METRICS = Symbol('WRITER_METRICS');
export const COMMANDS_REDIS = Symbol('COMMANDS_REDIS');
