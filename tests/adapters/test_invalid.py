"""Bad input to the adapters is refused with a message that says what was expected and what was
got, and a refused call changes nothing. None of these need ``transformers``."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch
from torch import nn

import banditformer as bf
from banditformer import Decision, InputValidationError
from banditformer.adapters import AdaptedHidden, adapt, supported
from tests.adapters.models import PLAIN, SEQ, VOCAB, PlainClassifier, case


def test_importing_banditformer_does_not_import_transformers() -> None:
    code = "import sys, banditformer, banditformer.adapters; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"
    assert bf.adapt is adapt


def test_an_unknown_model_gets_the_supported_architectures_and_the_protocol() -> None:
    model = PlainClassifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(InputValidationError) as err:
        adapt(model)
    message = str(err.value)
    for name in supported():
        assert name in message
    assert "BertForSequenceClassification" in message and "GPT2ForSequenceClassification" in message
    assert "banditformer.adapters.Family" in message and "attention projections" in message
    assert message.endswith("got PlainClassifier")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(InputValidationError, match=r"torch\.nn\.Module, got str"):
        adapt("bert-base-uncased")
    with pytest.raises(InputValidationError, match="Family, got str"):
        adapt(model, family="bert")


def test_a_family_recognises_its_models_by_class_name_or_by_its_own_rule() -> None:
    class MyClassifier(PlainClassifier):
        pass

    named = dataclasses.replace(PLAIN, architectures=("PlainClassifier",))
    assert named.recognises(MyClassifier()) and not named.recognises(nn.Linear(2, 2))
    ruled = dataclasses.replace(PLAIN, matches=lambda m: isinstance(m, nn.Linear))
    assert ruled.recognises(nn.Linear(2, 2)) and not ruled.recognises(MyClassifier())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"exits": "some"}, "'all', 'none' or a sequence of depths, got 'some'"),
        ({"exits": [0]}, r"`exits\[\]` .*got 0"),
        ({"exits": [3]}, r"`exits\[\]` .*got 3"),
        ({"exits": [1, 1]}, r"distinct exit points, got \[1, 1\]"),
        ({"seq_len": SEQ + 1}, "`seq_len`"),
        ({"backend": "cpu"}, "Backend or None, got str"),
    ],
)
def test_bad_adapt_arguments_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(InputValidationError, match=match):
        adapt(PlainClassifier(), family=PLAIN, **kwargs)


def test_bad_families_are_refused() -> None:
    with pytest.raises(InputValidationError, match=r"`input` in \('tokens', 'pixels'\), got 'audio'"):
        dataclasses.replace(PLAIN, input="audio")
    with pytest.raises(InputValidationError, match="Family `block` to be callable, got int"):
        dataclasses.replace(PLAIN, block=3)
    with pytest.raises(InputValidationError, match="`image_shape` for a family of input 'pixels'"):
        dataclasses.replace(PLAIN, input="pixels")
    wrong_heads = dataclasses.replace(
        PLAIN, attention=lambda b: dataclasses.replace(PLAIN.attention(b), num_heads=5)
    )  # 32 rows are no multiple of 5
    with pytest.raises(InputValidationError, match=r"plain block 0 attention\.query's 32 rows to be a multiple of"):
        adapt(PlainClassifier(), family=wrong_heads)
    short_out = dataclasses.replace(
        PLAIN, attention=lambda b: dataclasses.replace(PLAIN.attention(b), out=b.qkv.weight)
    )
    with pytest.raises(InputValidationError, match=r"attention.out of shape \(32, 32\), got \(96, 32\)"):
        adapt(PlainClassifier(), family=short_out)
    no_blocks = dataclasses.replace(PLAIN, blocks=lambda m: [])
    with pytest.raises(InputValidationError, match=r"at least one nn\.Module, got 0 blocks"):
        adapt(PlainClassifier(), family=no_blocks)

    def mixed(block):
        p = PLAIN.attention(block)
        return p if block is not model.blocks[1] else dataclasses.replace(p, num_heads=2)

    model = PlainClassifier()
    with pytest.raises(InputValidationError, match=r"every block with 4 heads .* got 2 heads of width 32 in block 1"):
        adapt(model, family=dataclasses.replace(PLAIN, attention=mixed))


@pytest.mark.parametrize(
    ("x", "match"),
    [
        ({"input_ids": torch.zeros(2, 4, dtype=torch.long), "labels": torch.zeros(2)}, "got keys"),
        ({"attention_mask": torch.ones(2, 4)}, "got keys"),
        (torch.zeros(2, 4), "integer dtype|int"),
        (torch.zeros(2, SEQ + 1, dtype=torch.long), f"1 to {SEQ} positions, got {SEQ + 1}"),
        (torch.full((2, 4), VOCAB, dtype=torch.long), rf"token ids in \[0, {VOCAB}\), got {VOCAB}..{VOCAB}"),
        ({"input_ids": torch.zeros(2, 4, dtype=torch.long), "attention_mask": torch.full((2, 4), 2)}, "0s and 1s"),
        ({"input_ids": torch.zeros(2, 4, dtype=torch.long), "attention_mask": torch.ones(2, 5)}, r"\(2, 4\)"),
        ({"input_ids": torch.zeros(2, 4, dtype=torch.long), "attention_mask": torch.ones(2, 4) * 0.5}, "0s and 1s"),
    ],
)
def test_bad_token_inputs_are_refused(x, match: str) -> None:
    with pytest.raises(InputValidationError, match=match):
        case("plain").adapted.stem(x)


def test_bad_run_arguments_are_refused_and_change_nothing() -> None:
    model = case("plain").adapted
    h, _ = model.stem(torch.randint(0, VOCAB, (3, 5)))
    full = Decision.full(3, 3, 4)
    partial = Decision.full(3, 3, 4)
    partial.heads[:, 0, 1:] = False
    with pytest.raises(InputValidationError, match="AdaptedHidden that stem\\(\\) returns, got Tensor"):
        model.run(h.states, full)
    with pytest.raises(InputValidationError, match="block 0"):
        model.run(h, partial)
    with pytest.raises(InputValidationError, match="`path`"):
        model.run(h, full, path="slow")
    with pytest.raises(InputValidationError, match="head_gate"):
        model.run(h, full, head_gate=torch.ones(3, 3, 2))
    with pytest.raises(InputValidationError, match=r"decision.heads"):
        model.run(h, Decision.full(3, 3, 2))
    with pytest.raises(InputValidationError, match=r"h.mask"):
        model.run(AdaptedHidden(h.states, torch.ones(3, 4, dtype=torch.bool), h.index), full)
    with pytest.raises(InputValidationError, match="`halt` to be a callable"):
        model.run_exits(h, full, halt=3)
    tables = dict(model._cost_tables)
    with pytest.raises(InputValidationError, match="the string 'linear'"):
        model.cost_table(ops="linear")
    with pytest.raises(InputValidationError, match="`seq_len`"):
        model.cost_table(seq_len=SEQ + 1)
    assert model._cost_tables == tables


def test_bad_pixel_inputs_are_refused() -> None:
    pytest.importorskip("transformers")
    model = case("vit").adapted
    with pytest.raises(InputValidationError, match=r"`pixel_values` of shape \(\*, 2, 8, 8\)"):
        model.stem(torch.zeros(1, 3, 8, 8))
    with pytest.raises(InputValidationError, match=r"model's dtype torch.float32, got torch.float64"):
        model.stem(torch.zeros(1, 2, 8, 8, dtype=torch.float64))
    with pytest.raises(InputValidationError, match="'pixel_values' only"):
        model.stem({"pixel_values": torch.zeros(1, 2, 8, 8), "labels": torch.zeros(1)})
    with pytest.raises(InputValidationError, match="an image's positions"):
        model.cost_table(seq_len=4)
