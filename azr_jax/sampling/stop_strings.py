"""Exact stop strings on device: a byte automaton folded into a [Q, V] token-transition table.

A row must stop right after the token that completes a stop string, even when the string spans
several tokens or ends inside one. On the host we build an Aho-Corasick style automaton over the
bytes of the stop strings (state = the longest suffix of the text so far that is a prefix of some
stop string; the last state, ACCEPT, is absorbing), then run every token's bytes through it from
every state: `table[q, v]` is the state after emitting token v in state q. On device a decode
step is one gather, `state = table[state, token]`, and the row stops when it reaches ACCEPT.
Only generated text is matched: the automaton starts in state 0 after the prompt.

Token bytes are exact for byte-level BPE tokenizers (GPT-2, Qwen, Llama 3); for other
tokenizers each token's bytes are its own decoded text (close, but not exact across tokens that
split a multi-byte character).
"""

from __future__ import annotations

import numpy as np


def _bytes_to_unicode() -> dict[str, int]:
    """GPT-2's reversible byte <-> printable-unicode map, as char -> byte."""
    keep = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(b)
        else:
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(range(256), chars, strict=True)}


def token_bytes(tokenizer, vocab_size: int) -> list[bytes]:
    """The bytes each token id in [0, vocab_size) appends to the text (b"" past the tokenizer)."""
    byte_of = _bytes_to_unicode()
    added = {i: t.content for i, t in tokenizer.added_tokens_decoder.items()}
    pieces = tokenizer.convert_ids_to_tokens(list(range(min(vocab_size, len(tokenizer)))))
    byte_level = all(p is not None and all(c in byte_of for c in p) for p in pieces[:4096])
    out = []
    for i in range(vocab_size):
        if i >= len(pieces) or pieces[i] is None:
            out.append(b"")
        elif i in added:
            out.append(added[i].encode("utf-8"))
        elif byte_level:
            out.append(bytes(byte_of[c] for c in pieces[i]))
        else:
            out.append(tokenizer.decode([i]).encode("utf-8"))
    return out


def byte_automaton(stop_strings: tuple[str, ...]) -> np.ndarray:
    """[Q, 256] int32 byte transitions; state 0 is the start and state Q - 1 the absorbing ACCEPT."""
    stops = [s.encode("utf-8") for s in stop_strings]
    prefixes = sorted({s[:i] for s in stops for i in range(len(s))}, key=lambda p: (len(p), p))
    index = {p: q for q, p in enumerate(prefixes)}
    accept = len(prefixes)
    delta = np.full((accept + 1, 256), accept, np.int32)
    for p, q in index.items():
        for b in range(256):
            text = p + bytes([b])
            if any(text.endswith(s) for s in stops):
                continue  # stays ACCEPT
            # The longest suffix of `text` that is a (proper) prefix of a stop string.
            delta[q, b] = next(index[text[i:]] for i in range(len(text) + 1) if text[i:] in index)
    return delta


def stop_table(tokenizer, stop_strings: tuple[str, ...], vocab_size: int) -> np.ndarray:
    """[Q, V] int32: `table[q, v]` is the automaton state after token v from state q."""
    return transition_table(token_bytes(tokenizer, vocab_size), stop_strings)


def transition_table(pieces: list[bytes], stop_strings: tuple[str, ...]) -> np.ndarray:
    """[Q, V] int32 table for tokens whose bytes are `pieces` (V = len(pieces))."""
    delta = byte_automaton(tuple(stop_strings))
    accept = delta.shape[0] - 1
    vocab_size = len(pieces)
    lens = np.array([len(p) for p in pieces])
    order = np.argsort(-lens, kind="stable")  # longest first: step j touches a shrinking prefix
    buf = np.zeros((vocab_size, max(int(lens.max()), 1)), np.uint8)
    for row, v in enumerate(order):
        buf[row, : lens[v]] = np.frombuffer(pieces[v], np.uint8)
    state = np.repeat(np.arange(accept + 1, dtype=np.int32)[:, None], vocab_size, axis=1)
    sorted_lens = lens[order]
    for j in range(buf.shape[1]):
        m = int(np.sum(sorted_lens > j))
        state[:, :m] = delta[state[:, :m], buf[None, :m, j]]
    table = np.empty_like(state)
    table[:, order] = state
    table[accept] = accept
    return table


def cut_at_stop(text: str, stop_strings: tuple[str, ...]) -> str:
    """`text` up to and including the earliest-completing stop string (unchanged if none)."""
    ends = [text.find(s) + len(s) for s in stop_strings if s in text]
    return text[: min(ends)] if ends else text
