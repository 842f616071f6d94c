/**
 * The consent popup's paths, and the reference (`c`) to its consent request that the popup's URLs and
 * forms carry.
 */

export const CONNECT_PATH = "/connect";
export const CONSENT_PATH = "/connect/consent";

/**
 * A consent request's reference in the popup's URLs and forms (`c`): the first 16 hex digits of its
 * session's id hash. A browser holds one consent session; when another app's popup replaces it, the
 * older window still names its own request and is told so, instead of showing (and answering) the newer
 * one. Not a secret: the session itself is the cookie.
 */
export const consentRef = (sessionKey: string): string => sessionKey.slice(0, 16);

/** The consent page of the request with this session key (hex id hash), plus `query` ("&step=approve"). */
export const consentPage = (sessionKey: string, query = ""): string =>
  `${CONSENT_PATH}?c=${consentRef(sessionKey)}${query}`;
