"""Batched greedy decoding with the KV cache; PPC decoding also feeds back predicted position IDs."""

from __future__ import annotations

import torch

from .data import PromptBatch
from .model.transformer import Decoder, KVCache


def _last_logits(model, tokens, position_ids, attention, cache: KVCache | None) -> torch.Tensor:
    """Logits [B, vocab] at the last position. Without a cache the whole prefix is fed and only its
    last position is scored (`select`), so a cacheless model (the idealized one, whose attention
    costs O(T^2) over all queries) does not score every query of the prefix at every step."""
    if cache is not None:
        return model(tokens, position_ids, attention, cache=cache)[:, -1]
    last = torch.zeros_like(attention, dtype=torch.bool)
    last[:, -1] = True  # left-padded prompts, generated tokens appended: the last column is real
    return model(tokens, position_ids, attention, select=last)


@torch.no_grad()
def greedy_decode(model: Decoder, batch: PromptBatch, max_new_tokens: int, eos_id: int, pad_id: int) -> torch.Tensor:
    """Generate up to max_new_tokens per prompt; after <eos> a row is filled with pad.

    Generated token j is fed back at batch.answer_positions[:, j], the position ID the data
    assigns to answer token j, so every position policy decodes as it was trained.
    """
    # A model without a KV cache (supports_cache = False) is fed the whole prefix at each step.
    use_cache = getattr(model, "supports_cache", True)
    cache = KVCache() if use_cache else None
    attention, seq_tokens, seq_ids = batch.attention_mask, batch.tokens, batch.position_ids
    token = _last_logits(model, batch.tokens, batch.position_ids, attention, cache).argmax(-1)
    done = token == eos_id
    out = [token]
    ones = torch.ones_like(attention[:, :1])
    for j in range(1, max_new_tokens):
        if bool(done.all()):
            break
        attention = torch.cat([attention, ones], dim=1)
        if use_cache:
            logits = _last_logits(model, token[:, None], batch.answer_positions[:, j - 1 : j], attention, cache)
        else:
            seq_tokens = torch.cat([seq_tokens, token[:, None]], dim=1)
            seq_ids = torch.cat([seq_ids, batch.answer_positions[:, j - 1 : j]], dim=1)
            logits = _last_logits(model, seq_tokens, seq_ids, attention, None)
        token = logits.argmax(-1).masked_fill(done, pad_id)
        done = done | (token == eos_id)
        out.append(token)
    generated = torch.stack(out, dim=1)
    if generated.shape[1] < max_new_tokens:
        pad = generated.new_full((generated.shape[0], max_new_tokens - generated.shape[1]), pad_id)
        generated = torch.cat([generated, pad], dim=1)
    return generated


# Returned in place of a position ID for steps after a row's <eos> (never a valid ID).
NO_POSITION = -1


@torch.no_grad()
def ppc_greedy_decode(model: Decoder, batch: PromptBatch, max_new_tokens: int, eos_id: int, pad_id: int, *,
                      use_cache: bool = True, force_positions: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy Predictive Position Coupling decoding: (tokens, position IDs), both [B, max_new_tokens].

    Convention: the forward pass at the last fed token gives two argmaxes, the next token j and
    its position ID; token j is then fed back at that predicted ID (the data's convention: the
    ID of answer token j is batch.answer_positions[:, j], so that is also the target of the ID
    predicted with token j). After <eos> a row gets pad tokens and NO_POSITION IDs; the <eos>
    itself keeps the ID predicted with it.

    use_cache=False recomputes the whole prefix at every step instead of using the KV cache (a
    check on the cache; the outputs are the same). force_positions feeds the ground-truth IDs
    batch.answer_positions instead of the predicted ones, which is exactly `greedy_decode`
    (plain coupled decoding); the IDs returned are still the head's predictions.
    """
    if getattr(model, "position_head", None) is None:
        raise ValueError("ppc_greedy_decode needs a model built with model.position_head: true")
    if force_positions and max_new_tokens > batch.answer_positions.shape[1] + 1:
        raise ValueError(f"force_positions has ground-truth IDs for {batch.answer_positions.shape[1] + 1} new tokens, "
                         f"not {max_new_tokens}")
    cache = KVCache() if use_cache else None
    attention, seq_tokens, seq_ids = batch.attention_mask, batch.tokens, batch.position_ids
    logits, position_logits = model(seq_tokens, seq_ids, attention, cache=cache, return_positions=True)
    token, position = logits[:, -1].argmax(-1), position_logits[:, -1].argmax(-1)
    done = token == eos_id
    out_tokens, out_positions = [token], [position]
    ones = torch.ones_like(attention[:, :1])
    for j in range(1, max_new_tokens):
        if bool(done.all()):
            break
        # Finished rows are fed pad at a valid ID; their outputs are masked below.
        fed_id = batch.answer_positions[:, j - 1] if force_positions else position
        attention = torch.cat([attention, ones], dim=1)
        if use_cache:
            logits, position_logits = model(token[:, None], fed_id[:, None], attention, cache=cache,
                                            return_positions=True)
        else:
            seq_tokens = torch.cat([seq_tokens, token[:, None]], dim=1)
            seq_ids = torch.cat([seq_ids, fed_id[:, None]], dim=1)
            logits, position_logits = model(seq_tokens, seq_ids, attention, return_positions=True)
        token = logits[:, -1].argmax(-1).masked_fill(done, pad_id)
        position = position_logits[:, -1].argmax(-1)
        out_tokens.append(token)
        out_positions.append(position.masked_fill(done, NO_POSITION))
        done = done | (token == eos_id)
    tokens, positions = torch.stack(out_tokens, dim=1), torch.stack(out_positions, dim=1)
    missing = max_new_tokens - tokens.shape[1]
    if missing > 0:
        tokens = torch.cat([tokens, tokens.new_full((tokens.shape[0], missing), pad_id)], dim=1)
        positions = torch.cat([positions, positions.new_full((positions.shape[0], missing), NO_POSITION)], dim=1)
    return tokens, positions
