"""An exported model folder opened with an inference engine: each graph a compiled session, each checked against
the folder format (``export/format.py``) and against the other graphs (one model) before anything runs.

Two engines run the same ``.onnx`` files: ONNX Runtime (:class:`OnnxGraphs`, the default) and OpenVINO
(:class:`OpenVinoGraphs`, ``pip install 'regionspot[openvino]'``). Both give ``run(name, **inputs)`` and the
folder's ``config``, ``model`` and ``tokenizer_path``.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from regionspot.errors import OnnxModelError
from regionspot.export.format import EXPORT_HINT, GRAPHS, TOKENIZER_FILE, check_metadata, runtime_config

__all__ = ["ENGINES", "OnnxGraphs", "OpenVinoGraphs", "open_graphs"]

ENGINES = ("onnxruntime", "openvino")
OPENVINO_PRECISIONS = {"fp32": "f32", "bf16": "bf16"}  # our name -> OpenVINO's inference precision hint


class _FolderGraphs:
    """What both engines share: the folder's checks (format, one model, the exported tokenizer) and ``run``."""

    engine = ""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise OnnxModelError(f"{self.folder} is not a folder of exported graphs; "
                                 f"{EXPORT_HINT.replace('DIR', str(self.folder))}.")
        self.sessions: dict = {}
        self.model: str | None = None
        self.config: dict | None = None
        for name, spec in GRAPHS.items():
            path = self.folder / spec.file
            if not path.is_file():
                raise OnnxModelError(f"{path} is missing; {EXPORT_HINT.replace('DIR', str(self.folder))}.")
            session, metadata = self._open(path)
            self.model = check_metadata(metadata, str(path), name, self.model)
            self.config = self.config or runtime_config(metadata, str(path))
            self.sessions[name] = session
        self.tokenizer_path = self.folder / TOKENIZER_FILE
        expected = self.config["text"]["tokenizer_sha256"]
        if not self.tokenizer_path.is_file() or hashlib.sha256(self.tokenizer_path.read_bytes()).hexdigest() != expected:
            raise OnnxModelError(f"{self.tokenizer_path} is missing or not the tokenizer the graphs were exported with; "
                                 f"{EXPORT_HINT}.")

    def _open(self, path: Path) -> tuple[object, dict[str, str]]:
        """(a session that runs ``path``, the graph's metadata name -> value)."""
        raise NotImplementedError

    @staticmethod
    def _unreadable(path: Path, error: Exception) -> OnnxModelError:
        return OnnxModelError(f"{path} is not a readable ONNX graph ({str(error).splitlines()[0][:120]}); {EXPORT_HINT}.")

    def run(self, name: str, **inputs) -> list:
        """Run graph ``name`` on numpy inputs (by input name); returns its outputs in ``GRAPHS[name].outputs`` order."""
        raise NotImplementedError


class OnnxGraphs(_FolderGraphs):
    """The five graphs of a folder written by ``regionspot export onnx``, as ONNX Runtime sessions.

    folder: the export folder. threads: intra-op threads per session (0: ONNX Runtime's default).
    providers: ONNX Runtime execution providers (default: CPU).
    Attributes: ``sessions`` (graph name -> InferenceSession), ``config`` (the ``regionspot.config`` dict),
    ``model`` (the model key), ``tokenizer_path``.
    Raises OnnxModelError when a graph is missing or not of this folder's model and format.
    """

    engine = "onnxruntime"

    def __init__(self, folder: str | Path, threads: int = 0, providers: list[str] | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise OnnxModelError("The ONNX runtime needs onnxruntime: pip install 'regionspot[onnx]'.") from None
        self._ort = ort
        self._options = ort.SessionOptions()
        self._options.intra_op_num_threads = int(threads)
        self._options.log_severity_level = 3
        self._providers = providers or ["CPUExecutionProvider"]
        super().__init__(folder)

    def _open(self, path: Path) -> tuple[object, dict[str, str]]:
        try:
            session = self._ort.InferenceSession(str(path), self._options, providers=self._providers)
        except Exception as error:  # onnxruntime raises its own exception types for unreadable files
            raise self._unreadable(path, error) from None
        return session, session.get_modelmeta().custom_metadata_map

    def run(self, name: str, **inputs) -> list:
        return self.sessions[name].run(list(GRAPHS[name].outputs), inputs)


class OpenVinoGraphs(_FolderGraphs):
    """The same graphs compiled by OpenVINO for its CPU plugin.

    precision: "fp32" (OpenVINO's f32 inference precision: the graphs' own arithmetic) or "bf16" (matrix products
    and convolutions in bfloat16; native only on CPUs with AVX-512 BF16 or AMX, else OpenVINO emulates it).
    OpenVINO itself picks bf16 on such CPUs unless told otherwise, so fp32 is asked for explicitly.
    threads: inference threads (0: OpenVINO's default). Raises OnnxModelError as :class:`OnnxGraphs`, and when
    openvino is not installed.
    """

    engine = "openvino"

    def __init__(self, folder: str | Path, threads: int = 0, precision: str = "fp32") -> None:
        if precision not in OPENVINO_PRECISIONS:
            raise ValueError(f"precision must be one of {tuple(OPENVINO_PRECISIONS)}, got {precision!r}.")
        self._core = openvino_core()
        self._config = {"INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[precision], "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = int(threads)
        self.precision = precision
        super().__init__(folder)

    def _open(self, path: Path) -> tuple[object, dict[str, str]]:
        try:
            model = self._core.read_model(str(path))
        except Exception as error:  # OpenVINO raises RuntimeError with multi-line messages
            raise self._unreadable(path, error) from None
        try:
            compiled = self._core.compile_model(model, "CPU", self._config)
        except Exception as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise OnnxModelError(f"OpenVINO could not compile {path.name} for this CPU in {self.precision} ({first}); "
                                 "use another backend (openvino, onnxruntime or torch).") from None
        info = model.get_rt_info()
        framework = info["framework"] if "framework" in info else {}  # the ONNX metadata_props
        metadata = {key: value.astype(str) for key, value in framework.items()}
        return compiled.create_infer_request(), metadata

    def run(self, name: str, **inputs) -> list:
        request = self.sessions[name]
        outputs = request.infer(inputs)  # by output port; a port may carry several tensor names
        return [outputs[output] for output in GRAPHS[name].outputs]


def openvino_core() -> object:
    """The process's one ``openvino.Core``: a second Core in a process that has compiled models can crash it
    (a segmentation fault in a native thread, seen after torch work in the same process), so every OpenVINO
    folder compiles through this one. Raises OnnxModelError when openvino is not installed."""
    try:
        import openvino  # noqa: F401  (checked on every call: the one Core below outlives a later uninstall)
    except ImportError:
        raise OnnxModelError("The OpenVINO backend needs openvino: pip install 'regionspot[openvino]'.") from None
    return _core()


@functools.cache
def _core() -> object:
    import openvino

    return openvino.Core()


def open_graphs(folder: str | Path, engine: str = "onnxruntime", threads: int = 0, precision: str = "fp32",
                providers: list[str] | None = None) -> _FolderGraphs:
    """The graphs of ``folder`` run by ``engine`` ("onnxruntime" or "openvino"); ``precision`` "bf16" only with
    OpenVINO, ``providers`` only with ONNX Runtime."""
    if engine == "onnxruntime":
        if precision != "fp32":
            raise ValueError("ONNX Runtime runs the graphs in their own precision (fp32); bf16 is OpenVINO's.")
        return OnnxGraphs(folder, threads=threads, providers=providers)
    if engine == "openvino":
        return OpenVinoGraphs(folder, threads=threads, precision=precision)
    raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}.")
