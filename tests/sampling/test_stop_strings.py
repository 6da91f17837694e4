"""The stop-string automaton against a brute-force search of the decoded text."""

import numpy as np

from azr_jax.sampling.stop_strings import transition_table


def test_stop_automaton_matches_brute_force():
    rng = np.random.default_rng(0)
    pieces = [bytes(rng.choice([97, 98, 99], rng.integers(0, 5)).tolist()) for _ in range(40)]
    stops = ("aab", "ba", "cabca")
    table = transition_table(pieces, stops)
    accept = table.shape[0] - 1
    for _ in range(200):
        seq = rng.integers(0, len(pieces), 12)
        state, got = 0, None
        for i, t in enumerate(seq):
            state = table[state, t]
            if state == accept:
                got = i
                break
        text, want = b"", None
        for i, t in enumerate(seq):
            text += pieces[t]
            if any(s.encode() in text for s in stops):
                want = i
                break
        assert got == want, (seq, got, want)
