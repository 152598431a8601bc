import test from 'ava';
import { buildProgram } from '../../lib/cli/xen-sshm';

test('the CLI builds and names itself', (t) => {
  t.is(buildProgram().name(), 'xen-sshm');
});
