/** The conformance suite on the in-memory server as Xen 4.17's C xenstored (--release 4.17). */
import { defineReleaseConformance } from './conformance-release';

defineReleaseConformance('4.17');
