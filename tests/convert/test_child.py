"""The converting child's plumbing (harness.convert.child), shared by the litert-torch and
ExecuTorch converters: each way a child can end becomes facts or a ConversionError that says how."""

from __future__ import annotations

import pytest

from harness.convert import ConversionError
from harness.convert.child import MESSAGE_LINES, describe, hand_over_module, run_child

FAILED = "test/pytorch/case: example int8 conversion failed"


def run(case: str, **job) -> dict:
    return run_child("tests.convert.child_cases", "CHILD-CASES", {"case": case, **job}, FAILED, timeout_s=30)


def test_a_child_that_finishes_reports_its_facts_and_cannot_import_tensorflow():
    assert run("ok", value=[1, "two"]) == {"echo": [1, "two"], "tensorflow_importable": False}


def test_a_refusal_names_the_stage_and_carries_the_first_lines_of_the_message():
    with pytest.raises(ConversionError) as info:
        run("stage")
    assert str(info.value) == (f"{FAILED} at stage quantize: ValueError: first line of the refusal second line "
                               "third line")
    assert info.value.stage == "quantize"


def test_a_refusal_outside_any_stage_says_so_by_naming_none():
    with pytest.raises(ConversionError, match=rf"^{FAILED}: KeyError: 'unnamed'$") as info:
        run("no-stage")
    assert info.value.stage is None


def test_a_child_that_exits_without_a_report_gives_its_status_and_stderr():
    with pytest.raises(ConversionError, match=rf"^{FAILED}: the converting child exited with status 7; "
                                              r"its stderr ends: what went wrong, on stderr$"):
        run("exit")


def test_a_child_that_crashes_is_named_by_its_signal():
    with pytest.raises(ConversionError, match=rf"^{FAILED}: the converting child process crashed \(SIGSEGV\)"):
        run("segfault")


def test_a_child_that_does_not_finish_is_stopped_at_the_timeout():
    with pytest.raises(ConversionError, match=rf"^{FAILED}: it did not finish in 2 s$"):
        run_child("tests.convert.child_cases", "CHILD-CASES", {"case": "hang"}, FAILED, timeout_s=2)


def test_messages_keep_their_first_lines_only():
    long = ValueError("\n".join(f"line {i}" for i in range(100)))
    text = describe(long)
    assert text.startswith("ValueError: line 0 line 1 ")
    assert f"line {MESSAGE_LINES - 1}" in text and f"line {MESSAGE_LINES}" not in text
    assert describe(RuntimeError()) == "RuntimeError: (no message)"
    assert len(describe(ValueError("x" * 5000))) <= len("ValueError: ") + 1500


def test_a_module_pickle_cannot_name_is_refused_before_any_child_runs(tmp_path):
    import torch

    class Local(torch.nn.Module):  # defined in a function: pickle cannot name it
        def forward(self, x):
            return x

    with pytest.raises(ConversionError, match=rf"^{FAILED}: the module cannot be handed to the converting child "
                                              r"process \(torch\.save: "):
        hand_over_module(Local(), tmp_path / "module.pt", FAILED)
