// Runs Thunderbird's own account-setup code (from Debian's thunderbird package, extracted by
// tests/thunderbird/fetch.sh) against the test server, for tests/it/thunderbird.rs.
//
//   node tests/thunderbird/run.mjs --tb target/thunderbird --ca CA.pem [--ca CA2.pem]
//        --map '{"autoconfig.contoso.com:443": 40001, ...}' [--srv JSON] [--mx JSON] CASE...
//
// Each CASE is a JSON object; one JSON line per case on stdout:
//   {"find": EMAIL, "password": PW}  the account hub's discovery (FindConfig:
//       parallelAutoDiscovery, then ewsifyConfig and AccountConfig.replaceVariables)
//   {"isp": EMAIL}                   FetchConfig.fromISP (the autoconfig URLs, readFromXML)
//   {"exchange": EMAIL, "password": PW}  ExchangeAutoDiscover's fetchConfigFromExchange
//   {"xml": URL}                     fetchHTTP(URL), then readFromXML (one request as a
//                                    client that asks exactly this URL)
//   {"text": XML}                    DOMParser + JXON + readFromXML on this document, as
//                                    Thunderbird reads a configuration file from disk
// Each line has the case, "ok", the resulting AccountConfig ("config") or the error, and
// the requests Thunderbird made ("wire").
import fs from "node:fs";
import { register } from "node:module";
import path from "node:path";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  options: {
    tb: { type: "string" },
    ca: { type: "string", multiple: true },
    map: { type: "string" },
    srv: { type: "string", default: "{}" },
    mx: { type: "string", default: "{}" },
  },
  allowPositionals: true,
});
const tb = path.resolve(values.tb);
register("./hooks.mjs", import.meta.url, { data: { modules: path.join(tb, "modules") } });

const network = {
  map: JSON.parse(values.map),
  srv: JSON.parse(values.srv),
  mx: JSON.parse(values.mx),
  ca: values.ca.map(file => fs.readFileSync(file)),
  wire: [],
};
const { installGlobals } = await import("./globals.mjs");
installGlobals({ tb, network });

// The modules the lazy getters hand out must be loaded before anything runs.
const modules = [
  "accountcreation/AccountConfig.sys.mjs",
  "accountcreation/AccountCreationUtils.sys.mjs",
  "accountcreation/InputSanitizer.sys.mjs",
  "accountcreation/FetchHTTP.sys.mjs",
  "accountcreation/FetchConfig.sys.mjs",
  "accountcreation/readFromXML.sys.mjs",
  "accountcreation/ExchangeAutoDiscover.sys.mjs",
  "accountcreation/GuessConfig.sys.mjs",
  "accountcreation/FindConfig.sys.mjs",
  "JXON.sys.mjs",
  "MailStringUtils.sys.mjs",
  "OAuth2Providers.sys.mjs",
];
for (const name of modules) {
  const url = `resource:///modules/${name}`;
  ChromeUtils.registry.set(url, await import(url));
}
ChromeUtils.registry.set(
  "resource://gre/modules/AddonManager.sys.mjs",
  await import("resource://gre/modules/AddonManager.sys.mjs")
);
const mod = name => ChromeUtils.registry.get(`resource:///modules/${name}`);
const { AccountConfig } = mod("accountcreation/AccountConfig.sys.mjs");
const { FetchConfig } = mod("accountcreation/FetchConfig.sys.mjs");
const { fetchHTTP } = mod("accountcreation/FetchHTTP.sys.mjs");
const { readFromXML } = mod("accountcreation/readFromXML.sys.mjs");
const { fetchConfigFromExchange } = mod("accountcreation/ExchangeAutoDiscover.sys.mjs");
const { FindConfig } = mod("accountcreation/FindConfig.sys.mjs");

const socketTypes = ["plain", "trySTARTTLS", "STARTTLS", "SSL"];
const authNames = Object.fromEntries(
  Object.entries(Ci.nsMsgAuthMethod).map(([name, value]) => [value, name])
);

function server(s) {
  return {
    type: s.type,
    hostname: s.hostname,
    port: s.port,
    socketType: socketTypes[s.socketType] ?? s.socketType,
    auth: authNames[s.auth] ?? s.auth,
    username: s.username,
    exchangeURL: s.exchangeURL ?? null,
    owaURL: s.owaURL ?? null,
    easURL: s.easURL ?? null,
    useGlobalPreferredServer: s.useGlobalPreferredServer,
  };
}

function summary(config) {
  return {
    source: config.source,
    subSource: config.subSource,
    id: config.id,
    displayName: config.displayName,
    domains: config.domains,
    incoming: server(config.incoming),
    incomingAlternatives: config.incomingAlternatives.map(server),
    outgoing: server(config.outgoing),
    outgoingAlternatives: config.outgoingAlternatives.map(server),
    complete: config.isComplete(),
  };
}

function describe(error) {
  if (error instanceof AggregateError) {
    return { message: error.message, errors: error.errors.map(describe) };
  }
  if (error instanceof Error) {
    return { message: error.message, code: error.code ?? null };
  }
  return { message: String(error) };
}

async function run(c) {
  const signal = new AbortController().signal;
  if ("find" in c) {
    const domain = c.find.split("@").pop();
    const discovery = FindConfig.parallelAutoDiscovery(domain, c.find, signal, c.password, null);
    let step = await discovery.next();
    while (!step.done) {
      // A redirect to another site: the user accepts it.
      step = await discovery.next({ acceptRedirect: true });
    }
    const config = step.value;
    if (!config) {
      throw new Error("no configuration found");
    }
    FindConfig.ewsifyConfig(config);
    AccountConfig.replaceVariables(config, "Test User", c.find, c.password);
    return summary(config);
  }
  if ("isp" in c) {
    const domain = c.isp.split("@").pop();
    return summary(await FetchConfig.fromISP(domain, c.isp, signal));
  }
  if ("exchange" in c) {
    const domain = c.exchange.split("@").pop();
    const confirm = async () => {};
    return summary(
      await fetchConfigFromExchange(domain, c.exchange, signal, null, c.password, confirm)
    );
  }
  if ("text" in c) {
    const { JXON } = mod("JXON.sys.mjs");
    const document = new DOMParser().parseFromString(c.text, "text/xml");
    return summary(readFromXML(JXON.build(document), "text"));
  }
  if ("xml" in c) {
    return summary(readFromXML(await fetchHTTP(c.xml, { signal }), "test"));
  }
  throw new Error(`unknown case ${JSON.stringify(c)}`);
}

for (const text of positionals) {
  const c = JSON.parse(text);
  network.wire = [];
  let line;
  try {
    line = { case: c, ok: true, config: await run(c) };
  } catch (error) {
    line = { case: c, ok: false, error: describe(error) };
  }
  // Let the requests that lost the race finish, so the wire list is whole.
  await new Promise(resolve => setTimeout(resolve, 300));
  line.wire = network.wire;
  process.stdout.write(JSON.stringify(line) + "\n");
}
process.exit(0);
