import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import { IntakeQueue, type Submission } from './intake-queue.js';

interface Waiting {
  submission: Submission;
  resolve: (conflict: boolean) => void;
  reject: (err: unknown) => void;
}

/**
 * Gathers single submissions arriving within a few milliseconds into one queue job, so Redis
 * and BullMQ work is paid once per group rather than once per reading. Every caller still
 * gets its own answer, and only after the group's job is durably queued.
 */
@Injectable()
export class SubmissionCoalescer {
  private waiting: Waiting[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly intake: IntakeQueue,
  ) {}

  /** Resolves to true when the idempotency key was already used with a different payload. */
  submit(submission: Submission): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.waiting.push({ submission, resolve, reject });
      if (this.waiting.length >= this.config.intake.coalesceMaxReadings) this.flush();
      else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.config.intake.coalesceMs);
    });
  }

  private flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const group = this.waiting;
    this.waiting = [];
    if (group.length === 0) return;
    this.intake.enqueue(group.map((w) => w.submission)).then(
      (conflicts) => group.forEach((w, i) => w.resolve(conflicts.has(i))),
      (err: unknown) => group.forEach((w) => w.reject(err)),
    );
  }
}
