"""The lean inference path: a transformer student answers through ONNX Runtime (or a TorchScript trace), with the
eager model's answers, checked on every load; a student whose export fails or differs answers eagerly and says so.

Why export at load time, in memory, and keep no file: the export is made from the very weights that
``core.training.runs.load_student`` has just hash-checked against the student's artifact, and compared with the
eager model before it answers, so there is no second file whose SHA-256 must be recorded, kept in step with the
student and vouched for; a student trained before the lean path existed is served lean all the same. The price is
a second or two per load (once per worker, evaluation or training run), not per request.

Measured on the demo (benchmarks/bench_demo_students.py): ONNX Runtime answers one request several times faster
than the TorchScript trace, which is itself faster than eager transformers, so ``onnx`` is the default runtime.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from core.domain.errors import InvalidInput
from core.ml import students
from core.ml.students import NgramStudent, TransformerStudent

Runtime = Literal["onnx", "torchscript"]
RUNTIMES: tuple[Runtime, ...] = ("onnx", "torchscript")
ATOL = 1e-4  # the largest difference in probability from the eager model that a lean student may show
CHECK_TEXTS = ["a short check", "a somewhat longer text to check the lean model with padding in the batch",
               "billing refund invoice charged twice, the app crashes on start and I cannot log in"]
_log = logging.getLogger(__name__)


class _Logits(torch.nn.Module):
    """A BERT classifier as a plain (input_ids, attention_mask) -> logits function, the shape an export needs."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def _example(student: TransformerStudent) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded two-row batch to export with; the export keeps batch size and length free."""
    batch = student.collate(student.encode(["a warm-up text for the export", "short"]))
    return batch["input_ids"], batch["attention_mask"]


def export_onnx(student: TransformerStudent) -> bytes:
    """The student's forward pass as an ONNX graph (batch and length dynamic), in memory."""
    student.module.eval()
    buf = io.BytesIO()
    axes = {"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"},
            "logits": {0: "batch"}}
    # The TorchScript-based exporter (dynamo=False) needs no onnxscript; it warns that it is deprecated, and
    # transformers' attention warns while traced that it reads a shape once (is_causal, False for an encoder).
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Logits(student.module).eval(), _example(student), buf, dynamo=False, opset_version=17,
                          input_names=["input_ids", "attention_mask"], output_names=["logits"], dynamic_axes=axes)
    return buf.getvalue()


def onnx_session(graph: bytes, *, threads: int = 1):
    """An ONNX Runtime session on the CPU. One thread without spinning: the service runs a worker per core, and a
    model this small gains little from a second thread while a spinning one takes a core from the next worker."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # errors only: its notes on graph rewrites are not the operator's business
    return ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])


def trace(student: TransformerStudent) -> torch.jit.ScriptModule:
    """The student's forward pass as a frozen TorchScript trace (no Python in transformers' forward per call)."""
    student.module.eval()
    # torch.jit.freeze warns that it is deprecated in favour of torch.compile, which needs a compiler toolchain
    # at run time; transformers warns as in export_onnx.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(_Logits(student.module).eval(), _example(student), check_trace=False, strict=False)
        return torch.jit.freeze(traced.eval())


class LeanTransformerStudent(TransformerStudent):
    """The same student (tokenizer, labels, ``predict_proba``) whose logits come from ``runtime``; ``eager`` is the
    model it was exported from, kept to check against."""

    lean = True

    def __init__(self, student: TransformerStudent, *, runtime: Runtime = "onnx", threads: int = 1):
        _require_known(runtime)
        super().__init__(model=student.module, tokenizer=student.tokenizer, max_length=student.max_length)
        self.eager, self.runtime = student, runtime
        self._session = onnx_session(export_onnx(student), threads=threads) if runtime == "onnx" else None
        self._traced = trace(student) if runtime == "torchscript" else None

    def predict_proba(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        """As the eager student's; one text through ONNX Runtime goes numpy in, numpy out: torch's fixed costs per
        call (the module walk, inference mode, tensors) were 0.2 ms of a served request's 0.33 ms on the demo's
        tiny student, the model itself 0.07 ms."""
        texts = list(texts)
        if self._session is None or len(texts) != 1:
            return super().predict_proba(texts, batch_size=batch_size)
        ids = np.array(self.encode(texts), dtype=np.int64)
        logits = self._session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
        logits = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        return logits / logits.sum(axis=1, keepdims=True)

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        if self._session is not None:
            out = self._session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
            return torch.from_numpy(out)
        return self._traced(ids, mask)

    def check(self, texts: list[str], *, atol: float = ATOL) -> float:
        """The largest difference in probability from the eager model on ``texts``, one by one and batched;
        refused when above ``atol`` or when any answer's label differs."""
        texts = list(texts)
        if not texts:
            return 0.0
        diff = 0.0
        theirs = self.eager.predict_proba(texts)
        for batch_size in (0, 1, len(texts)):  # 0: each text on its own, as a served request asks
            mine = (np.concatenate([self.predict_proba([t]) for t in texts]) if batch_size == 0
                    else self.predict_proba(texts, batch_size=batch_size))
            diff = max(diff, float(np.abs(mine - theirs).max()))
            if diff > atol or (mine.argmax(axis=1) != theirs.argmax(axis=1)).any():
                raise InvalidInput(f"the {self.runtime} export differs from the model by {diff:.2g} in probability: "
                                   "serve the eager model (lean=False).", field="checkpoint")
        return diff


def make_lean(student: TransformerStudent, *, runtime: Runtime = "onnx", threads: int = 1,
              check_texts: list[str] | None = None) -> TransformerStudent:
    """``student`` behind a checked ``runtime`` export, or ``student`` itself, eager, when the export fails or its
    answers differ: then ``lean_note`` says why, and so does a warning in the log."""
    _require_known(runtime)  # a mistyped runtime is the caller's error, not an export that failed
    try:
        lean = LeanTransformerStudent(student, runtime=runtime, threads=threads)
        lean.check(CHECK_TEXTS if check_texts is None else check_texts)
    except Exception as exc:  # any failure of an exporter or runtime leaves a student that answers, eagerly
        student.runtime = "eager"
        student.lean_note = f"the {runtime} export failed ({type(exc).__name__}: {exc}); answering eagerly"
        _log.warning("student served eagerly: %s", student.lean_note)
        return student
    return lean


def _require_known(runtime: str) -> None:
    if runtime not in RUNTIMES:
        raise InvalidInput(f"unknown lean runtime {runtime!r}: use one of {', '.join(RUNTIMES)}.", field="runtime")


def load_for_inference(path: Path | str, *, lean: bool = True,
                       runtime: Runtime = "onnx") -> NgramStudent | TransformerStudent:
    """A saved student ready to answer: a transformer behind its checked ``runtime`` export (``lean``), falling
    back to eager with a note; an n-gram student as it is (already a few array operations per request)."""
    student = students.load(path)
    if not lean or not isinstance(student, TransformerStudent):
        return student
    return make_lean(student, runtime=runtime)
