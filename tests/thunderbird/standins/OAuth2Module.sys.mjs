// Stand-in for OAuth2Module.sys.mjs (tokens, login storage, browser prompts). Like the real
// module it only offers OAuth2 for hosts Thunderbird's own OAuth2Providers knows; for those
// it fails to get a token (no browser here), which makes ExchangeAutoDiscover fall back to
// Basic, as it does when the user closes the login window.
import { OAuth2Providers } from "resource:///modules/OAuth2Providers.sys.mjs";

export class OAuth2Module {
  initFromHostname(hostname, username, type) {
    return Boolean(OAuth2Providers.getHostnameDetails(hostname, type));
  }
  getAccessToken(listener) {
    listener.onFailure(new Error("no browser for an OAuth2 login in the harness"));
  }
  cancelPrompt() {}
}
