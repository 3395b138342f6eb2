/**
 * Test-only fault injection for the distributed fault tests (test/dist-faults.test.ts):
 *   ADABATCH_TEST_FAULT=<rank>:<step>:<kind>
 * makes rank <rank> fail when it reaches optimizer step <step> (1-based, counted from the start of
 * this process; the fault fires after the step's micro-steps, before its reduction). Kinds:
 *   throw  an Error                         (a rank that fails)
 *   exit   process.exit(3)                  (a rank that dies: under threads, the worker ends)
 *   kill   SIGKILL to the process           (a rank that dies without a word; mpi)
 *   hang   block the JavaScript thread      (a rank that stops answering: the dist timeout fires)
 * Unset (always, outside tests), this costs one environment lookup per process.
 */
export function faultHook(rank: number, env: NodeJS.ProcessEnv = process.env): ((step: number) => void) | null {
  const spec = env.ADABATCH_TEST_FAULT;
  if (!spec) return null;
  const m = /^(\d+):(\d+):(throw|exit|kill|hang)$/.exec(spec);
  if (!m) throw new Error(`ADABATCH_TEST_FAULT must be <rank>:<step>:throw|exit|kill|hang, got '${spec}'`);
  const [faultRank, faultStep, kind] = [Number(m[1]), Number(m[2]), m[3]!];
  if (faultRank !== rank) return null;
  return (step) => {
    if (step !== faultStep) return;
    switch (kind) {
      case 'throw':
        throw new Error(`injected fault (ADABATCH_TEST_FAULT) on rank ${rank} at step ${step}`);
      case 'exit':
        process.exit(3);
        break;
      case 'kill':
        process.kill(process.pid, 'SIGKILL');
        break;
      case 'hang':
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
        break;
    }
  };
}
