/**
 * xen-sshm/xenstore: the xenstore protocol (codec, framing), the client and its transports.
 */
export * from './constants';
export * from './errors';
export * from './codec';
export * from './framing';
export * from './payload';
export * from './paths';
export * from './perms';
export * from './transport';
export { SocketTransport, SocketTransportOptions } from './transport-socket';
export { XenbusTransport, XenbusTransportOptions, FdIo, nodeFdIo } from './transport-xenbus';
export { Watch, WatchListener } from './watch';
export {
  connect,
  ConnectOptions,
  TransactionOptions,
  XenstoreClient,
  XenstoreOps,
  Transaction,
  InterceptedRequest,
  RequestInterceptor,
  RequestAfter,
} from './client';

// The in-memory xenstored (the embedded default and a fault-injecting test peer).
export * as server from './server';
