import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.js";
import { cliEnvironment } from "./main.js";

describe("cliEnvironment (what serve prints before its CLI commands)", () => {
  it("names the data directory, where the CLI also finds the generated server secret", () => {
    expect(cliEnvironment(loadConfig({}, "/srv/app"))).toBe("WATTFARE_DATA_DIR=/srv/app/data");
  });

  it("adds the database when it is outside the data directory", () => {
    const config = loadConfig({ WATTFARE_DATABASE_URL: "sqlite:/var/lib/wf.db" }, "/srv/app");
    expect(cliEnvironment(config)).toBe(
      "WATTFARE_DATA_DIR=/srv/app/data WATTFARE_DATABASE_URL=sqlite:/var/lib/wf.db",
    );
  });

  it("quotes a path the shell would split, and the quotes inside it", () => {
    expect(cliEnvironment(loadConfig({}, "/home/ann's files"))).toBe(
      "WATTFARE_DATA_DIR='/home/ann'\\''s files/data'",
    );
  });

  it("refers to a server secret from the environment without printing it", () => {
    const secret = "s".repeat(48);
    const printed = cliEnvironment(loadConfig({ WATTFARE_SERVER_SECRET: secret }, "/srv/app"));
    expect(printed).toBe('WATTFARE_DATA_DIR=/srv/app/data WATTFARE_SERVER_SECRET="$WATTFARE_SERVER_SECRET"');
    expect(printed).not.toContain(secret);
  });
});
