/** The conformance suite on the in-memory server as Xen 4.21's C xenstored (--release 4.21). */
import { defineReleaseConformance } from './conformance-release';

defineReleaseConformance('4.21');
