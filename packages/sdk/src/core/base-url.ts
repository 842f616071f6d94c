/** Where Wattfare's API lives under its origin. */
export const API_PATH = "/api/v1";

/**
 * `value` as Wattfare's origin: an absolute http(s) URL without a path, since Wattfare serves its API
 * and its pages from the root (the SDK appends `/api/v1` and `/connect`). Throws a TypeError naming
 * what is wrong.
 */
export function parseWattfareOrigin(value: string): URL {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw new TypeError("baseUrl must be Wattfare's absolute URL, such as https://wattfare.com.");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new TypeError("baseUrl must use https: (or http: for a local Wattfare).");
  }
  const path = url.pathname.replace(/\/+$/, "");
  if (path.endsWith(API_PATH)) {
    throw new TypeError(
      `baseUrl is Wattfare's origin (like https://wattfare.com): the SDK appends ${API_PATH}.`,
    );
  }
  if (path !== "") {
    throw new TypeError("baseUrl must be Wattfare's origin, without a path: Wattfare is served at the root.");
  }
  return url;
}
