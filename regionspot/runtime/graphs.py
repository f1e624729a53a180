"""An exported model folder opened with ONNX Runtime: each graph a session, each checked against the folder
format (``export/format.py``) and against the other graphs (one model) before anything runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

from regionspot.errors import OnnxModelError
from regionspot.export.format import EXPORT_HINT, GRAPHS, TOKENIZER_FILE, check_metadata, runtime_config

__all__ = ["OnnxGraphs"]


class OnnxGraphs:
    """The five graphs of a folder written by ``regionspot export onnx``.

    folder: the export folder. threads: intra-op threads per session (0: ONNX Runtime's default).
    providers: ONNX Runtime execution providers (default: CPU).
    Attributes: ``sessions`` (graph name -> InferenceSession), ``config`` (the ``regionspot.config`` dict),
    ``model`` (the model key), ``tokenizer_path``.
    Raises OnnxModelError when a graph is missing or not of this folder's model and format.
    """

    def __init__(self, folder: str | Path, threads: int = 0, providers: list[str] | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise OnnxModelError("The ONNX runtime needs onnxruntime: pip install 'regionspot[onnx]'.") from None
        folder = Path(folder)
        if not folder.is_dir():
            raise OnnxModelError(f"{folder} is not a folder of exported graphs; {EXPORT_HINT.replace('DIR', str(folder))}.")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        self.sessions, self.model, self.config = {}, None, None
        for name, spec in GRAPHS.items():
            path = folder / spec.file
            if not path.is_file():
                raise OnnxModelError(f"{path} is missing; {EXPORT_HINT.replace('DIR', str(folder))}.")
            try:
                session = ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
            except Exception as error:  # onnxruntime raises its own exception types for unreadable files
                raise OnnxModelError(f"{path} is not a readable ONNX graph ({str(error).splitlines()[0][:120]}); "
                                     f"{EXPORT_HINT}.") from None
            metadata = session.get_modelmeta().custom_metadata_map
            self.model = check_metadata(metadata, str(path), name, self.model)
            self.config = self.config or runtime_config(metadata, str(path))
            self.sessions[name] = session
        self.tokenizer_path = folder / TOKENIZER_FILE
        expected = self.config["text"]["tokenizer_sha256"]
        if not self.tokenizer_path.is_file() or hashlib.sha256(self.tokenizer_path.read_bytes()).hexdigest() != expected:
            raise OnnxModelError(f"{self.tokenizer_path} is missing or not the tokenizer the graphs were exported with; "
                                 f"{EXPORT_HINT}.")

    def run(self, name: str, **inputs) -> list:
        """Run graph ``name`` on numpy inputs (by input name); returns its outputs in ``GRAPHS[name].outputs`` order."""
        return self.sessions[name].run(list(GRAPHS[name].outputs), inputs)
