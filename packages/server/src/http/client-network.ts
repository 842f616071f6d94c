import { isIPv6 } from "node:net";

/**
 * The client's network, as per-address rate limits count it: an IPv4 address as is, an IPv6 address by
 * its /64 — one host is routinely given a whole /64, so counting single IPv6 addresses would let it
 * take a fresh allowance for every request. IPv4-mapped IPv6 (`::ffff:203.0.113.9`) is its IPv4 address.
 *
 * @example clientNetwork("2001:db8:0:1:a::9") === "2001:db8:0:1::/64"
 */
export function clientNetwork(ip: string): string {
  const address = ip.split("%", 1)[0] as string; // no zone index
  if (!isIPv6(address)) return ip;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1] as string;
  const [head = "", tail] = address.split("::");
  const groups = (part: string) => (part === "" ? [] : part.split(":"));
  // An embedded IPv4 address fills the last 32 bits: two groups, never among the first four.
  const width = (gs: string[]) => gs.reduce((w, g) => w + (g.includes(".") ? 2 : 1), 0);
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const full = [...left, ...Array<string>(8 - width(left) - width(right)).fill("0"), ...right];
  return `${full
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(":")}::/64`;
}
