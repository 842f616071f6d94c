/** Test helpers for packages that need a real Wattfare in front of the simulator (`@wattfare/server/testing`). */
export { type ChatHarness, createChatHarness } from "./chat-harness.js";
export { createHarness, type Harness, ManualClock, TEST_SECRET } from "./harness.js";
