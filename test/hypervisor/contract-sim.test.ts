/**
 * The backend contract on the simulated host: Arm and x86 as Debian 12's Xen 4.17, and x86 as
 * 4.19 and 4.22, where HVM/PVH domUs may borrow (commit 845a60b63b); Arm as Debian 13's
 * 4.20.5-pre and as 4.22, where dom0 mapping itself is EPERM (ARM_FOREIGN_SELF_EPERM).
 */
import test from 'ava';
import { defineBackendContract } from './contract';
import { makeSimFixture } from './sim-fixture';

defineBackendContract('sim arm', () => makeSimFixture('arm')).registerAva(test);
defineBackendContract('sim x86', () => makeSimFixture('x86')).registerAva(test);
defineBackendContract('sim x86 4.19', () => makeSimFixture('x86', undefined, '4.19')).registerAva(test);
defineBackendContract('sim arm 4.20.5-pre', () => makeSimFixture('arm', undefined, '4.20', '.5-pre')).registerAva(test);
defineBackendContract('sim arm 4.22', () => makeSimFixture('arm', undefined, '4.22')).registerAva(test);
