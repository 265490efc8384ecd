"""Prefix caching: a replica's cache of prompt KV blocks, looked up by block hash, LRU.

vLLM V1 (automatic prefix caching), SGLang (radix cache) and TensorRT-LLM (KV-cache block
reuse) keep the KV blocks of finished prompts and skip the prefill of a new prompt's longest
cached prefix. A block is identified by a hash of its tokens and of every block before it, so
a prompt's cached part is the run of its leading blocks found in the cache.

Traces that record block hashes (Mooncake's ``hash_ids`` of 512-token blocks, stored as
``prefix_blocks``) use them; any other trace takes an assumed share of each prompt as a prefix
every request shares (a system prompt: `shared_prefix`). The cache holds at most the replica's
KV budget in blocks and evicts the least recently used. Physical sharing of blocks between
running sequences is not modelled: each sequence's KV counts in full against the budget, so
admission stays conservative.
"""

from collections import OrderedDict

import numpy as np

from planner.errors import PlannerError

TRACE_BLOCK_TOKENS = 512
ASSUMED_BLOCK_TOKENS = 64


class PrefixCache:
    """The prompt KV blocks one replica holds, least recently used first."""

    def __init__(self, capacity_blocks: int, block_tokens: int) -> None:
        """An empty cache of at most `capacity_blocks` blocks of `block_tokens` tokens."""
        self.capacity = max(capacity_blocks, 0)
        self.block_tokens = block_tokens
        self.blocks: OrderedDict[int, None] = OrderedDict()

    def matched(self, blocks: tuple[int, ...]) -> int:
        """How many leading `blocks` are cached (the cache is not touched: a router's peek)."""
        count = 0
        for block in blocks:
            if block not in self.blocks:
                break
            count += 1
        return count

    def hit_tokens(self, blocks: tuple[int, ...], tokens: int) -> int:
        """Prompt tokens of a `tokens`-token prompt found cached; the blocks found are used now.

        At least one token is always computed (an engine recomputes the last one to produce the
        first output token).
        """
        count = self.matched(blocks)
        for block in blocks[:count]:
            self.blocks.move_to_end(block)
        return min(count * self.block_tokens, tokens - 1)

    def insert(self, blocks: tuple[int, ...]) -> None:
        """A prompt's blocks are computed: keep them, evicting the least recently used."""
        for block in blocks:
            self.blocks[block] = None
            self.blocks.move_to_end(block)
        while len(self.blocks) > self.capacity:
            self.blocks.popitem(last=False)


def check_reuse(share: float | None) -> None:
    """Reject an assumed prefix reuse that is not a share in [0, 1)."""
    if share is not None and not 0.0 <= share < 1.0:
        raise PlannerError(f"--prefix-reuse must be a share in [0, 1), not {share:g}")


def shared_prefix(input_tokens: np.ndarray, share: float) -> np.ndarray:
    """Block hashes of a prefix every request shares, `share` of each prompt long (whole
    ASSUMED_BLOCK_TOKENS blocks): the assumption for a trace without recorded hashes."""
    check_reuse(share)
    counts = np.floor(share * np.asarray(input_tokens) / ASSUMED_BLOCK_TOKENS).astype(np.int64)
    chain = tuple(range(-1, -int(counts.max(initial=0)) - 1, -1))
    out = np.empty(len(counts), dtype=object)
    out[:] = [chain[:c] for c in counts.tolist()]
    return out
