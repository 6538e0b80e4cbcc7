// Stand-in for GuessConfig.sys.mjs, which probes IMAP/POP3/SMTP ports with raw sockets.
// Nothing listens on those ports in the test network, so the probe finds nothing, which is
// what this stand-in answers at once (ExchangeAutoDiscover then keeps its Exchange config).
export const GuessConfig = {
  async guessConfig() {
    throw new Error("no IMAP/POP3/SMTP ports answer in the test network");
  },
};
