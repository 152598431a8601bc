/** The conformance suite on the in-memory server as Xen 4.22's C xenstored (--release 4.22). */
import { defineReleaseConformance } from './conformance-release';

defineReleaseConformance('4.22');
