/** Process locks (host:pid:starttime): defined in lib/lockfile.ts, shared with the sandbox and the sim. */
export { formatLock, lockStatus, ownLock, parseLock, processStartTime, selfIdentity, type ProcessIdentity } from '../lockfile';
