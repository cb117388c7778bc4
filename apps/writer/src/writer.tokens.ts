export const WRITER_METRICS = Symbol('WRITER_METRICS');
export const COMMANDS_REDIS = Symbol('COMMANDS_REDIS');
