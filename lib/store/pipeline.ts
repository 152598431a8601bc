/**
 * Bulk reads, pipelined: independent requests go out together and the client matches the
 * replies by req_id, so reading N records costs about N times the daemon's service time, not N
 * round trips. A window bounds what is in flight (the requests, their promises and their
 * replies) so that reading a host of thousands of regions does not hold them all at once;
 * over /dev/xen/xenbus the transport sends one request at a time whatever the window.
 */

/** How many records (regions, domains) are read at once by the bulk readers. */
export const READ_WINDOW = 128;

/** fn over every item, at most `window` at a time; results in the items' order. */
export async function mapWindowed<T, R>(items: readonly T[], fn: (item: T, i: number) => Promise<R>, window = READ_WINDOW): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    // After a failure the other workers take nothing new: the caller gets the first error.
    while (next < items.length && !failed) {
      const i = next++;
      try {
        out[i] = await fn(items[i], i);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, window), items.length) }, worker));
  return out;
}
