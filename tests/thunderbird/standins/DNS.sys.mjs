// Stand-in for Thunderbird's DNS.sys.mjs (system resolver calls in a ctypes worker): the
// records of the simulated test network (--srv and --mx of run.mjs); a name without
// records has none, as an NXDOMAIN answer gives.
export const DNS = {
  async srv(name) {
    return structuredClone(globalThis.testNetwork.srv[name.toLowerCase()] ?? []);
  },
  async mx(name) {
    return structuredClone(globalThis.testNetwork.mx[name.toLowerCase()] ?? []);
  },
  async txt() {
    return [];
  },
};
