/** Real clients through xs-trace to cxenstored: see proxy-suite.ts. */
import { proxySuite } from './proxy-suite';

proxySuite('cxenstored');
