/**
 * Compile-time checks (tsc -b fails if they do not hold): the official openai package's request and
 * response types fit the SDK's own, so params written for `openai` can be passed to Wattfare and
 * results typed by the SDK expose the same fields under the same names.
 */
import type { ConnectionStatus as ServerConnectionStatus } from "@wattfare/server";
import type OpenAI from "openai";
import { describe, expectTypeOf, it } from "vitest";
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionCreateParamsStreaming,
  ChatCompletionMessageParam,
  ChatCompletionTool,
  CompletionUsage,
} from "./chat-types.js";
import type { ConnectionStatus } from "./types.js";

describe("OpenAI-compatible types", () => {
  it("accept the official client's request params", () => {
    expectTypeOf<OpenAI.ChatCompletionCreateParamsNonStreaming>().toExtend<ChatCompletionCreateParamsNonStreaming>();
    expectTypeOf<OpenAI.ChatCompletionCreateParamsStreaming>().toExtend<ChatCompletionCreateParamsStreaming>();
    expectTypeOf<OpenAI.ChatCompletionMessageParam>().toExtend<ChatCompletionMessageParam>();
    expectTypeOf<OpenAI.ChatCompletionTool>().toExtend<ChatCompletionTool>();
  });

  it("describe the official client's results under the same names", () => {
    expectTypeOf<OpenAI.ChatCompletion>().toExtend<ChatCompletion>();
    expectTypeOf<OpenAI.ChatCompletionChunk>().toExtend<ChatCompletionChunk>();
    expectTypeOf<OpenAI.CompletionUsage>().toExtend<CompletionUsage>();
  });

  it("keep streaming and non-streaming params apart", () => {
    expectTypeOf<ChatCompletionCreateParamsStreaming>().not.toExtend<ChatCompletionCreateParamsNonStreaming>();
    expectTypeOf<ChatCompletionCreateParamsNonStreaming>().not.toExtend<ChatCompletionCreateParamsStreaming>();
  });
});

describe("ConnectionStatus", () => {
  it("is exactly the server's type", () => {
    expectTypeOf<ConnectionStatus>().toEqualTypeOf<ServerConnectionStatus>();
  });
});
