/**
 * xen-sshm/xenstore: the public API of the xenstore client, listed name by name. Every name
 * here is documented in docs/xenstore-client.md ("Public API"), and
 * test/xenstore/exports.test.ts fails when this list and that page disagree. Everything else
 * in xenstore-wire/ is internal: the project imports it by module path, users cannot.
 *
 * The in-memory xenstored is its own entry point, xen-sshm/xenstore/server.
 */

// The client.
export { connect, XenstoreClient } from './client';
export type { ConnectOptions, TransactionOptions, WatchOptions, XenstoreOps, Transaction } from './client';
export type { Watch, WatchEvent, WatchListener } from './watch';

// Errors.
export { XenstoreWireError, XenstoreError, ProtocolError, ConnectionError, isEagain } from './errors';
export type { XenstoreErrorKind, ProtocolErrorReason } from './errors';

// Paths and permissions.
export { validatePath } from './paths';
export { parsePerms, formatPerms, accessOf } from './perms';
export type { Permission, PermissionLike, Access } from './perms';

// Transports: the two built in, and the interface for others (`new XenstoreClient(transport)`).
export { SocketTransport } from './transport-socket';
export type { SocketTransportOptions } from './transport-socket';
export { XenbusTransport } from './transport-xenbus';
export type { XenbusTransportOptions, FdIo } from './transport-xenbus';
export type { Transport, TransportSink, TransportKind } from './transport';

// Wire vocabulary and the codec, for tools (servers, tracers, proxies): bytes in, bytes out.
export {
  MessageType,
  messageTypeName,
  isKnownMessageType,
  XenstoreFeature,
  XS_ERRNO_NAMES,
  XS_HEADER_SIZE,
  XENSTORE_PAYLOAD_MAX,
  XENBUS_DEV_PAYLOAD_MAX,
} from './constants';
export type { XenstoreFeatureName, XsErrnoName } from './constants';
export { encodeFrame, decodeHeader } from './codec';
export type { Frame, FrameHeader } from './codec';
export { FrameDecoder, REPLY_PAYLOAD_BOUND } from './framing';
export type { FrameDecoderOptions } from './framing';
export { request, parseRequest, parseReply } from './payload';
export type { DecodedRequest, DecodedReply, DirectoryPartReply } from './payload';
