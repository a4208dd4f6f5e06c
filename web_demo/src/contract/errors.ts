/** Errors the trainer reports on purpose; each message names the value and the fix (as the Kotlin and Python trainers do). */
export class EdgetuneError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
/** An artifact is missing files, malformed, or mixed up with another one. */
export class ArtifactError extends EdgetuneError {}
/** A state file is missing, corrupt, or belongs to another artifact. */
export class StateError extends EdgetuneError {}
/** A text or a batch cannot be fed. */
export class DataError extends EdgetuneError {}
/** A run option (learning rate, schedule, steps) is out of range. */
export class ConfigError extends EdgetuneError {}
/** A step produced NaN/Inf; the state and the step count were kept. */
export class NonFiniteStepError extends EdgetuneError {}

/** An untrusted value, quoted and cut to about `limit` characters for a message. */
export function shorten(value: unknown, limit = 80): string {
  const r = typeof value === "string" ? `'${value}'` : JSON.stringify(value) ?? String(value);
  return r.length <= limit ? r : `${r.slice(0, limit)}... (${r.length} characters)`;
}
