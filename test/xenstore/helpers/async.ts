/** Small async helpers for tests: bounded waits that fail with a clear message. */
import { Watch, WatchEvent } from '../../../xenstore-wire';

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** The watch's next event, or a rejection after `ms`. */
export async function nextEvent(w: Watch, ms = 5000): Promise<WatchEvent> {
  const r = await withTimeout(w.next(), ms, `an event on watch ${w.path} (${w.token})`);
  if (r.done) throw new Error(`watch ${w.path} ended while an event was expected`);
  return r.value;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
