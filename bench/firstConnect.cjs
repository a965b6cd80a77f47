// Preloaded into `npm run check` by bench/checkStart.ts (NODE_OPTIONS=--require): prints, once,
// the clock when the process first opens a TCP connection (its first SSH dial), so the bench
// can say how long a user waits before check reaches a node. Changes nothing else.
const net = require("node:net");
const connect = net.Socket.prototype.connect;
let said = false;
net.Socket.prototype.connect = function (...args) {
  // TCP only: tsx and npx talk to their own processes over local sockets (a path, no port).
  const o = args[0];
  const tcp = Array.isArray(o) ? o[0]?.port !== undefined : typeof o === "object" ? o?.port !== undefined && !o.path : typeof o === "number";
  if (!said && tcp) {
    said = true;
    process.stderr.write(`bench: first connection at ${Date.now()}\n`);
  }
  return connect.apply(this, args);
};
