// clock.js: the time and timers the client's modules use, injected so that
// tests can run them on a clock of their own (web/test/fakes.js).

// systemClock is the browser's (or node's) own clock and timers.
export const systemClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (id) => clearInterval(id),
};
