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
} as const;
