// A minimal unbounded FIFO between a producer that pushes synchronously (a
// commit in the memory backend, a gRPC stream callback in the etcd backend)
// and one async consumer (a watch iterator). Pushing never blocks; `shift`
// waits until an item is there.

export class AsyncQueue<T> {
  #items: T[] = [];
  #head = 0;
  #wake: (() => void) | undefined;

  push(item: T): void {
    this.#items.push(item);
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Drop everything queued (used when a consumer decides to stop early). */
  clear(): void {
    this.#items = [];
    this.#head = 0;
  }

  get size(): number {
    return this.#items.length - this.#head;
  }

  async shift(): Promise<T> {
    while (this.#head >= this.#items.length) {
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
    const item = this.#items[this.#head] as T;
    this.#head += 1;
    // Compact now and then so a long-lived queue does not grow forever.
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }
}
