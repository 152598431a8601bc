/** The conformance suite on the in-memory server as Xen 4.20's C xenstored (--release 4.20). */
import { defineReleaseConformance } from './conformance-release';

defineReleaseConformance('4.20');
