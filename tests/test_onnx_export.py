import numpy as np
import onnxruntime

from skinstation.inference.classifier import Classifier
from skinstation.inference.onnx_export import export_onnx
from skinstation.inference.preprocessing import decode_image, preprocess


def test_onnx_export_matches_the_classifier(tiny_model, tmp_path, ham_dir):
    path = export_onnx(tiny_model, tmp_path / "model.onnx")
    classifier = Classifier.load(tiny_model)
    images = [decode_image(ham_dir / "images" / f"ISIC_00243{i:02d}.jpg") for i in range(6, 10)]
    batch = np.stack([preprocess(image, classifier.preprocess_config) for image in images])
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_probs,) = session.run(None, {"images": batch})
    logits, _ = classifier.forward(batch)
    np.testing.assert_allclose(onnx_probs, classifier.probabilities(logits), atol=1e-5)
    assert onnx_probs.shape == (4, 7)
