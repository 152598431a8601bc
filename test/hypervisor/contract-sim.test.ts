/**
 * The backend contract on the simulated host: Arm and x86 as Debian 12's Xen 4.17, and x86 as
 * 4.19 and 4.22, where HVM/PVH domUs may borrow (commit 845a60b63b).
 */
import test from 'ava';
import { defineBackendContract } from './contract';
import { makeSimFixture } from './sim-fixture';

defineBackendContract('sim arm', () => makeSimFixture('arm')).registerAva(test);
defineBackendContract('sim x86', () => makeSimFixture('x86')).registerAva(test);
defineBackendContract('sim x86 4.19', () => makeSimFixture('x86', undefined, '4.19')).registerAva(test);
defineBackendContract('sim arm 4.22', () => makeSimFixture('arm', undefined, '4.22')).registerAva(test);
