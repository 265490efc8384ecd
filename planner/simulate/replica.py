"""One serving instance: iteration-level continuous batching, driven by tabulated step times.

Scheduling follows the serving engines (vLLM-style): a FIFO waiting queue; admission while the
batch has room and the KV cache (less a small watermark) holds the request's prompt;
prefill-priority steps, or with chunked prefill mixed steps of a token budget in which every
running sequence decodes one token and the rest of the budget goes to prompt chunks; and when
the running sequences outgrow the KV cache, the newest is preempted and later recomputed.

Between two events (an arrival that can be admitted, a completion, the cache filling up) the
decode batch is fixed, so a whole run of decode steps is advanced at once from the step
table; the per-request work is only at admission, completion and preemption.
"""

import heapq
from collections import deque
from dataclasses import dataclass, field
from math import inf

from planner.simulate.steps import StepTable

KV_WATERMARK = 0.01


class TargetMissed(Exception):
    """More requests missed the TTFT limit than Requests.misses_allowed: stop early."""


@dataclass
class Requests:
    """Per-request state shared by every instance (lists: fast scalar access in the loop)."""

    prompt: list[int]
    target: list[int]
    arrival: list[float]
    ttft_limit_s: float = inf
    misses_allowed: int = 0
    gen: list[int] = field(default_factory=list)
    start: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    done: list[float] = field(default_factory=list)
    base: list[int] = field(default_factory=list)
    left: list[int] = field(default_factory=list)
    running: list[bool] = field(default_factory=list)
    kv_ready: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Fresh state: nothing generated, nothing scheduled."""
        count = len(self.prompt)
        self.gen = [0] * count
        self.start = [-1.0] * count
        self.first = [-1.0] * count
        self.done = [-1.0] * count
        self.base = [0] * count
        self.left = [0] * count
        self.running = [False] * count
        self.kv_ready = [False] * count


class Replica:
    """A serving instance of one plan (aggregated, or the prefill side when `prefill_only`).

    A request pushed with its KV cache already present (``Requests.kv_ready``, set by the
    disaggregated orchestrator after a transfer) joins the decode batch without a prefill.
    """

    def __init__(
        self,
        reqs: Requests,
        table: StepTable,
        max_batch: int,
        chunk: int | None = None,
        prefill_tokens: int = 16384,
        prefill_only: bool = False,
    ) -> None:
        """An idle instance at time 0 over the shared request state."""
        self.reqs, self.table, self.prefill_only = reqs, table, prefill_only
        self.max_batch, self.chunk, self.prefill_tokens = max_batch, chunk, prefill_tokens
        self.budget = table.kv_budget_tokens
        self.cap = int(self.budget * (1.0 - KV_WATERMARK))
        self.t = 0.0
        self.pending: deque[tuple[float, int]] = deque()
        self.waiting: deque[int] = deque()
        self.prefilling: deque[int] = deque()
        self.heap: list[tuple[int, int]] = []
        self.order: list[int] = []
        self.n = self.ctx = self.step = self.reserved = 0
        self.hold = False
        self.preemptions = self.peak_kv = self.served = self.rejected = 0

    def push(self, rid: int, t: float) -> None:
        """Request `rid` reaches this instance at time `t` (non-decreasing across calls)."""
        reqs = self.reqs
        size = reqs.prompt[rid] + (1 if self.prefill_only else reqs.target[rid])
        if size > self.cap:
            reqs.first[rid] = reqs.done[rid] = inf
            self.rejected += 1
            return
        self.pending.append((t, rid))
        self.served += 1

    @property
    def load(self) -> int:
        """Requests here that are not finished (the least-loaded router's measure)."""
        return len(self.pending) + len(self.waiting) + len(self.prefilling) + self.n

    @property
    def busy(self) -> bool:
        """Whether anything is left to simulate."""
        return bool(self.load)

    def run(self, horizon: float = inf) -> None:
        """Simulate every step that starts before `horizon` (seconds)."""
        reqs, table = self.reqs, self.table
        prompt, target, gen, base = reqs.prompt, reqs.target, reqs.gen, reqs.base
        start, first, done, running, left, kv_ready = (
            reqs.start,
            reqs.first,
            reqs.done,
            reqs.running,
            reqs.left,
            reqs.kv_ready,
        )
        pending, waiting, prefilling, heap, order = (
            self.pending,
            self.waiting,
            self.prefilling,
            self.heap,
            self.order,
        )
        budget, cap, max_batch, chunk = self.budget, self.cap, self.max_batch, self.chunk
        only_prefill = self.prefill_only
        t, n, ctx, step, reserved = self.t, self.n, self.ctx, self.step, self.reserved
        hold, peak, preemptions = self.hold, self.peak_kv, self.preemptions
        decode_run = table.decode_run
        heappush, heappop = heapq.heappush, heapq.heappop

        while t < horizon:
            while pending and pending[0][0] <= t:
                waiting.append(pending.popleft()[1])
            batch: list[int] = []
            tokens = 0
            if waiting and not hold:
                kv = ctx + reserved
                while waiting and n + len(prefilling) + len(batch) < max_batch:
                    rid = waiting[0]
                    direct = kv_ready[rid]
                    need = prompt[rid] + gen[rid] - direct
                    full = batch and not chunk and tokens + need > self.prefill_tokens
                    if full or kv + need > cap:
                        break
                    waiting.popleft()
                    kv += need
                    if start[rid] < 0.0:
                        start[rid] = t
                    if direct:
                        kv_ready[rid] = False
                        ctx += need
                        n += 1
                        base[rid] = step - gen[rid]
                        running[rid] = True
                        heappush(heap, (base[rid] + target[rid], rid))
                        order.append(rid)
                    elif chunk:
                        left[rid] = need
                        reserved += need
                        prefilling.append(rid)
                    else:
                        batch.append(rid)
                        tokens += need
                peak = max(peak, kv)
            k = 0
            if batch:
                ms = table.prefill_ms(len(batch), tokens / len(batch))
            elif n and ctx + reserved + n > budget:
                victim = _victim(order, running)
                g = step - base[victim]
                ctx -= prompt[victim] + g - 1
                n -= 1
                running[victim] = False
                gen[victim] = g
                waiting.appendleft(victim)
                preemptions += 1
                hold = True
                continue
            elif chunk and prefilling and n < chunk:
                room = chunk - n
                weighted = 0
                while prefilling and tokens < room:
                    rid = prefilling[0]
                    take = min(left[rid], room - tokens)
                    weighted += take * (prompt[rid] + gen[rid] - left[rid])
                    tokens += take
                    left[rid] -= take
                    if left[rid]:
                        break
                    batch.append(prefilling.popleft())
                    reserved -= prompt[rid] + gen[rid]
                mean = ctx / n if n else 0.0
                ms = float(table.model.mixed_ms(tokens, weighted / tokens, n, mean)[0])
                k = 1 if n else 0
            elif n:
                fin, rid = heap[0]
                while not running[rid] or base[rid] + target[rid] != fin:
                    heappop(heap)
                    fin, rid = heap[0]
                k = min(fin - step, (budget - ctx) // n)
                until = horizon
                if not waiting and not prefilling and n < max_batch and pending:
                    until = min(until, pending[0][0])
                k, ms = decode_run(n, ctx, k, (until - t) * 1000.0)
            elif pending and pending[0][0] < horizon:
                t = max(t, pending[0][0])
                continue
            else:
                break
            t += ms / 1000.0
            hold = False
            if k:
                step += k
                ctx += k * n
                peak = max(peak, ctx + reserved)
                while heap and heap[0][0] <= step:
                    fin, rid = heappop(heap)
                    if running[rid] and base[rid] + target[rid] == fin:
                        running[rid] = False
                        gen[rid] = target[rid]
                        done[rid] = t
                        ctx -= prompt[rid] + target[rid] - 1
                        n -= 1
            for rid in batch:
                g = gen[rid] + 1
                gen[rid] = g
                if first[rid] < 0.0:
                    first[rid] = t
                    if t - reqs.arrival[rid] > reqs.ttft_limit_s:
                        reqs.misses_allowed -= 1
                        if reqs.misses_allowed < 0:
                            raise TargetMissed
                if only_prefill or g >= target[rid]:
                    done[rid] = t
                    continue
                ctx += prompt[rid] + g - 1
                n += 1
                base[rid] = step - g
                running[rid] = True
                heappush(heap, (base[rid] + target[rid], rid))
                order.append(rid)

        self.t, self.n, self.ctx, self.step, self.reserved = t, n, ctx, step, reserved
        self.hold, self.peak_kv, self.preemptions = hold, peak, preemptions


def _victim(order: list[int], running: list[bool]) -> int:
    """The most recently admitted running request (popped from the admission order)."""
    while True:
        rid = order.pop()
        if running[rid]:
            return rid
