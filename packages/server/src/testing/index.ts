/** Test helpers for packages that need a real Wattfare in front of the simulator (`@wattfare/server/testing`). */

/** Approves a grant as the consent popup's Approve does (for SDK and example tests). */
export { approveGrant } from "../modules/grants/index.js";
/** Debian's Chromium with DESIGN.md's flags: the one browser launcher for every package's browser tests. */
export { CHROMIUM_ARGS, CHROMIUM_PATH, launchBrowser } from "./browser.js";
export { type ChatHarness, createChatHarness } from "./chat-harness.js";
export { createHarness, type Harness, ManualClock, TEST_SECRET } from "./harness.js";
