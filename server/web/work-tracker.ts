/**
 * Work that must finish before the database closes: lifecycle events this process is applying (an
 * effect half done must commit its outcome) and the watcher's reading. A graceful shutdown waits for
 * it; a request whose connection was cut at the end of the grace period still completes its event.
 */
export class WorkTracker {
  private readonly running = new Set<Promise<unknown>>();

  track<T>(work: Promise<T>): Promise<T> {
    this.running.add(work);
    const done = () => this.running.delete(work);
    work.then(done, done);
    return work;
  }

  get size(): number {
    return this.running.size;
  }

  /** Resolves when all tracked work has settled, or after `timeoutMs`; true if it all settled. */
  async drain(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      while (this.running.size > 0) {
        const settled = await Promise.race([Promise.allSettled([...this.running]).then(() => true), timeout]);
        if (!settled) return false;
      }
      return true;
    } finally {
      clearTimeout(timer);
    }
  }
}
