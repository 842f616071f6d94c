/** Every header name Wattfare reads or writes, in one place. */
export const H = {
  requestId: "x-request-id",
  user: "x-wattfare-user",
  grant: "x-wattfare-grant",
  clamp: "x-wattfare-clamp",
  maxTokens: "x-wattfare-max-tokens",
  shouldRetry: "x-should-retry",
  retryAfter: "retry-after",
  generationId: "x-generation-id",
  wwwAuthenticate: "www-authenticate",
} as const;

/** A header's value, the first one when it came more than once (node:http and undici give arrays then). */
export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
