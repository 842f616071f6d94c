/**
 * The example's own tiny login: a name and a password, and a random session id in an httpOnly cookie.
 * Stands in for whatever auth a real app has (replace it before the app serves anyone but you);
 * Wattfare only ever sees the stable user id derived from it.
 *
 * The id is derived from the name *and* the password (scrypt), so it needs no user table and survives
 * restarts, and nobody can act as a user — spend their payer's budget, see or revoke their connection —
 * by typing their name: the same name with another password is another user.
 */
import { randomBytes, scryptSync } from "node:crypto";

/** Someone signed in to the example app. */
export interface AppUser {
  name: string;
  /** The id Wattfare knows this user by: stable per name and password, printable ASCII as Wattfare requires. */
  appUserId: string;
}

const COOKIE = "chat_session";
const NAME_MAX = 60;
const PASSWORD_MAX = 200;

/** In-memory sessions: enough for an example (a restart signs everyone out). */
export class Sessions {
  readonly #byId = new Map<string, AppUser>();

  /** Signs `name` in; returns the Set-Cookie value, or undefined for an unusable name or password. */
  signIn(name: string, password: string): string | undefined {
    const trimmed = name.trim();
    if (trimmed === "" || trimmed.length > NAME_MAX) return undefined;
    if (password === "" || password.length > PASSWORD_MAX) return undefined;
    const id = randomBytes(32).toString("base64url");
    const derived = scryptSync(password, `chat-demo user ${trimmed.toLowerCase()}`, 12);
    const appUserId = `user_${derived.toString("hex")}`;
    this.#byId.set(id, { name: trimmed, appUserId });
    return `${COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax`;
  }

  /** Signs out the session in `cookieHeader`; returns the Set-Cookie value that clears it. */
  signOut(cookieHeader: string | null): string {
    const id = sessionId(cookieHeader);
    if (id !== undefined) this.#byId.delete(id);
    return `${COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0`;
  }

  /** Who is signed in, from the request's cookies. */
  current(cookieHeader: string | null): AppUser | undefined {
    const id = sessionId(cookieHeader);
    return id === undefined ? undefined : this.#byId.get(id);
  }
}

function sessionId(cookieHeader: string | null): string | undefined {
  for (const part of (cookieHeader ?? "").split(";")) {
    const [name, value] = part.trim().split("=");
    if (name === COOKIE && value) return value;
  }
  return undefined;
}
