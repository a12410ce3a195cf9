"""Any bytes given as a spec get one line (hpo.SpecError, exit 2), never a traceback: random
bytes, and a valid spec mutated (bytes flipped, cut, inserted, lines shuffled, non-UTF-8
text). The count of cases is printed (pytest -s)."""

from __future__ import annotations

import random

import pytest

from hpo.errors import SpecError
from hpo.experiment import check
from hpo.spec import load_spec

VALID = (b"name: fuzz\ndescription: caf\xc3\xa9\ntrainable: mlp\ndataset: {name: mnist_sample, val_size: 500}\n"
         b"metric: val_acc\nsearcher: {name: random, seed: 3}\nscheduler: {name: asha, grace_period: 1}\n"
         b"budget: {max_epochs: 2, num_samples: 4, max_concurrent_trials: 2}\n"
         b"params:\n  lr: {loguniform: [1e-4, 1.0]}\n  hidden: {choice: [[16], [32]]}\n  batch_size: 64\n")
N = 3000


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(6)
        i = rng.randrange(len(b) + 1) if b else 0
        if op == 0 and b:
            b[min(i, len(b) - 1)] = rng.randrange(256)  # a byte flipped
        elif op == 1:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))  # bytes inserted
        elif op == 2:
            del b[i:i + rng.randint(1, 20)]  # bytes cut
        elif op == 3:
            b[i:i] = rng.choice([b": ", b"{", b"}", b"[", b"]", b"- ", b"\n  ", b"*a", b"&a ", b"!!python/object ",
                                 b"'", b'"', b"\t", b"\xe9", b"\x00", b"1e400", b"-1", b"null"])
        elif op == 4:
            lines = bytes(b).split(b"\n")
            rng.shuffle(lines)
            b = bytearray(b"\n".join(lines))
        else:
            b = b[:i]  # cut short
    return bytes(b)


def test_random_and_mutated_specs_give_one_line_errors(tmp_path):
    rng = random.Random(0)
    p = tmp_path / "spec.yaml"
    ok = refused = 0
    for k in range(N):
        data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 200))) if k % 5 == 0 else _mutate(rng, VALID)
        p.write_bytes(data)
        try:
            check(load_spec(p))  # and the experiment's checks, as `hpo validate` runs them
            ok += 1
        except SpecError as e:
            refused += 1
            assert str(e).strip() and "Traceback" not in str(e)
        except Exception as e:  # noqa: BLE001 - what the test is for
            pytest.fail(f"case {k}: {type(e).__name__}: {e}\n{data!r}")
    print(f"{N} specs: {refused} refused with a SpecError, {ok} valid experiments")
    assert refused > N // 2
