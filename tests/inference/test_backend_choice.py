"""`--backend auto`: the fastest ONNX backend whose guard verdict on this machine passed and pays off, for this
model; torch otherwise, or when the request needs torch. The module reads no torch."""

import json
import subprocess
import sys

from regionspot.inference import backend_choice
from regionspot.inference.backend_choice import backend_signature, choose_backend, model_key
from regionspot.inference.options import PredictOptions


def _verdicts(**entries) -> dict:
    return {backend_signature(): {"shapesworld": entries}}


def test_the_fastest_backend_that_passed_and_pays_off_is_chosen():
    verdicts = _verdicts(onnxruntime={"passed": True, "pays_off": True, "speedup": 1.4},
                         openvino={"passed": True, "pays_off": True, "speedup": 2.7},
                         **{"openvino-bf16": {"passed": False, "pays_off": True, "speedup": 3.2},
                            "onnxruntime-int8": {"passed": True, "pays_off": False, "speedup": 9.0}})
    name, line = choose_backend("shapesworld", verdicts=verdicts)
    assert name == "openvino" and "2.70×" in line


def test_torch_without_verdicts_for_this_machine_or_model_or_when_the_request_needs_it():
    fast = {"passed": True, "pays_off": True, "speedup": 2.0}
    assert choose_backend("shapesworld", verdicts={}) == ("torch", None)
    assert choose_backend("BL", verdicts=_verdicts(onnxruntime=fast)) == ("torch", None)
    assert choose_backend("shapesworld", verdicts={"another machine": {"shapesworld": {"onnxruntime": fast}}}) == ("torch", None)
    name, line = choose_backend("shapesworld", needs_torch="everything mode", verdicts=_verdicts(onnxruntime=fast))
    assert name == "torch" and "everything mode" in line


def test_predict_options_resolve_auto(tmp_path, monkeypatch):
    monkeypatch.setenv("REGIONSPOT_CACHE", str(tmp_path))
    backend_choice.write_backend_verdicts("shapesworld", {"onnxruntime": {"passed": True, "pays_off": True, "speedup": 1.5}})
    assert PredictOptions().backend == "auto"
    assert PredictOptions().resolve_backend(has_prompts=True)[0] == "onnxruntime"
    assert PredictOptions().resolve_backend(has_prompts=False)[0] == "torch"  # everything mode
    assert PredictOptions(fast=True).resolve_backend(has_prompts=True)[0] == "onnxruntime"  # the faster choice
    assert PredictOptions(backend="torch").resolve_backend(has_prompts=True) == ("torch", None)
    assert PredictOptions(model="BL").resolve_backend(has_prompts=True)[0] == "torch"  # no verdict for that model
    assert PredictOptions(onnx=tmp_path).resolve_backend(has_prompts=True)[0] == "onnxruntime"


def test_model_key_names_files_by_absolute_path(tmp_path, monkeypatch):
    head = tmp_path / "head.safetensors"
    head.write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert model_key("head.safetensors") == str(head.resolve())
    assert model_key(None) == "shapesworld" and model_key("BL", "sam", None) == "BL + sam"


def test_choosing_imports_no_torch():
    code = ("import sys; from regionspot.inference.options import PredictOptions; "
            "PredictOptions().resolve_backend(True); print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_verdicts_file_keeps_other_machines(tmp_path):
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"other": {"BL": {}}}))
    backend_choice.write_backend_verdicts("shapesworld", {"onnxruntime": {"passed": True}}, path=path)
    assert set(json.loads(path.read_text())) == {"other", backend_signature()}
