// The Restate side of scripts/bench-restate.sh: a service `bench` whose handler `run`
// makes ten sequential GETs to the upstream, each journaled with ctx.run (the analogue
// of a Flow step), and returns the last status.

// The SDK uses Promise.withResolvers, which Node 20 lacks.
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

const restate = await import("@restatedev/restate-sdk");
const upstream = process.env.UPSTREAM;
const port = Number(process.env.PORT || 9080);

const bench = restate.service({
  name: "bench",
  handlers: {
    run: async (ctx) => {
      let status = 0;
      for (let i = 0; i < 10; i++) {
        status = await ctx.run(`step${i}`, async () => {
          const r = await fetch(`${upstream}/step${i}`);
          await r.text();
          return r.status;
        });
      }
      return status;
    },
  },
});

restate.endpoint().bind(bench).listen(port);
