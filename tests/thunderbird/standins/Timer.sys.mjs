// Stand-in for Gecko's Timer.sys.mjs: Node's own timers.
export const setTimeout = globalThis.setTimeout;
export const clearTimeout = globalThis.clearTimeout;
