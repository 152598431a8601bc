import { attachSuite } from './attach-suite';

attachSuite('cxenstored');
