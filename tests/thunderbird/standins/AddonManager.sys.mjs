// Stand-in for Gecko's add-on manager: account setup never installs an add-on here.
export const AddonManager = {
  async getAddonByID() {
    return null;
  },
  async getInstallForURL() {
    throw new Error("the Thunderbird harness installs no add-ons");
  },
};
