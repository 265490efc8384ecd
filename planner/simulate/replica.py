"""One serving instance: iteration-level continuous batching under an engine's scheduling rules.

Each step is composed the way the serving engines compose theirs (``Scheduling``):

- mixed steps (vLLM V1, TensorRT-LLM in-flight batching): every running sequence decodes one
  token, and the rest of the step's token budget goes to prompts, first the chunks of prompts
  already started, then new requests in arrival order; a long prompt is chunked where the
  engine chunks, otherwise a prompt joins only when it fits whole;
- prefill-first steps (SGLang): while prompts wait and fit, a step prefills up to the budget
  and decoding pauses for it.

With prefix caching (``Scheduling.prefix_caching``, on in all three engines) and block hashes
known for the prompts, a request's leading blocks found in the replica's cache
(``planner/simulate/prefix.py``) are not prefilled: its first chunk starts after them.

A request is admitted while fewer than `max_seqs` sequences are in flight and the KV cache
(less a small watermark) holds its prompt, or, where the engine guarantees no eviction, its
prompt and whole output on top of the outputs promised to the running sequences; when the
running sequences outgrow the cache, the newest is preempted and later recomputed.

Between two events (an arrival that can be admitted, a completion, the cache filling up) the
decode batch is fixed, so a whole run of decode steps is advanced at once from the step
table; per-request work happens only at admission, prompt chunks, completion and preemption.

An engine that polls for new requests only every N decode steps (SGLang's
``--scheduler-recv-interval``, ``Scheduling.recv_interval``) leaves arrivals waiting until the
next poll while it decodes; a prefill step or an idle engine polls at once.

A closed loop (``ClosedLoop``: a benchmark's concurrent clients) sends the next request as
soon as one completes. With a step log, every step's shape is recorded so a calibration can
re-time the same schedule under other cost parameters.
"""

import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from math import inf

from planner.costmodel.engine import SchedulerPolicy
from planner.simulate.prefix import PrefixCache
from planner.simulate.steps import StepTable

KV_WATERMARK = 0.01


class TargetMissed(Exception):
    """More requests missed an SLO limit than Requests.misses_allowed: stop early."""


@dataclass(frozen=True)
class Scheduling:
    """How a replica composes its steps: an engine's scheduler policy, sized for one plan."""

    max_seqs: int
    token_budget: int
    chunked: bool = True
    mixed: bool = True
    reserve_output: bool = False
    prefix_caching: bool = True
    recv_interval: int = 1

    @classmethod
    def of(
        cls, policy: SchedulerPolicy, max_seqs: int | None = None, ranks: int = 1
    ) -> "Scheduling":
        """The engine's rules, with the plan's own limit on sequences in flight if given.

        An instance of `ranks` attention data-parallel ranks runs one scheduler per rank in
        lockstep; it is simulated as one scheduler with `ranks` times the limits.
        """
        return cls(
            max_seqs=(max_seqs or policy.max_seqs) * ranks,
            token_budget=policy.token_budget * ranks,
            chunked=policy.chunked_prefill,
            mixed=policy.mixed_batches,
            reserve_output=policy.kv_admission == "prompt+output",
            prefix_caching=policy.prefix_caching,
            recv_interval=policy.recv_interval,
        )


@dataclass
class Requests:
    """Per-request state shared by every instance (lists: fast scalar access in the loop)."""

    prompt: list[int]
    target: list[int]
    arrival: list[float]
    ttft_limit_s: float = inf
    tpot_limit_ms: float = inf
    e2e_limit_ms: float = inf
    misses_allowed: int = 0
    blocks: list[tuple[int, ...]] | None = None
    block_tokens: int = 0
    gen: list[int] = field(default_factory=list)
    start: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    done: list[float] = field(default_factory=list)
    base: list[int] = field(default_factory=list)
    left: list[int] = field(default_factory=list)
    running: list[bool] = field(default_factory=list)
    kv_ready: list[bool] = field(default_factory=list)
    sent_step: list[int] = field(default_factory=list)
    first_step: list[int] = field(default_factory=list)
    done_step: list[int] = field(default_factory=list)

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
        self.sent_step = [-1] * count
        self.first_step = [-1] * count
        self.done_step = [-1] * count

    def miss(self) -> None:
        """One more request missed an SLO limit; stop once more missed than allowed."""
        self.misses_allowed -= 1
        if self.misses_allowed < 0:
            raise TargetMissed

    def late_finish(self, rid: int, t: float) -> bool:
        """Whether `rid`, finishing at `t` within the TTFT limit (a TTFT miss is counted when its
        first token comes), misses the TPOT or end-to-end limit, computed as SimResult does."""
        first, arrival, tokens = self.first[rid], self.arrival[rid], self.target[rid]
        if first - arrival > self.ttft_limit_s:
            return False
        slow = tokens > 1 and (t - first) / (tokens - 1) * 1000.0 > self.tpot_limit_ms
        return slow or (t - arrival) * 1000.0 > self.e2e_limit_ms


@dataclass
class ClosedLoop:
    """Benchmark clients: each sends its next request as soon as its last one completes.

    A request reaches the engine after the front end (HTTP, tokenisation, the hop between
    server processes) has handled it: an exponentially distributed latency of mean `delay_s`,
    which its TTFT counts. The spread matters beyond the mean: requests that finished in the
    same step come back at different times, so a closed loop does not lock into the first
    wave's pattern, as a deterministic simulation would. Clients may pause (`think_s`, also
    exponential) before sending; TTFT does not count the pause.
    """

    queue: deque[int]
    delay_s: float
    think_s: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    send: Callable[[int, float], None] | None = None
    warmup: int = 0
    clients: int = 0
    warming: int = field(init=False)

    def __post_init__(self) -> None:
        """Count the warm-up requests still to complete (a phase only if it fills every client)."""
        self.warming = self.warmup if self.warmup >= self.clients > 0 else 0

    def after(self, rid: int, t: float, lost: bool = False) -> list[tuple[int, float]]:
        """The requests sent, and when, once request `rid` completes (or is `lost`) at `t`.

        Its client sends the next request (a lost one's client stops); but a load generator
        with a warm-up phase (aiperf, genai-perf) waits for every warm-up response before the
        measured phase, which then starts all clients at once: clients that finish their
        warm-up early stay idle.
        """
        if rid < self.warmup and self.warming:
            self.warming -= 1
            if self.queue and self.queue[0] >= self.warmup:
                if self.warming:
                    return []
                wave = min(self.clients, len(self.queue))
                return [(self.queue.popleft(), t + self.think()) for _ in range(wave)]
        if lost or not self.queue:
            return []
        return [(self.queue.popleft(), t + self.think())]

    def think(self) -> float:
        """One client's pause (s) between a response and its next request."""
        return self.rng.expovariate(1.0 / self.think_s) if self.think_s > 0 else 0.0

    def through_frontend(self, sent: float) -> float:
        """When a request sent at `sent` reaches the engine."""
        return sent + (self.rng.expovariate(1.0 / self.delay_s) if self.delay_s > 0 else 0.0)


@dataclass
class Step:
    """One logged step of `ms` (k > 1: a run of k decode steps; k = 0: idle until an arrival)."""

    k: int
    prefill_tokens: int
    prefill_seqs: int
    prefill_pairs: float
    prefill_kv: int
    window_pairs: float
    window_kv: int
    decode_seqs: int
    decode_context: int
    ms: float = 0.0


class _Chunks:
    """The prompt tokens one step carries, summed the way the cost model needs them."""

    __slots__ = ("tokens", "seqs", "pairs", "kv", "window_pairs", "window_kv", "finished")

    def __init__(self) -> None:
        """Nothing carried yet."""
        self.tokens = self.seqs = self.kv = self.window_kv = 0
        self.pairs = self.window_pairs = 0.0
        self.finished: list[int] = []

    def add(self, take: int, cached: int, window: int) -> None:
        """`take` new tokens of a sequence that has `cached` tokens in the KV cache already."""
        self.tokens += take
        self.seqs += 1
        self.pairs += take * cached + take * (take + 1) / 2.0
        self.kv += cached + take
        if window:
            first, last = cached + 1, cached + take
            if last <= window:
                self.window_pairs += (first + last) * take / 2.0
            elif first > window:
                self.window_pairs += take * window
            else:
                self.window_pairs += (first + window) * (window - first + 1) / 2.0
                self.window_pairs += (last - window) * window
            self.window_kv += min(cached + take, window)


class Replica:
    """A serving instance of one plan (aggregated, or the prefill side when `prefill_only`).

    A request pushed with its KV cache already present (``Requests.kv_ready``, set by the
    disaggregated orchestrator after a transfer) joins the decode batch without a prefill. A
    prefill instance given a `handoff` passes each prompt it finishes on at once. An instance
    whose clients' next requests go to other instances (`hands_on`, a disaggregated closed
    loop's decode side) stops running once it has sent some, so that what they come back as is
    not pushed into a past it has already simulated.
    """

    def __init__(
        self,
        reqs: Requests,
        table: StepTable,
        scheduling: Scheduling,
        prefill_only: bool = False,
        loop: ClosedLoop | None = None,
        log: list[Step] | None = None,
        handoff: Callable[[int, float], None] | None = None,
        hands_on: bool = False,
    ) -> None:
        """An idle instance at time 0 over the shared request state."""
        self.reqs, self.table, self.rules = reqs, table, scheduling
        self.prefill_only, self.loop, self.log = prefill_only, loop, log
        self.handoff, self.hands_on = handoff, hands_on
        self.sent = False
        self.window = table.window
        self.budget = table.kv_budget_tokens
        self.cap = int(self.budget * (1.0 - KV_WATERMARK))
        self.t = 0.0
        self.pending: list[tuple[float, int]] = []
        self.waiting: deque[int] = deque()
        self.prefilling: deque[int] = deque()
        self.heap: list[tuple[int, int]] = []
        self.order: list[int] = []
        self.n = self.ctx = self.step = self.reserved = self.promised = self.steps = 0
        self.unpolled = 0
        self.hold = self.stalled = False
        self.preemptions = self.peak_kv = self.served = self.rejected = 0
        self.prefill_computed = self.prefix_hits = 0
        self.busy_ms = 0.0
        self.cache = (
            PrefixCache(self.budget // reqs.block_tokens, reqs.block_tokens)
            if scheduling.prefix_caching and reqs.blocks is not None and reqs.block_tokens
            else None
        )

    def push(self, rid: int, t: float) -> None:
        """Request `rid` reaches this instance at time `t` (pushes may come in any order)."""
        reqs = self.reqs
        size = reqs.prompt[rid] + (1 if self.prefill_only else reqs.target[rid])
        if size > self.cap:
            reqs.first[rid] = reqs.done[rid] = inf
            self.rejected += 1
            if self.loop is not None:
                self._send(self.loop.after(rid, t, lost=True))
            return
        heapq.heappush(self.pending, (t, rid))
        self.served += 1

    @property
    def load(self) -> int:
        """Requests here that are not finished (the least-loaded router's measure)."""
        return len(self.pending) + len(self.waiting) + len(self.prefilling) + self.n

    @property
    def busy(self) -> bool:
        """Whether anything is left to simulate."""
        return bool(self.load)

    @property
    def next_start(self) -> float:
        """When this instance next starts a step (inf when it has nothing to do)."""
        if self.waiting or self.prefilling or self.n:
            return self.t
        return max(self.t, self.pending[0][0]) if self.pending else inf

    def matched(self, rid: int) -> int:
        """Leading prompt blocks of `rid` this instance has cached (the prefix router's score)."""
        if self.cache is None or self.reqs.blocks is None:
            return 0
        return self.cache.matched(self.reqs.blocks[rid])

    def _cached(self, rid: int, tokens: int) -> int:
        """Prompt tokens of `rid` (`tokens` to compute without a cache) found in the cache."""
        if self.cache is None or self.reqs.blocks is None:
            return 0
        return min(self.matched(rid) * self.cache.block_tokens, tokens - 1)

    def _need(self, rid: int) -> int:
        """KV tokens admission must reserve for `rid` (prompt plus tokens to recompute)."""
        reqs = self.reqs
        need = reqs.prompt[rid] + reqs.gen[rid]
        if self.rules.reserve_output:
            need += reqs.target[rid] - reqs.gen[rid]
        return need

    def _admit_direct(self, rid: int, t: float) -> None:
        """A request whose KV arrived from a prefill instance joins the decode batch at `t`, and
        its first token (computed by the prefill instance) reaches the client now: the decode
        instance streams it when it takes the request in."""
        reqs = self.reqs
        reqs.kv_ready[rid] = False
        reqs.first[rid] = t
        if t - reqs.arrival[rid] > reqs.ttft_limit_s:
            reqs.miss()
        self.ctx += reqs.prompt[rid] + reqs.gen[rid] - 1  # the newest token's KV is not yet made
        self.n += 1
        if self.rules.reserve_output:
            self.promised += reqs.target[rid] - reqs.gen[rid]
        reqs.base[rid] = self.step - reqs.gen[rid]
        reqs.running[rid] = True
        heapq.heappush(self.heap, (reqs.base[rid] + reqs.target[rid], rid))
        self.order.append(rid)

    def _compose(self, t: float, room: int) -> _Chunks:
        """Prompt tokens for this step within `room`: started prompts first, then admissions."""
        reqs, rules, chunks = self.reqs, self.rules, _Chunks()
        prompt, gen, left = reqs.prompt, reqs.gen, reqs.left
        for rid in self.prefilling:
            if chunks.tokens >= room:
                break
            take = min(left[rid], room - chunks.tokens)
            chunks.add(take, prompt[rid] + gen[rid] - left[rid], self.window)
            left[rid] -= take
        seqs = self.n + len(self.prefilling)
        kv = self.ctx + self.reserved + self.promised
        while self.waiting and not self.hold and seqs < rules.max_seqs:
            rid = self.waiting[0]
            if reqs.kv_ready[rid]:
                if kv + prompt[rid] + gen[rid] > self.cap:
                    break
                self.waiting.popleft()
                kv += prompt[rid] + gen[rid]
                self._start(rid, t)
                self._admit_direct(rid, t)
                seqs += 1
                continue
            need, tokens = self._need(rid), prompt[rid] + gen[rid]
            hit = self._cached(rid, tokens)
            free = room - chunks.tokens
            fits = tokens - hit <= free or (rules.chunked and free > 0)
            lone = not chunks.seqs and not self.n and not self.prefilling
            if kv + need > self.cap or not (fits or lone):
                break
            self.waiting.popleft()
            self._start(rid, t)
            kv += need
            self.reserved += need
            take = tokens - hit if lone and not fits else min(tokens - hit, free)
            left[rid] = tokens - hit - take
            chunks.add(take, hit, self.window)
            if hit:
                self._reuse(rid, tokens)
            self.prefilling.append(rid)
            seqs += 1
        while self.prefilling and not left[self.prefilling[0]]:
            rid = self.prefilling.popleft()
            self.reserved -= self._need(rid)
            chunks.finished.append(rid)
            if self.cache is not None and reqs.blocks is not None:
                self.cache.insert(reqs.blocks[rid])
        self.peak_kv = max(self.peak_kv, self.ctx + self.reserved)
        return chunks

    def _reuse(self, rid: int, tokens: int) -> None:
        """`rid` starts from its cached prefix: mark those blocks used and count the tokens."""
        assert self.cache is not None and self.reqs.blocks is not None
        self.prefix_hits += self.cache.hit_tokens(self.reqs.blocks[rid], tokens)

    def _start(self, rid: int, t: float) -> None:
        """Mark the first time `rid` is scheduled."""
        if self.reqs.start[rid] < 0.0:
            self.reqs.start[rid] = t

    def _complete(self, rid: int, t: float) -> None:
        """`rid` produced its last token at `t`: record it and let its client send the next."""
        reqs = self.reqs
        reqs.done[rid] = t
        reqs.done_step[rid] = self.steps - 1
        if self.prefill_only:
            if self.handoff is not None:
                self.handoff(rid, t)
            return
        if reqs.late_finish(rid, t):
            reqs.miss()
        if self.loop is not None:
            self._send(self.loop.after(rid, t))

    def _send(self, sends: list[tuple[int, float]]) -> None:
        """The closed loop's clients send these requests (id, send time) now."""
        loop, reqs = self.loop, self.reqs
        assert loop is not None
        self.sent = self.sent or bool(sends)
        for nxt, sent in sends:
            reqs.arrival[nxt] = sent
            reqs.sent_step[nxt] = self.steps - 1
            (loop.send or self.push)(nxt, loop.through_frontend(sent))

    def _first_tokens(self, rids: list[int], t: float) -> None:
        """Sequences whose prompt is fully computed emit a token; they decode from now on."""
        reqs = self.reqs
        for rid in rids:
            g = reqs.gen[rid] + 1
            reqs.gen[rid] = g
            if reqs.first[rid] < 0.0:
                reqs.first[rid] = t
                reqs.first_step[rid] = self.steps - 1
                handed_off = self.prefill_only and g < reqs.target[rid]
                if t - reqs.arrival[rid] > reqs.ttft_limit_s and not handed_off:
                    reqs.miss()
            if self.prefill_only or g >= reqs.target[rid]:
                self._complete(rid, t)
                continue
            self.ctx += reqs.prompt[rid] + g - 1
            self.n += 1
            if self.rules.reserve_output:
                self.promised += reqs.target[rid] - g
            reqs.base[rid] = self.step - g
            reqs.running[rid] = True
            heapq.heappush(self.heap, (reqs.base[rid] + reqs.target[rid], rid))
            self.order.append(rid)

    def _decoded(self, k: int, t: float) -> None:
        """The running batch produced `k` more tokens each; retire the sequences now done."""
        reqs, heap = self.reqs, self.heap
        self.step += k
        self.ctx += k * self.n
        if self.rules.reserve_output:
            self.promised -= k * self.n
        self.peak_kv = max(self.peak_kv, self.ctx + self.reserved)
        while heap and heap[0][0] <= self.step:
            fin, rid = heapq.heappop(heap)
            if reqs.running[rid] and reqs.base[rid] + reqs.target[rid] == fin:
                reqs.running[rid] = False
                reqs.gen[rid] = reqs.target[rid]
                self.ctx -= reqs.prompt[rid] + reqs.target[rid] - 1
                self.n -= 1
                self.stalled = False
                self._complete(rid, t)

    def _preempt(self) -> None:
        """Free KV by sending the newest running sequence back to the queue (recomputed)."""
        reqs = self.reqs
        victim = self.order.pop()
        while not reqs.running[victim]:
            victim = self.order.pop()
        g = self.step - reqs.base[victim]
        self.ctx -= reqs.prompt[victim] + g - 1
        self.n -= 1
        if self.rules.reserve_output:
            self.promised -= reqs.target[victim] - g
        reqs.running[victim] = False
        reqs.gen[victim] = g
        self.waiting.appendleft(victim)
        self.preemptions += 1
        self.hold, self.stalled = True, False

    def _decode_run(self, t: float, horizon: float) -> tuple[int, float]:
        """(steps, ms) of pure decode steps until the next completion, arrival or full cache."""
        reqs, heap = self.reqs, self.heap
        fin, rid = heap[0]
        while not reqs.running[rid] or reqs.base[rid] + reqs.target[rid] != fin:
            heapq.heappop(heap)
            fin, rid = heap[0]
        k = min(fin - self.step, (self.budget - self.ctx - self.reserved) // self.n)
        until = horizon
        if not self.waiting and self.n < self.rules.max_seqs and self.pending:
            if self.rules.recv_interval > 1:
                k = min(k, self.rules.recv_interval - self.unpolled)
            else:
                until = min(until, self.pending[0][0])
        return self.table.decode_run(self.n, self.ctx, k, (until - t) * 1000.0)

    def _polls(self) -> bool:
        """Whether the engine takes in arrived requests before this step: every step, or with a
        receive interval of N (SGLang's --scheduler-recv-interval, where a prefill step weighs
        the whole interval and a decode step one) once N decode steps have passed since the
        last poll, after a prefill step, or when nothing runs."""
        if self.rules.recv_interval <= 1 or self.unpolled >= self.rules.recv_interval:
            self.unpolled = 0
            return True
        if not (self.n or self.prefilling):
            self.unpolled = 0
            return True
        return False

    def _record(self, k: int, chunks: _Chunks | None, decode_seqs: int, ms: float) -> None:
        """Append one step (or run of k, or idle gap if k = 0) of `ms` to the log, if kept;
        count the time spent stepping (what the accelerator's power draw follows)."""
        self.steps += 1
        if k:
            self.busy_ms += ms
        if chunks is not None:
            self.prefill_computed += chunks.tokens
        if self.log is None:
            return
        c = chunks or _Chunks()
        self.log.append(
            Step(
                k,
                c.tokens,
                c.seqs,
                c.pairs,
                c.kv,
                c.window_pairs,
                c.window_kv,
                decode_seqs,
                self.ctx,
                ms,
            )
        )

    def run(self, horizon: float = inf) -> None:
        """Simulate every step that starts before `horizon` (seconds). Once the queue's head
        cannot start (no KV or sequence slot), no step is composed for it until a sequence
        finishes or is preempted: nothing else frees room."""
        rules, pending, waiting = self.rules, self.pending, self.waiting
        self.sent = False
        while self.t < horizon and not (self.hands_on and self.sent):
            t = self.t
            if self._polls():
                while pending and pending[0][0] <= t:
                    waiting.append(heapq.heappop(pending)[1])
            if self.n and self.ctx + self.reserved + self.n > self.budget:
                self._preempt()
                continue
            decode = self.n if rules.mixed else 0
            chunks = None
            if self.prefilling or (waiting and not self.hold and not self.stalled):
                queued = len(waiting)
                chunks = self._compose(t, max(rules.token_budget - decode, 0))
                if not chunks.tokens and not chunks.finished:
                    chunks = None
                    self.stalled = not self.prefilling and len(waiting) == queued
            if chunks is not None:
                ms = self.table.step_ms(
                    chunks.tokens,
                    chunks.seqs,
                    chunks.pairs,
                    chunks.kv,
                    chunks.window_pairs,
                    chunks.window_kv,
                    decode,
                    self.ctx,
                )
                self._record(1, chunks, decode, ms)
                self.t = t = t + ms / 1000.0
                self.hold = False
                self.unpolled = rules.recv_interval
                if decode:
                    self._decoded(1, t)
                self._first_tokens(chunks.finished, t)
            elif self.n:
                k, ms = self._decode_run(t, horizon)
                self._record(k, None, self.n, ms)
                self.t = t = t + ms / 1000.0
                self.hold = False
                self.unpolled += k
                self._decoded(k, t)
            elif pending and pending[0][0] < horizon:
                gap = max(pending[0][0] - t, 0.0)
                if gap:
                    self._record(0, None, 0, gap * 1000.0)
                self.t = max(t, pending[0][0])
            else:
                break
