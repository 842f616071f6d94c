import { describe, expect, it } from "vitest";
import { parseChatRequest, renderUpstreamBody } from "./chat-request.js";

/** The upstream body's text for a caller's body, with 100 output tokens admitted. */
const rendered = (body: string) =>
  renderUpstreamBody(parseChatRequest(Buffer.from(body)), 100, "app1", "alice");
const render = (body: string) => JSON.parse(rendered(body)) as Record<string, unknown>;

describe("renderUpstreamBody", () => {
  it("forwards the caller's body with max_tokens as admitted and a pseudonymous user", () => {
    const out = render('{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.5}');
    expect(out).toMatchObject({ model: "m", temperature: 0.5, max_tokens: 100 });
    expect(out.user).toMatch(/^wf_[0-9a-f]{32}$/);
  });

  it("forwards exactly the validated value of a key the caller sent twice, once", () => {
    const sent = rendered(
      '{"model":"m","messages":[{"role":"user","content":"hi"}],"n":100,"n":1,"plugins":[{"id":"web"}],"plugins":null}',
    );
    expect(sent.match(/"n"/g)).toHaveLength(1);
    expect(sent.match(/"plugins"/g)).toHaveLength(1);
    expect(JSON.parse(sent)).toMatchObject({ n: 1, plugins: null });
  });

  it("asks for usage on a stream when the caller set no stream options", () => {
    const out = render('{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}');
    expect(out).toMatchObject({ stream: true, max_tokens: 100, stream_options: { include_usage: true } });
  });

  it("sets the caller's own max_tokens, max_completion_tokens and user fields in place, once each", () => {
    const sent = rendered(
      '{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":9000,"max_tokens":5000}',
    );
    expect(sent.match(/"max_tokens"/g)).toHaveLength(1);
    expect(JSON.parse(sent)).toMatchObject({ max_tokens: 100 });
    const withBoth = render(
      '{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":50,"max_tokens":50,"user":"mine"}',
    );
    expect(withBoth).toMatchObject({ max_completion_tokens: 100, max_tokens: 100, user: "mine" });
  });

  it("asks for usage on a stream, keeping the caller's other stream options", () => {
    const out = render(
      '{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"x":1}}',
    );
    expect(out.stream_options).toEqual({ x: 1, include_usage: true });
  });

  it("keeps a caller's own __proto__ key a plain key, so the pseudonymous user is still set", () => {
    const out = render(
      '{"model":"m","messages":[{"role":"user","content":"hi"}],"__proto__":{"user":"spoof"}}',
    );
    expect(out.user).toMatch(/^wf_/);
    expect(Object.hasOwn(out, "__proto__")).toBe(true);
  });

  it("does not change the parsed request it renders from", () => {
    const request = parseChatRequest(
      Buffer.from('{"model":"m","messages":[{"role":"user","content":"hi"}]}'),
    );
    renderUpstreamBody(request, 100, "app1", "alice");
    expect(request.body).toEqual({ model: "m", messages: [{ role: "user", content: "hi" }] });
  });
});
