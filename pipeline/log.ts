/**
 * Stage logging: one line per event, prefixed with the time, the stage and
 * the short cache key.
 *
 * @example
 * ```ts
 * const log = stageLogger("train", "3fa2c1d0e9b7");
 * log.info("iteration 10/100");
 * ```
 * @module
 */

/** A logger bound to one stage run. */
export interface StageLogger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

function stamp(): string {
  return new Date().toISOString().slice(11, 19);
}

/** Creates a logger whose lines read `HH:MM:SS [stage key] message`. */
export function stageLogger(stage: string, key?: string): StageLogger {
  const prefix = key ? `[${stage} ${key.slice(0, 12)}]` : `[${stage}]`;
  return {
    info: (message) => console.log(`${stamp()} ${prefix} ${message}`),
    warn: (message) => console.warn(`${stamp()} ${prefix} warning: ${message}`),
    error: (message) => console.error(`${stamp()} ${prefix} error: ${message}`),
  };
}

/** Formats seconds as `1h02m03s`, `2m03s` or `3.4s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  const mm = String(m).padStart(2, "0");
  const ss = String(s).padStart(2, "0");
  return h > 0 ? `${h}h${mm}m${ss}s` : `${m}m${ss}s`;
}
