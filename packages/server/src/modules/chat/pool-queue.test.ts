import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { PoolQueue } from "./pool-queue.js";

describe("PoolQueue", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Enters `name` into `queue`, recording its start or its time-out in `log`. */
  const enter = (queue: PoolQueue, log: string[], name: string) =>
    queue.enter(
      () => log.push(`start ${name}`),
      () => log.push(`timed out ${name}`),
    );

  it("starts requests at once while connections are free, then queues them and starts them in arrival order as connections come free", () => {
    const queue = new PoolQueue(2, 1_000);
    const log: string[] = [];
    expect(enter(queue, log, "a")).toBeNull();
    expect(enter(queue, log, "b")).toBeNull();
    expect(enter(queue, log, "c")).not.toBeNull();
    expect(enter(queue, log, "d")).not.toBeNull();
    expect(log).toEqual(["start a", "start b"]);
    expect(queue.stats).toEqual({ busy: 2, waiting: 2 });
    queue.leave();
    expect(log).toEqual(["start a", "start b", "start c"]);
    queue.leave();
    queue.leave();
    queue.leave();
    expect(log).toEqual(["start a", "start b", "start c", "start d"]);
    expect(queue.stats).toEqual({ busy: 0, waiting: 0 });
  });

  it("never starts a request that was cancelled while it waited, nor times it out", () => {
    const queue = new PoolQueue(1, 1_000);
    const log: string[] = [];
    enter(queue, log, "a");
    const b = enter(queue, log, "b");
    enter(queue, log, "c");
    if (b) queue.cancel(b);
    queue.leave();
    vi.advanceTimersByTime(5_000);
    expect(log).toEqual(["start a", "start c"]);
  });

  it("times out a request that waited longer than the queue timeout instead of starting it", () => {
    const queue = new PoolQueue(1, 1_000);
    const log: string[] = [];
    enter(queue, log, "a");
    enter(queue, log, "b");
    vi.advanceTimersByTime(999);
    expect(log).toEqual(["start a"]);
    vi.advanceTimersByTime(1);
    expect(log).toEqual(["start a", "timed out b"]);
    queue.leave();
    expect(log).toEqual(["start a", "timed out b"]);
    expect(queue.stats).toEqual({ busy: 0, waiting: 0 });
  });

  it("counts side calls that do not wait, so a chat request does not start on their connection", () => {
    const queue = new PoolQueue(1, 1_000);
    const log: string[] = [];
    queue.enterNow();
    queue.enterNow();
    enter(queue, log, "a");
    queue.leave();
    expect(log).toEqual([]);
    queue.leave();
    expect(log).toEqual(["start a"]);
  });

  it("goes on starting waiting requests when one fails as it starts and leaves at once", () => {
    const queue = new PoolQueue(1, 1_000);
    const log: string[] = [];
    enter(queue, log, "a");
    for (const name of ["b", "c", "d"]) {
      queue.enter(
        () => {
          log.push(`start ${name}`);
          queue.leave(); // as undici does for a pool that is closed: the error comes at once
        },
        () => log.push(`timed out ${name}`),
      );
    }
    queue.leave();
    expect(log).toEqual(["start a", "start b", "start c", "start d"]);
    expect(queue.stats).toEqual({ busy: 0, waiting: 0 });
  });
});
