/** Real clients through xs-trace to oxenstored: see proxy-suite.ts. */
import { proxySuite } from './proxy-suite';

proxySuite('oxenstored');
