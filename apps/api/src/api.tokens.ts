export const API_METRICS = Symbol('API_METRICS');
export const PRODUCER_REDIS = Symbol('PRODUCER_REDIS');
