/**
 * The tests' one seeded generator (mulberry32): the in-memory server's own, used for its fault
 * injection, so a seed replays the same sequence in every suite.
 */
export { seededRandom } from '../../xenstore-wire/server';
