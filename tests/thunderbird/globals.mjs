// Stand-ins for the browser-only globals Thunderbird's account-setup modules use:
// ChromeUtils (lazy module getters), Services (preferences, URI parsing, eTLD), Ci/Cu
// constants, Localization (Thunderbird's own English messages), console.createInstance,
// DOMParser/XMLSerializer (@xmldom/xmldom) and XMLHttpRequest (Node's http/https over the
// simulated test network). Nothing here decides what Thunderbird does with an answer: that
// is the modules' own code.
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { Console } from "node:console";
import { DOMParser, XMLSerializer } from "@xmldom/xmldom";

/** What the harness was given: the Thunderbird files and the test network. */
export function installGlobals({ tb, network }) {
  // stdout carries the JSON results; everything the modules log goes to stderr.
  const log = new Console(process.stderr, process.stderr);
  globalThis.console = log;
  // Gecko's console.createInstance, at the level Thunderbird's preference sets (Warn by
  // default for mail.setup).
  const levels = ["all", "debug", "log", "info", "warn", "error"];
  log.createInstance = ({ prefix, maxLogLevel, maxLogLevelPref }) => {
    let max = maxLogLevel ?? "all";
    try {
      max = maxLogLevelPref ? Services.prefs.getCharPref(maxLogLevelPref, max) : max;
    } catch {}
    const threshold = levels.findIndex(l => l.toLowerCase() === String(max).toLowerCase());
    const line = level => (...args) => {
      if (levels.indexOf(level) >= threshold) {
        log.error(`[${prefix} ${level}]`, ...args);
      }
    };
    return {
      debug: line("debug"),
      info: line("info"),
      log: line("log"),
      warn: line("warn"),
      error: line("error"),
    };
  };
  // Gecko reports a rejection nobody handled to the console; Node would end the process.
  process.on("unhandledRejection", error => log.error("unhandled rejection:", error));
  globalThis.dump = text => process.stderr.write(String(text));
  globalThis.testNetwork = network;

  // Language features Thunderbird's engine has and Node 20 lacks.
  Promise.withResolvers ??= () => {
    let resolve, reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
  URL.parse ??= (url, base) => {
    try {
      return new URL(url, base);
    } catch {
      return null;
    }
  };

  const registry = new Map();
  globalThis.ChromeUtils = {
    registry,
    defineESModuleGetters(target, modules) {
      for (const [name, url] of Object.entries(modules)) {
        Object.defineProperty(target, name, {
          configurable: true,
          enumerable: true,
          get() {
            const mod = registry.get(url);
            if (!mod) {
              throw new Error(`the harness did not load ${url} before it was used`);
            }
            return mod[name];
          },
        });
      }
    },
    defineLazyGetter(target, name, make) {
      let value;
      let made = false;
      Object.defineProperty(target, name, {
        configurable: true,
        enumerable: true,
        get() {
          if (!made) {
            value = make();
            made = true;
          }
          return value;
        },
      });
    },
    generateQI() {
      return function () {
        return this;
      };
    },
  };

  globalThis.Services = {
    prefs: preferences(tb),
    io: {
      newURI(spec) {
        const url = new URL(spec);
        return {
          spec: url.href,
          scheme: url.protocol.replace(/:$/, ""),
          host: url.hostname,
          QueryInterface() {
            return this;
          },
        };
      },
    },
    // Without the public suffix list: the last two labels, right for the test domains.
    eTLD: {
      getBaseDomainFromHost(host) {
        return host.toLowerCase().split(".").slice(-2).join(".");
      },
      getBaseDomain(uri) {
        return this.getBaseDomainFromHost(uri.host);
      },
      getSchemelessSite(uri) {
        return this.getBaseDomainFromHost(uri.host);
      },
      getNextSubDomain(host) {
        return host.toLowerCase().split(".").slice(-3).join(".");
      },
    },
    // fetchConfigFromDisk: no `isp` directory of configurations in the test.
    dirsvc: {
      get() {
        const parts = ["/nonexistent-thunderbird-install"];
        return {
          append(name) {
            parts.push(name);
          },
          get path() {
            return path.join(...parts);
          },
          isReadable() {
            return false;
          },
        };
      },
    },
  };
  globalThis.IOUtils = {
    async exists(file) {
      return fs.existsSync(file);
    },
    async readUTF8(file) {
      return fs.readFileSync(file, "utf8");
    },
  };

  // The values of mailnews' IDL constants (nsMsgSocketType, nsMsgAuthMethod).
  globalThis.Ci = {
    nsMsgSocketType: { plain: 0, trySTARTTLS: 1, alwaysSTARTTLS: 2, SSL: 3 },
    nsMsgAuthMethod: {
      none: 1,
      old: 2,
      passwordCleartext: 3,
      passwordEncrypted: 4,
      GSSAPI: 5,
      NTLM: 6,
      External: 7,
      secure: 8,
      anything: 9,
      OAuth2: 10,
    },
    nsIURL: {},
  };
  globalThis.Cu = { isInAutomation: false };

  const messages = fluentMessages(tb);
  globalThis.Localization = class {
    formatValueSync(id) {
      return messages.get(id) ?? id;
    }
    async formatValue(id) {
      return messages.get(id) ?? id;
    }
  };

  globalThis.DOMParser = DOMParser;
  globalThis.XMLSerializer = XMLSerializer;
  globalThis.XMLHttpRequest = makeXMLHttpRequest(network);
}

/** Thunderbird's default preferences (defaults/pref/*.js of the package). */
function preferences(tb) {
  const values = new Map([
    // A static preference compiled into libxul (not in any prefs file); false in release.
    ["mail.graph.enabled", false],
  ]);
  for (const file of ["mailnews.js", "all-thunderbird.js"]) {
    const full = path.join(tb, "defaults/pref", file);
    if (!fs.existsSync(full)) {
      continue;
    }
    for (const m of fs
      .readFileSync(full, "utf8")
      .matchAll(/^\s*pref\("([^"]+)",\s*(true|false|-?\d+|"(?:[^"\\]|\\.)*")\s*\);/gm)) {
      values.set(m[1], JSON.parse(m[2]));
    }
  }
  const get = (name, fallback) => {
    if (values.has(name)) {
      return values.get(name);
    }
    if (fallback !== undefined) {
      return fallback;
    }
    throw new Error(`NS_ERROR_UNEXPECTED: no preference ${name}`);
  };
  return { getBoolPref: get, getCharPref: get, getIntPref: get, getStringPref: get };
}

/** `id = text` lines of Thunderbird's accountCreation.ftl. */
function fluentMessages(tb) {
  const file = path.join(
    tb,
    "localization/en-US/messenger/accountcreation/accountCreation.ftl"
  );
  const out = new Map();
  for (const m of fs.readFileSync(file, "utf8").matchAll(/^([a-z0-9-]+)\s*=\s*(.+)$/gm)) {
    out.set(m[1], m[2].trim());
  }
  return out;
}

/**
 * XMLHttpRequest over Node's http/https. The test network (`network.map`, "host:port" →
 * local port) stands in for DNS: a mapped name connects to 127.0.0.1 on its port with the
 * name as SNI and checks the certificate against the test CA only; any other name does not
 * resolve. Redirects are followed like Gecko's XHR (a 301/302/303 turns POST into GET
 * without a body; an Authorization header set by the page is not sent to another origin).
 * Every request is recorded in `network.wire` (the Authorization header only as scheme and
 * user name).
 */
function makeXMLHttpRequest(network) {
  return class XMLHttpRequest {
    constructor() {
      this.channel = { loadGroup: null };
      this.mozBackgroundRequest = false;
      this.timeout = 0;
      this.status = 0;
      this.statusText = "";
      this.responseURL = "";
      this.responseText = "";
      this.onload = this.onerror = this.ontimeout = null;
      this._headers = {};
      this._responseHeaders = {};
    }
    open(method, url) {
      this._method = method;
      this._url = url;
    }
    setRequestHeader(name, value) {
      this._headers[name] = value;
    }
    getResponseHeader(name) {
      const v = this._responseHeaders[name.toLowerCase()];
      return v === undefined ? null : [].concat(v).join(", ");
    }
    get responseXML() {
      const type = this.getResponseHeader("Content-Type") ?? "";
      if (!/[/+]xml\b/.test(type)) {
        return null;
      }
      return new DOMParser().parseFromString(this.responseText, "text/xml");
    }
    abort() {
      this._aborted = true;
      this._request?.destroy();
    }
    send(body) {
      if (this.timeout) {
        this._timer = setTimeout(() => {
          this._request?.destroy();
          this._fail("ontimeout");
        }, this.timeout);
      }
      this._go(this._method, new URL(this._url), body, { ...this._headers }, 0);
    }
    _fail(handler) {
      if (this._done) {
        return;
      }
      this._done = true;
      clearTimeout(this._timer);
      this.status = 0;
      this[handler]?.(new Error("network error"));
    }
    _go(method, url, body, headers, hops) {
      const port = url.port || (url.protocol === "https:" ? "443" : "80");
      const local = network.map[`${url.hostname}:${port}`];
      const entry = {
        method,
        url: url.href,
        contentType: headers["Content-Type"] ?? null,
        authorization: describeAuthorization(headers.Authorization),
      };
      network.wire.push(entry);
      if (local === undefined) {
        entry.result = "no such host";
        setImmediate(() => this._fail("onerror"));
        return;
      }
      const secure = url.protocol === "https:";
      const options = {
        host: "127.0.0.1",
        port: local,
        method,
        path: url.pathname + url.search,
        headers: { ...headers, Host: url.host },
      };
      if (secure) {
        // Node checks the certificate's names against servername.
        options.servername = url.hostname;
        options.ca = network.ca;
        options.agent = false;
      }
      const request = (secure ? https : http).request(options, response => {
        const chunks = [];
        response.on("data", c => chunks.push(c));
        response.on("end", () => {
          entry.status = response.statusCode;
          const location = response.headers.location;
          if ([301, 302, 303, 307, 308].includes(response.statusCode) && location && hops < 20) {
            entry.location = location;
            const next = new URL(location, url);
            const nextHeaders = { ...headers };
            if (next.origin !== url.origin) {
              delete nextHeaders.Authorization;
            }
            let nextMethod = method;
            let nextBody = body;
            if (response.statusCode === 303 || ([301, 302].includes(response.statusCode) && method === "POST")) {
              nextMethod = "GET";
              nextBody = undefined;
              delete nextHeaders["Content-Type"];
            }
            this._go(nextMethod, next, nextBody, nextHeaders, hops + 1);
            return;
          }
          if (this._done) {
            return;
          }
          this._done = true;
          clearTimeout(this._timer);
          this.status = response.statusCode;
          this.statusText = response.statusMessage;
          this.responseURL = url.href;
          this._responseHeaders = response.headers;
          this.responseText = Buffer.concat(chunks).toString("utf8");
          this.onload?.();
        });
      });
      this._request = request;
      request.on("error", error => {
        // abort(): Thunderbird stopped a request that lost the race to a better URL.
        entry.result = this._aborted ? "aborted" : (error.code ?? error.message);
        this._fail("onerror");
      });
      if (body !== undefined && body !== null) {
        request.write(body);
      }
      request.end();
    }
  };
}

/** "Basic <user>" (never the password), another scheme by name, or null. */
function describeAuthorization(value) {
  if (!value) {
    return null;
  }
  const [scheme, token] = value.split(" ");
  if (scheme === "Basic") {
    const decoded = Buffer.from(token, "base64").toString("utf8");
    return `Basic ${decoded.slice(0, decoded.indexOf(":"))}`;
  }
  return scheme;
}
