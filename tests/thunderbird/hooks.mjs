// Module resolution for Thunderbird's modules under Node: `resource:///modules/X` is the
// file X read out of Debian's thunderbird package (target/thunderbird/modules), unless the
// harness has a stand-in for it in standins/ (browser-only services: DNS through a worker,
// OAuth2 prompts, port probing, timers, the add-on manager). `resource://gre/modules/X`
// (Gecko's toolkit) always needs a stand-in.
import { existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import path from "node:path";

let modules;
const standins = path.join(path.dirname(fileURLToPath(import.meta.url)), "standins");

export function initialize(data) {
  modules = data.modules;
}

export async function resolve(specifier, context, next) {
  const app = specifier.match(/^resource:\/\/\/modules\/(.+)$/);
  const gre = specifier.match(/^resource:\/\/gre\/modules\/(.+)$/);
  if (!app && !gre) {
    return next(specifier, context);
  }
  const name = (app || gre)[1];
  const standin = path.join(standins, path.basename(name));
  if (existsSync(standin)) {
    return { url: pathToFileURL(standin).href, shortCircuit: true };
  }
  if (app) {
    const file = path.join(modules, name);
    if (existsSync(file)) {
      return { url: pathToFileURL(file).href, shortCircuit: true };
    }
  }
  throw new Error(`the Thunderbird harness has neither ${specifier} nor a stand-in for it`);
}
