// A site's subscriber, written the way the seed's docs show it, with only the URL and
// auth added. Driven by tests/integration/test_live.py:
//   node subscriber.js '<json options>'
// options: {url, auth, transports (optional), seconds}
// Prints one JSON line per happening: {"on": "connect", "transport": ...},
// {"on": "<event name>", "data": ...}, {"on": "connect_error", "message": ...}, {"on": "upgrade", ...}.
const { io } = require("socket.io-client");

const options = JSON.parse(process.argv[2]);
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const socket = io(options.url, {
  auth: options.auth,
  ...(options.transports ? { transports: options.transports } : {}),
  reconnection: false,
});

// The seed's snippet, as written:
socket.on('patreon:webhook', (data) => {
  say({ on: "patreon:webhook", data });
});

for (const alias of ["patreon:member:create", "patreon:member:update", "patreon:member:delete",
                     "patreon:pledge:create", "patreon:pledge:update", "patreon:pledge:delete",
                     "patreon:public", "patreon:disconnect"]) {
  socket.on(alias, (data) => say({ on: alias, data }));
}
socket.io.on("open", () => say({ on: "open", transport: socket.io.engine.transport.name }));
socket.on("connect", () => {
  const engine = socket.io.engine;
  say({ on: "connect", transport: engine.transport.name });
  engine.once("upgrade", () => say({ on: "upgrade", transport: engine.transport.name }));
});
socket.on("connect_error", (err) => {
  say({ on: "connect_error", message: err.message, data: err.data || null });
  process.exit(0);
});
setTimeout(() => { socket.close(); process.exit(0); }, (options.seconds || 10) * 1000);
