import { describe, expect, it } from "vitest";
import { clientNetwork } from "./client-network.js";

describe("clientNetwork", () => {
  it("keeps an IPv4 address, also when IPv4-mapped", () => {
    expect(clientNetwork("203.0.113.9")).toBe("203.0.113.9");
    expect(clientNetwork("::ffff:203.0.113.9")).toBe("203.0.113.9");
    expect(clientNetwork("::FFFF:203.0.113.9")).toBe("203.0.113.9");
  });

  it("counts every address of one IPv6 /64 as one network, however it is written", () => {
    const network = "2001:db8:0:1::/64";
    for (const ip of [
      "2001:db8:0:1::1",
      "2001:db8:0:1:ffff:ffff:ffff:ffff",
      "2001:0DB8:0000:0001:0:0:0:9",
      "2001:db8::1:a:b:c:d",
      "2001:db8:0:1::9%eth0",
    ]) {
      expect(clientNetwork(ip), ip).toBe(network);
    }
    expect(clientNetwork("2001:db8:0:2::1")).toBe("2001:db8:0:2::/64");
    expect(clientNetwork("::1")).toBe("0:0:0:0::/64");
    expect(clientNetwork("64:ff9b::198.51.100.7")).toBe("64:ff9b:0:0::/64");
  });
});
