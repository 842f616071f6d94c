import { describe, expect, it } from "vitest";
import { Sessions } from "./auth.js";

/** Signs in on `sessions` and returns the Wattfare user id of the new session. */
function userIdOf(sessions: Sessions, name: string, password: string): string | undefined {
  const cookie = sessions.signIn(name, password);
  return cookie === undefined ? undefined : sessions.current(cookie.split(";")[0] ?? "")?.appUserId;
}

describe("the example's login", () => {
  it("gives a name and password the same Wattfare user every time, across restarts, whatever the name's case", () => {
    const id = userIdOf(new Sessions(), "Ada", "lovelace");
    expect(id).toMatch(/^user_[0-9a-f]{24}$/);
    expect(userIdOf(new Sessions(), "ada ", "lovelace")).toBe(id);
  });

  it("lets nobody act as a user by typing their name: another password is another user", () => {
    const sessions = new Sessions();
    expect(userIdOf(sessions, "Ada", "guess")).not.toBe(userIdOf(sessions, "Ada", "lovelace"));
    expect(userIdOf(sessions, "Bob", "lovelace")).not.toBe(userIdOf(sessions, "Ada", "lovelace"));
  });

  it("refuses an empty name or password", () => {
    const sessions = new Sessions();
    expect(sessions.signIn(" ", "x")).toBeUndefined();
    expect(sessions.signIn("Ada", "")).toBeUndefined();
  });
});
