import { attachSuite } from './attach-suite';

attachSuite('cxenstored', { release: '4.20' }, 'cxenstored 4.20');
