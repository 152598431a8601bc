/**
 * Wire constants of the xenstore protocol, named once.
 *
 * Source: xen/include/public/io/xs_wire.h and docs/misc/xenstore.txt of Xen 4.22 (4.17, the
 * release Debian 12 ships, stops at DIRECTORY_PART = 22). Names follow xs_wire.h without the
 * XS_ prefix.
 */

/** `enum xsd_sockmsg_type` in xs_wire.h. */
export enum MessageType {
  /** Old name XS_DEBUG; "print", "check", "log" ... commands for the daemon. */
  CONTROL = 0,
  DIRECTORY = 1,
  READ = 2,
  GET_PERMS = 3,
  WATCH = 4,
  UNWATCH = 5,
  TRANSACTION_START = 6,
  TRANSACTION_END = 7,
  INTRODUCE = 8,
  RELEASE = 9,
  GET_DOMAIN_PATH = 10,
  WRITE = 11,
  MKDIR = 12,
  RM = 13,
  SET_PERMS = 14,
  WATCH_EVENT = 15,
  ERROR = 16,
  IS_DOMAIN_INTRODUCED = 17,
  RESUME = 18,
  SET_TARGET = 19,
  /* 20 was XS_RESTRICT, removed from the protocol: deliberately absent here. */
  RESET_WATCHES = 21,
  DIRECTORY_PART = 22,
  /*
   * Added to xs_wire.h in Xen 4.21 (all four optional in xenstore.txt): C xenstored answers
   * GET/SET_FEATURE from 4.21 and GET/SET_QUOTA from 4.22; older daemons and oxenstored
   * answer ENOSYS. Payloads: payload.ts.
   */
  GET_FEATURE = 23,
  SET_FEATURE = 24,
  GET_QUOTA = 25,
  SET_QUOTA = 26,
}

/** xs_wire.h: "Guaranteed to remain an invalid type". */
export const XS_TYPE_INVALID = 0xffff;

const KNOWN_TYPES: ReadonlySet<number> = new Set(
  Object.values(MessageType).filter((v): v is number => typeof v === 'number'),
);

/** True for the type numbers listed in MessageType (20 and 0xffff are not). */
export function isKnownMessageType(n: number): n is MessageType {
  return KNOWN_TYPES.has(n);
}

/** 'READ' for 2, 'UNKNOWN(20)' for numbers outside the enum. */
export function messageTypeName(n: number): string {
  return isKnownMessageType(n) ? MessageType[n] : `UNKNOWN(${n})`;
}

/** `struct xsd_sockmsg`: four uint32 in host byte order. */
export const XS_HEADER_SIZE = 16;
/** xs_wire.h XENSTORE_PAYLOAD_MAX: the largest payload of a request on the socket. */
export const XENSTORE_PAYLOAD_MAX = 4096;
/**
 * Linux xenbus_dev_frontend.c buffers header and payload of one message in 4096 bytes,
 * so a request written to /dev/xen/xenbus carries at most 4096 - 16 payload bytes.
 */
export const XENBUS_DEV_PAYLOAD_MAX = XENSTORE_PAYLOAD_MAX - XS_HEADER_SIZE;
/** xs_wire.h XENSTORE_ABS_PATH_MAX. */
export const XENSTORE_ABS_PATH_MAX = 3072;
/** xs_wire.h XENSTORE_REL_PATH_MAX. */
export const XENSTORE_REL_PATH_MAX = 2048;

/**
 * xs_wire.h `xsd_errors[]`, in table order. The daemon sends the *name* (e.g. "ENOENT\0")
 * as the payload of an ERROR reply.
 */
export const XS_ERRNO_NAMES = [
  'EINVAL',
  'EACCES',
  'EEXIST',
  'EISDIR',
  'ENOENT',
  'ENOMEM',
  'ENOSPC',
  'EIO',
  'ENOTEMPTY',
  'ENOSYS',
  'EROFS',
  'EBUSY',
  'EAGAIN',
  'EISCONN',
  'E2BIG',
  'EPERM',
] as const;

export type XsErrnoName = (typeof XS_ERRNO_NAMES)[number];

const ERRNO_SET: ReadonlySet<string> = new Set(XS_ERRNO_NAMES);

export function isXsErrnoName(name: string): name is XsErrnoName {
  return ERRNO_SET.has(name);
}

/** Special watch paths (docs/misc/xenstore.txt "Watches"). */
export const SPECIAL_WATCH_PATHS = ['@introduceDomain', '@releaseDomain'] as const;

/**
 * xs_wire.h XENSTORE_SERVER_FEATURE_*: bits of the feature bitmap that GET_FEATURE returns
 * (and of the ring page's server_features field, docs/misc/xenstore-ring.txt).
 */
export const XenstoreFeature = {
  /** The ring can be reset and reconnected (ring transports only). */
  RECONNECTION: 1,
  /** The ring page has an error field. */
  ERROR: 2,
  /** WATCH takes a depth argument; `@releaseDomain/<domid>` watches one domain (Xen 4.22). */
  WATCHDEPTH: 4,
  /** DOMID_ANY may be used in node permissions (Xen 4.22). */
  DOMID_ANY: 8,
} as const;

export type XenstoreFeatureName = keyof typeof XenstoreFeature;

