/** The backend contract on the simulated host, in Arm and in x86 mode. */
import test from 'ava';
import { defineBackendContract } from './contract';
import { makeSimFixture } from './sim-fixture';

defineBackendContract('sim arm', () => makeSimFixture('arm')).registerAva(test);
defineBackendContract('sim x86', () => makeSimFixture('x86')).registerAva(test);
