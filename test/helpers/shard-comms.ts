/** In-process communicators for the tests that write a sharded checkpoint from several ranks. */
import type { ShardComm } from '../../src/io/checkpoint-sharded.js';

/** Ranks of a collective write as tasks of this thread: barrier and agree are rendezvous of all ranks. */
export function fakeShardComms(J: number): ShardComm[] {
  let waiting: Array<() => void> = [];
  let agreed = 0;
  const barrier = (): Promise<void> =>
    new Promise((resolve) => {
      waiting.push(resolve);
      if (waiting.length === J) {
        const all = waiting;
        waiting = [];
        for (const r of all) r();
      }
    });
  return Array.from({ length: J }, (_, rank) => ({
    rank,
    size: J,
    barrier,
    async agree(value: number): Promise<number> {
      if (rank === 0) agreed = value;
      await barrier();
      const v = agreed;
      await barrier();
      return v;
    },
  }));
}
