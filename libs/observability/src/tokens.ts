/** Nest injection tokens for what every app's main.ts builds once and hands to its module. */
export const LOGGER = Symbol('LOGGER');
export const METRICS_REGISTRY = Symbol('METRICS_REGISTRY');
